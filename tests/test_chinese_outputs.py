"""The 黄浦区 audit in Chinese, all the way through (issue 14, item 2).

One ``covplan audit data/scenarios/huangpu.toml --set BZ-12.minutes=20`` run (Chinese by the
scenario) and the same run written in English. Checked on the files, against values computed
here from the other files and from the preset and seed texts:

* no English word where a Chinese one belongs (tests/zh_text.py) in units.csv, places.csv,
  every sheet of units.xlsx, the visible text of report.html and the strings of map.html's
  popups and tooltips;
* the changed threshold in the title of every output (``城区20分钟急救圈（原标准15分钟）``)
  and in the manifest's ``overrides``;
* the plan's full title (from the preset header and the seed's own first lines), never a
  file name, in the source column;
* the report's percentages recounted from units.csv, 不可达 instead of ∞, no folder paths.
"""

from __future__ import annotations

import html
import json
import math
import re
import sys
import tomllib
from pathlib import Path

import openpyxl
import pandas as pd
import pytest
from click.testing import CliRunner

sys.path.insert(0, str(Path(__file__).parent))
from zh_text import english_words, html_text  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "data"
SCENARIO = DATA / "scenarios" / "huangpu.toml"
PRESETS = ROOT / "coverage" / "standards" / "preset_files"
SEEDS = ROOT.parent / "shared" / "docs" / "seeds"
STATUS_WORDS = {"达标", "未达标", "无法核查", "不适用"}


def _preset(name: str) -> dict:
    return tomllib.loads((PRESETS / f"{name}.toml").read_text(encoding="utf-8"))


def _preset_rule(name: str, rule_id: str) -> dict:
    return next(t for t in _preset(name)["standards"] if t["id"] == rule_id)


BZ12 = _preset_rule("bazhong", "BZ-12")
OLD_MINUTES = BZ12["minutes"]["urban"]
NEW_MINUTES = 20
CHANGED_ZH = (BZ12["title_zh"].replace(str(OLD_MINUTES), str(NEW_MINUTES))
              + f"（原标准{OLD_MINUTES}分钟）")
CHANGED_EN = (BZ12["title"].replace(str(OLD_MINUTES), str(NEW_MINUTES))
              + f" (original standard: {OLD_MINUTES} minutes)")


