"""Scenario files: shipped ones load; broken ones report every problem with its key path."""

from __future__ import annotations

import json
import math
import re
import tomllib
from pathlib import Path

import pytest
from covplan.engine.access import DEFAULT_BUFFER_M, DEFAULT_MAX_SNAP_M
from covplan.errors import InputError
from covplan.pipeline import rules_for_scenario
from covplan.scenario import load_scenario, load_scenario_with_overrides
from covplan.standards.presets import preset_tables

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


# ----------------------------------------------------------------- typed model (issues 12, 19)
SHIPPED = ["andorra", "liechtenstein"]


def _table(name: str) -> dict:
    return tomllib.loads((SCENARIOS / f"{name}.toml").read_text(encoding="utf-8"))


def _rules(name: str, assignments: list[str]) -> dict:
    scenario = load_scenario_with_overrides(SCENARIOS / f"{name}.toml", assignments)
    return {r.id: r for r in rules_for_scenario(scenario)}


def _own_rule_index(name: str, rule_id: str) -> int:
    return next(i for i, t in enumerate(_table(name)["standards"]) if t.get("id") == rule_id)


def _preset_value(preset: str, rule_id: str, key: str):
    return next(t for t in preset_tables(preset) if t["id"] == rule_id)[key]


def _assert_only_changed(name: str, assignments: list[str], rule_id: str, key: str):
    """The overridden rule's ``key`` differs from the plain scenario's; every other rule and key
    is the same. Returns the new value."""
    plain, changed = _rules(name, []), _rules(name, assignments)
    assert plain.keys() == changed.keys()
    for rid in plain:
        if rid != rule_id:
            assert changed[rid] == plain[rid]
    before, after = vars(plain[rule_id]), vars(changed[rule_id])
    # a changed threshold also shows in the titles (issue 14): 城区20分钟急救圈（原标准15分钟）
    titles = {key, "title", "title_zh"}
    assert {k: v for k, v in after.items() if k not in titles} == {
        k: v for k, v in before.items() if k not in titles}
    assert after[key] != before[key]
    if "（原标准" in after["title_zh"]:
        assert "(original standard: " in after["title"] and "（原标准" not in before["title_zh"]
    else:
        assert (after["title"], after["title_zh"]) == (before["title"], before["title_zh"])
    return after[key]


@pytest.mark.parametrize("name", SHIPPED)
def test_set_a_preset_rule_by_id(name: str) -> None:
    # BZ-12 comes from the bazhong preset reference, whose table says minutes = {urban = 15}
    assert _preset_value("bazhong", "BZ-12", "minutes") == {"urban": 15}
    assert _assert_only_changed(name, ["BZ-12.minutes=20"], "BZ-12", "minutes") == 20.0
    # a nested key changes one class and keeps the preset's others
    new = _assert_only_changed(name, ["BZ-12.minutes.rural=40"], "BZ-12", "minutes")
    assert new == {**{k: float(v) for k, v in _preset_value("bazhong", "BZ-12", "minutes")
                      .items()}, "rural": 40.0}
    assert _assert_only_changed(name, ["SPB-01.mode=drive"], "SPB-01", "mode") == "drive"
    assert _preset_value("shapingba", "SPB-01", "mode") == "walk"
    assert _assert_only_changed(name, ["SPB-02.km=7.5"], "SPB-02", "km") == 7.5
    # the titles say the threshold used and the plan's (issue 14)
    for assignment, rid, old, new in (("BZ-12.minutes=20", "BZ-12", "15", "20"),
                                      ("SPB-02.km=7.5", "SPB-02", "5", "7.5")):
        preset = "bazhong" if rid.startswith("BZ") else "shapingba"
        title_zh = _preset_value(preset, rid, "title_zh")
        unit = "分钟" if rid == "BZ-12" else "公里"
        assert _rules(name, [assignment])[rid].title_zh == (
            f"{title_zh.replace(old, new, 1)}（原标准{old}{unit}）")


@pytest.mark.parametrize("name", SHIPPED)
def test_set_an_own_rule_by_id_or_by_position(name: str) -> None:
    i = _own_rule_index(name, "DRIVE-15")
    assert _table(name)["standards"][i]["minutes"] == 15
    assert _assert_only_changed(name, ["DRIVE-15.minutes=25"], "DRIVE-15", "minutes") == 25.0
    by_index = _assert_only_changed(name, [f"standards[{i}].minutes=25"], "DRIVE-15", "minutes")
    assert by_index == 25.0


