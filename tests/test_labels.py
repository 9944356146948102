"""covplan.labels is the one vocabulary: complete zh/en tables, the plans' terms, one language
list, one urban/rural decoder, and real audit tables translated to Chinese."""

from __future__ import annotations

import ast
import importlib.util
import re
import typing
import warnings
from pathlib import Path

import geopandas as gpd
import pandas as pd
import pytest
from covplan import labels
from covplan.errors import CoverageError, InputWarning
from covplan.facility_types import FACILITY_GROUPS, FACILITY_TYPES
from covplan.labels import (
    LANGUAGES,
    check_language,
    label,
    translate_table,
    unit_kind_from_name,
    urban_rural_class,
)
from shipped import ANDORRA_SCENARIO, NBS_TABLES

PACKAGE = Path(__file__).resolve().parents[1] / "coverage"
PRESETS = PACKAGE / "standards" / "preset_files"
CJK = re.compile(r"[\u3400-\u9fff]")

#: Every (Chinese, English) table of the module, by name.
TABLES = {
    name: getattr(labels, name)
    for name in labels.__all__
    if name.endswith("_LABELS") or name == "TEXT"
}
#: Entries whose Chinese text is rightly not Chinese: the licence wording is a proper name.
NOT_CJK = {("TEXT", "attribution")}


def test_every_table_has_both_languages_and_chinese_in_chinese() -> None:
    assert len(TABLES) == 19
    for name, table in TABLES.items():
        assert table, name
        for key, pair in table.items():
            assert isinstance(pair, tuple) and len(pair) == 2, (name, key)
            zh, en = pair
            assert isinstance(zh, str) and zh.strip(), (name, key)
            assert isinstance(en, str) and en.strip(), (name, key)
            assert not CJK.search(en), (name, key, en)
            if (name, key) not in NOT_CJK:
                assert CJK.search(zh), (name, key, zh)
            assert label(key, language="zh") != "" and label(key, language="en") != ""


def test_tables_cover_the_package_vocabularies() -> None:
    from covplan.engine.modes import MODE_NAMES
    from covplan.outputs.tables import SUMMARY_COLUMNS, UNIT_COLUMNS
    from covplan.standards.rules import CANNOT_CHECK, RULE_KINDS

    assert set(labels.RULE_LABELS) == set(RULE_KINDS)
    assert set(MODE_NAMES) <= set(labels.MODE_LABELS)
    assert set(labels.GROUP_LABELS) == set(FACILITY_GROUPS)
    assert labels.FACILITY_TYPE_LABELS is FACILITY_TYPES  # the data stays in facility_types
    assert set(labels.STATUS_LABELS) >= {"pass", "fail", "not_applicable", CANNOT_CHECK}
    assert set(labels.URBAN_RURAL_LABELS) == {"urban", "rural"}
    assert set(UNIT_COLUMNS) | set(SUMMARY_COLUMNS) <= set(labels.COLUMN_LABELS)
    assert "units_passing" not in labels.COLUMN_LABELS  # one name per column: units_pass
    for key in (*FACILITY_TYPES, *FACILITY_GROUPS):
        assert CJK.search(labels.facility_type_label(key, language="zh")), key


def test_the_terms_the_plans_use() -> None:
    presets = {p.name: p.read_text("utf-8") for p in PRESETS.glob("*.toml")}
    every = "\n".join(presets.values())
    # statuses
    assert [label(s, language="zh") for s in ("pass", "fail", "not_applicable")] == [
        "达标", "未达标", "不适用"]
    # the ratio standards count per 1,000 residents (每千常住人口床位数)
    assert "每千常住人口" in every and "常住人口" in label("ratio", language="zh")
    # the emergency facility of the plans: 急救中心（站）
    assert "emergency_station" in FACILITY_TYPES
    emergency = labels.facility_type_label("emergency_station", language="zh")
    assert emergency == "急救中心（站）" and emergency in presets["bazhong.toml"]
    assert emergency in label("emergency", language="zh")  # the group names it too
    # unit levels and kinds as the plans write them
    assert label("township", language="zh") == "乡镇/街道" and "乡镇/街道" in every
    assert label("village", language="zh") == "村/社区" and "村/社区" in every
    assert label("county", language="zh") == "区/县"
    kinds = {k: labels.unit_kind_label(k, language="zh") for k in labels.UNIT_KIND_LABELS}
    assert kinds == {"subdistrict": "街道", "town": "镇", "township": "乡",
                     "community": "居委会", "village": "村委会",
                     "other_township": "其他乡级单位", "other_village": "其他村级单位"}
    for word in ("街道", "镇", "乡", "村委会", "社区"):
        assert word in every, word
    assert labels.unit_kind_label("township", language="en") == "township"


