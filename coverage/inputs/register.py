"""The facility register (机构名录): its columns, their Chinese and English names, and the template.

A facility register is the table a 卫生健康委 keeps of its facilities. :func:`covplan.inputs.
loaders.load_facilities` reads it like any facilities table (CSV or Excel), recognising the
columns below by their Chinese or English header (full-width or ASCII brackets, any case, spaces
and ``_``/``-`` ignored) and the usual Chinese type names (卫生院, 中心卫生院, 村卫生室, 急救站,
三级甲等医院...) without a ``type_map``.

=====================  ================  =====================================================
Chinese header          standard name     values
=====================  ================  =====================================================
机构编码                facility_id       unique text (default ``<file>-<row>``)
机构名称                name              text
机构类别                type              a type name (see :data:`TYPE_NAME_ALIASES`)
经度 / 纬度             (geometry)        degrees, in the 坐标系 of the row
坐标系                  (conversion)      WGS-84, GCJ-02, BD-09 or CGCS2000; blank: the file's
所在镇街/村代码         unit_code         NBS code, 6, 9 or 12 digits (区县, 镇街, 村/社区)
床位数（实有）          beds              number >= 0
执业（助理）医师数      doctors           number >= 0
注册护士数              nurses            number >= 0
全科医生数              gps               number >= 0
药师数                  pharmacists       number >= 0
临床药师数              clinical_pharmacists  number >= 0
等级                    grade             三级甲等 ... 一级, 甲级/乙级/丙级 (基层), blank
是否标准化              standardised      是/否 (blank: unknown)
是否设急诊              emergency_dept    是/否
是否设发热门诊          fever_clinic      是/否
上级机构                parent_id         the parent's 机构编码 or 机构名称 (院区, 分院)
状态                    status            现有 / 在建 / 规划 (blank: 现有)
=====================  ================  =====================================================

A type of 医院 with a 等级 of 三级/二级/一级 becomes ``hospital_grade_3/2/1``. A row whose
上级机构 is set is a campus or branch of that facility: ``parent_id`` holds the parent's
``facility_id`` and ``main_id`` the top of the chain (its own id when it has no parent), so that
a standard counting facilities can count a hospital and its campuses once. Rows whose 状态 is
在建 or 规划 are left out (with a warning naming them) unless the loader's ``status`` option
(``[inputs.facilities] status``) includes them. Rows named ``【示例】...`` are the template's
examples and are refused.
"""

from __future__ import annotations

import datetime as _dt
import difflib
import io
import re
import unicodedata
import zipfile
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
from covplan.errors import CoverageError, Problem
from covplan.facility_types import FACILITY_TYPE_ALIASES, FACILITY_TYPES
from covplan.inputs import _io
from covplan.inputs.crs import (
    canonical_crs,
    to_wgs84,
    wgs84_to_bd09,
    wgs84_to_gcj02,
)
from covplan.labels import FACILITY_STATUS_LABELS, LANGUAGES

__all__ = [
    "REGISTER_COLUMNS",
    "STATUS_VALUES",
    "TEMPLATE_LANGUAGES",
    "TYPE_NAME_ALIASES",
    "RegisterColumn",
    "header_names",
    "normalise_name",
    "read_register_fields",
    "register_template",
    "standardise_headers",
    "type_lookup",
    "unknown_type_problems",
    "write_register_template",
    "write_shipped_templates",
]

#: Languages of the template (those of :data:`covplan.labels.LANGUAGES`).
TEMPLATE_LANGUAGES = LANGUAGES


@dataclass(frozen=True)
class RegisterColumn:
    """One column of the facility register.

    Parameters
    ----------
    key
        The standard name (the column's name in the loaded layer, or its role).
    zh, en
        The header of the Chinese and the English template.
    aliases
        Other headers accepted for it.
    zh_note, en_note
        What to write in it (the template's instructions sheet).
    """

    key: str
    zh: str
    en: str
    aliases: tuple[str, ...]
    zh_note: str
    en_note: str


