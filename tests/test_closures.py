"""Roads that close (issue 18, item 4): closures, closure loss, single points of failure.

Real shipped data: Andorra (one road per valley, the CG-2 up the Valira d'Orient to Soldeu
and Pas de la Casa) and Liechtenstein. Expected values are computed another way: networkx
reachability on a graph built from the network's arrays, and a brute force that removes each
road segment in turn.
"""

from __future__ import annotations

import json
import tomllib
from pathlib import Path

import geopandas as gpd
import networkx as nx
import numpy as np
import osmium
import pandas as pd
import pytest
import shapely
from click.testing import CliRunner
from covplan import pipeline
from covplan.cli import main
from covplan.engine.attach import Attachment, attach
from covplan.engine.closures import (
    close_roads,
    closed_edges,
    single_points_of_failure,
    single_points_of_failure_bruteforce,
)
from covplan.errors import InputError
from covplan.geo import haversine_m
from covplan.resilience import (
    CLOSURE_LOSS_COLUMNS,
    Closure,
    closure_for_scenario,
    closure_loss,
)
from covplan.scenario import load_scenario, parse_scenario
from shapely.geometry import LineString, mapping

from tests.shipped import ANDORRA_PBF, ANDORRA_SCENARIO, LIECHTENSTEIN_SCENARIO, SCENARIOS

EMERGENCY = ("BZ-12", "BZ-13")


class _RefWays(osmium.SimpleHandler):
    """The ways tagged ref=CG-2, with their node coordinates."""

    def __init__(self) -> None:
        super().__init__()
        self.ways: dict[int, list[tuple[float, float]]] = {}

    def way(self, w: osmium.osm.Way) -> None:
        if w.tags.get("ref") == "CG-2":
            self.ways[w.id] = [(n.lon, n.lat) for n in w.nodes]


@pytest.fixture(scope="module")
def cg2_section() -> tuple[int, shapely.Polygon]:
    """The longest CG-2 way between Canillo and Soldeu, and a ~100 m box on its middle."""
    handler = _RefWays()
    handler.apply_file(str(ANDORRA_PBF), locations=True)
    assert handler.ways, "the Andorra extract has ways with ref=CG-2"

    def length(coords: list[tuple[float, float]]) -> float:
        c = np.asarray(coords)
        return float(haversine_m(c[:-1, 0], c[:-1, 1], c[1:, 0], c[1:, 1]).sum())

    # the valley section: both ends east of Canillo (1.60 E) and west of Soldeu (1.67 E)
    valley = {k: c for k, c in handler.ways.items()
              if all(1.60 < lon < 1.67 for lon, _ in (c[0], c[-1]))}
    way_id = max(valley, key=lambda k: length(valley[k]))
    mid = LineString(valley[way_id]).interpolate(0.5, normalized=True)
    return way_id, shapely.box(mid.x - 6e-4, mid.y - 4.5e-4, mid.x + 6e-4, mid.y + 4.5e-4)


@pytest.fixture(scope="module")
def andorra():
    scenario = load_scenario(ANDORRA_SCENARIO)
    inputs = pipeline.load_inputs(scenario)
    access = pipeline.road_access(scenario, inputs)
    rules = [r for r in pipeline.rules_for_scenario(scenario) if r.id in EMERGENCY]
    return scenario, inputs, access, rules


def _nx_reached(net, fac: Attachment, places: Attachment) -> np.ndarray:
    """Places an ambulance can reach from any facility, by networkx on the network's arrays."""
    g = nx.DiGraph()
    g.add_nodes_from(range(net.n_nodes))
    g.add_edges_from(zip(net.u.tolist(), net.v.tolist(), strict=True))
    fwd, rev = net.seg_fwd, net.seg_rev
    starts: set[int] = set()
    for s, f in zip(fac.segment[fac.reachable], fac.fraction[fac.reachable], strict=True):
        if f <= 1e-9 or rev[s] >= 0:  # leave the station backwards to the segment start
            starts.add(int(net.seg_start[s]))
        if f >= 1 - 1e-9 or fwd[s] >= 0:
            starts.add(int(net.seg_end[s]))
    reached = set(starts)
    for node in starts:
        reached |= nx.descendants(g, node)
    out = np.zeros(len(places), dtype=bool)
    fac_segs = set(fac.segment[fac.reachable].tolist())
    for t in np.flatnonzero(places.reachable):
        s, f = int(places.segment[t]), float(places.fraction[t])
        via_start = int(net.seg_start[s]) in reached and (f <= 1e-9 or fwd[s] >= 0)
        via_end = int(net.seg_end[s]) in reached and (f >= 1 - 1e-9 or rev[s] >= 0)
        assert s not in fac_segs or via_start or via_end  # no station on a cut-off piece
        out[t] = via_start or via_end
    return out


