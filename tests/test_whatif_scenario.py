"""Scenario-level what-if: every standard re-audited, checked against the siting matrix path."""

from __future__ import annotations

import pytest
from covplan.errors import CoverageError
from covplan.pipeline import load_inputs, road_access, rules_for_scenario, run_scenario
from covplan.scenario import load_scenario
from covplan.siting.session import SitingSession
from covplan.whatif import NewFacility, what_if
from shipped import LIECHTENSTEIN_SCENARIO

# Ruggell, at the northern end of Liechtenstein, far from the one hospital in Vaduz
RUGGELL = (9.5253, 47.2377)


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
    change = what_if(access, rules, baseline=result.unit_results)
    assert not change.units["changed"].any()
    assert (change.summary["delta"].fillna(0) == 0).all()


def test_new_hospital_matches_the_siting_matrix(base) -> None:
    """Two independent paths: a re-audit on the changed layer vs the precomputed matrix."""
    access, rules, result = base
    change = what_if(
        access, rules, baseline=result.unit_results,
        add=[NewFacility(*RUGGELL, type="hospital", name="Spital Ruggell")],
    )
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
    assert "whatif-1" not in set(access.inputs.facilities["facility_id"])


def test_closing_the_only_hospital_uncovers_everyone(base) -> None:
    access, rules, result = base
    hospital = result.facilities.loc[result.facilities["type"] == "hospital", "facility_id"]
    change = what_if(access, rules, baseline=result.unit_results, close=list(hospital))
    drive = change.summary.set_index("rule_id").loc["DRIVE-15"]
    assert drive["covered_after"] == 0
    assert drive["units_pass_after"] == 0


def test_unknown_ids_and_types_are_refused(base) -> None:
    access, rules, result = base
    with pytest.raises(CoverageError, match="unknown facilities"):
        what_if(access, rules, baseline=result.unit_results, close=["osm-n1"])
    with pytest.raises(CoverageError, match="unknown facility types"):
        what_if(access, rules, baseline=result.unit_results,
                add=[NewFacility(*RUGGELL, type="spaceport")])