#: The register's columns, in template order.
REGISTER_COLUMNS: tuple[RegisterColumn, ...] = (
    RegisterColumn("facility_id", "机构编码", "facility_id",
                   ("机构代码", "机构id", "组织机构代码", "编码", "编号", "id", "code"),
                   "每个机构唯一；院区/分院另起一行并有自己的编码",
                   "unique per facility; each campus or branch has its own row and id"),
    RegisterColumn("name", "机构名称", "name", ("名称", "单位名称", "facility_name"),
                   "机构全称", "the facility's full name"),
    RegisterColumn("type", "机构类别", "type",
                   ("机构类型", "类别", "类型", "机构分类", "facility_type", "category"),
                   "如 卫生院、中心卫生院、社区卫生服务中心、村卫生室、急救站、三级医院",
                   "a type key or name, e.g. township_health_centre, village clinic, hospital"),
    RegisterColumn("lon", "经度", "lon", ("lng", "longitude", "x"),
                   "十进制度，按本行坐标系", "decimal degrees in the row's coordinate system"),
    RegisterColumn("lat", "纬度", "lat", ("latitude", "y"),
                   "十进制度，按本行坐标系", "decimal degrees in the row's coordinate system"),
    RegisterColumn("crs", "坐标系", "crs", ("坐标系统", "坐标类型", "coordinate_system"),
                   "WGS-84、GCJ-02（高德/腾讯）、BD-09（百度）或 CGCS2000；空白时用文件的坐标系",
                   "WGS-84, GCJ-02 (Amap/Tencent), BD-09 (Baidu) or CGCS2000; blank: the "
                   "file's crs option"),
    RegisterColumn("unit_code", "所在镇街/村代码", "unit_code",
                   ("所在镇街代码", "所在村代码", "所在镇街/村编码", "所在地区划代码", "区划代码",
                    "统计用区划代码", "nbs_code", "location_code"),
                   "国家统计局区划代码：12位（村/社区）、9位（镇街）或6位（区县）",
                   "NBS division code: 12 digits (village), 9 (township) or 6 (county)"),
    RegisterColumn("beds", "床位数（实有）", "beds",
                   ("床位数", "实有床位数", "实有床位", "床位", "编制床位数"),
                   "实有床位数，无床位填0", "actual beds (0 if none)"),
    RegisterColumn("doctors", "执业（助理）医师数", "doctors",
                   ("执业医师数", "执业(助理)医师", "执业助理医师数", "医师数"),
                   "执业医师与执业助理医师合计", "licensed (assistant) physicians"),
    RegisterColumn("nurses", "注册护士数", "nurses", ("护士数", "注册护士"),
                   "注册护士数", "registered nurses"),
    RegisterColumn("gps", "全科医生数", "gps",
                   ("全科医生", "全科医师数", "general_practitioners", "gp"),
                   "全科医生数", "general practitioners"),
    RegisterColumn("pharmacists", "药师数", "pharmacists",
                   ("药师(士)数", "药师", "药剂人员数"),
                   "药师（士）数", "pharmacists"),
    RegisterColumn("clinical_pharmacists", "临床药师数", "clinical_pharmacists",
                   ("临床药师",), "临床药师数（医院）", "clinical pharmacists (hospitals)"),
    RegisterColumn("grade", "等级", "grade", ("机构等级", "医院等级", "级别"),
                   "医院：三级甲等、三级乙等、二级甲等…一级；基层机构：甲级、乙级、丙级；未定级留空",
                   "hospitals: 三级甲等 (3A), 二级乙等 (2B) ... 一级 (1); grassroots: 甲级 (A), "
                   "乙级 (B), 丙级 (C); blank if ungraded"),
    RegisterColumn("standardised", "是否标准化", "standardised",
                   ("标准化", "是否标准化建设", "是否达标准化", "standardized", "is_standardised"),
                   "是/否（是否达到标准化建设要求）", "yes/no: meets the standardisation norm"),
    RegisterColumn("emergency_dept", "是否设急诊", "emergency_dept",
                   ("是否设置急诊", "急诊", "设急诊", "has_emergency", "emergency_department"),
                   "是/否", "yes/no: has an emergency department"),
    RegisterColumn("fever_clinic", "是否设发热门诊", "fever_clinic",
                   ("是否设置发热门诊", "发热门诊", "设发热门诊", "has_fever_clinic"),
                   "是/否（发热门诊或发热诊室）", "yes/no: has a fever clinic"),
    RegisterColumn("parent_id", "上级机构", "parent_id",
                   ("上级机构编码", "上级机构名称", "所属机构", "隶属机构", "主院区", "parent"),
                   "院区或分院填所属机构的机构编码或名称，其余留空（同一机构只计一次）",
                   "for a campus or branch: the id or name of the facility it belongs to "
                   "(counted once); blank otherwise"),
    RegisterColumn("status", "状态", "status", ("机构状态", "建设状态", "运营状态"),
                   "现有、在建 或 规划；空白为现有（现状评估只计现有）",
                   "existing, under construction or planned; blank: existing (an audit of "
                   "today counts existing only)"),
)
_BY_KEY = {c.key: c for c in REGISTER_COLUMNS}
#: Columns the loader finds itself (id, name, type) or reads as coordinates.
_CORE = ("facility_id", "name", "type", "lon", "lat")
NUMERIC_KEYS = ("beds", "doctors", "nurses", "gps", "pharmacists", "clinical_pharmacists")
FLAG_KEYS = ("standardised", "emergency_dept", "fever_clinic")