@pytest.mark.parametrize("name", SHIPPED)
def test_set_a_network_value_by_key_path(name: str) -> None:
    assert _table(name)["inputs"]["network"]["buffer_m"] == 2000
    scenario = load_scenario_with_overrides(SCENARIOS / f"{name}.toml",
                                            ["inputs.network.buffer_m=3000"])
    assert scenario.inputs.network.buffer_m == 3000.0
    assert scenario.network["buffer_m"] == 3000.0
    assert scenario.network_spec().buffer_m == 3000.0


@pytest.mark.parametrize("name", SHIPPED)
def test_position_of_a_preset_reference_says_to_use_the_rule_id(name: str) -> None:
    i = next(j for j, t in enumerate(_table(name)["standards"]) if t.get("preset") == "bazhong")
    with pytest.raises(InputError) as info:
        load_scenario_with_overrides(SCENARIOS / f"{name}.toml", [f"standards[{i}].minutes=20"])
    (problem,) = info.value.problems
    assert problem.where == f"--set standards[{i}].minutes"
    assert "preset 'bazhong'" in problem.what
    only = _table(name)["standards"][i]["only"]
    assert problem.fix == (f"set its rules by id, e.g. --set {only[0]}.minutes=20; "
                           f"its rules: {', '.join(only)}")
    # the keys of the reference itself are still set by position
    rules = _rules(name, [f'standards[{i}].only=["BZ-13"]'])
    assert "BZ-13" in rules and "BZ-12" not in rules


@pytest.mark.parametrize("name", SHIPPED)
def test_unknown_rule_id_lists_the_ids_there_are(name: str) -> None:
    ids = list(_rules(name, []))
    with pytest.raises(InputError) as info:
        load_scenario_with_overrides(SCENARIOS / f"{name}.toml", ["XX-99.minutes=20"])
    (problem,) = info.value.problems
    assert problem.what == "'XX-99' is neither a rule id nor a section"
    assert problem.fix.startswith(f"rule ids: {', '.join(ids)}; sections: scenario, inputs")
    # a preset rule that `only` leaves out is named as such
    bazhong = [t["id"] for t in preset_tables("bazhong")]
    left_out = next(rid for rid in bazhong if rid not in ids)
    with pytest.raises(InputError) as info:
        load_scenario_with_overrides(SCENARIOS / f"{name}.toml", [f"{left_out}.minutes=20"])
    assert "is left out by standards[0].only" in info.value.problems[0].what


def _network_scenario(tmp_path: Path, network: str, outputs: str = "") -> Path:
    (tmp_path / "f.csv").write_text("lon,lat\n1,42\n", encoding="utf-8")
    (tmp_path / "b.geojson").write_text("{}", encoding="utf-8")
    (tmp_path / "r.osm.pbf").write_bytes(b"")
    return _write(tmp_path, f"""
[scenario]
name = "x"
[inputs.facilities]
path = "f.csv"
[inputs.boundaries]
path = "b.geojson"
[inputs.network]
source = "r.osm.pbf"
{network}
[outputs]
{outputs}
""")


@pytest.mark.parametrize(("line", "where", "shown"), [
    ("buffer_m = inf", "inputs.network.buffer_m", "inf"),
    ("buffer_m = -inf", "inputs.network.buffer_m", "-inf"),
    ("max_snap_m = nan", "inputs.network.max_snap_m", "nan"),
])
def test_nan_and_inf_are_rejected_with_the_key_path(tmp_path, line, where, shown) -> None:
    path = _network_scenario(tmp_path, line, "isochrone_minutes = [15, inf]")
    with pytest.raises(InputError) as info:
        load_scenario(path)
    problems = {p.where: p.what for p in info.value.problems}
    assert problems == {where: f"must be a finite number, got {shown}",
                        "outputs.isochrone_minutes[1]": "must be a finite number, got inf"}
    assert f"{where}: must be a finite number, got {shown}" in str(info.value)