@pytest.mark.parametrize("year", [2016, 2023])
def test_unit_kinds_of_the_shipped_nbs_names(year: int) -> None:
    """Every NBS township is a 街道, 镇 or 乡 and every village a 居委会 or 村委会 by its name."""
    from covplan.china.nbs import load_units

    levels = {"township": {"subdistrict", "town", "township"},
              "village": {"community", "village"}}
    for level, allowed in levels.items():
        names = load_units(year=year, level=level)["name"]
        kinds = names.map(unit_kind_from_name)
        assert kinds.notna().all(), list(names[kinds.isna()])[:5]
        assert set(kinds) == allowed, (level, set(kinds))
        # what the name says, in the words of the NBS tables (居民委员会 is a 居委会)
        says = {"subdistrict": lambda n: "街道" in n, "town": lambda n: n.endswith("镇"),
                "township": lambda n: n.endswith("乡"),
                "community": lambda n: "社区" in n or "居" in n,
                "village": lambda n: "村" in n and "社区" not in n}
        for name, kind in zip(names, kinds, strict=True):
            assert says[kind](name), (name, kind)


def test_check_language_and_labels() -> None:
    assert check_language(None) == "en" and check_language("zh-CN") == "zh"
    assert check_language("EN-gb") == "en"
    with pytest.raises(CoverageError, match="unknown output language 'fr'"):
        check_language("fr")
    with pytest.raises(CoverageError, match="language"):
        label("pass", language="fr")
    assert label("no such key", language="zh") == "no such key"
    assert labels.text("isochrone", "zh", minutes=15, mode=labels.mode_label("walk", "zh")) \
        == "15 分钟等时圈（步行）"
    assert labels.column_label("units_pass", "zh") == "达标单元数"
    assert labels.column_label("units_pass", "en") == "units_pass"  # English keeps the key
    assert labels.status_label("fail", "zh") == "未达标"


def _language_literals(tree: ast.AST) -> list[int]:
    """Line numbers of tuple/list/set literals made of exactly the language codes."""
    in_literal_type: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Subscript) and ast.unparse(node.value).endswith("Literal"):
            in_literal_type.update(id(n) for n in ast.walk(node.slice))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, (ast.Tuple, ast.List, ast.Set)) and id(node) not in in_literal_type:
            values = [e.value for e in node.elts if isinstance(e, ast.Constant)]
            if len(values) == len(node.elts) == len(LANGUAGES) and set(values) == set(LANGUAGES):
                found.append(node.lineno)
    return found


#: Files with a language list of their own, to be switched to covplan.labels.LANGUAGES by
#: their owners: the app page (its radio's options; only its import lines may change in this
#: session) and the register templates (a new module being written at the same time).
PENDING: set[str] = set()


def test_no_second_language_list_in_the_package() -> None:
    defined, literals = [], []
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(PACKAGE).as_posix()
        if rel == "labels.py":
            continue
        tree = ast.parse(path.read_text("utf-8"))
        for node in ast.walk(tree):
            targets = (node.targets if isinstance(node, ast.Assign)
                       else [node.target] if isinstance(node, ast.AnnAssign) else [])
            defined += [f"{rel}:{node.lineno}" for t in targets
                        if isinstance(t, ast.Name) and t.id == "LANGUAGES"]
        if rel not in PENDING:
            literals += [f"{rel}:{line}" for line in _language_literals(tree)]
    assert defined == [], "define LANGUAGES only in covplan.labels"
    assert literals == [], "use covplan.labels.LANGUAGES instead of a literal list"
    assert importlib.util.find_spec("covplan.outputs.labels_zh") is None
    from covplan.app import i18n
    from covplan.scenario import Language

    assert i18n.LANGUAGES is LANGUAGES
    assert set(typing.get_args(Language)) == set(LANGUAGES)


