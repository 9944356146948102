"""Two-leg emergency response and backup cover vs independent networkx searches (issue 18).

The references are built from the same RoadNetwork arrays but never call the engine's
routing: every attached point (station, hospital, place) splits its road segment into a chain
of pieces and hangs off it by its straight-line leg, and plain ``networkx`` Dijkstra runs on
that graph. The siting model ``mclp_backup`` is checked against brute force over all site sets.
"""

from __future__ import annotations

import itertools

import networkx as nx
import numpy as np
import pandas as pd
import pytest
from covplan.engine.attach import Attachment
from covplan.engine.response import nearest_k, two_leg_times
from covplan.engine.routing import reach_matrix
from covplan.pipeline import load_inputs, road_access
from covplan.scenario import load_scenario
from covplan.siting import SitingProblem, solve
from covplan.siting.exact import backup_coverage_of, cover_counts, exact_mclp_backup
from covplan.standards.audit import run_audit
from covplan.standards.parse import parse_standards
from shipped import ANDORRA_SCENARIO, LIECHTENSTEIN_SCENARIO

MODE = "ambulance"
_EPS = 1e-9
pytestmark = pytest.mark.filterwarnings("ignore::covplan.errors.InputWarning")  # 4 Andorra POIs


@pytest.fixture(scope="module", params=["andorra", "liechtenstein"])
def region(request):
    path = ANDORRA_SCENARIO if request.param == "andorra" else LIECHTENSTEIN_SCENARIO
    scenario = load_scenario(path)
    inputs = load_inputs(scenario)
    access = road_access(scenario, inputs)
    return request.param, inputs, access


def _split_graph(net, layers: dict[str, Attachment]) -> nx.DiGraph:
    """The network as a DiGraph with every attached point on its own node ``(layer, i)``."""
    g = nx.DiGraph()
    g.add_nodes_from(range(net.n_nodes))

    def add(a, b, w) -> None:
        if a == b or not np.isfinite(w):
            return
        if not g.has_edge(a, b) or g[a][b]["w"] > w:
            g.add_edge(a, b, w=float(w))

    on_seg: dict[int, list[tuple[float, tuple[str, int]]]] = {}
    for name, att in layers.items():
        for i in np.flatnonzero(att.reachable):
            on_seg.setdefault(int(att.segment[i]), []).append((float(att.fraction[i]), (name, i)))
    skip = set()
    for s in on_seg:
        skip.update(e for e in (int(net.seg_fwd[s]), int(net.seg_rev[s])) if e >= 0)
    for e in range(net.u.size):
        if e not in skip:
            add(int(net.u[e]), int(net.v[e]), net.time_s[e])
    for s, points in on_seg.items():
        fwd, rev = int(net.seg_fwd[s]), int(net.seg_rev[s])
        wf = net.time_s[fwd] if fwd >= 0 else np.inf
        wr = net.time_s[rev] if rev >= 0 else np.inf
        start, end = int(net.seg_start[s]), int(net.seg_end[s])
        chain: list[tuple[float, object]] = [(0.0, start)]
        for f, key in sorted(points):
            split = start if f <= _EPS else end if f >= 1 - _EPS else ("split", key)
            chain.append((f, split))
            att = layers[key[0]]
            add(key, split, att.leg_s[key[1]])
            add(split, key, att.leg_s[key[1]])
        chain.append((1.0, end))
        for (f0, a), (f1, b) in itertools.pairwise(chain):
            add(a, b, (f1 - f0) * wf)
            add(b, a, (f1 - f0) * wr)
    return g


def _layers(access, mask_st, mask_h) -> tuple:
    net = access.network(MODE)
    fac = access.attachment(MODE, "facilities")
    places = access.attachment(MODE, "places")
    return net, fac.subset(mask_st), fac.subset(mask_h), places


def _from_each(g: nx.DiGraph, layer: str, n: int, n_places: int) -> np.ndarray:
    """Minutes from every point of ``layer`` to every place (inf when not reached)."""
    out = np.full((n, n_places), np.inf)
    for i in range(n):
        if (layer, i) not in g:
            continue
        dist = nx.single_source_dijkstra_path_length(g, (layer, i), weight="w")
        for j in range(n_places):
            out[i, j] = dist.get(("place", j), np.inf) / 60.0
    return out