#: Built-in type names (normalised by :func:`normalise_name`) -> facility type key.
TYPE_NAME_ALIASES: dict[str, str] = {
    **{name: "township_health_centre" for name in (
        "卫生院", "中心卫生院", "镇卫生院", "乡卫生院", "乡镇卫生院", "镇中心卫生院",
        "乡中心卫生院", "街道卫生院", "一般卫生院", "township health center")},
    **{name: "community_health_centre" for name in (
        "社区卫生服务中心", "社区卫生中心", "街道社区卫生服务中心",
        "community health centre", "community health center")},
    **{name: "community_health_station" for name in (
        "社区卫生服务站", "社区卫生站", "community health station")},
    **{name: "village_clinic" for name in (
        "村卫生室", "卫生室", "村卫生站", "卫生站", "村卫生所", "村医务室")},
    **{name: "community_hospital" for name in ("社区医院",)},
    **{name: "emergency_station" for name in (
        "急救中心", "急救站", "急救分站", "120急救分站", "120急救站", "120急救中心",
        "院前急救站", "急救中心(站)", "急救点", "ambulance station")},
    **{name: "sub_centre" for name in (
        "区域医疗卫生次中心", "县域医疗卫生次中心", "医疗卫生次中心", "区域医疗次中心",
        "县域医疗次中心", "次中心", "sub-centre", "sub centre")},
    **{name: "mental_health_centre" for name in (
        "精神卫生中心", "精神病医院", "精神专科医院", "精神病院")},
    **{name: "nursing_home" for name in ("护理院", "护理中心", "护理站")},
    **{name: "psychological_service_station" for name in (
        "社会心理服务站", "社会心理服务工作站", "心理服务站", "社会心理服务中心")},
    **{name: "disability_rehab_care" for name in (
        "残疾人康复或托养设施", "残疾人康复机构", "残疾人康复中心", "残疾人托养机构",
        "残疾人托养中心", "残疾人康复托养中心")},
    **{name: "childcare" for name in ("托育机构", "托育服务中心", "托育园", "托育中心", "托儿所")},
    **{name: "hospital" for name in (
        "医院", "综合医院", "中医医院", "中医院", "中西医结合医院", "专科医院", "人民医院",
        "妇幼保健院", "未定级医院")},
    **{name: "hospital_grade_3" for name in (
        "三级医院", "三级甲等医院", "三级乙等医院", "三级丙等医院", "三甲医院", "三乙医院",
        "三级综合医院", "三级中医医院", "三级专科医院", "tertiary hospital")},
    **{name: "hospital_grade_2" for name in (
        "二级医院", "二级甲等医院", "二级乙等医院", "二级丙等医院", "二甲医院", "二乙医院",
        "二级综合医院", "二级中医医院", "二级专科医院", "secondary hospital")},
    **{name: "hospital_grade_1" for name in (
        "一级医院", "一级甲等医院", "一级乙等医院", "一级丙等医院", "一甲医院",
        "primary hospital")},
    **{name: "clinic" for name in ("诊所", "门诊部", "卫生所", "医务室")},
    **{name: "doctors" for name in ("个体诊所",)},
    **{name: "pharmacy" for name in ("药店", "药房", "零售药店")},
}

#: Register status key -> (Chinese, English) label (the one table is in covplan.labels).
STATUS_VALUES: dict[str, tuple[str, str]] = FACILITY_STATUS_LABELS
_STATUS_ALIASES = {
    **{n: "existing" for n in ("现有", "已建", "建成", "运营", "运行", "在用", "正常", "现状",
                               "existing", "operating", "open")},
    **{n: "under_construction" for n in ("在建", "建设中", "施工中", "under construction",
                                         "underconstruction", "building")},
    **{n: "planned" for n in ("规划", "拟建", "计划", "规划新建", "规划中", "新建规划",
                              "planned", "proposed")},
}
_TRUE = ("是", "有", "设", "已设", "y", "yes", "true", "1", "√", "✓")
_FALSE = ("否", "无", "没有", "未设", "不设", "n", "no", "false", "0", "×", "✗")
_UNGRADED = ("未定级", "未评级", "未评", "无", "-", "none", "ungraded")
_CRS_ALIASES = {
    "火星坐标": "GCJ-02", "火星坐标系": "GCJ-02", "高德": "GCJ-02", "腾讯": "GCJ-02",
    "百度": "BD-09", "百度坐标": "BD-09", "国家2000": "EPSG:4490",
    "2000国家大地坐标系": "EPSG:4490",
    "wgs 84": "EPSG:4326", "gps": "EPSG:4326",
}
_LONLAT = ("EPSG:4326", "EPSG:4490", "GCJ-02", "BD-09")
_EXAMPLE_PREFIXES = ("【示例】", "[示例]", "示例:", "[example]", "example:")
_DIGITS = {"一": 1, "二": 2, "三": 3, "1": 1, "2": 2, "3": 3}
_CLASSES = {"甲": "甲", "乙": "乙", "丙": "丙", "特": "特", "a": "甲", "b": "乙", "c": "丙"}
_LEVEL_ZH = {1: "一", 2: "二", 3: "三"}


# ----------------------------------------------------------------------------------- names
def normalise_name(text: object) -> str:
    """Return ``text`` as compared with header and type names.

    NFKC (full-width brackets and digits become ASCII), lower case, no spaces, and ``_``
    read as a space, so ``床位数（实有）`` equals ``床位数(实有)`` and ``Fever_Clinic`` equals
    ``fever clinic``.
    """
    value = unicodedata.normalize("NFKC", str(text)).strip().lower().replace("_", " ")
    value = re.sub(r"\s+", " ", value)
    return value.replace(" ", "") if re.search(r"[^\x00-\x7f]", value) else value


def header_names(key: str) -> tuple[str, ...]:
    """Return every header accepted for the register column ``key`` (its two names first)."""
    col = _BY_KEY[key]
    return (col.zh, col.en, *col.aliases)


def _header_lookup() -> dict[str, str]:
    lookup: dict[str, str] = {}
    for col in REGISTER_COLUMNS:
        for name in header_names(col.key):
            lookup.setdefault(normalise_name(name), col.key)
    return lookup


def standardise_headers(
    df: pd.DataFrame, *, source: _io.Source, keep: Iterable[str | None] = (),
) -> tuple[dict[str, str], list[Problem]]:
    """Return the file's column of each register column it has, by standard name.

    The id, name, type and coordinate columns are not renamed (the loader finds them by
    :func:`header_names`); nor are the columns in ``keep`` (named by the caller). A column
    ``emergency`` is read as 是否设急诊 only when every value is yes/no, since it is also an
    OSM tag (``emergency=ambulance_station``).

    Returns
    -------
    (dict, list of Problem)
        Standard name -> the file's column; and a problem per standard column given twice.
    """
    lookup = _header_lookup()
    kept = {k for k in keep if k is not None}
    found: dict[str, list[str]] = {}
    for col in df.columns:
        if col in ("_row", "geometry") or col in kept:
            continue
        key = lookup.get(normalise_name(col))
        if key is None and normalise_name(col) == "emergency" and _all_flags(df[col]):
            key = "emergency_dept"
        if key is not None and key not in _CORE:
            found.setdefault(key, []).append(str(col))
    problems = [
        Problem(source.name, f"columns {', '.join(map(repr, cols))} all mean "
                f"{_BY_KEY[key].zh} ({key})", "keep one of them and delete or rename the others")
        for key, cols in found.items() if len(cols) > 1]
    return {key: cols[0] for key, cols in found.items() if len(cols) == 1}, problems


