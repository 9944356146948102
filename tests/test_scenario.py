"""Scenario files: shipped ones load; broken ones report every problem with its key path."""

from __future__ import annotations

from pathlib import Path

import pytest
from covplan.errors import InputError
from covplan.scenario import load_scenario

REPO = Path(__file__).resolve().parents[1]
SCENARIOS = REPO / "data" / "scenarios"


@pytest.mark.parametrize("name", ["andorra", "liechtenstein"])
def test_shipped_scenarios_load_and_resolve_paths(name: str) -> None:
    scenario = load_scenario(SCENARIOS / f"{name}.toml")
    assert scenario.name.lower() == name
    # relative paths resolve against the scenario file's folder, to files that exist
    assert scenario.facilities["path"] == (REPO / "data" / "facilities" / f"{name}.geojson")
    assert scenario.facilities["path"].is_file()
    assert scenario.boundaries["path"].is_file()
    assert scenario.population["path"].is_file()
    assert scenario.network["source"].suffix == ".pbf"
    assert scenario.network["source"].is_file()


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "s.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_every_problem_is_reported_at_once_with_key_paths(tmp_path: Path) -> None:
    (tmp_path / "f.csv").write_text("lon,lat\n1,42\n", encoding="utf-8")
    path = _write(
        tmp_path,
        """
[scenario]
name = "x"
language = "fr"

[inputs.facilities]
path = "f.csv"
colour = "red"

[inputs.boundaries]
path = "missing.geojson"

[inputs.population]
kind = "people"

[inputs.network]
source = "roads.osm.pbf"
buffer_m = -5

[outputs]
isochrone_minutes = [15, -30]
""",
    )
    with pytest.raises(InputError) as info:
        load_scenario(path)
    where = {p.where: p for p in info.value.problems}
    assert "scenario.language" in where and "'fr'" in where["scenario.language"].what
    assert "inputs.facilities.colour" in where
    assert "missing.geojson" in where["inputs.boundaries.path"].what
    assert "inputs.population.kind" in where and "'people'" in where["inputs.population.kind"].what
    assert "inputs.network.source" in where and "not found" in where["inputs.network.source"].what
    assert where["inputs.network.buffer_m"].what == "must be a non-negative number, got -5"
    assert where["outputs.isochrone_minutes[1]"].what == "must be a positive number, got -30"
    assert len(info.value.problems) == 7
    # the message lists them all
    assert str(info.value).count("\n  - ") == 7


def test_typo_gets_a_suggestion(tmp_path: Path) -> None:
    path = _write(tmp_path, '[scenario]\nnmae = "x"\n')
    with pytest.raises(InputError) as info:
        load_scenario(path)
    problems = {p.where: p for p in info.value.problems}
    assert problems["scenario.nmae"].fix == "did you mean 'name'?"
    assert "scenario.name" in problems  # and the real key is reported missing
    assert "inputs.facilities" in problems


def test_toml_syntax_error_names_the_line(tmp_path: Path) -> None:
    path = _write(tmp_path, '[scenario]\nname = "x\n')
    with pytest.raises(InputError, match=r"not valid TOML: .*line 2"):
        load_scenario(path)


def test_missing_scenario_file(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="scenario file not found"):
        load_scenario(tmp_path / "nope.toml")


def test_wrong_types_are_named(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        '[scenario]\nname = 3\n[inputs.facilities]\npath = "a"\n[inputs.boundaries]\npath = "b"\n'
        '[inputs.network]\nsource = "online:Dadukou District, Chongqing"\nmax_snap_m = "far"\n',
    )
    with pytest.raises(InputError) as info:
        load_scenario(path)
    where = {p.where: p.what for p in info.value.problems}
    assert where["scenario.name"] == "must be str, got 3"
    assert where["inputs.network.max_snap_m"] == "must be int or float, got 'far'"
    # an online source is not a path and is not checked for existence
    assert "inputs.network.source" not in where


def test_overrides_set_values_by_key_path() -> None:
    from covplan.scenario import apply_overrides

    table = {"scenario": {"name": "x"}, "standards": [{"rule": "travel_time", "minutes": 15}]}
    out = apply_overrides(
        table, ["standards[0].minutes=20", "outputs.language=zh", "scenario.name=Andorra la Vella"]
    )
    assert out["standards"][0]["minutes"] == 20
    assert out["outputs"]["language"] == "zh"
    assert out["scenario"]["name"] == "Andorra la Vella"  # bare words are strings
    assert table["standards"][0]["minutes"] == 15  # the input is not changed
    with pytest.raises(InputError) as info:
        apply_overrides(table, ["standards[3].minutes=20", "novalue"])
    assert [p.where for p in info.value.problems] == ["--set standards[3].minutes", "--set novalue"]