def test_two_leg_totals_equal_two_networkx_legs(region) -> None:
    name, inputs, access = region
    fac = inputs.facilities
    stations = (fac["type"] == "pharmacy").to_numpy()
    hospitals = (fac["type"] == "hospital").to_numpy()
    net, st, ho, places = _layers(access, stations, hospitals)
    mode = access.mode(MODE)
    assert mode.on_scene_minutes == 10.0 and mode.turnout_minutes > 0  # the shipped defaults
    sids = fac["facility_id"].to_numpy()[stations]
    hids = fac["facility_id"].to_numpy()[hospitals]
    got = two_leg_times(net, st, ho, places, mode, station_ids=sids, hospital_ids=hids)

    g = _split_graph(net, {"st": st, "ho": ho, "place": places})
    n_p = len(places)
    leg1_each = _from_each(g, "st", len(st), n_p) + mode.turnout_minutes
    leg2_each = _from_each(g.reverse(copy=True), "ho", len(ho), n_p)  # place -> hospital
    leg1, leg2 = leg1_each.min(axis=0), leg2_each.min(axis=0)
    reached = np.isfinite(leg1) & np.isfinite(leg2)
    assert reached.mean() > 0.9, name
    np.testing.assert_allclose(got["leg1_minutes"], leg1, rtol=0, atol=1e-6)
    np.testing.assert_allclose(got["leg2_minutes"], leg2, rtol=0, atol=1e-6)
    np.testing.assert_allclose(got["total_minutes"], leg1 + mode.on_scene_minutes + leg2,
                               rtol=0, atol=1e-6)
    # the named station / hospital really is that far (ties allowed)
    pos_st = {s: i for i, s in enumerate(sids)}
    pos_h = {h: i for i, h in enumerate(hids)}
    for j in np.flatnonzero(reached):
        assert leg1_each[pos_st[got["station_id"][j]], j] == pytest.approx(leg1[j], abs=1e-6)
        assert leg2_each[pos_h[got["hospital_id"][j]], j] == pytest.approx(leg2[j], abs=1e-6)

    # the response_time rule, through the audit: same totals and legs in the places table
    rules = parse_standards([{"rule": "response_time", "id": "RESP", "minutes": 35,
                              "facility_types": ["pharmacy"], "hospital_types": ["hospital"]}])
    result = run_audit(rules, facilities=fac, units=inputs.units, places=inputs.places,
                   access=access)
    table = result.place_values.set_index("place_id")
    ids = inputs.places["place_id"].astype(str).to_numpy()
    for col, want in (("value", leg1 + mode.on_scene_minutes + leg2), ("leg1_minutes", leg1),
                      ("leg2_minutes", leg2)):
        np.testing.assert_allclose(table.loc[ids, col].astype(float), want, atol=1e-6)
    covered = leg1 + mode.on_scene_minutes + leg2 <= 35 + _EPS
    pop = inputs.places["population"].to_numpy(float)
    units = result.units[result.units["status"].isin(["pass", "fail"])]
    want_cov = pd.Series(pop * covered).groupby(inputs.places["unit_id"].astype(str)).sum()
    np.testing.assert_allclose(units["covered_population"],
                               units["unit_id"].astype(str).map(want_cov), rtol=1e-9)