def test_nan_and_inf_are_rejected_from_the_command_line_too() -> None:
    with pytest.raises(InputError) as info:
        load_scenario_with_overrides(SCENARIOS / "andorra.toml", [
            "inputs.network.buffer_m=inf", "inputs.network.max_snap_m=nan",
            "inputs.population.urban_density_per_km2=inf"])
    assert [str(p) for p in info.value.problems] == [
        "inputs.population.urban_density_per_km2: must be a finite number, got inf",
        "inputs.network.buffer_m: must be a finite number, got inf",
        "inputs.network.max_snap_m: must be a finite number, got nan",
    ]


def test_cache_dir_in_a_scenario_is_rejected(tmp_path: Path) -> None:
    path = _network_scenario(tmp_path, f'cache_dir = "{tmp_path.as_posix()}/cache"')
    with pytest.raises(InputError) as info:
        load_scenario(path)
    (problem,) = info.value.problems
    assert problem.where == "inputs.network.cache_dir"
    assert problem.what.startswith("not allowed in a scenario file")
    assert "COVPLAN_CACHE_DIR" in problem.fix
    # ... also from the command line, and it is not offered as a key anywhere
    with pytest.raises(InputError, match="inputs.network.cache_dir: not allowed"):
        load_scenario_with_overrides(SCENARIOS / "andorra.toml",
                                     [f'inputs.network.cache_dir="{tmp_path.as_posix()}"'])
    from covplan.scenario import scenario_json_schema

    assert "cache_dir" not in json.dumps(scenario_json_schema())


def test_defaults_are_filled_in_from_the_engine(tmp_path: Path) -> None:
    scenario = load_scenario(_network_scenario(tmp_path, ""))
    net = scenario.inputs.network
    assert (net.buffer_m, net.max_snap_m) == (DEFAULT_BUFFER_M, DEFAULT_MAX_SNAP_M)
    assert scenario.network == {"source": (tmp_path / "r.osm.pbf").resolve(),
                                "buffer_m": DEFAULT_BUFFER_M, "max_snap_m": DEFAULT_MAX_SNAP_M}
    spec = scenario.network_spec()
    assert (spec.buffer_m, spec.max_snap_m, spec.dem, spec.cache_dir) == (
        DEFAULT_BUFFER_M, DEFAULT_MAX_SNAP_M, None, None)
    assert scenario.population == {"kind": "units"}
    assert scenario.language == "en" and scenario.description == ""
    assert scenario.outputs == {"dir": (Path.cwd() / "out" / "s").resolve()}
    assert scenario.boundaries["id_column"] == scenario.inputs.boundaries.id_column == "unit_id"


@pytest.mark.parametrize("name", SHIPPED)
def test_the_dict_views_match_the_file(name: str) -> None:
    table, scenario = _table(name), load_scenario(SCENARIOS / f"{name}.toml")
    folder = SCENARIOS
    for section in ("facilities", "boundaries", "population", "network"):
        view = getattr(scenario, section)
        for key, value in table["inputs"][section].items():
            if key in ("path", "source", "dem"):
                assert view[key] == (folder / value).resolve()
            else:
                assert view[key] == value
    assert scenario.modes == table["modes"]
    assert scenario.standards == table["standards"]
    assert scenario.outputs["isochrone_minutes"] == table["outputs"]["isochrone_minutes"]
    assert scenario.inputs.population.kind == table["inputs"]["population"]["kind"]
    # with_overrides swaps the standards and keeps the rest
    fewer = scenario.with_overrides(standards=table["standards"][-1:])
    assert [r.id for r in rules_for_scenario(fewer)] == [table["standards"][-1]["id"]]
    assert fewer.network == scenario.network and fewer.name == scenario.name


def test_population_kinds_are_a_discriminated_union(tmp_path: Path) -> None:
    path = _network_scenario(tmp_path, "")
    text = path.read_text(encoding="utf-8")
    path.write_text(text + '[inputs.population]\nkind = "raster"\ncrs = 4326\n', encoding="utf-8")
    with pytest.raises(InputError) as info:
        load_scenario(path)
    # both problems of the table at once, with the file's key paths (no union tag in them)
    assert {str(p) for p in info.value.problems} == {
        "inputs.population.path: required when kind = 'raster'",
        "inputs.population.crs: must be str, got 4326",
    }