def test_one_urban_rural_decoder() -> None:
    from covplan.china import nbs
    from covplan.inputs.loaders import normalise_urban_rural
    from covplan.inputs.urban_rural import classify_places, load_nbs_codes, urban_rural_from_code
    from shapely.geometry import Point

    cases = {
        "urban": "urban", " Rural ": "rural", "城镇": "urban", "乡村": "rural", "城区": "urban",
        "农村": "rural", "城市": "urban", "镇区": "urban", "城": "urban", "乡": "rural",
        "U": "urban", "r": "rural", "1": "urban", 2: "rural", "111": "urban", 123: "urban",
        "210": "rural", 220.0: "rural", "１２２": "urban",
    }  # fmt: skip
    for value, expected in cases.items():
        assert urban_rural_class(value) == expected, value
        assert normalise_urban_rural(value) == expected, value
        assert nbs._user_class(value) == expected, value
    for blank in (None, float("nan"), pd.NA, "", "  ", "nan", "None"):
        assert urban_rural_class(blank) is None
    for bad in ("town", "metro", "9", "310", "urbanish"):
        with pytest.raises(ValueError):
            urban_rural_class(bad)
        assert urban_rural_class(bad, strict=False) is None
        assert nbs._user_class(bad) is None
    places = gpd.GeoDataFrame(
        {"place_id": [str(i) for i in range(len(cases))], "population": 1.0,
         "given": [str(v) for v in cases]},
        geometry=[Point(0, 0)] * len(cases), crs=4326,
    )  # fmt: skip
    got = classify_places(places, column="given", default=None)["urban_rural"]
    assert list(got) == list(cases.values())
    # NBS class codes, counted by hand: 1xx urban, 2xx rural, words are not codes
    table = pd.read_csv(NBS_TABLES / "admin_units_nbs2016.csv", dtype=str)
    codes = table["ur_code"].dropna()
    by_hand = codes.astype(int).floordiv(100).map({1: "urban", 2: "rural"})
    assert list(urban_rural_from_code(codes)) == list(by_hand)
    assert [nbs.urban_rural_from_ur_code(c) for c in codes] == list(by_hand)
    assert list(load_nbs_codes()["urban_rural"]) == list(by_hand)
    assert nbs.urban_rural_from_ur_code("urban") is None and nbs.urban_rural_from_ur_code("1") \
        is None


@pytest.fixture(scope="module")
def audit():
    """The audit tables of the shipped Andorra scenario (the first region the app offers)."""
    from covplan.pipeline import run_scenario
    from covplan.scenario import load_scenario

    with warnings.catch_warnings():  # facilities far from roads are reported; not checked here
        warnings.simplefilter("ignore", InputWarning)
        result = run_scenario(load_scenario(ANDORRA_SCENARIO))
    return {"unit_results": result.unit_results, "summary": result.summary,
            "evidence": result.evidence, "places": result.places}


@pytest.mark.parametrize("name", ["unit_results", "summary", "evidence"])
def test_translate_table_renames_every_audit_column(audit, name: str) -> None:
    table = audit[name]
    geometry = table.geometry.name if isinstance(table, gpd.GeoDataFrame) else None
    assert len(table) > 0 and len(table.columns) > 8
    zh = translate_table(table, language="zh")
    renamed = [c for c in zh.columns if c != geometry]
    assert all(CJK.search(str(c)) for c in renamed), [c for c in renamed if not CJK.search(c)]
    assert len(set(zh.columns)) == len(zh.columns)  # no two columns share a heading
    assert zh.shape == table.shape and "rule_id" in table.columns  # the input is unchanged
    if geometry:
        assert isinstance(zh, gpd.GeoDataFrame) and zh.geometry.equals(table.geometry)
    for column, words in (("status", labels.STATUS_LABELS), ("region_status", labels.STATUS_LABELS),
                          ("urban_rural", labels.URBAN_RURAL_LABELS),
                          ("rule", labels.RULE_LABELS)):
        if column in table.columns:
            heading = labels.COLUMN_LABELS[column][0]
            expected = table[column].value_counts().rename(lambda v, w=words: w[v][0])
            assert zh[heading].value_counts().sort_index().equals(expected.sort_index()), column
    en = translate_table(table, language="en")
    assert all(not CJK.search(str(c)) for c in en.columns)
    assert "_" not in "".join(str(c) for c in en.columns if c != geometry)  # readable words


def test_translate_table_heads_the_places_of_the_run(audit) -> None:
    places = audit["places"]
    zh = translate_table(places, language="zh")
    renamed = [c for c in zh.columns if c != places.geometry.name]
    assert all(CJK.search(str(c)) for c in renamed), renamed
    modes = [c.removeprefix("minutes_") for c in places.columns if c.startswith("minutes_")]
    assert sorted(modes) == ["ambulance", "drive", "walk"]
    for mode in modes:  # the heading of the places export: 分钟（步行）, 最近机构（驾车）
        word = labels.mode_label(mode, "zh")
        assert f"分钟（{word}）" in zh.columns and f"最近机构（{word}）" in zh.columns
    assert (zh["城乡"] == places["urban_rural"].map({"urban": "城镇", "rural": "乡村"})).all()