def _all_flags(values: pd.Series) -> bool:
    text = values.dropna().astype(str).map(normalise_name)
    text = text[text != ""]
    return len(text) > 0 and bool(text.isin([*map(normalise_name, (*_TRUE, *_FALSE))]).all())


# ----------------------------------------------------------------------------------- types
def type_lookup(type_map: Mapping[str, str] | None = None) -> dict[str, str]:
    """Return every accepted type name (normalised) -> facility type key.

    Keys of :data:`~covplan.facility_types.FACILITY_TYPES`, their Chinese and English labels,
    :data:`~covplan.facility_types.FACILITY_TYPE_ALIASES` and :data:`TYPE_NAME_ALIASES`;
    then ``type_map`` (the user's names, whose values are any of those), which wins.
    """
    lookup: dict[str, str] = {}
    for key, (zh, en) in FACILITY_TYPES.items():
        for name in (key, zh, en):
            lookup[normalise_name(name)] = key
    for name, key in (*FACILITY_TYPE_ALIASES.items(), *TYPE_NAME_ALIASES.items()):
        if key in FACILITY_TYPES:
            lookup.setdefault(normalise_name(name), key)
    for user, target in (type_map or {}).items():
        key = lookup.get(normalise_name(target))
        if key is not None:
            lookup[normalise_name(user)] = key
    return lookup


def _display_names() -> dict[str, tuple[str, str]]:
    """Normalised name -> (name as written, key), for suggestions."""
    out: dict[str, tuple[str, str]] = {}
    for key, (zh, en) in FACILITY_TYPES.items():
        for name in (zh, key, en):
            out.setdefault(normalise_name(name), (name, key))
    for name, key in (*FACILITY_TYPE_ALIASES.items(), *TYPE_NAME_ALIASES.items()):
        if key in FACILITY_TYPES:
            out.setdefault(normalise_name(name), (name, key))
    return out


def suggest_types(name: str, *, most: int = 3) -> list[tuple[str, str]]:
    """Return up to ``most`` known (type name, key) pairs nearest to ``name``, one per key."""
    names = _display_names()
    matches = difflib.get_close_matches(normalise_name(name), list(names), n=20, cutoff=0.4)
    out: list[tuple[str, str]] = []
    for match in matches:
        shown, key = names[match]
        if key not in [k for _, k in out]:
            out.append((shown, key))
    return out[:most]


def unknown_type_problems(
    labels: Sequence[object], rows: Sequence[int], *, source: _io.Source, column: str,
) -> list[Problem]:
    """Return one problem per unknown type name: its rows, the nearest known names, the fix.

    Parameters
    ----------
    labels, rows
        The unknown names (``None`` for a blank) and the row of each.
    """
    by_name: dict[str, list[int]] = {}
    for label, row in zip(labels, rows, strict=True):
        shown = "<blank>" if label is None or label is pd.NA else str(label)
        by_name.setdefault(shown, []).append(int(row))
    known = ", ".join(f"{k} ({zh})" for k, (zh, _) in FACILITY_TYPES.items())
    problems = []
    for i, (name, name_rows) in enumerate(sorted(by_name.items())):
        near = suggest_types(name) if name != "<blank>" else []
        target = near[0][1] if near else "township_health_centre"
        hint = ("nearest known: " + ", ".join(f"{n} ({k})" for n, k in near) + "; "
                if near else "no known type name is close; ")
        fix = (f"{hint}write a known type name, or map yours with type_map, e.g. "
               f"type_map = {{{name!r} = \"{target}\"}}")
        if i == 0:
            fix += f"; known types are: {known}"
        what = ("missing facility type" if name == "<blank>"
                else f"unknown facility type {name!r}")
        problems.append(Problem(source.where(name_rows, column), what, fix))
    return problems


# ----------------------------------------------------------------------------------- values
def _text(values: pd.Series) -> pd.Series:
    text = values.astype("string").str.strip()
    return text.mask(text == "")


def parse_flag(value: object) -> bool | None:
    """Return True/False for 是/否 (yes/no, 有/无, 1/0...), None for a blank.

    Raises
    ------
    ValueError
        For any other value.
    """
    if value is None or value is pd.NA or (isinstance(value, float) and np.isnan(value)):
        return None
    key = normalise_name(value)
    if key == "":
        return None
    if key in map(normalise_name, _TRUE):
        return True
    if key in map(normalise_name, _FALSE):
        return False
    raise ValueError(value)


def parse_status(value: object) -> str:
    """Return ``existing``, ``under_construction`` or ``planned`` (blank: ``existing``).

    Raises
    ------
    ValueError
        For an unknown status.
    """
    if value is None or value is pd.NA or (isinstance(value, float) and np.isnan(value)):
        return "existing"
    key = normalise_name(value)
    if key == "":
        return "existing"
    aliases = {normalise_name(k): v for k, v in _STATUS_ALIASES.items()}
    if key in aliases:
        return aliases[key]
    raise ValueError(value)


