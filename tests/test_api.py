"""The public API on in-memory inputs: GeoDataFrames and an osmnx graph, checked against a run."""

from __future__ import annotations

import covplan
import geopandas as gpd
import networkx as nx
import numpy as np
import pandas as pd
import pytest
from covplan.engine.modes import parse_modes
from covplan.facility_types import FACILITY_GROUPS
from covplan.inputs.loaders import load_boundaries, load_facilities, load_population
from covplan.pipeline import rules_for_scenario
from shipped import ANDORRA_FACILITIES, ANDORRA_PARISHES, ANDORRA_PLACES, ANDORRA_SCENARIO


@pytest.fixture(scope="module")
def scenario():
    return covplan.load_scenario(ANDORRA_SCENARIO)


@pytest.fixture(scope="module")
def run(scenario):
    return covplan.run_scenario(scenario)


@pytest.fixture(scope="module")
def layers():
    """The scenario's inputs, read with geopandas and given to the loaders as GeoDataFrames."""
    facilities = load_facilities(gpd.read_file(ANDORRA_FACILITIES))
    units = load_boundaries(gpd.read_file(ANDORRA_PARISHES), id_column="unit_id",
                            name_column="name", level="parish", population_column="population")
    places = load_population(gpd.read_file(ANDORRA_PLACES), kind="points", units=units,
                             population_column="population", id_column="place_id",
                             urban_rural_column="urban_rural")
    return facilities, units, places


@pytest.fixture(scope="module")
def networks(scenario, layers):
    _, units, _ = layers
    spec = scenario.network_spec()
    area = units.geometry.union_all()
    return {
        name: covplan.build_network(spec.source, mode=mode, study_area=area,
                                    buffer_m=spec.buffer_m, dem=spec.dem)
        for name, mode in parse_modes(scenario.modes).items()
    }


def test_public_names() -> None:
    for name in ("load_scenario", "run_scenario", "write_outputs", "build_network",
                 "travel_times", "audit", "what_if", "propose", "RoadNetwork", "CoverageError",
                 "InputError"):
        assert name in covplan.__all__ and getattr(covplan, name) is not None
    with pytest.raises(AttributeError):
        covplan.no_such_thing  # noqa: B018


def test_in_memory_layers_equal_the_files(layers, run) -> None:
    facilities, units, places = layers
    assert sorted(facilities["facility_id"]) == sorted(run.facilities["facility_id"])
    assert units["population"].sum() == pytest.approx(run.units["population"].sum())
    assert places["population"].sum() == pytest.approx(run.places["population"].sum())
    assert facilities.crs.to_epsg() == 4326


def test_travel_times_match_the_run(layers, networks, run) -> None:
    facilities, _, places = layers
    medical = facilities[facilities["type"].isin(FACILITY_GROUPS["medical_institutions"])]
    out = covplan.travel_times(networks["drive"], medical, places)
    assert isinstance(out, gpd.GeoDataFrame) and out.crs.to_epsg() == 4326
    expected = run.places.set_index("place_id")["minutes_drive"]
    got = out.set_index("place_id")["minutes"]
    np.testing.assert_allclose(got.loc[expected.index], expected, rtol=1e-9)
    same = out.set_index("place_id")["facility_id"].loc[expected.index]
    assert (same == run.places.set_index("place_id")["nearest_drive"]).mean() > 0.99


def test_an_osmnx_graph_in_memory_gives_the_same_network(networks, layers) -> None:
    """The network's own osmnx-style graph, handed back in memory, routes the same."""
    drive = networks["drive"]
    assert isinstance(drive.graph, nx.MultiDiGraph)
    again = covplan.build_network(drive.graph, mode="drive")
    facilities, _, places = layers
    hospitals = facilities[facilities["type"].isin(FACILITY_GROUPS["hospitals"])]
    a = covplan.travel_times(drive, hospitals, places)["minutes"].to_numpy()
    b = covplan.travel_times(again, hospitals, places)["minutes"].to_numpy()
    finite = np.isfinite(a)
    assert finite.mean() > 0.95
    np.testing.assert_allclose(b[finite], a[finite], rtol=1e-3, atol=0.05)


def test_audit_in_memory_equals_the_scenario_run(scenario, layers, networks, run) -> None:
    facilities, units, places = layers
    rules = rules_for_scenario(scenario)
    result = covplan.audit(rules, facilities=facilities, units=units, places=places,
                           networks=networks, max_snap_m=scenario.network_spec().max_snap_m)
    key = ["rule_id", "unit_id"]
    mine = result.units.set_index(key).sort_index()
    theirs = run.unit_results.set_index(key).sort_index()
    assert list(mine.index) == list(theirs.index)
    assert (mine["status"] == theirs["status"]).all()
    pd.testing.assert_series_equal(mine["value"], theirs["value"], check_names=False)


def test_input_error_is_a_value_error(tmp_path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text('[scenario]\nname = "x"\n', encoding="utf-8")
    with pytest.raises(ValueError) as caught:
        covplan.load_scenario(bad)
    assert isinstance(caught.value, covplan.CoverageError)
    with pytest.raises(covplan.InputError, match="metric"):
        covplan.travel_times(None, gpd.GeoDataFrame({"facility_id": []}), None, metric="bogus")