@pytest.fixture(scope="module")
def zh_out(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from covplan.cli import main

    out = tmp_path_factory.mktemp("hp") / "黄浦区成果"
    run = CliRunner().invoke(main, ["audit", str(SCENARIO), "--out", str(out),
                                    "--set", f"BZ-12.minutes={NEW_MINUTES}"])
    assert run.exit_code in (0, 1), run.output
    return out


@pytest.fixture(scope="module")
def en_out(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from covplan.outputs import write_outputs
    from covplan.pipeline import run_scenario
    from covplan.scenario import load_scenario_with_overrides

    scenario = load_scenario_with_overrides(SCENARIO, [f"BZ-12.minutes={NEW_MINUTES}"])
    out = tmp_path_factory.mktemp("hp_en") / "out"
    write_outputs(run_scenario(scenario), out, language="en",
                  formats=["units.csv", "units.xlsx", "report.html", "manifest.json"])
    return out


def _units(out: Path) -> pd.DataFrame:
    return pd.read_csv(out / "units.csv", dtype=str, keep_default_na=False,
                       encoding="utf-8-sig")


def _words_in_table(frame: pd.DataFrame, where: str) -> dict[str, list[str]]:
    found = {}
    for column in frame.columns:
        if words := english_words(column):
            found[f"{where} heading {column}"] = words
        for i, value in enumerate(frame[column]):
            if isinstance(value, str) and (words := english_words(value)):
                found[f"{where} {column}[{i}]"] = words
    return found


def _map_popups(page: str) -> tuple[list[str], list[str]]:
    """The popup/tooltip headings and the property values they show, as the page holds them."""
    aliases: list[str] = []
    shown: list[str] = []
    decoder = json.JSONDecoder()
    for fields_js, aliases_js in re.findall(r"let fields = (\[.*?\]);\s*let aliases = (\[.*?\]);",
                                            page):
        aliases += json.loads(aliases_js)
        shown_fields = set(json.loads(fields_js))
        for match in re.finditer(r'"properties": ', page):
            props, _ = decoder.raw_decode(page, match.end())
            shown += [html.unescape(re.sub(r"<[^>]+>", " ", str(props[f])))
                      for f in shown_fields if f in props and isinstance(props[f], str)]
    return aliases, shown


def test_zh_text_checker_flags_english_and_allows_codes_units_names() -> None:
    assert english_words("全部 56 个居民点均已覆盖；最远的居民点 310101002-1413_13830 为 5.1分钟"
                         ) == []
    assert english_words("BZ-12 SY-CHC-01 5 km units.csv SHA-256 OSM © OpenStreetMap contributors"
                         ) == []
    assert english_words("all 56 places covered; farthest place") == [
        "all", "places", "covered", "farthest", "place"]
    assert english_words("share of residents") == ["share", "of", "residents"]


def test_no_english_in_zh_tables(zh_out: Path) -> None:
    found = _words_in_table(_units(zh_out), "units.csv")
    places = pd.read_csv(zh_out / "places.csv", dtype=str, keep_default_na=False,
                         encoding="utf-8-sig")
    found |= _words_in_table(places, "places.csv")
    assert not found, found
    units = _units(zh_out)
    assert set(units["状态"]) <= STATUS_WORDS and {"达标", "未达标"} <= set(units["状态"])
    assert "乡镇/街道" in set(units["层级"]) and set(units["层级"]) <= {"乡镇/街道", "区/县"}
    assert set(units["单位"]) - {""} <= {"常住人口占比", "个", "分钟", "公里", "人/机构"}
    assert {"常住人口占比", "个"} <= set(units["单位"])


def test_no_english_in_zh_xlsx(zh_out: Path) -> None:
    book = openpyxl.load_workbook(zh_out / "units.xlsx", read_only=True)
    found: dict[str, list[str]] = {}
    for sheet in book.worksheets:
        if words := english_words(sheet.title):
            found[sheet.title] = words
        rows = list(sheet.iter_rows(values_only=True))
        manifest = rows and rows[0][:2] == ("项目", "内容")
        for i, row in enumerate(rows):
            # the manifest sheet's values are JSON (keys, versions, hashes): only its keys count
            cells = row[:1] if manifest else row
            for j, value in enumerate(cells):
                if isinstance(value, str) and (words := english_words(value)):
                    found[f"{sheet.title}!{i + 1}:{j + 1}"] = words
    assert not found, found
    assert [s.title for s in book.worksheets][:2] == ["单元结果", "规则汇总"]


def test_no_english_in_zh_report_and_map_popups(zh_out: Path) -> None:
    page = (zh_out / "report.html").read_text(encoding="utf-8")
    assert english_words(html_text(page)) == []
    aliases, shown = _map_popups((zh_out / "map.html").read_text(encoding="utf-8"))
    assert aliases and shown
    bad = {s: english_words(s) for s in aliases + shown if english_words(s)}
    assert not bad, bad


def test_changed_threshold_in_every_output_and_the_manifest(zh_out: Path, en_out: Path) -> None:
    units = _units(zh_out)
    bz = units[units["规则编号"] == "BZ-12"]
    assert len(bz) == 10 and set(bz["规则"]) == {CHANGED_ZH}
    assert bz["标准内容"].str.contains(f"{NEW_MINUTES}分钟").all()
    book = openpyxl.load_workbook(zh_out / "units.xlsx", read_only=True)
    for sheet in ("单元结果", "规则汇总"):
        cells = {v for row in book[sheet].iter_rows(values_only=True) for v in row}
        assert CHANGED_ZH in cells, sheet
    assert CHANGED_ZH in html_text((zh_out / "report.html").read_text(encoding="utf-8"))
    _, shown = _map_popups((zh_out / "map.html").read_text(encoding="utf-8"))
    assert any(CHANGED_ZH in s for s in shown)
    assert OLD_MINUTES != NEW_MINUTES and f"城区{OLD_MINUTES}分钟急救圈：" not in "".join(shown)
    expected = {"BZ-12": {"minutes": {"from": BZ12["minutes"], "to": NEW_MINUTES}}}
    for out in (zh_out, en_out):
        assert json.loads((out / "manifest.json").read_text("utf-8"))["overrides"] == expected
    report = html_text((zh_out / "report.html").read_text(encoding="utf-8"))
    assert f"BZ-12：时限（分钟）由 城镇{OLD_MINUTES} 调整为 {NEW_MINUTES}" in report
    en = _units(en_out)
    assert set(en.loc[en["rule_id"] == "BZ-12", "rule_name"]) == {CHANGED_EN}
    assert CHANGED_EN in html_text((en_out / "report.html").read_text(encoding="utf-8"))


def _plain(text: str) -> str:
    """Text without spaces, line breaks and quotation marks (as titles are compared)."""
    return re.sub(r"[\s“”\"]", "", text)


def test_source_column_is_the_plans_full_title(zh_out: Path, en_out: Path) -> None:
    units = _units(zh_out)
    presets = {"BZ": "bazhong", "SPB": "shapingba", "DDK": "dadukou"}
    for rule_id, group in units.groupby("规则编号"):
        header = _preset(presets[rule_id.split("-")[0]])["preset"]
        (source,) = set(group["来源文件"])
        assert f"《{header['title']}" in source and source.count("《") == 1, source
        assert ".txt" not in source and header["seed"] not in source
        if SEEDS.is_dir():  # the seed's own first lines name the plan so
            head = "".join((SEEDS / header["seed"]).read_text(encoding="utf-8").splitlines()[:10])
            assert _plain(header["title"]) in _plain(head), header["seed"]
    en = _units(en_out)
    places = {"BZ": "Bazhong", "SPB": "Shapingba", "DDK": "Dadukou"}
    for rule_id, group in en.groupby("rule_id"):
        (source,) = set(group["source"])
        assert places[rule_id.split("-")[0]] in source and ".txt" not in source, source


def test_report_conclusion_percentages_and_no_paths(zh_out: Path) -> None:
    raw = (zh_out / "report.html").read_text(encoding="utf-8")
    page = html_text(raw)
    units = _units(zh_out)
    conclusion = page[page.index("结论"):page.index("各规则汇总")]
    for rule_id, group in units.groupby("规则编号", sort=False):
        decided = group[group["状态"].isin(["达标", "未达标"])]
        if decided.empty:
            continue
        rate = (decided["状态"] == "达标").mean()
        assert f"达标率 {100 * rate:.1f}%" in conclusion, rule_id
        pop = decided["人口"].astype(float)
        covered = pd.to_numeric(decided["覆盖人口"], errors="coerce")
        if covered.notna().all():
            share = math.fsum(covered) / math.fsum(pop)
            assert f"全域覆盖率 {100 * share:.1f}%" in conclusion, rule_id
        for row in group[group["状态"] == "未达标"].itertuples():
            gap = float(row.人口) - float(row.覆盖人口)
            assert (f"{row.单元名称}：覆盖率 {100 * float(row.指标值):.1f}%（标准 100.0%），"
                    f"缺口人口 {gap:,.0f} 人") in conclusion
    assert "∞" not in page and not re.search(r"\d\.\d\d / \d\.\d\d", page)
    assert "不可达" in page  # a 南京东路 place reaches no facility on foot
    assert str(ROOT) not in raw and "/work/" not in raw
    appendix = page[page.index("附录：运行清单"):]
    for name in ("huangpu.toml", "huangpu_drive.osm.pbf", "huangpu_townships.geojson"):
        assert name in appendix
    manifest = json.loads((zh_out / "manifest.json").read_text("utf-8"))
    for info in manifest["inputs"].values():
        assert info["sha256"] in appendix


def test_english_output_keeps_english_texts(en_out: Path) -> None:
    en = _units(en_out)
    assert set(en["status"]) <= {"pass", "fail", "cannot_check", "not_applicable"}
    bz = en[en["rule_id"] == "BZ-12"]
    assert bz["evidence"].str.startswith("all ").all()
    assert bz["evidence"].str.contains("places covered").all()
    assert bz["criterion"].str.contains(f"within {NEW_MINUTES} min").all()
    assert "evidence_zh" not in en.columns and "criterion_zh" not in en.columns