def test_backup_cover_matches_networkx_second_nearest(region) -> None:
    name, inputs, access = region
    fac = inputs.facilities
    every = np.ones(len(fac), dtype=bool)
    net, st, _, places = _layers(access, every, every)
    cutoff = 12.0
    minutes, source = nearest_k(net, st, places, k=2, cutoff=cutoff)

    g = _split_graph(net, {"st": st, "place": places})
    each = _from_each(g, "st", len(st), len(places)) + access.mode(MODE).turnout_minutes
    each[each > cutoff] = np.inf
    ref = np.sort(each, axis=0)[:2].T
    np.testing.assert_allclose(minutes, ref, rtol=0, atol=1e-6)
    for j in range(len(places)):
        for r in range(2):
            if source[j, r] >= 0:
                assert each[source[j, r], j] == pytest.approx(minutes[j, r], abs=1e-6)
    backup = np.isfinite(ref[:, 1])
    assert 0 < backup.sum() < len(places), name  # a real test: some places lack backup cover
    assert (source[:, 0] != source[:, 1])[backup].all()

    # the backup_cover rule: residents with backup cover per unit
    rules = parse_standards([{"rule": "backup_cover", "id": "BACKUP", "minutes": cutoff,
                              "facility_types": ["pharmacy", "hospital"]}])
    result = run_audit(rules, facilities=fac, units=inputs.units, places=inputs.places,
                   access=access)
    pop = inputs.places["population"].to_numpy(float)
    want = pd.Series(pop * backup).groupby(inputs.places["unit_id"].astype(str)).sum()
    total = pd.Series(pop).groupby(inputs.places["unit_id"].astype(str)).sum()
    units = result.units[result.units["status"].isin(["pass", "fail"])]
    np.testing.assert_allclose(units["covered_population"],
                               units["unit_id"].astype(str).map(want), rtol=1e-9)
    np.testing.assert_allclose(units["value"],
                               units["unit_id"].astype(str).map(want / total), rtol=1e-9)
    table = result.place_values.set_index("place_id")
    ids = inputs.places["place_id"].astype(str).to_numpy()
    np.testing.assert_allclose(table.loc[ids, "nearest_minutes"].astype(float), ref[:, 0],
                               atol=1e-6)


def _problem(threshold: float) -> tuple[SitingProblem, object]:
    scenario = load_scenario(ANDORRA_SCENARIO)
    inputs = load_inputs(scenario)
    access = road_access(scenario, inputs)
    net = access.network(MODE)
    times = reach_matrix(net, access.attachment(MODE, "facilities"),
                         access.attachment(MODE, "places"), cutoff=2 * threshold)
    fac = inputs.facilities
    existing = np.flatnonzero((fac["type"] == "hospital").to_numpy())[:1]
    problem = SitingProblem.from_matrix(
        times, existing=existing, population=inputs.places["population"].to_numpy(float),
        threshold_minutes=threshold, site_ids=fac["facility_id"].tolist())
    return problem, times


@pytest.mark.parametrize(("threshold", "n_sites"), [(6.0, 2), (8.0, 3)])
def test_mclp_backup_matches_brute_force(threshold: float, n_sites: int) -> None:
    problem, times = _problem(threshold)
    cand = problem.candidates.tolist()
    subsets = [s for k in range(n_sites + 1) for s in itertools.combinations(cand, k)]
    dense = times.toarray()
    stored = np.zeros(dense.shape, dtype=bool)
    coo = times.tocoo()
    stored[coo.row, coo.col] = True
    within = stored & (dense <= threshold + _EPS)

    def counts(rows) -> np.ndarray:  # independent of SitingProblem.cover
        open_rows = sorted(set(problem.existing.tolist()) | set(rows))
        return within[open_rows].sum(axis=0)

    pop = problem.population
    first = {s: float(pop[counts(s) >= 1].sum()) for s in subsets}
    second = {s: float(pop[counts(s) >= 2].sum()) for s in subsets}
    best_first = max(first.values())
    best_second = max(second[s] for s in subsets if first[s] >= best_first - 1e-6)
    assert best_second > pop[counts(()) >= 2].sum()  # new sites do add backup cover

    result = solve(problem, "mclp", method="mclp_backup", n_sites=n_sites)
    assert result.method == "mclp_backup" and result.status == "optimal"
    assert len(result.sites) <= n_sites
    assert result.covered_population == pytest.approx(best_first, abs=1e-6)
    assert result.objective == pytest.approx(best_second, abs=1e-6)
    assert backup_coverage_of(problem, result.sites) == pytest.approx(best_second, abs=1e-6)
    np.testing.assert_array_equal(cover_counts(problem, result.sites), counts(result.sites))

    # weighted objective: first + w * second, against brute force
    for w in (0.5, 3.0):
        best = max(first[s] + w * second[s] for s in subsets)
        got = exact_mclp_backup(problem, n_sites, backup_weight=w)
        value = got.covered_population + w * got.objective
        assert value == pytest.approx(best, rel=1e-9, abs=1e-6)