def parse_grade(value: object) -> tuple[str | None, int | None]:
    """Return the canonical grade (``三级甲等``, ``二级``, ``甲级``...) and hospital level.

    Hospital grades give their level (3, 2, 1); grassroots grades (甲级/乙级/丙级) give None;
    blank and 未定级 give ``(None, None)``. ``3A``/``2B`` and ``A``/``B``/``C`` are read too.

    Raises
    ------
    ValueError
        For any other value.
    """
    if value is None or value is pd.NA or (isinstance(value, float) and np.isnan(value)):
        return None, None
    key = normalise_name(value).replace(" ", "")
    if key == "" or key in map(normalise_name, _UNGRADED):
        return None, None
    hosp = (re.fullmatch(r"([一二三])级?([甲乙丙特])?等?(?:医院)?", key)
            or re.fullmatch(r"(?:grade|level)?([123])级?([abc甲乙丙特])?等?", key))
    if hosp:
        level = _DIGITS[hosp.group(1)]
        cls = _CLASSES.get(hosp.group(2) or "")
        return f"{_LEVEL_ZH[level]}级{cls + '等' if cls else ''}", level
    basic = (re.fullmatch(r"([甲乙丙])级?", key)
             or re.fullmatch(r"(?:grade|class)?([abc])", key))
    if basic:
        return f"{_CLASSES[basic.group(1)]}级", None
    raise ValueError(value)


def _crs_of(value: object, default: str) -> str:
    if value is None or value is pd.NA or (isinstance(value, float) and np.isnan(value)) \
            or str(value).strip() == "":
        return default
    text = unicodedata.normalize("NFKC", str(value)).strip()
    canon = _CRS_ALIASES.get(text.lower(), canonical_crs(text))
    if canon not in _LONLAT:
        raise ValueError(value)
    return canon


@dataclass
class RegisterFields:
    """What :func:`read_register_fields` read: canonical columns, types, rows to keep."""

    columns: dict[str, pd.Series]
    types: list[str | None]
    keep: pd.Series
    geometry: gpd.GeoSeries
    used: list[str]


def read_register_fields(
    gdf: gpd.GeoDataFrame, *, source: _io.Source, columns: Mapping[str, str],
    ids: pd.Series, names: pd.Series, name_column: str | None, types: list[str | None],
    crs: str | None, lon_column: str | None, lat_column: str | None,
    status: Sequence[str] | None, problems: list[Problem],
) -> RegisterFields:
    """Read the register columns of a facilities layer whose headers are standardised.

    Parameters
    ----------
    gdf
        The layer (with ``_row``).
    source
        Where it came from.
    columns
        Standard name -> the file's column, from :func:`standardise_headers`.
    ids, names, name_column, types
        The facility ids, names (and their column) and type keys the loader found.
    crs, lon_column, lat_column
        The loader's options (the file's coordinate system and coordinate columns).
    status
        Statuses kept (``existing``/``under_construction``/``planned`` or 现有/在建/规划);
        None keeps ``existing`` only.
    problems
        Appended to: every bad value, with its rows and column.

    Returns
    -------
    RegisterFields
        Canonical columns to add (``unit_code``, ``grade``, flags, ``parent_id``, ``main_id``,
        ``status``), the types refined by grade, the rows to keep, the geometry (converted per
        row by 坐标系) and the columns consumed.
    """
    rows = gdf["_row"]
    out: dict[str, pd.Series] = {}
    geometry = gdf.geometry
    types = list(types)
    col = dict(columns)

    if "crs" in col:
        geometry = _row_crs(gdf, col["crs"], source=source, crs=crs, lon_column=lon_column,
                            lat_column=lat_column, problems=problems)
    if "unit_code" in col:
        raw = gdf[col["unit_code"]].astype("string").str.replace(r"\.0$", "", regex=True)
        codes = _text(raw)
        bad = codes.notna() & ~codes.fillna("").str.fullmatch(r"\d{6}|\d{9}|\d{12}")
        if bad.any():
            problems.append(Problem(
                source.where(rows[bad].tolist(), col["unit_code"]),
                f"not an NBS division code: {_io.list_numbers(codes[bad].tolist())}",
                "write the 12-digit code of the 村/社区, the 9-digit code of the 镇街 or the "
                "6-digit code of the 区县, as text (no spaces or letters)"))
        out["unit_code"] = codes
    if "grade" in col:
        grades, levels, bad_rows, bad_values = [], [], [], []
        for row, value in zip(rows, gdf[col["grade"]], strict=True):
            try:
                grade, level = parse_grade(value)
            except ValueError:
                grade, level = None, None
                bad_rows.append(row)
                bad_values.append(repr(str(value)))
            grades.append(grade)
            levels.append(level)
        if bad_rows:
            problems.append(Problem(
                source.where(bad_rows, col["grade"]),
                f"unknown grade {_io.list_numbers(sorted(set(bad_values)))}",
                "write 三级甲等, 三级乙等, 二级甲等 ... 一级 for hospitals, 甲级/乙级/丙级 for "
                "grassroots facilities, or leave it blank"))
        types = [f"hospital_grade_{lv}" if t == "hospital" and lv else t
                 for t, lv in zip(types, levels, strict=True)]
        out["grade"] = pd.Series(grades, index=gdf.index, dtype=object)
    for key in FLAG_KEYS:
        if key in col:
            out[key] = _flags(gdf, col[key], source, problems)
    if "parent_id" in col:
        out["parent_id"], out["main_id"] = _parents(gdf, col["parent_id"], ids, names, source,
                                                    problems)
    keep = pd.Series(True, index=gdf.index)
    if "status" in col:
        statuses, bad_rows, bad_values = [], [], []
        for row, value in zip(rows, gdf[col["status"]], strict=True):
            try:
                statuses.append(parse_status(value))
            except ValueError:
                statuses.append(None)
                bad_rows.append(row)
                bad_values.append(repr(str(value)))
        if bad_rows:
            problems.append(Problem(
                source.where(bad_rows, col["status"]),
                f"unknown status {_io.list_numbers(sorted(set(bad_values)))}",
                "write 现有 (existing), 在建 (under construction) or 规划 (planned)"))
        out["status"] = pd.Series(statuses, index=gdf.index, dtype=object)
        keep = out["status"].isin(_wanted_statuses(status, problems)) | out["status"].isna()
    elif status is not None:
        _wanted_statuses(status, problems)
    examples = names.astype(str).map(normalise_name).str.startswith(
        tuple(normalise_name(p) for p in _EXAMPLE_PREFIXES))
    if examples.any():
        problems.append(Problem(
            source.where(rows[examples].tolist(), name_column),
            "example row(s) of the register template: "
            f"{_io.list_numbers(names[examples].tolist())}",
            "delete the template's example rows before adding your facilities"))
    used = [c for k, c in col.items() if k in out or k == "crs"]
    return RegisterFields(out, types, keep, geometry, used)


