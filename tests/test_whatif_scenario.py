"""The one what-if: every standard re-audited, checked against the siting matrix and the app.

The same :class:`~covplan.whatif.FacilityChange` goes through the whole-scenario re-audit
(:func:`covplan.whatif.what_if`), the siting session's matrix fast path and the app's plan
evaluation; each must name the new facility ``new-1`` and agree on the covered population of
the travel-time standard with a fresh run of the scenario on a facility layer built by hand
(its own road access, nothing shared with the what-if paths).
"""

from __future__ import annotations

from dataclasses import replace

import geopandas as gpd
import pandas as pd
import pytest
from covplan import planning
from covplan.errors import CoverageError
from covplan.pipeline import load_inputs, road_access, rules_for_scenario, run_scenario
from covplan.planning import standards_tables
from covplan.scenario import load_scenario
from covplan.siting.session import SitingSession
from covplan.whatif import FacilityChange, MovedFacility, NewFacility, what_if
from shapely.geometry import Point
from shipped import ANDORRA_SCENARIO, LIECHTENSTEIN_SCENARIO

# Ruggell, at the northern end of Liechtenstein, far from the one hospital in Vaduz
RUGGELL = (9.5253, 47.2377)
# on a road in Canillo (Andorra), outside the 15-minute drive of every hospital
CANILLO = (1.55, 42.55)
RULE = "DRIVE-15"


@pytest.fixture(scope="module")
def base():
    scenario = load_scenario(LIECHTENSTEIN_SCENARIO)
    inputs = load_inputs(scenario)
    access = road_access(scenario, inputs)
    rules = rules_for_scenario(scenario)
    result = run_scenario(scenario, inputs=inputs, access=access, with_isochrones=False)
    return access, rules, result


def test_nothing_changed_means_no_change(base) -> None:
    access, rules, result = base
    change = what_if(access, rules, FacilityChange(), base_audit=result.unit_results)
    assert not change.units["changed"].any()
    assert (change.summary["delta"].fillna(0) == 0).all()
    # without a base audit, the baseline is audited first: the same answer
    again = what_if(access, rules, FacilityChange())
    pd.testing.assert_frame_equal(again.summary, change.summary)


def test_new_hospital_matches_the_siting_matrix(base) -> None:
    """Two independent paths: a re-audit on the changed layer vs the precomputed matrix."""
    access, rules, result = base
    asked = FacilityChange(add=(NewFacility(*RUGGELL, type="hospital", name="Spital Ruggell"),))
    change = what_if(access, rules, asked, base_audit=result.unit_results)
    session = SitingSession.from_access(access, rules, rule_id="DRIVE-15")
    matrix = session.add_point(*RUGGELL)
    drive = change.summary.set_index("rule_id").loc["DRIVE-15"]
    assert drive["delta"] == pytest.approx(matrix.delta, abs=1e-6)
    assert drive["delta"] > 0
    per_unit = change.units[change.units["rule_id"] == "DRIVE-15"].set_index("unit_id")["delta"]
    matrix_units = matrix.per_unit.set_index("unit_id")["delta"]
    for unit_id, delta in matrix_units.items():
        assert per_unit[unit_id] == pytest.approx(delta, abs=1e-6)
    # the base layers and the shared networks are not changed by a what-if
    assert len(access.inputs.facilities) == len(result.facilities)
    assert "new-1" not in set(access.inputs.facilities["facility_id"])
    # one id scheme: the re-audit's layer and the matrix answer both call it new-1
    assert list(change.new_facilities["facility_id"]) == ["new-1"] == list(matrix.new_ids)
    assert change.new_facilities.crs == change.facilities.crs == "EPSG:4326"


def test_closing_the_only_hospital_uncovers_everyone(base) -> None:
    access, rules, result = base
    hospital = result.facilities.loc[result.facilities["type"] == "hospital", "facility_id"]
    change = what_if(access, rules, FacilityChange(close=tuple(hospital)),
                     base_audit=result.unit_results)
    drive = change.summary.set_index("rule_id").loc["DRIVE-15"]
    assert drive["covered_after"] == 0
    assert drive["units_pass_after"] == 0


def test_unknown_ids_and_types_are_refused(base) -> None:
    access, rules, result = base
    with pytest.raises(CoverageError, match="unknown facilities"):
        what_if(access, rules, FacilityChange(close=("osm-n1",)), base_audit=result.unit_results)
    with pytest.raises(CoverageError, match="unknown facility types"):
        what_if(access, rules, FacilityChange(add=(NewFacility(*RUGGELL, type="spaceport"),)),
                base_audit=result.unit_results)
    with pytest.raises(CoverageError, match="cannot move unknown facilities"):
        what_if(access, rules, FacilityChange.of(move={"osm-n1": RUGGELL}))
    with pytest.raises(CoverageError, match="both closed and moved"):
        FacilityChange.of(close=["a"], move={"a": RUGGELL})
    with pytest.raises(CoverageError, match="not a WGS-84"):
        FacilityChange(add=(NewFacility(400.0, 47.0, type="hospital"),))


# --------------------------------------------------------------- one change, three paths
@pytest.fixture(scope="module")
def andorra():
    scenario = load_scenario(ANDORRA_SCENARIO)
    inputs = load_inputs(scenario)
    access = road_access(scenario, inputs)
    rules = rules_for_scenario(scenario)
    result = run_scenario(scenario, inputs=inputs, access=access, with_isochrones=False)
    session = SitingSession.from_access(access, rules, rule_id=RULE)
    region = planning.Region(key="andorra-test", scenario=scenario, inputs=inputs, access=access)
    return scenario, access, rules, result, session, region


