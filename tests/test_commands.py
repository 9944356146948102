"""The functions behind the ``covplan`` commands (covplan.commands), without click."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path

import geopandas as gpd
import pytest
from click.testing import CliRunner
from covplan import commands
from covplan.cli import main
from covplan.errors import InputError
from covplan.pipeline import rules_for_scenario
from shipped import (
    ANDORRA_FACILITIES,
    ANDORRA_PARISHES,
    ANDORRA_PLACES,
    ANDORRA_SCENARIO,
    ROOT,
    SCENARIOS,
)

PRESETS = ROOT / "coverage" / "standards" / "preset_files"


def test_check_scenario_counts_what_the_files_hold() -> None:
    check = commands.check_scenario(commands.load_job_scenario(ANDORRA_SCENARIO))
    places = gpd.read_file(ANDORRA_PLACES)
    assert (check.name, check.language) == ("Andorra", "en")
    assert check.facilities == len(gpd.read_file(ANDORRA_FACILITIES))
    assert check.units == len(gpd.read_file(ANDORRA_PARISHES))
    assert check.places == len(places)
    assert check.population == pytest.approx(places["population"].sum())
    # the rules that cannot be checked: a level the parishes are not, or no facility of a type
    rules = rules_for_scenario(commands.load_job_scenario(ANDORRA_SCENARIO))
    present = set(gpd.read_file(ANDORRA_FACILITIES)["type"])
    expected = {
        r.id for r in rules
        if getattr(r, "level", None) not in (None, "parish")
        or not present.intersection(getattr(r, "facility_types", present))
    }
    assert {p.where.split()[1] for p in check.unchecked} == expected
    assert expected  # the demo has parishes only: county and township rules are named


def test_validate_speaks_chinese_for_a_chinese_scenario() -> None:
    """黄浦区: the 2020 census total of its 常住人口 (662,030) is spread over its 10 街道."""
    result = CliRunner().invoke(main, ["-q", "validate", str(SCENARIOS / "huangpu.toml")])
    assert result.exit_code == 0, result.output
    line = result.stdout.strip().splitlines()[-1]
    assert line.startswith("上海市黄浦区（示范）：检查通过 - ")
    assert "10 个行政单元" in line and "常住人口 662,030 人" in line


def test_preset_rows_are_the_preset_files() -> None:
    rows = {row["name"]: row for row in commands.preset_rows()}
    files = sorted(PRESETS.glob("*.toml"))
    assert sorted(rows) == sorted(f.stem for f in files)
    for path in files:
        tables = tomllib.loads(path.read_text("utf-8")).get("standards", [])
        assert rows[path.stem]["rules"] == [str(t["id"]) for t in tables], path.stem


def test_schema_text_is_the_json_schema(tmp_path: Path) -> None:
    schema = json.loads(commands.schema_text())
    assert {"scenario", "inputs", "standards"} <= set(schema["properties"])
    written = commands.write_schema(tmp_path / "schema.json")
    assert json.loads(written.read_text("utf-8")) == schema


def test_an_output_folder_holding_an_input_is_refused_before_computing(tmp_path: Path) -> None:
    scenario = commands.load_job_scenario(ANDORRA_SCENARIO)
    with pytest.raises(InputError, match="facilities|input"):
        commands.check_output_folder(scenario, ANDORRA_FACILITIES.parent, ["andorra.geojson"])
    assert commands.check_output_folder(scenario, tmp_path / "out") == tmp_path / "out"