def _wanted_statuses(status: Sequence[str] | None, problems: list[Problem]) -> set[str]:
    if status is None:
        return {"existing"}
    wanted = set()
    for value in status:
        try:
            wanted.add(parse_status(value))
        except ValueError:
            problems.append(Problem("status", f"unknown status {value!r}",
                                    "use existing, under_construction, planned (现有/在建/规划)"))
    return wanted


def _flags(gdf: pd.DataFrame, column: str, source: _io.Source,
           problems: list[Problem]) -> pd.Series:
    values, bad_rows, bad_values = [], [], []
    for row, value in zip(gdf["_row"], gdf[column], strict=True):
        try:
            values.append(parse_flag(value))
        except ValueError:
            values.append(None)
            bad_rows.append(row)
            bad_values.append(repr(str(value)))
    if bad_rows:
        problems.append(Problem(
            source.where(bad_rows, column),
            f"not yes/no: {_io.list_numbers(sorted(set(bad_values)))}",
            "write 是 or 否 (yes/no), or leave it blank if unknown"))
    return pd.Series(pd.array(values, dtype="boolean"), index=gdf.index)


def _parents(gdf: pd.DataFrame, column: str, ids: pd.Series, names: pd.Series,
             source: _io.Source, problems: list[Problem]) -> tuple[pd.Series, pd.Series]:
    """Resolve 上级机构 (an id, else a unique name) to the parent's id; walk to the top."""
    by_id = {normalise_name(i): str(i) for i in ids.dropna()}
    by_name: dict[str, list[str]] = {}
    for i, n in zip(ids, names, strict=True):
        by_name.setdefault(normalise_name(n), []).append(str(i))
    raw = _text(gdf[column].astype("string"))
    parents: list[str | None] = []
    missing, ambiguous, own = [], [], []
    for row, fid, value in zip(gdf["_row"], ids, raw, strict=True):
        if value is pd.NA or value is None:
            parents.append(None)
            continue
        key = normalise_name(value)
        parent = by_id.get(key)
        if parent is None and len(by_name.get(key, [])) == 1:
            parent = by_name[key][0]
        if parent is None:
            (ambiguous if len(by_name.get(key, [])) > 1 else missing).append((row, str(value)))
        elif parent == str(fid):
            own.append((row, str(value)))
            parent = None
        parents.append(parent)
    for found, what, fix in (
        (missing, "parent facility not in the register",
         "write the 机构编码 or 机构名称 of a facility in this file, or leave it blank"),
        (ambiguous, "parent name shared by several facilities",
         "write the parent's 机构编码 instead of its name"),
        (own, "a facility named as its own parent", "leave 上级机构 blank for a main facility"),
    ):
        if found:
            problems.append(Problem(source.where([r for r, _ in found], column),
                                    f"{what}: {_io.list_numbers([v for _, v in found])}", fix))
    up = dict(zip(ids.astype(str), parents, strict=True))
    main, cyclic = [], []
    for row, fid in zip(gdf["_row"], ids.astype(str), strict=True):
        seen, node = {fid}, fid
        while up.get(node) is not None:
            node = str(up[node])
            if node in seen:
                cyclic.append(row)
                break
            seen.add(node)
        main.append(node)
    if cyclic:
        problems.append(Problem(source.where(cyclic, column),
                                "上级机构 goes round in a circle",
                                "the main facility of a group must have 上级机构 blank"))
    return (pd.Series(parents, index=gdf.index, dtype=object),
            pd.Series(main, index=gdf.index, dtype=object))


