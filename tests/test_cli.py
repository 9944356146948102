"""The ``covplan`` command on the shipped scenarios: every subcommand, its outputs and exit codes.

One full Andorra audit is run once for the module and its eight output files are opened and
checked against numbers computed here from the input files (feature counts, populations, file
hashes, straight-line lower bounds on travel minutes). Exit codes are checked on a failing
standard, on a standard set with ``--set`` so that every unit passes (its threshold computed
here from the places of the first run), on wrong paths and on broken input files.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
import shutil
import tomllib
from pathlib import Path

import geopandas as gpd
import numpy as np
import openpyxl
import pandas as pd
import pyogrio
import pytest
from click.testing import CliRunner, Result
from covplan.cli import main
from shipped import (
    ANDORRA_DEM,
    ANDORRA_FACILITIES,
    ANDORRA_PARISHES,
    ANDORRA_PBF,
    ANDORRA_PLACES,
    ANDORRA_SCENARIO,
    LIECHTENSTEIN_PBF,
)

ROOT = Path(__file__).resolve().parents[1]
PRESET_FILES = ROOT / "coverage" / "standards" / "preset_files"
DATA = ROOT / "data"
OUTPUTS = ("results.gpkg", "units.csv", "units.xlsx", "places.csv", "map.html", "map.png",
           "report.html", "manifest.json")
MODES = ("ambulance", "drive", "walk")
#: Facility types of the "medical_institutions" group: places.csv reports the nearest of these.
MEDICAL = {"village_clinic", "community_health_station", "community_health_centre",
           "township_health_centre", "sub_centre", "community_hospital", "emergency_station",
           "hospital", "hospital_grade_1", "hospital_grade_2", "hospital_grade_3", "clinic",
           "doctors", "other"}
#: Upper bounds of travel speed (km/h) per mode: no trip can be faster than the straight line
#: at this speed (fastest road class 100 km/h; walking at most 4.5 km/h x Tobler's 1.2 boost).
MAX_KMH = {"ambulance": 100.0, "drive": 100.0, "walk": 6.0}


def _features(path: Path) -> list[dict]:
    return json.loads(path.read_text(encoding="utf-8"))["features"]


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _invoke(*args: str) -> Result:
    return CliRunner().invoke(main, [str(a) for a in args])


def _no_traceback(result: Result) -> None:
    assert "Traceback" not in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)


def _standard(minutes: float) -> str:
    """A --set replacing every standard by one: all residents within ``minutes`` by car."""
    return (
        'standards=[{id="ALL", rule="travel_time", facility_types=["medical_institutions"], '
        f'mode="drive", minutes={minutes:.2f}}}]'
    )


def _scenario_copy(folder: Path, **replace: Path) -> Path:
    """Write the Andorra scenario into ``folder`` with absolute paths, some files replaced."""
    text = ANDORRA_SCENARIO.read_text(encoding="utf-8").replace('"../', f'"{DATA.as_posix()}/')
    for old, new in replace.items():
        original = {"facilities": ANDORRA_FACILITIES, "boundaries": ANDORRA_PARISHES,
                    "places": ANDORRA_PLACES, "network": ANDORRA_PBF}[old]
        text = text.replace(original.as_posix(), Path(new).as_posix())
    path = folder / "andorra.toml"
    path.write_text(text, encoding="utf-8")
    return path


# ------------------------------------------------------------------------ the full audit
@pytest.fixture(scope="module")
def audit_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Result, Path]:
    out = tmp_path_factory.mktemp("cli") / "andorra"
    return _invoke("audit", ANDORRA_SCENARIO, "--out", out), out


def test_audit_writes_every_output_and_exits_1_on_failing_standards(audit_run):
    result, out = audit_run
    _no_traceback(result)
    assert sorted(p.name for p in out.iterdir()) == sorted(OUTPUTS)
    units = pd.read_csv(out / "units.csv")
    # Andorra fails some standards (e.g. no parish has a station per 8,000-20,000 residents):
    assert (units["status"] == "fail").any()
    assert result.exit_code == 1, result.output
    # the summary on standard output: one line per rule with its status
    for rule_id, rows in units.groupby("rule_id"):
        line = next(ln for ln in result.stdout.splitlines() if ln.startswith(rule_id + " "))
        # units that could not be checked (issue 13: cannot_check) are not checked units
        checked = rows[~rows["status"].isin(["not_applicable", "cannot_check"])]
        passing = int((checked["status"] == "pass").sum())
        assert f"units passing {passing}/{len(checked)}" in line
    assert f"Outputs written to {out}" in result.stdout


def test_progress_on_stderr_for_every_step(audit_run):
    result, out = audit_run
    err = result.stderr.replace("\r", "\n")  # a progress bar returns the carriage
    # the longest step, writing the files, shows a bar over the 7 files besides the manifest
    assert re.search(r"Writing outputs:\s+\d+%\|.*\| [1-7]/7 ", err), err[-500:]
    for label in ("Loading inputs", "Building the drive road network", "Auditing standards",
                  "Travel time by walk", "Isochrones by ambulance", "Writing outputs"):
        assert re.search(rf"^{re.escape(label)}.*: done in \d+\.\d s$", err, re.M), label
    # every timed step of the run (the manifest lists them) was shown, the long ones included
    timings = json.loads((out / "manifest.json").read_text(encoding="utf-8"))["timings"]
    steps = {k: v for k, v in timings.items() if k != "total"}
    assert steps and any(v > 0.5 for v in steps.values())
    for label in steps:
        assert f"{label} ...\n" in err and f"{label}: done in" in err
    assert "Outputs written" not in err  # results go to stdout, progress to stderr


def test_results_gpkg_layers_and_rows(audit_run):
    _, out = audit_run
    layers = dict(pyogrio.list_layers(out / "results.gpkg"))
    n_fac, n_units, n_places = (len(_features(path)) for path in (
        ANDORRA_FACILITIES, ANDORRA_PARISHES, ANDORRA_PLACES))
    assert (n_fac, n_units, n_places) == (10, 7, 410)
    assert {"facilities", "units", "unit_results", "places", "isochrones", "run_manifest"} <= set(
        layers)
    assert layers["facilities"] == "Point" and layers["places"] == "Point"
    rows = {name: pyogrio.read_info(out / "results.gpkg", layer=name)["features"]
            for name in layers}
    units_csv = pd.read_csv(out / "units.csv")
    n_rules = units_csv["rule_id"].nunique()
    assert rows["facilities"] == n_fac
    assert rows["units"] == n_units
    assert rows["places"] == n_places
    assert rows["unit_results"] == n_units * n_rules
    # isochrones: 15 and 30 minutes for each travel-time standard's (mode, facility types)
    iso = gpd.read_file(out / "results.gpkg", layer="isochrones")
    keys = iso.groupby(["mode", "facility_types"])["minutes"].apply(sorted)
    assert len(iso) == 2 * len(keys) and all(m == [15.0, 30.0] for m in keys)
    assert set(iso["mode"]) == set(MODES)  # BZ-12 ambulance, SPB-01 walk, DRIVE-15 drive
    places = gpd.read_file(out / "results.gpkg", layer="places")
    assert set(places["place_id"]) == {
        f["properties"]["place_id"] for f in _features(ANDORRA_PLACES)}
    for mode in MODES:
        assert f"minutes_{mode}" in places.columns


def test_units_csv_one_row_per_unit_and_rule(audit_run):
    _, out = audit_run
    units = pd.read_csv(out / "units.csv")
    unit_ids = {f["properties"]["unit_id"] for f in _features(ANDORRA_PARISHES)}
    scenario = tomllib.loads(ANDORRA_SCENARIO.read_text(encoding="utf-8"))
    expected_rules = []  # the scenario's rule ids, presets narrowed by their "only" lists
    for table in scenario["standards"]:
        if "preset" in table:
            preset_file = PRESET_FILES / f"{table['preset']}.toml"
            preset = tomllib.loads(preset_file.read_text("utf-8"))
            ids = [t["id"] for t in preset["standards"]]
            expected_rules += [i for i in ids if i in table.get("only", ids)]
        else:
            expected_rules.append(table["id"])
    assert expected_rules == ["BZ-12", "BZ-13", "SPB-01", "SPB-02", "DDK-06", "DRIVE-15"]
    assert len(units) == len(unit_ids) * len(expected_rules) == 42
    assert not units.duplicated(["unit_id", "rule_id"]).any()
    assert set(units["unit_id"]) == unit_ids and set(units["rule_id"]) == set(expected_rules)
    assert set(units["status"]) <= {"pass", "fail", "not_applicable", "cannot_check"}
    # the population of each unit is the official parish total (sum of its places)
    places = pd.DataFrame([f["properties"] for f in _features(ANDORRA_PLACES)])
    by_unit = places.groupby("unit_id")["population"].sum()
    spb = units[units["rule_id"] == "SPB-01"].set_index("unit_id")["population"]
    assert spb.sort_index().to_numpy() == pytest.approx(by_unit.sort_index().to_numpy(), rel=1e-6)
    # xlsx holds the same rows
    book = openpyxl.load_workbook(out / "units.xlsx", read_only=True)
    for sheet, table in (("units", units), ("places", places)):
        # a write-only workbook records no dimension: count the rows
        assert sum(1 for _ in book[sheet].iter_rows()) == len(table) + 1, sheet


def test_places_csv_minutes_per_mode(audit_run):
    _, out = audit_run
    table = pd.read_csv(out / "places.csv")
    feats = _features(ANDORRA_PLACES)
    assert len(table) == len(feats) == 410 and table["place_id"].is_unique
    assert table["population"].sum() == pytest.approx(85015, abs=0.5)
    facilities = {f["properties"]["facility_id"]: f for f in _features(ANDORRA_FACILITIES)}
    medical = {k for k, f in facilities.items() if f["properties"]["type"] in MEDICAL}
    med_xy = np.array([facilities[k]["geometry"]["coordinates"] for k in sorted(medical)])
    lon, lat = table["lon"].to_numpy(), table["lat"].to_numpy()
    # straight-line km to the nearest medical institution (equirectangular; Andorra is small)
    dx = (lon[:, None] - med_xy[None, :, 0]) * 111.32 * np.cos(np.radians(42.5))
    dy = (lat[:, None] - med_xy[None, :, 1]) * 110.57
    crow_km = np.sqrt(dx**2 + dy**2).min(axis=1)
    for mode in MODES:
        minutes = table[f"minutes_{mode}"].to_numpy(float)
        reached = np.isfinite(minutes)
        assert reached.mean() > 0.9, mode
        assert set(table.loc[reached, f"nearest_{mode}"]) <= medical
        bound = crow_km / MAX_KMH[mode] * 60
        assert (minutes[reached] >= bound[reached] - 0.01).all(), mode
    # driving is the fastest way to the nearest institution for almost everyone
    both = table[["minutes_drive", "minutes_walk"]].dropna()
    assert (both["minutes_drive"] <= both["minutes_walk"]).mean() > 0.95


def test_map_html_layers_attribution_and_manifest(audit_run):
    _, out = audit_run
    html = (out / "map.html").read_text(encoding="utf-8")
    for layer in ("Health facilities", "Units by compliance", "Uncovered places",
                  "15-minute area (drive)", "30-minute area (ambulance)",
                  "15-minute area (walk)"):
        assert layer in html, layer
    assert "© OpenStreetMap contributors" in html
    assert "Farmacia D Encamp" in html  # popups carry the facility names
    assert 'id="run-manifest"' in html
    report = (out / "report.html").read_text(encoding="utf-8")
    for rule_id in ("BZ-12", "SPB-01", "DDK-06", "DRIVE-15"):
        assert rule_id in report
    assert (out / "map.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_manifest_hashes_equal_the_inputs_and_outputs(audit_run):
    _, out = audit_run
    manifest = json.loads((out / "manifest.json").read_text(encoding="utf-8"))
    inputs = manifest["inputs"]
    expected = {"scenario": ANDORRA_SCENARIO, "facilities": ANDORRA_FACILITIES,
                "boundaries": ANDORRA_PARISHES, "population": ANDORRA_PLACES,
                "network": ANDORRA_PBF, "dem": ANDORRA_DEM}
    assert set(inputs) == set(expected)
    for role, path in expected.items():
        assert inputs[role]["sha256"] == _sha256(path), role
        assert inputs[role]["bytes"] == path.stat().st_size
    for name, entry in manifest["outputs"].items():
        assert entry["sha256"] == _sha256(out / name), name
    assert set(manifest["outputs"]) == set(OUTPUTS) - {"manifest.json"}
    assert manifest["run"]["all_pass"] is False
    assert manifest["osm_extract_date"].startswith("2013-05")


# ------------------------------------------------------------------ exit codes and options
def test_set_threshold_all_pass_exit_0_quiet_and_chinese(audit_run, tmp_path):
    _, first = audit_run
    places = pd.read_csv(first / "places.csv")
    worst = places.loc[places["population"] > 0, "minutes_drive"].max()
    assert math.isfinite(worst) and worst > 15
    out = tmp_path / "pass"
    result = _invoke("-q", "audit", ANDORRA_SCENARIO, "--out", out, "--lang", "zh",
                     "--set", _standard(worst + 0.5))
    _no_traceback(result)
    assert result.exit_code == 0, result.output
    assert result.stderr == "" and result.stdout == ""  # -q: nothing at all
    units = pd.read_csv(out / "units.csv", encoding="utf-8-sig")
    header = list(units.columns)
    assert "单元编码" in header and "状态" in header
    assert all(re.search(r"[\u4e00-\u9fff]", h) for h in header), header
    assert len(units) == 7 and set(units["状态"]) == {"达标"}  # every parish passes
    assert "医疗卫生机构" in (out / "map.html").read_text(encoding="utf-8")
    assert json.loads((out / "manifest.json").read_text("utf-8"))["run"]["all_pass"] is True


def test_set_threshold_just_below_worst_place_fails_its_units(audit_run, tmp_path):
    _, first = audit_run
    places = pd.read_csv(first / "places.csv")
    populated = places[places["population"] > 0]
    limit = populated["minutes_drive"].max() - 0.5
    failing_units = set(populated.loc[populated["minutes_drive"] > limit + 0.01, "unit_id"])
    assert failing_units  # the parish of the farthest place at least
    out = tmp_path / "fail"
    result = _invoke("-q", "audit", ANDORRA_SCENARIO, "--out", out, "--set", _standard(limit),
                     "--new", "1")
    assert result.exit_code == 1, result.output
    units = pd.read_csv(out / "units.csv")
    assert set(units.loc[units["status"] == "fail", "unit_id"]) == failing_units
    # --new 1: one proposed site for the standard, in the GeoPackage and on the map
    layers = dict(pyogrio.list_layers(out / "results.gpkg"))
    assert layers.get("proposals") == "Point"
    proposals = gpd.read_file(out / "results.gpkg", layer="proposals")
    assert len(proposals) == 1 and set(proposals["rule_id"]) == {"ALL"}
    assert "Proposed sites" in (out / "map.html").read_text(encoding="utf-8")


def test_wrong_scenario_path_exit_2(tmp_path):
    missing = tmp_path / "no_such_scenario.toml"
    for command in ("audit", "validate", "map", "isochrones", "site"):
        extra = () if command == "validate" else ("--out", tmp_path / "out")
        extra += ("--new", "1") if command == "site" else ()
        result = _invoke(command, missing, *extra)
        assert result.exit_code == 2, (command, result.output)
        assert "scenario file not found" in result.stderr and str(missing.name) in result.stderr
        _no_traceback(result)
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("breakage", ["truncated", "binary", "folder", "toml"])
def test_broken_input_exit_2_and_nothing_written(tmp_path, breakage):
    bad = tmp_path / "facilities.geojson"
    if breakage == "truncated":
        bad.write_bytes(ANDORRA_FACILITIES.read_bytes()[:500])
    elif breakage == "binary":
        bad.write_bytes(b"\xff\xfe\x00\x01garbage\x00" * 10)
    elif breakage == "folder":
        bad.mkdir()
    scenario = _scenario_copy(tmp_path, facilities=bad)
    if breakage == "toml":
        scenario.write_text(scenario.read_text(encoding="utf-8") + "\n[broken\n", "utf-8")
    out = tmp_path / "out"
    result = _invoke("audit", scenario, "--out", out)
    assert result.exit_code == 2, result.output
    _no_traceback(result)
    assert result.stderr.startswith("Error:") or "\nError:" in result.stderr
    assert (bad.name if breakage != "toml" else "not valid TOML") in result.stderr
    assert not out.exists()


def test_broken_input_leaves_earlier_outputs_intact(audit_run, tmp_path):
    _, first = audit_run
    out = tmp_path / "out"
    shutil.copytree(first, out)
    before = {p.name: _sha256(p) for p in out.iterdir()}
    bad = tmp_path / "trunc.osm.pbf"
    bad.write_bytes(ANDORRA_PBF.read_bytes()[:20000])
    result = _invoke("-q", "audit", _scenario_copy(tmp_path, network=bad), "--out", out)
    assert result.exit_code == 2 and "PBF" in result.stderr
    assert {p.name: _sha256(p) for p in out.iterdir()} == before


def test_bad_overrides_and_modes_exit_2(tmp_path):
    result = _invoke("validate", ANDORRA_SCENARIO, "--set", "standards[9].minutes=20")
    assert result.exit_code == 2 and "standards[9]" in result.stderr
    result = _invoke("validate", ANDORRA_SCENARIO, "--mode", "bicycle")
    assert result.exit_code == 2 and "unknown travel mode 'bicycle'" in result.stderr
    _no_traceback(result)


def test_validate_and_mode_filter():
    result = _invoke("validate", ANDORRA_SCENARIO)
    assert result.exit_code == 0, result.output
    total = sum(f["properties"]["population"] for f in _features(ANDORRA_PLACES))
    assert f"{total:,.0f}" == "85,015"
    assert result.stdout.strip() == (
        "Andorra: OK - 6 standards, 10 facilities, 7 units, 410 population places, "
        "population 85,015"
    )
    # --mode drive keeps SPB-02 (5 km by road, drive), DRIVE-15 and DDK-06 (no travel mode)
    result = _invoke("-q", "validate", ANDORRA_SCENARIO, "--mode", "drive")
    assert result.exit_code == 0 and result.stdout.startswith("Andorra: OK - 3 standards")
    result = _invoke("-q", "validate", ANDORRA_SCENARIO, "--mode", "walk", "--mode", "ambulance")
    assert result.exit_code == 0 and result.stdout.startswith("Andorra: OK - 4 standards")


# --------------------------------------------------------------------- other subcommands
def test_isochrones_command(tmp_path):
    result = _invoke("-q", "isochrones", ANDORRA_SCENARIO, "--out", tmp_path, "--mode", "drive",
                     "--minutes", "10", "--minutes", "20")
    assert result.exit_code == 0, result.output
    gpkg = gpd.read_file(tmp_path / "isochrones.gpkg")
    geojson = gpd.read_file(tmp_path / "isochrones.geojson")
    assert len(gpkg) == len(geojson) == 2  # DRIVE-15 (hospitals by car) at 10 and 20 minutes
    assert result.stdout.strip() == f"2 isochrones written to {tmp_path}"
    assert sorted(gpkg["minutes"]) == [10.0, 20.0] and set(gpkg["mode"]) == {"drive"}
    metric = gpkg.to_crs(32631).set_index("minutes").geometry
    assert metric[10.0].area < metric[20.0].area
    assert metric[10.0].difference(metric[20.0].buffer(1)).area < 1e-3 * metric[10.0].area


def test_site_command(tmp_path):
    result = _invoke("site", ANDORRA_SCENARIO, "--new", "2", "--out", tmp_path)
    assert result.exit_code == 0, result.output
    assert "Optimising 2 new site(s) (mclp): done in" in result.stderr
    sites = pd.read_csv(tmp_path / "proposals.csv")
    assert list(sites["rank"]) == list(range(1, len(sites) + 1)) and 1 <= len(sites) <= 2
    assert sites["covered_population"].is_monotonic_increasing
    assert (sites["covered_share"] <= 1 + 1e-9).all()
    assert set(sites["rule_id"]) == {"BZ-12"}  # the first travel-time standard
    # each proposed site lies in Andorra and at least 300 m from every existing facility
    area = gpd.read_file(ANDORRA_PARISHES).to_crs(32631).union_all().buffer(50)
    pts = gpd.GeoSeries(gpd.points_from_xy(sites["lon"], sites["lat"]), crs=4326).to_crs(32631)
    fac = gpd.read_file(ANDORRA_FACILITIES).to_crs(32631)
    for p in pts:
        assert area.contains(p)
        assert fac.distance(p).min() >= 299
    assert len(gpd.read_file(tmp_path / "proposals.geojson")) == len(sites)
    assert "covered" in result.stdout


def test_map_command_writes_only_the_map(tmp_path):
    result = _invoke("-q", "map", ANDORRA_SCENARIO, "--out", tmp_path, "--mode", "drive")
    assert result.exit_code == 0, result.output
    assert [p.name for p in tmp_path.iterdir()] == ["map.html"]
    html = (tmp_path / "map.html").read_text(encoding="utf-8")
    assert "© OpenStreetMap contributors" in html and "15-minute area (drive)" in html
    assert "(walk)" not in html  # --mode drive dropped the walking standard


def test_presets_command_lists_every_preset_with_its_source():
    files = sorted(PRESET_FILES.glob("*.toml"))
    result = _invoke("presets", "--json")
    assert result.exit_code == 0, result.output
    rows = {r["name"]: r for r in json.loads(result.stdout)}
    assert set(rows) == {p.stem for p in files} and len(rows) == 5
    for path in files:
        table = tomllib.loads(path.read_text(encoding="utf-8"))
        row = rows[path.stem]
        assert row["title"] == table["preset"]["title"]
        assert row["source"] == table["preset"]["seed"]
        assert row["rules"] == [t["id"] for t in table["standards"]]
    text = _invoke("presets").stdout
    assert "大渡口区进一步完善医疗卫生服务体系实施方案" in text and "DDK-06" in text


def test_data_fetch_from_a_local_extract(tmp_path):
    """Wahlkreis Unterland (OSM relation 49) cut from the shipped Liechtenstein extract."""
    result = _invoke("-q", "data", "fetch", "--out", tmp_path,
                     "--pbf", LIECHTENSTEIN_PBF,
                     "--relation-id", "49", "--buffer-m", "1000", "--lang", "en")
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("5 townships")
    scenario = tomllib.loads((tmp_path / "scenario.toml").read_text(encoding="utf-8"))
    assert scenario["scenario"]["language"] == "en"
    towns = gpd.read_file(tmp_path / "townships.geojson")
    assert set(towns["name"]) == {"Eschen", "Gamprin", "Mauren", "Ruggell", "Schellenberg"}
    # no outline given: a clear message, exit 2
    result = _invoke("data", "fetch", "--out", tmp_path / "x", "--pbf", ANDORRA_PBF)
    assert result.exit_code == 2 and "no district outline" in result.stderr
    _no_traceback(result)


def test_version_and_help():
    result = _invoke("--version")
    assert result.exit_code == 0 and result.stdout.startswith("covplan, version ")
    result = _invoke("--help")
    for command in ("audit", "validate", "isochrones", "site", "map", "presets", "data"):
        assert re.search(rf"^\s+{command}\s", result.stdout, re.M), command


def test_unwritable_output_folder_exit_2(tmp_path):
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder", encoding="utf-8")
    result = _invoke("-q", "isochrones", ANDORRA_SCENARIO, "--out", blocker / "sub")
    assert result.exit_code == 2, result.output
    assert "Error:" in result.stderr and "a_file" in result.stderr
    _no_traceback(result)
    assert blocker.read_text(encoding="utf-8") == "not a folder"


def test_unexpected_error_exit_3_traceback_only_with_v(monkeypatch):
    import covplan.pipeline

    def broken(*args, **kwargs):
        raise ZeroDivisionError("simulated bug")

    monkeypatch.setattr(covplan.pipeline, "load_inputs", broken)
    result = _invoke("validate", ANDORRA_SCENARIO)
    assert result.exit_code == 3
    assert "Internal error: ZeroDivisionError: simulated bug" in result.stderr
    _no_traceback(result)
    result = _invoke("-v", "validate", ANDORRA_SCENARIO)
    assert result.exit_code == 3 and "Traceback" in result.stderr


def test_places_csv_says_which_source_decided_urban_or_rural(audit_run):
    _, out = audit_run
    places = pd.read_csv(out / "places.csv")
    shipped = gpd.read_file(ANDORRA_PLACES).set_index("place_id")
    # the scenario names the places' own urban_rural column, so that column decided
    assert set(places["ur_source"]) == {"column"}
    expected = shipped.loc[places["place_id"], "urban_rural"].to_numpy()
    assert (places["urban_rural"].to_numpy() == expected).all()