def test_close_roads_removes_crossing_edges_and_keeps_the_original(andorra, cg2_section):
    _, _, access, _ = andorra
    way_id, box = cg2_section
    net = access.network("ambulance")
    before = (net.n_edges, net.time_s.copy(), net.csr_time.nnz)
    closed = close_roads(net, polygons=box)
    crossing = np.array([box.intersects(g) for g in net.geometry])  # edge by edge, shapely
    assert crossing.sum() >= 1 and way_id in set(net.osmid[crossing].tolist())
    assert closed.n_edges == net.n_edges - crossing.sum()
    assert not closed.geometry.size or not np.any([box.intersects(g) for g in closed.geometry])
    assert (net.n_edges, net.csr_time.nnz) == (before[0], before[2])
    np.testing.assert_array_equal(net.time_s, before[1])
    # every kept segment still points at edges travelling it
    for s in range(closed.seg_fwd.shape[0]):
        for e, a, b in ((closed.seg_fwd[s], closed.seg_start[s], closed.seg_end[s]),
                        (closed.seg_rev[s], closed.seg_end[s], closed.seg_start[s])):
            if e >= 0:
                assert (closed.u[e], closed.v[e]) == (a, b)
    slow = close_roads(net, polygons=box, factor=0.5)
    np.testing.assert_allclose(slow.time_s[crossing], net.time_s[crossing] * 2)
    np.testing.assert_array_equal(slow.time_s[~crossing], net.time_s[~crossing])
    by_way = closed_edges(net, way_ids=[way_id])
    np.testing.assert_array_equal(by_way, net.osmid == way_id)
    by_class = closed_edges(net, polygons=box, highway=["primary"])
    np.testing.assert_array_equal(by_class, crossing & (net.highway == "primary"))


def test_cg2_closure_cuts_off_exactly_the_places_networkx_finds(andorra, cg2_section):
    _, inputs, access, rules = andorra
    _, box = cg2_section
    closure = Closure(polygons=gpd.GeoDataFrame(geometry=[box], crs="EPSG:4326"))
    closed_access = closure.apply(access, ["ambulance"])
    loss, places = closure_loss(rules, inputs, access, closed_access)

    types = rules[0].facility_types
    mask = inputs.facilities["type"].isin(types).to_numpy()
    open_net, shut_net = access.network("ambulance"), closed_access.network("ambulance")
    reach_open = _nx_reached(open_net, attach(open_net, inputs.facilities[mask]),
                             attach(open_net, inputs.places))
    reach_shut = _nx_reached(shut_net, attach(shut_net, inputs.facilities[mask]),
                             attach(shut_net, inputs.places))
    expected = set(inputs.places["place_id"][reach_open & ~reach_shut])
    found = set(places.loc[places["cut_off"], "place_id"])
    assert expected, "closing the CG-2 between Canillo and Soldeu cuts places off"
    assert found == expected
    # the places cut off lie up the valley (east of the closure)
    lon = inputs.places.set_index("place_id").geometry.x
    assert (lon[list(expected)] > box.bounds[0]).all()
    # the per-unit table adds up to the per-place flags
    for rule in rules:
        rows = places[places["rule_id"] == rule.id]
        table = loss[loss["rule_id"] == rule.id]
        assert table["places_cut_off"].sum() == rows["cut_off"].sum()
        lost = rows[rows["covered_before"] & ~rows["covered_after"]]
        assert table["residents_lost"].sum() == pytest.approx(lost["population"].sum())
        assert table["places_lost"].sum() == len(lost)


@pytest.fixture(scope="module")
def liechtenstein():
    scenario = load_scenario(LIECHTENSTEIN_SCENARIO)
    inputs = pipeline.load_inputs(scenario)
    access = pipeline.road_access(scenario, inputs)
    rules = {r.id: r for r in pipeline.rules_for_scenario(scenario)}
    return inputs, access, rules