def _row_crs(gdf: gpd.GeoDataFrame, column: str, *, source: _io.Source, crs: str | None,
             lon_column: str | None, lat_column: str | None,
             problems: list[Problem]) -> gpd.GeoSeries:
    """Convert each row from its 坐标系 (blank: the file's ``crs``) to WGS-84."""
    default = canonical_crs(crs)
    codes, bad_rows, bad_values = [], [], []
    for row, value in zip(gdf["_row"], gdf[column], strict=True):
        try:
            codes.append(_crs_of(value, default))
        except ValueError:
            codes.append(default)
            bad_rows.append(row)
            bad_values.append(repr(str(value)))
    if bad_rows:
        problems.append(Problem(source.where(bad_rows, column),
                                f"unknown coordinate system {_io.list_numbers(bad_values)}",
                                "write WGS-84, GCJ-02 (Amap, Tencent), BD-09 (Baidu) or "
                                "CGCS2000, or leave it blank for the file's crs"))
    codes_s = pd.Series(codes, index=gdf.index)
    differs = codes_s != default
    if not differs.any():
        return gdf.geometry
    if default not in _LONLAT:
        problems.append(Problem(source.where(gdf["_row"][differs].tolist(), column),
                                f"a 坐标系 per row needs longitude/latitude, but the file's crs "
                                f"is {crs!r}", "remove the crs option or the 坐标系 column"))
        return gdf.geometry
    if source.kind == "table":
        cols = [c for c in gdf.columns if c not in ("_row", gdf.geometry.name)]
        lon_col = _io.find_column(cols, lon_column, _io.LON_NAMES, what="longitude",
                                  option="lon_column", source=source)
        lat_col = _io.find_column(cols, lat_column, _io.LAT_NAMES, what="latitude",
                                  option="lat_column", source=source)
        x = pd.to_numeric(gdf[lon_col], errors="coerce").to_numpy(float)
        y = pd.to_numeric(gdf[lat_col], errors="coerce").to_numpy(float)
    else:  # back to the file's own longitude/latitude, then on from each row's system
        x, y = gdf.geometry.x.to_numpy(float), gdf.geometry.y.to_numpy(float)
        if default == "GCJ-02":
            x, y = wgs84_to_gcj02(x, y)
        elif default == "BD-09":
            x, y = wgs84_to_bd09(x, y)
    new_x = np.array(gdf.geometry.x, dtype=float)
    new_y = np.array(gdf.geometry.y, dtype=float)
    for code in sorted(set(codes_s[differs])):
        sel = (codes_s == code).to_numpy()
        new_x[sel], new_y[sel] = to_wgs84(x[sel], y[sel], code)
    return gpd.GeoSeries(gpd.points_from_xy(new_x, new_y), index=gdf.index, crs=gdf.crs)


# ----------------------------------------------------------------------------------- template
_EXAMPLES: dict[str, list[dict[str, object]]] = {
    "zh": [
        {"facility_id": "示例-001", "name": "【示例】跳磴镇中心卫生院", "type": "中心卫生院",
         "lon": 106.4468, "lat": 29.4127, "crs": "GCJ-02", "unit_code": "500104103000",
         "beds": 60, "doctors": 24, "nurses": 31, "gps": 6, "pharmacists": 3,
         "clinical_pharmacists": 0, "grade": "甲级", "standardised": "是",
         "emergency_dept": "是", "fever_clinic": "是", "parent_id": "", "status": "现有"},
        {"facility_id": "示例-002", "name": "【示例】跳磴镇中心卫生院石盘分院", "type": "卫生院",
         "lon": 106.4302, "lat": 29.3903, "crs": "GCJ-02", "unit_code": "500104103210",
         "beds": 10, "doctors": 4, "nurses": 5, "gps": 2, "pharmacists": 1,
         "clinical_pharmacists": 0, "grade": "", "standardised": "否",
         "emergency_dept": "否", "fever_clinic": "否", "parent_id": "示例-001",
         "status": "现有"},
        {"facility_id": "示例-003", "name": "【示例】金鳌村卫生室", "type": "村卫生室",
         "lon": 106.4606, "lat": 29.3969, "crs": "GCJ-02", "unit_code": "500104103211",
         "beds": 0, "doctors": 1, "nurses": 1, "gps": 0, "pharmacists": 0,
         "clinical_pharmacists": 0, "grade": "", "standardised": "否",
         "emergency_dept": "否", "fever_clinic": "否", "parent_id": "", "status": "在建"},
    ],
    "en": [
        {"facility_id": "EXAMPLE-001", "name": "[EXAMPLE] Tiaodeng central health centre",
         "type": "township_health_centre", "lon": 106.4468, "lat": 29.4127, "crs": "GCJ-02",
         "unit_code": "500104103000", "beds": 60, "doctors": 24, "nurses": 31, "gps": 6,
         "pharmacists": 3, "clinical_pharmacists": 0, "grade": "A", "standardised": "yes",
         "emergency_dept": "yes", "fever_clinic": "yes", "parent_id": "",
         "status": "existing"},
        {"facility_id": "EXAMPLE-002", "name": "[EXAMPLE] Tiaodeng health centre, Shipan branch",
         "type": "township_health_centre", "lon": 106.4302, "lat": 29.3903, "crs": "GCJ-02",
         "unit_code": "500104103210", "beds": 10, "doctors": 4, "nurses": 5, "gps": 2,
         "pharmacists": 1, "clinical_pharmacists": 0, "grade": "", "standardised": "no",
         "emergency_dept": "no", "fever_clinic": "no", "parent_id": "EXAMPLE-001",
         "status": "existing"},
        {"facility_id": "EXAMPLE-003", "name": "[EXAMPLE] Jin'ao village clinic",
         "type": "village_clinic", "lon": 106.4606, "lat": 29.3969, "crs": "GCJ-02",
         "unit_code": "500104103211", "beds": 0, "doctors": 1, "nurses": 1, "gps": 0,
         "pharmacists": 0, "clinical_pharmacists": 0, "grade": "", "standardised": "no",
         "emergency_dept": "no", "fever_clinic": "no", "parent_id": "",
         "status": "under construction"},
    ],
}
_SHEETS = {"zh": ("机构名录", "填写说明"), "en": ("facilities", "instructions")}
_NOTE_HEADERS = {"zh": ("列名", "英文列名", "填写说明"),
                 "en": ("column", "Chinese header", "what to write")}