def _fresh_covered(scenario, facilities: gpd.GeoDataFrame) -> float:
    """Covered population of RULE by a fresh run (own inputs and road access) on a layer."""
    inputs = load_inputs(scenario)
    run = run_scenario(scenario, inputs=replace(inputs, facilities=facilities),
                       with_isochrones=False)
    return float(run.summary.set_index("rule_id").loc[RULE, "covered_population"])


def _covered(summary: pd.DataFrame, column: str) -> float:
    return float(summary.set_index("rule_id").loc[RULE, column])


def test_one_new_station_three_paths_agree(andorra) -> None:
    scenario, access, rules, result, session, region = andorra
    change = FacilityChange(add=(NewFacility(*CANILLO, type="hospital", name="S1"),))

    scenario_change = what_if(access, rules, change, base_audit=result.unit_results)
    fast = session.apply(change)
    app = planning.evaluate_plan(region, standards_tables(scenario.standards),
                              points=[("S1", *CANILLO)], station_type="hospital")

    # the same id for the same new facility, at the same place, everywhere
    assert change.new_ids == ("new-1",)
    assert list(scenario_change.new_facilities["facility_id"]) == ["new-1"]
    assert fast.new_ids == ("new-1",) and fast.change == change
    app_new = app.facilities[app.facilities["facility_id"] == "new-1"]
    assert len(app_new) == 1 and app_new["name"].iloc[0] == "S1"
    assert app_new.geometry.iloc[0].equals(Point(*CANILLO))
    assert app.facilities.crs == "EPSG:4326"
    # the app helper builds the same change from its plan
    assert planning.plan_change([("S1", *CANILLO)], station_type="hospital") == change
    # SitingSession's own helpers ask the same change (default type: the rule's first)
    assert session.change_for([CANILLO], names=["S1"]) == change

    # independent: a hand-built layer (existing + the station) run from scratch
    station = gpd.GeoDataFrame(
        {"facility_id": ["new-1"], "name": ["S1"], "type": ["hospital"]},
        geometry=[Point(*CANILLO)], crs="EPSG:4326",
    )
    layer = gpd.GeoDataFrame(pd.concat([access.inputs.facilities, station], ignore_index=True),
                             geometry="geometry", crs="EPSG:4326")
    expected = _fresh_covered(scenario, layer)
    before = _covered(result.summary, "covered_population")
    assert expected > before + 100  # the station covers people the hospitals do not
    assert _covered(scenario_change.summary, "covered_after") == pytest.approx(expected)
    assert fast.covered_after == pytest.approx(expected)
    assert fast.covered_before == pytest.approx(before)
    assert _covered(app.summary, "covered_population") == pytest.approx(expected)
    assert session.add_point(*CANILLO).covered_after == pytest.approx(expected)
    # the shared region is not changed
    assert "new-1" not in set(access.inputs.facilities["facility_id"])


def test_close_and_move_three_paths_agree(andorra) -> None:
    scenario, access, rules, result, session, region = andorra
    existing = list(session.site_points["site_id"][: session.n_existing])
    closed, moved = existing[0], existing[1]
    change = FacilityChange(close=(closed,), move=(MovedFacility(moved, *CANILLO),))
    assert FacilityChange.of(close=[closed], move={moved: CANILLO}) == change
    assert change.new_ids == ()

    scenario_change = what_if(access, rules, change, base_audit=result.unit_results)
    fast = session.apply(change)
    app = planning.evaluate_change(region, standards_tables(scenario.standards), change)

    # independent: drop one hospital and relocate another by hand, run from scratch
    layer = access.inputs.facilities
    layer = layer[layer["facility_id"] != closed].copy()
    layer.loc[layer["facility_id"] == moved, "geometry"] = Point(*CANILLO)
    expected = _fresh_covered(scenario, gpd.GeoDataFrame(layer, crs="EPSG:4326"))
    before = _covered(result.summary, "covered_population")
    assert abs(expected - before) > 100  # the change matters for the standard
    assert _covered(scenario_change.summary, "covered_after") == pytest.approx(expected)
    assert fast.covered_after == pytest.approx(expected)
    assert _covered(app.summary, "covered_population") == pytest.approx(expected)
    # the moved facility keeps its id; the closed one is gone
    ids = set(scenario_change.facilities["facility_id"])
    assert moved in ids and closed not in ids
    assert scenario_change.facilities.set_index("facility_id").geometry[moved].equals(
        Point(*CANILLO))

    # closing alone: the session's close() and the re-audit agree with a scratch run
    only_close = what_if(access, rules, FacilityChange(close=(closed,)),
                         base_audit=result.unit_results)
    scratch = _fresh_covered(scenario, access.inputs.facilities.pipe(
        lambda f: f[f["facility_id"] != closed]))
    assert scratch < before - 100  # the closed hospital covered people alone
    assert _covered(only_close.summary, "covered_after") == pytest.approx(scratch)
    assert session.close(closed).covered_after == pytest.approx(scratch)
    assert session.move(moved, *CANILLO).covered_after == pytest.approx(
        what_if(access, rules, FacilityChange.of(move={moved: CANILLO}),
                base_audit=result.unit_results).summary.set_index("rule_id")
        .loc[RULE, "covered_after"])
