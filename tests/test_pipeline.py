"""The whole pipeline on the shipped Liechtenstein scenario, checked against independent sums."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from covplan.facility_types import FACILITY_GROUPS
from covplan.geo import haversine_m
from covplan.pipeline import load_inputs, road_access, rules_for_scenario, run_scenario
from covplan.scenario import load_scenario
from shipped import LIECHTENSTEIN_SCENARIO


@pytest.fixture(scope="module")
def run():
    scenario = load_scenario(LIECHTENSTEIN_SCENARIO)
    inputs = load_inputs(scenario)
    access = road_access(scenario, inputs)
    result = run_scenario(scenario, inputs=inputs, access=access)
    return scenario, inputs, access, result


def test_inputs_are_the_official_totals(run) -> None:
    _, inputs, _, result = run
    assert len(inputs.units) == 11
    assert inputs.units["population"].sum() == pytest.approx(37370)
    assert result.places["population"].sum() == pytest.approx(37370, abs=0.01)
    assert set(result.facilities["type"]) == {"hospital", "pharmacy"}


def test_drive_rule_equals_a_recount_of_the_places(run) -> None:
    """DRIVE-15 per unit = the population of places whose drive time to a hospital is <= 15."""
    _, _, access, result = run
    minutes = access.nearest(FACILITY_GROUPS["hospitals"], mode="drive", metric="time")
    places = result.places.set_index("place_id")
    covered = places["population"].where(minutes["value"].reindex(places.index) <= 15, 0.0)
    expected = covered.groupby(places["unit_id"]).sum()
    rows = result.unit_results[result.unit_results["rule_id"] == "DRIVE-15"].set_index("unit_id")
    assert len(rows) == 11
    for unit_id, value in expected.items():
        assert rows.loc[unit_id, "covered_population"] == pytest.approx(value, abs=1e-6)
        total = places.loc[places["unit_id"] == unit_id, "population"].sum()
        status = "pass" if value >= total - 1e-6 else "fail"
        assert rows.loc[unit_id, "status"] == status
    summary = result.summary.set_index("rule_id").loc["DRIVE-15"]
    assert summary["covered_population"] == pytest.approx(expected.sum())
    assert summary["region_value"] == pytest.approx(expected.sum() / 37370, rel=1e-9)


def test_drive_minutes_respect_the_speed_limit_bound(run) -> None:
    """No place is reached faster than the straight line at the fastest drive speed."""
    _, inputs, access, result = run
    hospital = inputs.facilities[inputs.facilities["type"] == "hospital"].iloc[0]
    answer = access.nearest(("hospital",), mode="drive", metric="time")
    places = result.places
    straight_m = haversine_m(
        places.geometry.x.to_numpy(), places.geometry.y.to_numpy(),
        hospital.geometry.x, hospital.geometry.y,
    )
    fastest_kmh = max(access.mode("drive").speeds_kmh.values())
    bound = straight_m / 1000 / fastest_kmh * 60
    value = answer["value"].to_numpy()
    finite = np.isfinite(value)
    assert finite.mean() > 0.95
    assert (value[finite] >= bound[finite] - 1e-6).all()
    # the one hospital is the nearest facility of every reachable place
    assert set(answer.loc[finite, "facility_id"]) == {hospital["facility_id"]}


def test_ambulance_adds_the_turnout_and_drives_out(run) -> None:
    scenario, _, access, _ = run
    assert scenario.modes["ambulance"]["turnout_minutes"] == 2.0
    amb = access.nearest(("hospital",), mode="ambulance", metric="time")["value"]
    assert (amb[np.isfinite(amb)] >= 2.0).all()


def test_places_table_columns_per_mode(run) -> None:
    _, _, _, result = run
    rules = rules_for_scenario(load_scenario(LIECHTENSTEIN_SCENARIO))
    modes = {r.mode for r in rules if hasattr(r, "mode")}
    for mode in modes:
        assert f"minutes_{mode}" in result.places.columns
        assert f"nearest_{mode}" in result.places.columns


def test_isochrones_nest_per_rule(run) -> None:
    _, _, _, result = run
    iso = result.isochrones
    assert set(iso["minutes"]) == {15.0, 30.0}
    for _, group in iso.groupby("rule_id"):
        small = group[group["minutes"] == 15].geometry.iloc[0]
        large = group[group["minutes"] == 30].geometry.iloc[0]
        # rounding slivers only: the 30-minute area is the 15-minute one plus a ring, unioned in
        # floating point (slivers of about a square metre in 30 km²; was 1e-8 with a full union
        # per level)
        assert small.difference(large).area < 1e-6 * large.area


def test_manifest_hashes_the_inputs(run) -> None:
    import hashlib

    scenario, inputs, _, result = run
    hashed = result.manifest["inputs"]
    for role, path in inputs.files.items():
        digest = hashlib.sha256(Path(path).read_bytes()).hexdigest()
        assert hashed[role]["sha256"] == digest


def test_siting_proposal_raises_coverage_to_what_it_claims(run) -> None:
    """Adding the proposed sites as facilities and re-measuring gives the claimed coverage."""
    from covplan.siting.session import SitingSession

    scenario, inputs, access, _ = run
    session = SitingSession.from_access(access, rules_for_scenario(scenario), rule_id="DRIVE-15")
    proposal = session.propose(2)
    claimed = proposal.sites["covered_population"].iloc[-1]
    rows = [session.site_points.index[session.site_points["site_id"] == s][0]
            for s in proposal.sites["site_id"]]
    check = session.whatif.apply(add=rows).covered_after
    assert claimed == pytest.approx(check)
    # each site's gain is what it adds to the sites ranked before it
    gains = proposal.sites["gain"].to_numpy()
    assert gains[0] == pytest.approx(session.whatif.apply(add=rows[:1]).delta)
    assert gains.sum() == pytest.approx(claimed - session.whatif.apply().covered_after)
    assert (gains > 0).all()
    # independently: the same sites as point rows from the engine
    again = session.whatif.apply(
        add=[session.point_row(p.x, p.y) for p in proposal.sites.geometry]
    )
    assert again.covered_after == pytest.approx(claimed, rel=1e-3)
    assert pd.Series(proposal.sites["covered_population"]).is_monotonic_increasing