_FIXED_TIME = _dt.datetime(2024, 1, 1)


def _language(language: str) -> str:
    if language not in TEMPLATE_LANGUAGES:
        raise CoverageError(f"no register template in language {language!r}; use one of "
                            f"{', '.join(TEMPLATE_LANGUAGES)}")
    return language


def register_template(language: str = "zh") -> pd.DataFrame:
    """Return the register template: the headers of ``language`` and three example rows.

    The example rows are named ``【示例】...`` (``[EXAMPLE] ...``) and are refused by the
    loader until they are deleted.
    """
    lang = _language(language)
    headers = [getattr(c, lang) for c in REGISTER_COLUMNS]
    rows = [[ex[c.key] for c in REGISTER_COLUMNS] for ex in _EXAMPLES[lang]]
    return pd.DataFrame(rows, columns=headers)


def _csv_bytes(language: str) -> bytes:
    # UTF-8 with BOM: Excel opens it with the Chinese intact
    return register_template(language).to_csv(index=False, lineterminator="\n").encode(
        "utf-8-sig")


def _xlsx_bytes(language: str) -> bytes:
    import openpyxl
    from openpyxl.styles import Font

    lang = _language(language)
    book = openpyxl.Workbook()
    sheet = book.active
    sheet.title = _SHEETS[lang][0]
    frame = register_template(lang)
    sheet.append(list(frame.columns))
    for values in frame.itertuples(index=False):
        sheet.append([None if v == "" else v for v in values])
    for cell in sheet[1]:
        cell.font = Font(bold=True)
    for col in sheet.columns:
        sheet.column_dimensions[col[0].column_letter].width = max(
            10, 2 * len(str(col[0].value)) + 2)
    sheet.freeze_panes = "A2"
    notes = book.create_sheet(_SHEETS[lang][1])
    notes.append(list(_NOTE_HEADERS[lang]))
    other = "en" if lang == "zh" else "zh"
    for c in REGISTER_COLUMNS:
        note = c.zh_note if lang == "zh" else c.en_note
        notes.append([getattr(c, lang), getattr(c, other), note])
    for cell in notes[1]:
        cell.font = Font(bold=True)
    notes.column_dimensions["A"].width = 22
    notes.column_dimensions["B"].width = 22
    notes.column_dimensions["C"].width = 90
    book.properties.creator = "covplan"
    book.properties.created = _FIXED_TIME
    raw = io.BytesIO()
    book.save(raw)
    return _deterministic_zip(raw.getvalue())


def _deterministic_zip(data: bytes) -> bytes:
    """Rewrite a workbook with fixed timestamps, so that the same template gives the same bytes."""
    stamp = _FIXED_TIME.strftime("%Y-%m-%dT%H:%M:%SZ")
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(data)) as src, \
            zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as dst:
        for info in src.infolist():
            body = src.read(info.filename)
            if info.filename == "docProps/core.xml":
                body = re.sub(rb"(<dcterms:modified[^>]*>)[^<]*(</dcterms:modified>)",
                              rb"\g<1>" + stamp.encode() + rb"\g<2>", body)
            member = zipfile.ZipInfo(info.filename, date_time=_FIXED_TIME.timetuple()[:6])
            member.compress_type = zipfile.ZIP_DEFLATED
            member.external_attr = 0o644 << 16
            dst.writestr(member, body)
    return out.getvalue()


def write_register_template(path: str | Path, *, language: str = "zh",
                            overwrite: bool = True) -> Path:
    """Write the facility register template as CSV (UTF-8 with BOM) or XLSX, by the suffix.

    Parameters
    ----------
    path
        ``.csv`` or ``.xlsx`` file to write.
    language
        ``"zh"`` (Chinese headers, 现有/是/否...) or ``"en"``.
    overwrite
        False refuses a file that exists.

    Returns
    -------
    Path
        The file written.

    Raises
    ------
    CoverageError
        Another suffix, an unknown language, or an existing file with ``overwrite=False``.
    """
    out = Path(path)
    suffix = out.suffix.lower()
    if suffix not in (".csv", ".xlsx"):
        raise CoverageError(f"{out.name}: the register template is written as .csv or .xlsx; "
                            "give a file name ending in one of them")
    if not overwrite and out.exists():
        raise CoverageError(f"{out} exists; give another file name, or --force to replace it")
    data = _csv_bytes(language) if suffix == ".csv" else _xlsx_bytes(language)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(data)
    return out


def write_shipped_templates(folder: str | Path) -> list[Path]:
    """Write ``facilities_register_{zh,en}.{csv,xlsx}`` into ``folder`` (``data/templates``)."""
    return [write_register_template(Path(folder) / f"facilities_register_{lang}{suffix}",
                                    language=lang)
            for lang in TEMPLATE_LANGUAGES for suffix in (".csv", ".xlsx")]