# ----------------------------------------------------------------------------- JSON Schema
def test_the_rule_table_models_have_the_keys_the_parser_allows() -> None:
    from covplan.scenario import RULE_TABLES, PresetReference
    from covplan.standards.parse import COMMON_KEYS, KIND_KEYS
    from covplan.standards.rules import RULE_KINDS

    assert set(RULE_TABLES) == set(RULE_KINDS) == set(KIND_KEYS)
    for kind, model in RULE_TABLES.items():
        assert set(model.model_fields) == set(COMMON_KEYS) | set(KIND_KEYS[kind])
        required = {k for k, f in model.model_fields.items() if f.is_required()}
        assert required == {"rule"} | {k for k, req in KIND_KEYS[kind].items() if req}
    assert set(PresetReference.model_fields) == {"preset", "only", "override"}


def _validator():
    import jsonschema
    from covplan.scenario import scenario_json_schema

    schema = scenario_json_schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


@pytest.mark.parametrize("name", SHIPPED)
def test_the_json_schema_accepts_the_shipped_scenarios(name: str) -> None:
    from covplan.scenario import ScenarioDocument

    validator = _validator()
    assert list(validator.iter_errors(_table(name))) == []
    ScenarioDocument.model_validate(_table(name))  # and the model it is made from


def test_the_json_schema_accepts_every_preset_rule() -> None:
    from covplan.standards.presets import list_presets

    validator = _validator()
    for preset in list_presets():
        tables = preset_tables(preset)
        assert tables
        doc = _table("andorra") | {"standards": tables}
        assert [e.message for e in validator.iter_errors(doc)] == [], preset


def test_the_json_schema_rejects_what_the_parser_rejects() -> None:
    validator = _validator()
    cases = {
        ("inputs", "network", "buffer_m"): "far",
        ("inputs", "network", "cache_dir"): "/tmp",
        ("inputs", "facilities", "colour"): "red",
        ("scenario", "language"): "fr",
        ("outputs", "isochrone_minutes"): [15, -30],
        ("standards",): [{"rule": "travel_time", "facility_types": ["hospitals"]}],
        ("standards", "x"): [{"preset": "no-such-preset"}],
        ("inputs", "population", "kind"): "people",
    }
    for keys, value in cases.items():
        doc = _table("andorra")
        node = doc
        for key in keys[:-1]:
            node = node[key]
        if keys == ("standards", "x"):
            doc["standards"] = value
        else:
            node[keys[-1]] = value
        assert list(validator.iter_errors(doc)), keys
    doc = _table("andorra")
    del doc["inputs"]["population"]["path"]  # required for kind = "points"
    assert list(validator.iter_errors(doc))


def test_covplan_schema_prints_the_schema_as_json(tmp_path: Path) -> None:
    from click.testing import CliRunner
    from covplan.cli import main
    from covplan.scenario import scenario_json_schema

    result = CliRunner().invoke(main, ["schema"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output) == scenario_json_schema()
    out = tmp_path / "scenario.schema.json"
    result = CliRunner().invoke(main, ["schema", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert json.loads(out.read_text(encoding="utf-8")) == scenario_json_schema()


def test_the_set_examples_of_the_help_and_the_readme_work_on_the_shipped_scenarios() -> None:
    from click.testing import CliRunner
    from covplan.cli import main

    help_text = " ".join(CliRunner().invoke(main, ["audit", "--help"]).output.split())
    examples = [e for e in re.findall(r"--set (\S+=\S+?)(?=[ ,)]|$)", help_text)
                if e != "KEY=VALUE"]
    assert len(examples) >= 2
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    readme_examples = [a.strip("'") for a in re.findall(r"--set ('[^']+'|\S+=\S+)", readme)
                       if not a.startswith("KEY=")]
    assert len(readme_examples) >= 5
    for name in SHIPPED:
        for example in examples:
            load_scenario_with_overrides(SCENARIOS / f"{name}.toml", [example])
    for example in readme_examples:
        load_scenario_with_overrides(SCENARIOS / "andorra.toml", [example])


def test_finite_checks_agree_with_math_isfinite() -> None:
    from covplan.scenario import NetworkSection
    from pydantic import ValidationError

    for value in (0, 1, 2.5, 1e300, -0.0, float("inf"), float("-inf"), float("nan")):
        try:
            NetworkSection.model_validate({"source": "online:x", "buffer_m": value})
            accepted = True
        except ValidationError:
            accepted = False
        assert accepted == (math.isfinite(value) and value >= 0), value
