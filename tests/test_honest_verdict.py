"""An honest verdict (issue 13, item 5): what the data cannot decide is said, never failed.

A rule whose facility type or column is absent from the data is ``cannot_check`` with the
reason, ``covplan validate`` names it, and an audit in which nothing could be checked exits 4.
"""

from __future__ import annotations

from pathlib import Path

import geopandas as gpd
import pandas as pd
from click.testing import CliRunner
from covplan.cli import main
from covplan.cli.exit_codes import (
    EXIT_BAD_INPUT,
    EXIT_FAILED,
    EXIT_INTERNAL,
    EXIT_NOTHING_CHECKED,
    EXIT_OK,
    exit_code_for_audit,
    worst_exit_code,
)
from covplan.standards import StraightLineAccess, load_preset
from covplan.standards.audit import nothing_checked, run_audit
from district_dadukou import write_facilities
from test_units_hierarchy import PLACED, SCENARIO, D, _write_district

DATA = Path(__file__).resolve().parents[1] / "data"


def test_exit_code_order() -> None:
    assert EXIT_NOTHING_CHECKED == 4
    assert exit_code_for_audit(["cannot_check", "not_applicable"]) == EXIT_NOTHING_CHECKED
    assert exit_code_for_audit(["pass", "cannot_check"]) == EXIT_OK
    assert exit_code_for_audit(["pass", "fail"]) == EXIT_FAILED
    assert exit_code_for_audit([]) == EXIT_OK
    # worst of a batch: 0 < 4 < 1 < 2 < 3
    assert worst_exit_code([EXIT_OK, EXIT_NOTHING_CHECKED]) == EXIT_NOTHING_CHECKED
    assert worst_exit_code([EXIT_NOTHING_CHECKED, EXIT_FAILED]) == EXIT_FAILED
    assert worst_exit_code([EXIT_NOTHING_CHECKED, EXIT_BAD_INPUT, EXIT_FAILED]) == 2
    assert worst_exit_code([EXIT_INTERNAL, EXIT_NOTHING_CHECKED]) == EXIT_INTERNAL
    assert worst_exit_code([]) == EXIT_OK


def _without_village_clinics(folder: Path, scenario: str) -> Path:
    path = _write_district(folder, scenario)
    rows = [{"facility_id": fid, "name": name, "type": typ, "unit": unit, "beds": beds,
             **({"parent_id": parent} if parent else {})}
            for fid, name, typ, unit, beds, parent in PLACED]
    write_facilities(D, folder / "facilities.geojson", rows)
    return path


def test_validate_names_the_rules_that_cannot_be_checked(tmp_path: Path) -> None:
    scenario = _without_village_clinics(tmp_path, SCENARIO)
    result = CliRunner().invoke(main, ["validate", str(scenario)])
    assert result.exit_code == 0, result.output
    notes = [ln for ln in result.stderr.splitlines() if "cannot be checked" in ln]
    # the three village-clinic rules, and DDK-06 (the stations were left out too)
    for rid in ("DDK-01", "BZ-09", "DZ-02"):
        assert any(rid in ln and "no 村卫生室 (village_clinic) in the facility file" in ln
                   for ln in notes), (rid, notes)
    assert any("DDK-06" in ln and "no 社区卫生服务站" in ln for ln in notes), notes
    assert not any(r in result.stderr for r in ("DDK-05 ", "DZ-01 ")), result.stderr
    assert len(notes) == 4


def test_an_audit_where_nothing_could_be_checked_exits_4(tmp_path: Path) -> None:
    only_clinics = SCENARIO.split("[[standards]]")[0] + """
[[standards]]
preset = "dadukou"
only = ["DDK-01"]

[[standards]]
preset = "dazu"
only = ["DZ-02"]
"""
    scenario = _without_village_clinics(tmp_path, only_clinics)
    out = tmp_path / "out"
    result = CliRunner().invoke(main, ["audit", str(scenario), "--out", str(out)])
    assert result.exit_code == EXIT_NOTHING_CHECKED, result.output
    assert "no rule could be checked" in result.stderr
    units = pd.read_csv(out / "units.csv", dtype={"unit_id": str})
    # every village-level unit of both rules: cannot be checked, the reason in evidence
    assert set(units["status"]) == {"cannot_check"}
    assert len(units) == 2 * len(D.villages)
    assert units["evidence"].str.contains("no 村卫生室", regex=False).all()
    # the report does not read as "all standards met"
    report = (out / "report.html").read_text(encoding="utf-8")
    assert '<p id="verdict" class="cannot_check">' in report
    assert "all standards met" not in report and "全部达标" not in report


def test_yongchuan_on_andorra_is_not_every_standard_met() -> None:
    folder = DATA
    units = gpd.read_file(folder / "boundaries" / "andorra_parishes.geojson")
    facilities = gpd.read_file(folder / "facilities" / "andorra.geojson")
    places = gpd.read_file(folder / "population" / "andorra_places.geojson")
    access = StraightLineAccess(facilities, places, speeds_kmh={"drive": 40.0})
    level = str(units["level"].iloc[0])
    rules = load_preset("yongchuan")
    result = run_audit(rules, facilities=facilities, units=units, places=places,
                       access=access, levels=dict.fromkeys(("county", "township", "village"),
                                                           level))
    s = result.summary.set_index("rule_id")
    # the 7 rules of 2020's preset: no beds/doctors/nurses columns in the Andorra file
    before = [f"YC-{n:02d}" for n in range(8, 15)]
    assert (s.loc[before, "region_status"] == "cannot_check").all()
    old = result.units[result.units["rule_id"].isin(before)]
    assert nothing_checked(old)
    assert exit_code_for_audit(old["status"]) == EXIT_NOTHING_CHECKED != EXIT_OK
    # the added counts: no 三级医院, no 甲级 grade column -> cannot be checked too
    assert (s.loc[["YC-04", "YC-05"], "region_status"] == "cannot_check").all()
    # the three tiers are checked where the data can say (parishes stand for every level):
    # each parish with a hospital passes 不出乡镇; so the whole audit is not "nothing checked"
    tiers = result.units[result.units["rule_id"] == "YC-22"]
    hosts = set(facilities.sjoin(units[["unit_id", "geometry"]])["unit_id"])
    town = tiers[tiers["criterion"].str.startswith("常见病")]
    assert set(town.loc[town["status"] == "pass", "unit_id"]) == hosts
    assert exit_code_for_audit(result.units["status"]) == EXIT_FAILED


def test_a_batch_where_nothing_could_be_checked_exits_4(tmp_path: Path) -> None:
    """The same scenario twice, as a batch (one process each): status nothing_checked, exit 4."""
    from covplan.batch import NOTHING_CHECKED, run_many
    from covplan.progress import Steps

    only_clinics = SCENARIO.split("[[standards]]")[0] + """
[[standards]]
preset = "dadukou"
only = ["DDK-01"]
"""
    paths = []
    for name in ("north", "south"):
        (tmp_path / name).mkdir()
        path = _without_village_clinics(tmp_path / name, only_clinics)
        paths.append(path.rename(path.with_name(f"{name}.toml")))
    first, second = paths
    outcomes = run_many([first, second], out_root=tmp_path / "out", jobs=1,
                        steps=Steps(verbosity=0))
    assert [o.status for o in outcomes] == [NOTHING_CHECKED, NOTHING_CHECKED]
    assert all(o.ran and "no standard could be checked" in o.line() for o in outcomes)
    from covplan.cli.exit_codes import exit_code_for

    assert exit_code_for(outcomes) == EXIT_NOTHING_CHECKED