@pytest.mark.parametrize("case", ["emergency circle by ambulance", "15 minutes' drive"])
def test_single_points_of_failure_match_brute_force_on_liechtenstein(liechtenstein, case):
    inputs, access, rules = liechtenstein
    if case.startswith("emergency"):
        mode, types = "ambulance", rules["BZ-12"].facility_types
        limit = np.where(inputs.places["urban_rural"] == "urban", 15.0, 30.0)
    else:  # a plain 15-minute rule, residents driving to the hospital (reversed searches)
        mode, types, limit = "drive", rules["DRIVE-15"].facility_types, 15.0
    net = access.network(mode)
    src = access.attachment(mode, "facilities")
    src = src.subset(inputs.facilities["type"].isin(types).to_numpy() & src.reachable)
    tgt = access.attachment(mode, "places")
    pop = inputs.places["population"].to_numpy(float)
    fast = single_points_of_failure(net, src, tgt, limit_minutes=limit, weights=pop)
    brute = single_points_of_failure_bruteforce(net, src, tgt, limit_minutes=limit,
                                                weights=pop)
    assert len(fast) > 10
    pd.testing.assert_frame_equal(fast, brute)
    top = single_points_of_failure(net, src, tgt, limit_minutes=limit, weights=pop, top=10)
    pd.testing.assert_frame_equal(top, brute.head(10))
    assert top["residents_lost"].is_monotonic_decreasing


def _flood_file(tmp_path: Path, box: shapely.Polygon) -> Path:
    path = tmp_path / "flood.geojson"
    path.write_text(json.dumps({"type": "FeatureCollection", "features": [
        {"type": "Feature", "properties": {"hazard": "flood"}, "geometry": mapping(box)}]}))
    return path


def test_cli_audit_close_writes_closure_loss(tmp_path, cg2_section):
    flood = _flood_file(tmp_path, cg2_section[1])
    out = tmp_path / "out"
    result = CliRunner().invoke(main, ["-q", "audit", str(ANDORRA_SCENARIO), "--close",
                                       str(flood), "--out", str(out)])
    assert result.exit_code in (0, 1), result.output
    loss = pd.read_csv(out / "closure_loss.csv")
    assert tuple(loss.columns) == CLOSURE_LOSS_COLUMNS
    assert set(EMERGENCY) <= set(loss["rule_id"])
    np.testing.assert_allclose(loss["residents_lost"],
                               loss["residents_covered_before"] - loss["residents_covered_after"],
                               atol=1e-6)
    assert loss["places_cut_off"].sum() > 0
    manifest = json.loads((out / "manifest.json").read_text())
    assert "closure_loss.csv" in manifest["outputs"]
    assert manifest["parameters"]["closures"]["polygons"] == str(flood)
    assert (out / "units.csv").is_file() and (out / "closure_places.csv").is_file()


def test_cli_resilience_writes_single_points_of_failure(tmp_path, liechtenstein):
    inputs, access, rules = liechtenstein
    out = tmp_path / "spof"
    result = CliRunner().invoke(main, ["-q", "resilience", str(LIECHTENSTEIN_SCENARIO),
                                       "--top", "5", "--out", str(out)])
    assert result.exit_code == 0, result.output
    table = pd.read_csv(out / "single_points_of_failure.csv")
    assert {"osm_way_id", "residents_lost"} <= set(table.columns) and len(table) == 5
    net = access.network("ambulance")
    src = access.attachment("ambulance", "facilities")
    src = src.subset(inputs.facilities["type"].isin(rules["BZ-12"].facility_types).to_numpy()
                     & src.reachable)
    limit = np.where(inputs.places["urban_rural"] == "urban", 15.0, 30.0)
    brute = single_points_of_failure_bruteforce(
        net, src, access.attachment("ambulance", "places"), limit_minutes=limit,
        weights=inputs.places["population"].to_numpy(float), top=5)
    assert table["osm_way_id"].tolist() == brute["osm_way_id"].tolist()
    np.testing.assert_allclose(table["residents_lost"], brute["residents_lost"])


def test_scenario_closures_key(tmp_path):
    table = tomllib.loads(ANDORRA_SCENARIO.read_text(encoding="utf-8"))
    table["inputs"]["closures"] = {"way_ids": [6165944], "highway": ["primary"],
                                   "factor": 0.25}
    scenario = parse_scenario(table, folder=SCENARIOS, path=ANDORRA_SCENARIO)
    closure = closure_for_scenario(scenario)
    assert closure is not None and closure.polygons is None
    assert (closure.way_ids, closure.highway, closure.factor) == ((6165944,), ("primary",), 0.25)
    for bad, key in (({"factor": 2.0, "highway": ["primary"]}, "factor"), ({}, "closures")):
        table["inputs"]["closures"] = bad
        with pytest.raises(InputError, match=key):
            parse_scenario(table, folder=SCENARIOS, path=ANDORRA_SCENARIO)
    table["inputs"]["closures"] = {"path": "no_such_flood.geojson"}
    with pytest.raises(InputError, match="no_such_flood"):
        parse_scenario(table, folder=SCENARIOS, path=ANDORRA_SCENARIO)
