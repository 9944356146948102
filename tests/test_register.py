"""The facility register (机构名录): template, Chinese/English headers, type names, GCJ-02.

The ten facilities below are made up (names in the style of 大渡口区, Chongqing, at made-up
GCJ-02 points near 106.48E 29.48N, with real NBS codes); the expected WGS-84 points are checked
with the GCJ-02 formula written out again here in plain ``math``.
"""

from __future__ import annotations

import csv
import math
import warnings
from pathlib import Path

import numpy as np
import openpyxl
import pandas as pd
import pytest
from click.testing import CliRunner
from covplan.cli import main
from covplan.errors import CoverageError, InputError, InputWarning
from covplan.inputs.loaders import load_facilities
from covplan.inputs.register import write_register_template, write_shipped_templates

ROOT = Path(__file__).resolve().parents[1]
TEMPLATES = ROOT / "data" / "templates"

ZH_HEADERS = [
    "机构编码", "机构名称", "机构类别", "经度", "纬度", "坐标系", "所在镇街/村代码",
    "床位数（实有）", "执业（助理）医师数", "注册护士数", "全科医生数", "药师数", "临床药师数",
    "等级", "是否标准化", "是否设急诊", "是否设发热门诊", "上级机构", "状态",
]
EN_HEADERS = [
    "facility_id", "name", "type", "lon", "lat", "crs", "unit_code", "beds", "doctors", "nurses",
    "gps", "pharmacists", "clinical_pharmacists", "grade", "standardised", "emergency_dept",
    "fever_clinic", "parent_id", "status",
]

# 机构编码, 机构名称, 机构类别, 经度, 纬度 (GCJ-02), 坐标系, 所在镇街/村代码, 床位, 医师, 护士,
# 全科, 药师, 临床药师, 等级, 标准化, 急诊, 发热门诊, 上级机构, 状态
FACILITIES = [
    ("DDK-001", "重庆市大渡口区人民医院", "医院", 106.4866, 29.4838, "GCJ-02", "500104003000",
     600, 210, 330, 12, 28, 6, "二级甲等", "", "是", "是", "", "现有"),
    ("DDK-002", "重庆市大渡口区人民医院春晖院区", "医院", 106.4921, 29.4702, "GCJ-02",
     "500104002000", 120, 40, 70, 3, 5, 1, "二级甲等", "", "是", "否", "重庆市大渡口区人民医院",
     "现有"),
    ("DDK-003", "大渡口区跳磴镇中心卫生院", "中心卫生院", 106.4468, 29.4127, "gcj02",
     "500104103000", 60, 24, 31, 6, 3, 0, "甲级", "是", "是", "是", "", "现有"),
    ("DDK-004", "跳磴镇中心卫生院石盘分院", "卫生院", 106.4302, 29.3903, "GCJ-02",
     "500104103210", 10, 4, 5, 2, 1, 0, "", "否", "否", "否", "DDK-003", "现有"),
    ("DDK-005", "八桥镇社区卫生服务中心", "社区卫生服务中心", 106.4955, 29.4561, "GCJ-02",
     "500104101000", 40, 18, 22, 7, 2, 0, "", "是", "否", "是", "", "现有"),
    ("DDK-006", "建胜镇卫生院", "镇卫生院", 106.4707, 29.4392, "GCJ-02", "500104102000",
     35, 14, 17, 4, 2, 0, "乙级", "否", "否", "是", "", "现有"),
    ("DDK-007", "跳磴镇金鳌村卫生室", "村卫生室", 106.4606, 29.3969, "GCJ-02", "500104103211",
     0, 1, 1, 0, 0, 0, "", "是", "否", "否", "", "现有"),
    ("DDK-008", "大渡口区120急救分站", "120急救分站", 106.4839, 29.4811, "GCJ-02",
     "500104003000", 0, 3, 3, 0, 0, 0, "", "", "", "", "", "现有"),
    ("DDK-009", "大渡口区精神卫生中心", "精神卫生中心", 106.4588, 29.4251, "GCJ-02",
     "500104103000", 200, 20, 60, 0, 3, 1, "", "", "否", "否", "", "在建"),
    ("DDK-010", "八桥镇社区医院", "社区医院", 106.5012, 29.4633, "GCJ-02", "500104101000",
     50, 0, 0, 0, 0, 0, "", "", "", "", "", "规划"),
]
EXPECTED_TYPES = [
    "hospital_grade_2", "hospital_grade_2", "township_health_centre", "township_health_centre",
    "community_health_centre", "township_health_centre", "village_clinic", "emergency_station",
    "mental_health_centre", "community_hospital",
]