def test_receiving_hospitals_from_the_emergency_dept_flag() -> None:
    """Without hospital_types, only facilities flagged 是否设急诊 = 是 receive patients."""
    scenario = load_scenario(ANDORRA_SCENARIO)
    inputs = load_inputs(scenario)
    base = road_access(scenario, inputs)
    fac = inputs.facilities.copy()
    reach = base.attachment(MODE, "facilities").reachable
    hospitals = np.flatnonzero((fac["type"] == "hospital").to_numpy() & reach)
    flagged = int(hospitals[-1])
    fac["emergency_dept"] = "否"
    fac.loc[fac.index[flagged], "emergency_dept"] = "是"
    access = base.with_facilities(fac)
    rules = parse_standards([{"rule": "response_time", "id": "RESP", "minutes": 40,
                              "facility_types": ["pharmacy"]}])
    result = run_audit(rules, facilities=fac, units=inputs.units, places=inputs.places,
                       access=access)
    table = result.place_values
    assert set(table["hospital_id"].dropna()) == {fac["facility_id"].iloc[flagged]}
    net = access.network(MODE)
    att = access.attachment(MODE, "facilities")
    only = np.zeros(len(fac), dtype=bool)
    only[flagged] = True
    ref = two_leg_times(net, att.subset((fac["type"] == "pharmacy").to_numpy() & reach),
                        att.subset(only), access.attachment(MODE, "places"))
    np.testing.assert_allclose(table["leg2_minutes"].astype(float), ref["leg2_minutes"],
                               atol=1e-9)
    # the 是否设急诊 column missing: cannot_check with the reason, never a fail
    plain = run_audit(rules, facilities=inputs.facilities, units=inputs.units,
                      places=inputs.places, access=base)
    assert (plain.units["status"] == "cannot_check").all()
    assert plain.units["evidence"].str.contains("emergency_dept").all()


def test_on_scene_minutes_is_a_mode_parameter() -> None:
    from covplan.engine.modes import parse_modes
    from covplan.errors import InputError

    modes = parse_modes({"ambulance": {"on_scene_minutes": 12}})
    assert modes["ambulance"].on_scene_minutes == 12.0
    assert modes["drive"].on_scene_minutes == 0.0
    with pytest.raises(InputError, match=r"modes\.ambulance\.on_scene_minutes: must be a number"):
        parse_modes({"ambulance": {"on_scene_minutes": -1}})


def test_scenario_run_puts_each_leg_in_the_places_table(tmp_path) -> None:
    from covplan.pipeline import run_scenario

    text = ANDORRA_SCENARIO.read_text(encoding="utf-8").split("# Standards:")[0]
    text = text.replace('"../', f'"{ANDORRA_SCENARIO.parent.parent.as_posix()}/')
    text += """
[modes.ambulance]
turnout_minutes = 2.0
on_scene_minutes = 7.5

[[standards]]
id = "RESP"
rule = "response_time"
facility_types = ["pharmacy"]
hospital_types = ["hospitals"]
minutes = { urban = 30, rural = 60 }

[[standards]]
id = "BACKUP"
rule = "backup_cover"
facility_types = ["pharmacy", "hospital"]
minutes = 15
"""
    path = tmp_path / "emergency.toml"
    path.write_text(text.replace("[modes.ambulance]\nturnout_minutes = 2.0\n", "", 1),
                    encoding="utf-8")
    result = run_scenario(load_scenario(path), with_isochrones=False)
    places = result.places
    legs = places["RESP_leg1_minutes"] + 7.5 + places["RESP_leg2_minutes"]
    np.testing.assert_allclose(places["RESP_total_minutes"], legs, atol=1e-9)
    assert np.isfinite(places["RESP_total_minutes"]).mean() > 0.9
    units = result.unit_results
    assert set(units.loc[units["rule_id"].isin(["RESP", "BACKUP"]), "status"]) <= {"pass", "fail"}
    backup = places["BACKUP_backup_minutes"] <= 15
    pop = places["population"].to_numpy(float)
    got = units[units["rule_id"] == "BACKUP"].set_index("unit_id")["covered_population"]
    want = pd.Series(pop * backup.to_numpy()).groupby(places["unit_id"].astype(str)).sum()
    np.testing.assert_allclose(got.sort_index(), want.reindex(got.index).sort_index(), rtol=1e-9)
