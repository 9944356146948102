"""The Streamlit app driven by ``AppTest`` on the shipped Andorra and Liechtenstein data.

Expected numbers are computed here another way: covered population straight from the road
engine's nearest-facility times, and the plan's change from the full audit of the plan's
facilities (the app's metric comes from the siting engine's what-if).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from covplan import planning
from covplan.app import cache
from covplan.app.i18n import detect_language, t
from covplan.errors import CoverageError
from covplan.facility_types import FACILITY_GROUPS
from covplan.inputs.uploads import UploadStore
from covplan.pipeline import rules_for_scenario
from covplan.planning import (
    Plan,
    SessionPlans,
    check_upload,
    load_plans,
    save_plans,
    standards_tables,
    write_upload_scenario,
)
from covplan.standards import load_preset
from shipped import ANDORRA_SCENARIO, LIECHTENSTEIN_SCENARIO
from streamlit.testing.v1 import AppTest

ROOT = Path(__file__).resolve().parents[1]
APP = str(ROOT / "app.py")
LON, LAT = 1.55, 42.55  # on a road in Canillo, outside the 15-minute ambulance area


@pytest.fixture(scope="module")
def region() -> planning.Region:
    return planning.load_region(ANDORRA_SCENARIO)


def _covered_bz12(region: planning.Region) -> float:
    """Urban residents within 15 min by ambulance of an emergency facility (engine times)."""
    places = region.inputs.places
    answer = region.access.nearest(FACILITY_GROUPS["emergency"], mode="ambulance",
                                   metric="time")
    urban = (places["urban_rural"] == "urban").to_numpy()
    ok = answer["value"].to_numpy() <= 15.0
    return float(places["population"].to_numpy()[urban & ok].sum())


def _metric(at: AppTest, start: str):
    return next(m for m in at.metric if m.label.startswith(start))


def _number(text: str) -> float:
    return float(text.split(" ")[0].replace(",", ""))


def _app() -> AppTest:
    at = AppTest.from_file(APP, default_timeout=180)
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


# ------------------------------------------------------------------------------- pure parts
def test_language_from_accept_language() -> None:
    assert detect_language({"Accept-Language": "zh-CN,zh;q=0.9,en;q=0.8"}) == "zh"
    assert detect_language({"accept-language": "en-US,en;q=0.9,zh-CN;q=0.8"}) == "en"
    assert detect_language({"Accept-Language": "fr-FR,zh-TW;q=0.5"}) == "zh"
    assert detect_language({"Accept-Language": "fr-FR"}) == "en"
    assert detect_language({}) == "en"
    assert t("title", "zh") == "卫生服务可及性规划"


def test_threshold_edits_reach_preset_rules(region: planning.Region) -> None:
    tables = standards_tables(region.scenario.standards,
                              thresholds={"BZ-12": {"minutes": {"urban": 20.0}},
                                          "DRIVE-15": {"minutes": 10.0}})
    rules = {r.id: r for r in rules_for_scenario(region.scenario.with_overrides(
        standards=tables))}
    assert dict(rules["BZ-12"].minutes) == {"urban": 20.0}
    assert rules["DRIVE-15"].minutes == 10.0
    assert region.scenario.standards[-1]["minutes"] == 15  # the shared scenario is unchanged
    with pytest.raises(CoverageError, match="NOPE"):
        standards_tables(region.scenario.standards, thresholds={"NOPE": {"minutes": 3}})


def test_plans_round_trip_through_a_file(tmp_path: Path) -> None:
    plans = SessionPlans(current=Plan(region="andorra", preset="shapingba"))
    plans.current.add(LON, LAT)
    plans.keep("one station")
    plans.current.add(1.52, 42.51)
    plans.current.remove("S1")
    loaded = load_plans(save_plans(plans))
    assert [c.name for c in loaded.current.candidates] == ["S2"]
    assert loaded.named["one station"].candidates[0].lon == LON
    assert loaded.current.preset == "shapingba"
    with pytest.raises(CoverageError, match="not JSON"):
        load_plans("{not json")
    with pytest.raises(CoverageError, match="not a saved plan"):
        load_plans(json.dumps({"current": {}}))
    with pytest.raises(CoverageError, match="longitude"):
        plans.current.add(500.0, 42.0)


def test_uploads_checked_written_and_removed(tmp_path: Path) -> None:
    with pytest.raises(CoverageError, match="limited to 20 MB"):
        check_upload("facilities", "f.csv", 21 * 1024 * 1024)
    with pytest.raises(CoverageError, match="must end with"):
        check_upload("network", "roads.exe", 10)
    assert check_upload("boundaries", "../../etc/b.geojson", 10) == "b.geojson"
    folder = UploadStore(prefix="covplan-session-")
    data = ROOT / "data"
    files = {
        "facilities": ("andorra.geojson", (data / "facilities/andorra.geojson").read_bytes()),
        "boundaries": ("parishes.geojson",
                       (data / "boundaries/andorra_parishes.geojson").read_bytes()),
        "network": ("andorra.osm.pbf", (data / "osm/andorra-2013-05-23.osm.pbf").read_bytes()),
    }
    path = write_upload_scenario(folder.path, files, level="parish", preset="shapingba")
    region = planning.load_region(path)
    assert len(region.inputs.facilities) == 10 and len(region.inputs.units) == 7
    # population from the boundaries: one place per unit carrying its population
    expected = sum(json.loads(files["boundaries"][1])["features"][i]["properties"]["population"]
                   for i in range(7))
    assert region.inputs.places["population"].sum() == pytest.approx(expected)
    bad = dict(files, boundaries=("parishes.geojson", b"{broken"))
    with pytest.raises(CoverageError):
        planning.load_region(write_upload_scenario(folder.path, bad, level="parish"))
    with pytest.raises(CoverageError, match="network"):
        write_upload_scenario(folder.path, {"facilities": files["facilities"]})
    folder.cleanup()
    assert not folder.path.exists()


# ------------------------------------------------------------------------------- the app
def test_app_region_preset_station_and_download(region: planning.Region) -> None:
    at = _app()
    assert at.title[0].value == "Health coverage planner"
    baseline = _covered_bz12(region)
    assert _number(_metric(at, "Population covered (BZ-12)").value) == pytest.approx(
        baseline, abs=0.5)

    # add a station by its coordinates: the metric changes by the full audit's change
    at.number_input(key="w_lon").set_value(LON)
    at.number_input(key="w_lat").set_value(LAT)
    at.button(key="w_add").click().run()
    assert not at.exception
    tables = standards_tables(region.scenario.standards)
    plan = planning.evaluate_plan(region, tables, points=[("S1", LON, LAT)],
                               station_type="emergency_station")
    audit = plan.summary.set_index("rule_id")["covered_population"]
    after = float(audit["BZ-12"])
    assert after > baseline + 100
    metric = _metric(at, "Population covered (BZ-12)")
    assert _number(metric.value) == pytest.approx(after, abs=0.5)
    assert float(metric.delta.replace(",", "")) == pytest.approx(after - baseline, abs=0.5)
    assert [c.name for c in at.session_state["plans"].current.candidates] == ["S1"]

    # keep it as a named scenario; the comparison table shows baseline, current and it
    at.text_input(key="w_scenario_name").set_value("Canillo station")
    at.button(key="w_keep").click().run()
    compare = next(d.value for d in at.dataframe if "Canillo station" in d.value.columns)
    assert list(compare.columns) == ["Baseline (existing)", "Current plan", "Canillo station"]
    population = float(plan.summary.set_index("rule_id").loc["BZ-12", "population"])
    assert compare.loc["BZ-12 %", "Canillo station"] == pytest.approx(
        round(100 * after / population, 2))
    assert compare.loc["BZ-12 %", "Baseline (existing)"] == pytest.approx(
        round(100 * baseline / population, 2))

    # downloads: the CLI's files, with the candidate station in them
    at.button(key="w_prepare").click().run()
    assert not at.exception
    exports = at.session_state["exports"]
    assert set(exports) >= {"map.html", "units.csv", "units.xlsx", "results.gpkg",
                            "report.html"}
    html = exports["map.html"].read_text(encoding="utf-8")
    # the station is facility new-1 (covplan.whatif's id of the first added facility)
    assert "© OpenStreetMap contributors" in html and "new-1" in html
    assert str(exports["map.html"]).startswith(str(at.session_state["folder"].path))

    # remove the station: back to the baseline
    at.button(key="rm|S1").click().run()
    assert _number(_metric(at, "Population covered (BZ-12)").value) == pytest.approx(
        baseline, abs=0.5)

    # another preset: Shapingba's 15-minute walk standard drives siting
    at.selectbox(key="w_preset").set_value("shapingba").run()
    assert not at.exception
    walk = region.access.nearest(FACILITY_GROUPS["medical_institutions"], mode="walk",
                                 metric="time")
    expected = float(region.inputs.places["population"].to_numpy()[
        walk["value"].to_numpy() <= 15.0].sum())
    assert _number(_metric(at, "Population covered (SPB-01)").value) == pytest.approx(
        expected, abs=0.5)

    # another region: a fresh plan with that scenario's own standards
    at.selectbox(key="region").set_value("liechtenstein").run()
    assert not at.exception
    li = planning.load_region(LIECHTENSTEIN_SCENARIO)
    assert _number(_metric(at, "Population covered (BZ-12)").value) == pytest.approx(
        _covered_bz12(li), abs=0.5)
    assert _metric(at, "Units passing every standard").value == f"0 / {len(li.inputs.units)}"
    assert at.session_state["plans"].current.region == "liechtenstein"
    # the candidate point fields moved to the new region (Andorra's point is not kept)
    bounds = li.inputs.units.total_bounds
    assert at.number_input(key="w_lon").value == pytest.approx((bounds[0] + bounds[2]) / 2)
    assert at.number_input(key="w_lat").value == pytest.approx((bounds[1] + bounds[3]) / 2)


def test_sessions_do_not_share_edits_and_chinese_interface(region: planning.Region) -> None:
    first, second = _app(), _app()
    first.number_input(key="w_lon").set_value(LON)
    first.number_input(key="w_lat").set_value(LAT)
    first.button(key="w_add").click().run()
    second.run()
    baseline = _covered_bz12(region)
    assert _number(_metric(second, "Population covered (BZ-12)").value) == pytest.approx(
        baseline, abs=0.5)
    assert _number(_metric(first, "Population covered (BZ-12)").value) > baseline
    assert second.session_state["plans"].current.candidates == []
    # the shared region still has its own ten facilities
    assert len(cache.shared_region(str(ANDORRA_SCENARIO.resolve())).inputs.facilities) == 10
    second.radio(key="lang").set_value("zh").run()
    assert second.title[0].value == "卫生服务可及性规划"
    assert np.isclose(_number(_metric(second, "覆盖人口").value), baseline, atol=0.5)
    # in Chinese the standards read in the plan's own wording (the preset's title_zh)
    bz12 = next(r for r in load_preset("bazhong") if r.id == "BZ-12")
    assert second.selectbox(key="w_siting").format_func("BZ-12") == f"BZ-12 · {bz12.title_zh}"
    summary = next(d.value for d in second.dataframe if "BZ-12 %" in d.value.columns)
    assert "达标单元数" in summary.columns


def test_edited_threshold_changes_the_metric(region: planning.Region) -> None:
    at = _app()
    at.number_input(key="thr|BZ-12|minutes|urban").set_value(20.0).run()
    assert not at.exception
    places = region.inputs.places
    answer = region.access.nearest(FACILITY_GROUPS["emergency"], mode="ambulance",
                                   metric="time")
    urban = (places["urban_rural"] == "urban").to_numpy()
    expected = float(places["population"].to_numpy()[
        urban & (answer["value"].to_numpy() <= 20.0)].sum())
    assert expected > _covered_bz12(region)
    assert _number(_metric(at, "Population covered (BZ-12)").value) == pytest.approx(
        expected, abs=0.5)


def test_propose_sites_in_the_app_matches_the_package(region: planning.Region) -> None:
    """"Propose N sites" shows the optimiser's sites; adding them gives the claimed coverage."""
    at = _app()
    at.number_input(key="w_n").set_value(2)
    at.button(key="w_propose").click().run()
    assert not at.exception, [e.value for e in at.exception]
    shown = next(d.value for d in at.dataframe if "site_id" in d.value.columns)
    tables = standards_tables(region.scenario.standards)
    session = cache.shared_siting(str(ANDORRA_SCENARIO), planning.standards_key(tables), "BZ-12")
    expected = session.propose(2)
    assert list(shown["site_id"]) == list(expected.sites["site_id"])
    # add them to the plan: the headline metric equals the proposal's claimed coverage
    at.button(key="w_add_proposals").click().run()
    assert not at.exception
    claimed = float(expected.sites["covered_population"].iloc[-1])
    assert _number(_metric(at, "Population covered (BZ-12)").value) == pytest.approx(
        claimed, abs=0.5)