# ----------------------------------------------------------------------------------- GCJ-02
def _gcj_forward(lon: float, lat: float) -> tuple[float, float]:
    """WGS-84 -> GCJ-02, the published formula (Krasovsky ellipsoid), written with math only."""
    a, ee = 6378245.0, 0.00669342162296594323
    x, y = lon - 105.0, lat - 35.0
    dlat = (-100.0 + 2.0 * x + 3.0 * y + 0.2 * y * y + 0.1 * x * y + 0.2 * math.sqrt(abs(x))
            + (20.0 * math.sin(6.0 * x * math.pi) + 20.0 * math.sin(2.0 * x * math.pi)) * 2 / 3
            + (20.0 * math.sin(y * math.pi) + 40.0 * math.sin(y / 3.0 * math.pi)) * 2 / 3
            + (160.0 * math.sin(y / 12.0 * math.pi) + 320 * math.sin(y * math.pi / 30.0)) * 2 / 3)
    dlon = (300.0 + x + 2.0 * y + 0.1 * x * x + 0.1 * x * y + 0.1 * math.sqrt(abs(x))
            + (20.0 * math.sin(6.0 * x * math.pi) + 20.0 * math.sin(2.0 * x * math.pi)) * 2 / 3
            + (20.0 * math.sin(x * math.pi) + 40.0 * math.sin(x / 3.0 * math.pi)) * 2 / 3
            + (150.0 * math.sin(x / 12.0 * math.pi) + 300.0 * math.sin(x / 30.0 * math.pi)) * 2 / 3)
    rad = lat / 180.0 * math.pi
    magic = 1 - ee * math.sin(rad) ** 2
    dlat = dlat * 180.0 / ((a * (1 - ee)) / (magic * math.sqrt(magic)) * math.pi)
    dlon = dlon * 180.0 / (a / math.sqrt(magic) * math.cos(rad) * math.pi)
    return lon + dlon, lat + dlat


def _metres(lon1: float, lat1: float, lon2: float, lat2: float) -> float:
    dy = (lat2 - lat1) * 111_320.0
    dx = (lon2 - lon1) * 111_320.0 * math.cos(math.radians(lat1))
    return math.hypot(dx, dy)


# ----------------------------------------------------------------------------------- helpers
def _fill_xlsx(template: Path, out: Path, rows: list[tuple]) -> None:
    """Open the template in openpyxl as a user would, delete the examples, add ``rows``."""
    book = openpyxl.load_workbook(template)
    sheet = book.worksheets[0]
    sheet.delete_rows(2, sheet.max_row - 1)
    for row in rows:
        sheet.append([None if v == "" else v for v in row])
    book.save(out)


def _csv(path: Path, headers: list[str], rows: list[tuple]) -> Path:
    with path.open("w", encoding="utf-8", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(headers)
        writer.writerows(rows)
    return path


def _load_quietly(path: Path, **kwargs) -> tuple[pd.DataFrame, list[str]]:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", InputWarning)
        fac = load_facilities(path, **kwargs)
    return fac, [str(w.message) for w in caught if issubclass(w.category, InputWarning)]


# ----------------------------------------------------------------------------------- tests
def test_shipped_templates_are_what_the_package_writes(tmp_path: Path) -> None:
    written = write_shipped_templates(tmp_path)
    assert sorted(p.name for p in written) == sorted(p.name for p in TEMPLATES.iterdir())
    for path in written:
        assert path.read_bytes() == (TEMPLATES / path.name).read_bytes(), path.name
    again = write_register_template(tmp_path / "again.xlsx", language="zh")
    assert again.read_bytes() == (TEMPLATES / "facilities_register_zh.xlsx").read_bytes()


def test_the_template_headers_and_examples(tmp_path: Path) -> None:
    for lang, headers in (("zh", ZH_HEADERS), ("en", EN_HEADERS)):
        with (TEMPLATES / f"facilities_register_{lang}.csv").open(encoding="utf-8-sig") as f:
            rows = list(csv.reader(f))
        assert rows[0] == headers
        assert 2 <= len(rows) - 1 <= 3
        marker = "【示例】" if lang == "zh" else "[EXAMPLE]"
        assert all(r[1].startswith(marker) for r in rows[1:])
        book = openpyxl.load_workbook(TEMPLATES / f"facilities_register_{lang}.xlsx")
        sheet = book.worksheets[0]
        assert [c.value for c in sheet[1]] == headers
        assert [[c.value for c in r][1] for r in sheet.iter_rows(min_row=2)] == [
            r[1] for r in rows[1:]]
        notes = book.worksheets[1]  # the instructions: one line per column
        assert [r[0].value for r in notes.iter_rows(min_row=2)] == headers
    # the examples are refused until deleted, each named
    with pytest.raises(InputError) as err:
        load_facilities(TEMPLATES / "facilities_register_zh.csv")
    assert "example row(s) of the register template" in str(err.value)
    assert "rows 2, 3, 4, column '机构名称'" in str(err.value)


def test_register_round_trip_gcj02_chinese_headers(tmp_path: Path) -> None:
    template = write_register_template(tmp_path / "模板.xlsx", language="zh")
    filled = tmp_path / "大渡口区机构名录.xlsx"
    _fill_xlsx(template, filled, FACILITIES)
    fac, notes = _load_quietly(filled)  # no type_map, no crs: the 坐标系 column says GCJ-02

    existing = [f for f in FACILITIES if f[-1] == "现有"]
    assert fac["facility_id"].tolist() == [f[0] for f in existing]
    assert fac["name"].tolist() == [f[1] for f in existing]
    assert fac["type"].tolist() == EXPECTED_TYPES[:8]
    # 在建 and 规划 are not counted today, and the warning names them
    assert fac.attrs["excluded_by_status"] == ["DDK-009", "DDK-010"]
    (note,) = [n for n in notes if "not counted" in n]
    assert "2 facilities" in note and "DDK-009" in note and "DDK-010" in note
    assert "(在建)" in note and "(规划)" in note and "status = [" in note

    # GCJ-02 -> WGS-84: the published forward formula takes each point back to its input
    for (_, _, _, glon, glat, *_), point in zip(existing, fac.geometry, strict=True):
        back_lon, back_lat = _gcj_forward(point.x, point.y)
        assert abs(back_lon - glon) < 1e-7 and abs(back_lat - glat) < 1e-7
        assert 300 < _metres(glon, glat, point.x, point.y) < 800  # the offset in Chongqing

    # staff and beds are numbers under their standard names
    for col, i in (("beds", 7), ("doctors", 8), ("nurses", 9), ("gps", 10), ("pharmacists", 11),
                   ("clinical_pharmacists", 12)):
        assert pd.api.types.is_float_dtype(fac[col]), col
        np.testing.assert_array_equal(fac[col].to_numpy(), [float(f[i]) for f in existing])
    assert fac["beds"].sum() == 600 + 120 + 60 + 10 + 40 + 35
    assert fac["unit_code"].tolist() == [f[6] for f in existing]
    grades = [g if isinstance(g, str) else None for g in fac["grade"]]
    assert grades[:6] == ["二级甲等", "二级甲等", "甲级", None, None, "乙级"]
    assert fac["standardised"].tolist() == [pd.NA, pd.NA, True, False, True, False, True, pd.NA]
    assert fac["emergency_dept"].tolist()[:3] == [True, True, True]
    assert fac["fever_clinic"].tolist()[:4] == [True, False, True, False]
    # a 院区 named by its parent's name, a 分院 by its parent's code: both point to the parent
    parents = dict(zip(fac["facility_id"], fac["parent_id"], strict=True))
    assert parents["DDK-002"] == "DDK-001" and parents["DDK-004"] == "DDK-003"
    assert all(pd.isna(parents[i]) for i in ("DDK-001", "DDK-003", "DDK-005"))
    mains = dict(zip(fac["facility_id"], fac["main_id"], strict=True))
    assert mains["DDK-002"] == mains["DDK-001"] == "DDK-001"
    assert mains["DDK-004"] == "DDK-003" and mains["DDK-007"] == "DDK-007"
    assert fac["main_id"].nunique() == 6  # 8 existing rows, counted as 6 facilities
    assert set(fac["status"]) == {"existing"}
    # the register's columns are not repeated under their Chinese headers
    assert not {"床位数（实有）", "机构类别", "坐标系", "状态", "上级机构"} & set(fac.columns)

    # planning ahead: count what is under construction and planned too
    every, _ = _load_quietly(filled, status=["现有", "在建", "planned"])
    assert every["type"].tolist() == EXPECTED_TYPES
    assert every["status"].tolist()[-2:] == ["under_construction", "planned"]
    assert every.attrs["excluded_by_status"] == []

    # the same rows as CSV with one crs for the file (no 坐标系 column) give the same points
    headers = [h for h in ZH_HEADERS if h != "坐标系"]
    rows = [tuple(v for j, v in enumerate(f) if j != 5) for f in FACILITIES]
    same, _ = _load_quietly(_csv(tmp_path / "file_crs.csv", headers, rows), crs="GCJ-02")
    np.testing.assert_allclose(same.geometry.x, fac.geometry.x, rtol=0, atol=1e-12)
    np.testing.assert_allclose(same.geometry.y, fac.geometry.y, rtol=0, atol=1e-12)


def test_per_row_coordinate_systems_mix(tmp_path: Path) -> None:
    glon, glat = 106.4866, 29.4838
    rows = [("a", "x", "卫生院", glon, glat, "GCJ-02"),
            ("b", "y", "卫生院", glon, glat, ""),  # blank: the file's crs (WGS-84)
            ("c", "z", "卫生院", glon, glat, "CGCS2000")]
    fac = load_facilities(_csv(tmp_path / "mix.csv", ["机构编码", "机构名称", "机构类别", "经度",
                                                      "纬度", "坐标系"], rows))
    back = _gcj_forward(fac.geometry.x[0], fac.geometry.y[0])
    assert abs(back[0] - glon) < 1e-7 and abs(back[1] - glat) < 1e-7
    assert (fac.geometry.x[1], fac.geometry.y[1]) == (glon, glat)
    assert (fac.geometry.x[2], fac.geometry.y[2]) == (glon, glat)


def test_unknown_type_names_are_listed_at_once_with_the_nearest(tmp_path: Path) -> None:
    rows = [("1", "甲", "卫生服务中心", 106.48, 29.48),
            ("2", "乙", "卫生院", 106.48, 29.48),
            ("3", "丙", "卫生服务中心", 106.48, 29.48),
            ("4", "丁", "急救分中心", 106.48, 29.48),
            ("5", "戊", "Zahnarzt", 106.48, 29.48)]
    path = _csv(tmp_path / "types.csv", ["机构编码", "机构名称", "机构类别", "经度", "纬度"], rows)
    with pytest.raises(InputError) as err:
        load_facilities(path)
    problems = {p.what: p for p in err.value.problems}
    assert set(problems) == {"unknown facility type '卫生服务中心'",
                             "unknown facility type '急救分中心'",
                             "unknown facility type 'Zahnarzt'"}
    centre = problems["unknown facility type '卫生服务中心'"]
    assert centre.where == "types.csv rows 2, 4, column '机构类别'"
    assert "nearest known: 社区卫生服务中心 (community_health_centre)" in centre.fix
    emergency = problems["unknown facility type '急救分中心'"]
    assert emergency.where == "types.csv row 5, column '机构类别'"
    assert "(emergency_station)" in emergency.fix.split(";")[0]
    assert "type_map = {'急救分中心' = \"emergency_station\"}" in emergency.fix
    dentist = problems["unknown facility type 'Zahnarzt'"]
    assert "no known type name is close" in dentist.fix
    # the list of known types is given once
    assert sum("known types are:" in p.fix for p in err.value.problems) == 1
    # mapped with type_map, they load
    fac = load_facilities(path, type_map={"卫生服务中心": "community_health_centre",
                                          "急救分中心": "急救站", "Zahnarzt": "clinic"})
    assert fac["type"].tolist() == ["community_health_centre", "township_health_centre",
                                    "community_health_centre", "emergency_station", "clinic"]


def test_english_headers(tmp_path: Path) -> None:
    rows = [("H1", "District hospital", "hospital", 106.4866, 29.4838, "GCJ-02", "500104003000",
             "600", "210", "330", "12", "28", "6", "3A", "", "yes", "yes", "", "existing"),
            ("H2", "District hospital, east campus", "hospital", 106.4921, 29.4702, "GCJ-02",
             "500104002000", "120", "40", "70", "3", "5", "1", "grade 3", "", "yes", "no", "H1",
             "existing"),
            ("C1", "Bachiao community health centre", "community health service centre",
             106.4955, 29.4561, "GCJ-02", "500104101000", "40", "18", "22", "7", "2", "0", "A",
             "yes", "no", "yes", "", "under construction")]
    fac, notes = _load_quietly(_csv(tmp_path / "en.csv", EN_HEADERS, rows))
    assert fac["facility_id"].tolist() == ["H1", "H2"]
    assert fac["type"].tolist() == ["hospital_grade_3", "hospital_grade_3"]
    assert fac["grade"].tolist() == ["三级甲等", "三级"]
    assert fac["beds"].tolist() == [600.0, 120.0] and fac["gps"].tolist() == [12.0, 3.0]
    assert fac["parent_id"].tolist()[1] == "H1"
    assert any("C1" in n for n in notes)
    # headers in other spellings: Title case, spaces, ASCII brackets
    other = ["ID", "Name", "Type", "Longitude", "Latitude", "Beds", "Fever Clinic", "床位数(实有)"]
    with pytest.raises(InputError, match="all mean 床位数（实有） \\(beds\\)"):
        load_facilities(_csv(tmp_path / "twice.csv", other,
                             [("1", "a", "clinic", 106.48, 29.48, "3", "no", "3")]))
    fac = load_facilities(_csv(tmp_path / "other.csv", other[:-1],
                               [("1", "a", "clinic", 106.48, 29.48, "3", "no")]))
    assert fac["beds"].tolist() == [3.0] and fac["fever_clinic"].tolist() == [False]


def test_bad_register_values_are_reported_together(tmp_path: Path) -> None:
    rows = [("1", "a", "卫生院", 106.48, 29.48, "火星", "5001041030", "三级特甲", "也许", "DDK-404",
             "拆除"),
            ("2", "b", "卫生院", 106.48, 29.48, "GCJ-02", "500104103000", "甲级", "是", "2",
             "现有")]
    headers = ["机构编码", "机构名称", "机构类别", "经度", "纬度", "坐标系", "所在镇街/村代码",
               "等级", "是否设发热门诊", "上级机构", "状态"]
    with pytest.raises(InputError) as err:
        load_facilities(_csv(tmp_path / "bad.csv", headers, rows))
    text = str(err.value)
    assert "bad.csv row 2, column '坐标系': unknown coordinate system '火星'" in text
    assert "row 2, column '所在镇街/村代码': not an NBS division code: 5001041030" in text
    assert "row 2, column '等级': unknown grade '三级特甲'" in text
    assert "row 2, column '是否设发热门诊': not yes/no: '也许'" in text
    assert "row 2, column '上级机构': parent facility not in the register: DDK-404" in text
    assert "row 3, column '上级机构': a facility named as its own parent: 2" in text
    assert "row 2, column '状态': unknown status '拆除'" in text
    assert len(err.value.problems) == 7


def test_parents_in_a_circle(tmp_path: Path) -> None:
    rows = [("1", "a", "医院", 106.48, 29.48, "2"), ("2", "b", "医院", 106.48, 29.48, "1")]
    with pytest.raises(InputError, match="上级机构 goes round in a circle"):
        load_facilities(_csv(tmp_path / "circle.csv", ["机构编码", "机构名称", "机构类别", "经度",
                                                       "纬度", "上级机构"], rows))


def test_nothing_counted_is_an_error(tmp_path: Path) -> None:
    rows = [("1", "a", "村卫生室", 106.48, 29.48, "规划")]
    headers = ["机构编码", "机构名称", "机构类别", "经度", "纬度", "状态"]
    path = _csv(tmp_path / "planned.csv", headers, rows)
    with pytest.raises(CoverageError, match="no facility is counted"):
        load_facilities(path)
    assert load_facilities(path, status=["规划"])["status"].tolist() == ["planned"]


def test_scenario_status_option(tmp_path: Path) -> None:
    from covplan.scenario import FacilitiesSection
    from pydantic import ValidationError

    path = _csv(tmp_path / "f.csv", ["机构名称", "机构类别", "经度", "纬度"],
                [("a", "卫生院", 106.48, 29.48)])
    section = FacilitiesSection.model_validate({"path": str(path), "status": ["现有", "planned"]})
    assert section.status == ["现有", "planned"]
    with pytest.raises(ValidationError):
        FacilitiesSection.model_validate({"path": str(path), "status": ["demolished"]})


def test_cli_template_writes_csv_and_xlsx(tmp_path: Path) -> None:
    runner = CliRunner()
    for lang, headers in (("zh", ZH_HEADERS), ("en", EN_HEADERS)):
        xlsx, table = tmp_path / f"r_{lang}.xlsx", tmp_path / f"r_{lang}.csv"
        for out in (xlsx, table):
            res = runner.invoke(main, ["template", "facilities", "--lang", lang, "--out",
                                       str(out)])
            assert res.exit_code == 0, res.output
        sheet = openpyxl.load_workbook(xlsx).worksheets[0]
        assert [c.value for c in sheet[1]] == headers
        with table.open(encoding="utf-8-sig") as f:
            assert next(csv.reader(f)) == headers
        assert table.read_bytes().startswith(b"\xef\xbb\xbf")  # Excel opens it as UTF-8
    res = runner.invoke(main, ["template", "facilities", "--out", str(xlsx)])
    assert res.exit_code == 2 and "exists" in res.output
    res = runner.invoke(main, ["template", "facilities", "--out", str(xlsx), "--force"])
    assert res.exit_code == 0
    assert [c.value for c in openpyxl.load_workbook(xlsx).worksheets[0][1]] == ZH_HEADERS
    res = runner.invoke(main, ["template", "facilities", "--out", str(tmp_path / "r.ods")])
    assert res.exit_code == 2 and ".csv or .xlsx" in res.output
