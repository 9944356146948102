"""The one vocabulary of the package: Chinese and English labels, and the urban/rural decoder.

Every table maps a key to ``(Chinese, English)``, the convention of
:data:`covplan.facility_types.FACILITY_TYPES` (whose data stays in that module; its labels are
served here). The tables:

* :data:`FACILITY_TYPE_LABELS` (facility types) and :data:`GROUP_LABELS` (facility groups);
* :data:`UNIT_LEVEL_LABELS` (the levels of units: 区/县, 乡镇/街道, 村/社区) and
  :data:`UNIT_KIND_LABELS` (the kinds of unit within a level: 街道, 镇, 乡, 居委会, 村委会);
* :data:`URBAN_RURAL_LABELS` (城镇/乡村), with :data:`URBAN_RURAL_WORDS` and
  :func:`urban_rural_class`, the one decoder of urban/rural words and NBS class codes;
* :data:`RULE_LABELS` (rule kinds), :data:`STATUS_LABELS` (达标/未达标/不适用) and
  :data:`MODE_LABELS` (travel modes);
* :data:`COLUMN_LABELS` (the columns of the audit's tables and of the exports);
* :data:`TEXT` (the words of the web map, the static map and the report).

:func:`label` looks a key up in the term tables; :func:`text`, :func:`column_label`,
:func:`status_label`, :func:`mode_label`, :func:`facility_type_label` and
:func:`unit_kind_label` serve one table each, and :func:`translate_table` labels a result
table. :data:`LANGUAGES` is the one list of languages (the app's interface uses it too).
"""

from __future__ import annotations

import unicodedata
from collections.abc import Mapping

import pandas as pd
from covplan.errors import CoverageError
from covplan.facility_types import FACILITY_TYPES

__all__ = [
    "ATTRIBUTE_LABELS",
    "COLUMN_LABELS",
    "COMPARISON_LABELS",
    "FACILITY_STATUS_LABELS",
    "FACILITY_TYPE_LABELS",
    "GROUP_LABELS",
    "INPUT_ROLE_LABELS",
    "KIND_SOURCE_LABELS",
    "MANIFEST_KEY_LABELS",
    "LANGUAGES",
    "MODE_LABELS",
    "RULE_LABELS",
    "SENTENCES",
    "STATUS_LABELS",
    "TEXT",
    "THRESHOLD_FIELD_LABELS",
    "UNIT_KIND_LABELS",
    "UNIT_LEVEL_LABELS",
    "URBAN_RURAL_LABELS",
    "URBAN_RURAL_WORDS",
    "UR_SOURCE_LABELS",
    "VALUE_UNIT_LABELS",
    "check_language",
    "column_label",
    "facility_type_label",
    "label",
    "mode_label",
    "pair_join",
    "sentence",
    "status_label",
    "term_pair",
    "text",
    "translate_table",
    "unit_kind_from_name",
    "unit_kind_label",
    "urban_rural_class",
    "value_unit_label",
]

#: The languages of every label, output and the app's interface.
LANGUAGES: tuple[str, ...] = ("en", "zh")

#: Facility type -> (Chinese, English): the data of :data:`covplan.facility_types.FACILITY_TYPES`.
FACILITY_TYPE_LABELS: Mapping[str, tuple[str, str]] = FACILITY_TYPES

#: Facility group (:data:`covplan.facility_types.FACILITY_GROUPS`) -> (Chinese, English).
GROUP_LABELS: dict[str, tuple[str, str]] = {
    "hospitals": ("医院（各等级）", "hospitals (any grade)"),
    "serious_illness": ("可解决大病的医院", "hospitals treating serious illness"),
    "emergency": (
        "急救中心（站）及设急诊的医院", "emergency stations and hospitals with emergency"
    ),
    "grassroots": ("基层医疗卫生机构", "grassroots health facilities"),
    "medical_institutions": ("医疗卫生机构", "medical institutions"),
}

#: Unit level (the ``level`` of units and rules) -> (Chinese, English), as the plans name them.
UNIT_LEVEL_LABELS: dict[str, tuple[str, str]] = {
    "region": ("全域", "whole study area"),
    "county": ("区/县", "district"),
    "district": ("区/县", "district"),
    "township": ("乡镇/街道", "township level"),
    "village": ("村/社区", "village level"),
}

#: Kind of unit within a level -> (Chinese, English): the township level holds sub-districts
#: (街道), towns (镇) and townships (乡); the village level communities (居委会) and
#: administrative villages (村委会). ``township`` and ``village`` are also level keys:
#: :func:`label` gives the level, :func:`unit_kind_label` the kind.
UNIT_KIND_LABELS: dict[str, tuple[str, str]] = {
    "subdistrict": ("街道", "subdistrict"),
    "town": ("镇", "town"),
    "township": ("乡", "township"),
    "community": ("居委会", "community"),
    "village": ("村委会", "village"),
    "other_township": ("其他乡级单位", "other township-level unit"),
    "other_village": ("其他村级单位", "other village-level unit"),
}

#: Urban/rural class -> (Chinese, English).
URBAN_RURAL_LABELS: dict[str, tuple[str, str]] = {
    "urban": ("城镇", "urban"),
    "rural": ("乡村", "rural"),
}

#: Words (lower case, NFKC) a table may use for each urban/rural class; NBS urban-rural class
#: codes 1xx (111 主城区 … 123 特殊区域) are urban and 2xx (210 乡中心区, 220 村庄) rural.
URBAN_RURAL_WORDS: dict[str, str] = {
    "urban": "urban", "u": "urban", "城镇": "urban", "城市": "urban", "城区": "urban",
    "镇区": "urban", "城": "urban", "1": "urban",
    "rural": "rural", "r": "rural", "乡村": "rural", "农村": "rural", "乡": "rural", "2": "rural",
}  # fmt: skip

#: Rule kind (:data:`covplan.standards.rules.RULE_KINDS`) -> (Chinese, English).
RULE_LABELS: dict[str, tuple[str, str]] = {
    "travel_time": ("通行时间覆盖", "travel-time coverage"),
    "distance": ("距离覆盖", "distance coverage"),
    "presence": ("按单元设置", "presence per unit"),
    "population_band": ("服务人口区间", "residents per facility band"),
    "ratio": ("每千常住人口指标", "ratio per 1,000 residents"),
    "count": ("机构数量", "count of facilities"),
    "service": ("按单元设置服务", "service in every unit"),
    "share": ("机构占比", "share of facilities"),
    "attribute_ratio": ("资源配比", "ratio of facility attributes"),
    "tiers": ("分级就医", "care at every tier"),
    "response_time": ("急救响应时间（出车并送达医院）", "two-leg emergency response time"),
    "backup_cover": ("急救备援覆盖（第二近急救站）", "backup cover by a second station"),
}

#: Result status -> (Chinese, English).
STATUS_LABELS: dict[str, tuple[str, str]] = {
    "pass": ("达标", "pass"),
    "fail": ("未达标", "fail"),
    "not_applicable": ("不适用", "not applicable"),
    "cannot_check": ("无法核查", "cannot be checked"),
}

#: Register status of a facility (机构名录 状态) -> (Chinese, English).
FACILITY_STATUS_LABELS: dict[str, tuple[str, str]] = {
    "existing": ("现有", "existing"),
    "under_construction": ("在建", "under construction"),
    "planned": ("规划", "planned"),
}

#: Travel mode -> (Chinese, English), shown in headings and layer names.
MODE_LABELS: dict[str, tuple[str, str]] = {
    "walk": ("步行", "walk"),
    "drive": ("驾车", "drive"),
    "ambulance": ("救护车", "ambulance"),
    "bike": ("骑行", "bike"),
}

#: Column -> (Chinese, English) of every table the audit returns and the exports write (the
#: export files promise 单元编码, 单元名称, 规则, 状态, 人口, 覆盖人口, 覆盖率, 最近机构, 分钟).
COLUMN_LABELS: dict[str, tuple[str, str]] = {
    "rule_id": ("规则编号", "rule id"),
    "rule": ("标准类型", "rule kind"),
    "title": ("规则", "standard"),
    "title_zh": ("规则（中文）", "standard (Chinese)"),
    "unit_id": ("单元编码", "unit id"),
    "unit_name": ("单元名称", "unit"),
    "level": ("层级", "level"),
    "levels": ("检查层级", "levels checked"),
    "unit_kind": ("单元类别", "unit kind"),
    "kind_source": ("类别依据", "kind decided by"),
    "units_cannot_check": ("无法核查单元数", "units that cannot be checked"),
    "status": ("状态", "status"),
    "value": ("指标值", "measured value"),
    "threshold": ("标准值", "threshold"),
    "margin": ("差距", "margin"),
    "value_unit": ("单位", "unit of value"),
    "population": ("人口", "population"),
    "covered_population": ("覆盖人口", "covered population"),
    "facility_count": ("机构数", "facilities"),
    "needed": ("需设置数", "facilities needed"),
    "criterion": ("标准内容", "criterion"),
    "criterion_zh": ("标准内容（中文）", "criterion (Chinese)"),
    "evidence_zh": ("依据（中文）", "evidence (Chinese)"),
    "evidence": ("依据", "evidence"),
    "rule_name": ("规则", "standard"),
    "share": ("覆盖率", "share covered"),
    "place_id": ("居民点编码", "place id"),
    "urban_rural": ("城乡", "urban/rural"),
    "ur_source": ("城乡属性来源", "urban/rural source"),
    "limit": ("时限/距离", "limit"),
    "facility_id": ("最近机构代码", "nearest facility id"),
    "facility_name": ("最近机构", "nearest facility"),
    "covered": ("是否覆盖", "covered"),
    "units_checked": ("检查单元数", "units checked"),
    "units_pass": ("达标单元数", "units passing"),
    "units_fail": ("未达标单元数", "units failing"),
    "units_not_applicable": ("不适用单元数", "units not applicable"),
    "units_total": ("单元总数", "units total"),
    "region_value": ("全域实测值", "region value"),
    "region_status": ("全域结果", "region status"),
    "total_needed": ("需新增机构数", "facilities to add"),
    "source": ("来源文件", "source document"),
    "quote": ("规划原文", "plan wording (quote)"),
    "lon": ("经度", "longitude"),
    "lat": ("纬度", "latitude"),
    "nearest": ("最近机构", "nearest facility"),
    "nearest_name": ("最近机构名称", "nearest facility name"),
    "minutes": ("分钟", "minutes"),
    "key": ("项目", "item"),
    "method": ("人口分配方法", "population method"),
    "weight": ("权重", "weight"),
    "road_m": ("住宅道路长度（米）", "residential road length (m)"),
    "density_km2": ("人口密度（人/平方公里）", "population density (per km²)"),
    "geometry": ("几何", "geometry"),
}

#: Columns that come once per travel mode (``minutes_walk``): headed "分钟（步行）".
_PER_MODE_COLUMNS: tuple[str, ...] = ("nearest_name", "nearest", "minutes")

#: Words of the web map, the static map and the report.
TEXT: dict[str, tuple[str, str]] = {
    "facilities": ("医疗卫生机构", "Health facilities"),
    "units": ("行政单元达标情况", "Units by compliance"),
    "isochrones": ("等时圈", "Isochrones"),
    "isochrone": ("{minutes:g} 分钟等时圈（{mode}）", "{minutes:g}-minute area ({mode})"),
    "uncovered": ("未覆盖居民点（按差距着色）", "Uncovered places (by shortfall)"),
    "covered": ("已覆盖居民点", "Covered places"),
    "proposals": ("建议新址", "Proposed sites"),
    "legend": ("图例", "Legend"),
    "all_pass": ("全部达标", "all standards met"),
    "some_fail": ("有未达标项", "some standard failed"),
    "nothing_checked": ("没有一项标准可以核查", "no standard could be checked"),
    "not_applicable": STATUS_LABELS["not_applicable"],
    "shortfall": ("超出标准分钟数", "minutes beyond the standard"),
    "unreachable": ("不可达", "unreachable"),
    "name": ("名称", "Name"),
    "type": ("类型", "Type"),
    "id": ("编码", "ID"),
    "rules": ("规则", "Rules"),
    "population": ("人口", "Population"),
    "minutes": ("分钟", "Minutes"),
    "nearest": ("最近机构", "Nearest facility"),
    "rank": ("排序", "Rank"),
    "gain": ("新增覆盖人口", "Population gained"),
    "north": ("北", "N"),
    "attribution": ("© OpenStreetMap contributors", "© OpenStreetMap contributors"),
    "report_title": ("医疗卫生服务覆盖评估报告", "Health-service coverage audit"),
    "summary": ("各规则汇总", "Summary by rule"),
    "failing_units": ("未达标单元", "Units that fail"),
    "method": ("方法", "Method"),
    "sources": ("数据来源与许可", "Data sources and licences"),
    "manifest": ("运行清单", "Run manifest"),
    "verdict": ("结论", "Verdict"),
    "none": ("无", "none"),
    "method_text": (
        "在真实道路网络上计算每个居民点到最近医疗卫生机构的出行时间（多源 Dijkstra 最短路径），"
        "按各项标准逐个行政单元核查：出行时间或距离不超过标准值的人口占比、机构配置与人口规模等。"
        "等时圈为从各机构出发在给定分钟内可达的道路范围。",
        "Travel times from every population place to the nearest health facility are computed on "
        "the real road network (multi-source Dijkstra shortest paths). Each standard is checked "
        "per administrative unit: the share of population within the time or distance threshold, "
        "the presence of required facilities, and ratios to population. Isochrones are the areas "
        "reachable from the facilities within the given minutes along roads.",
    ),
    "osm_licence": (
        "道路与设施数据 © OpenStreetMap contributors，依据开放数据库许可（ODbL 1.0）提供。",
        "Road and facility data © OpenStreetMap contributors, available under the Open "
        "Database License (ODbL 1.0).",
    ),
    "extract_date": ("OSM 数据日期", "OSM extract date"),
    "file": ("文件", "File"),
    "role": ("用途", "Role"),
    "generated": ("生成时间", "Generated"),
    # the report's conclusion and appendix
    "conclusion": ("结论", "Conclusion"),
    "met": ("达标的标准（{n} 项）", "Standards met ({n})"),
    "not_met": ("未达标的标准（{n} 项）", "Standards not met ({n})"),
    "cannot_check_list": ("无法核查的标准（{n} 项）", "Standards that cannot be checked ({n})"),
    "not_applicable_list": ("不适用的标准（{n} 项）", "Standards not applicable ({n})"),
    "pass_rate": ("达标率", "Pass rate"),
    "pass_rate_value": ("达标率 {rate}", "pass rate {rate}"),
    "region_share": ("全域覆盖率 {share}", "{share} of residents covered"),
    "shortfall_units": ("{total} 个单元中 {fail} 个未达标（达标率 {rate}）",
                        "{fail} of {total} units fall short (pass rate {rate})"),
    "gap_population": ("缺口人口", "Residents not covered"),
    "unit_gap": ("{unit}：覆盖率 {share}（标准 {need}），缺口人口 {gap} 人",
                 "{unit}: {share} covered (standard {need}), {gap} residents not covered"),
    "unit_value": ("{unit}：{value}（标准 {need}）", "{unit}: {value} (standard {need})"),
    "citation": ("规划依据", "Plan and clause"),
    "appendix": ("附录：运行清单", "Appendix: run manifest"),
    "overrides": ("本次调整的标准值", "Thresholds changed for this run"),
    "no_overrides": ("本次未调整标准值", "No threshold was changed"),
    "changed_from": ("{rule}：{field}由 {old} 调整为 {new}",
                     "{rule}: {field} changed from {old} to {new}"),
    "software": ("软件版本", "Software"),
    "manifest_json": ("运行清单全文（JSON，不含目录路径）",
                      "Manifest (JSON, without folder paths)"),
    # console lines of the covplan command (format fields in braces)
    "console_validated": (
        "{name}：检查通过 - {standards} 项标准，{facilities} 个医疗卫生机构，{units} 个行政单元，"
        "{places} 个居民点，常住人口 {population:,.0f} 人",
        "{name}: OK - {standards} standards, {facilities} facilities, {units} units, "
        "{places} population places, population {population:,.0f}",
    ),
    "console_note": ("提示：{problem}", "Note: {problem}"),
    "console_rule": (
        "{rule_id:<10} {status:<6} 达标单元 {passed}/{checked}  全域：{shown} {value_unit}  "
        "层级：{levels}",
        "{rule_id:<10} {status:<15} units passing {passed}/{checked}  region: {shown} "
        "{value_unit}  level: {levels}",
    ),
    "console_cannot_check": ("{pad}无法核查：{reason}", "{pad}cannot be checked: {reason}"),
    "console_written": ("成果已写入 {folder}", "Outputs written to {folder}"),
    "console_isochrones": ("已写入 {count} 个等时圈：{folder}",
                           "{count} isochrones written to {folder}"),
    "console_map": ("地图已写入 {path}", "Map written to {path}"),
}

#: Role of an input file in the run manifest -> (Chinese, English).
INPUT_ROLE_LABELS: dict[str, tuple[str, str]] = {
    "scenario": ("情景文件", "scenario"),
    "facilities": ("医疗卫生机构名录", "facilities"),
    "boundaries": ("行政单元边界", "boundaries"),
    "units": ("行政单元边界", "units"),
    "population": ("人口", "population"),
    "network": ("路网", "network"),
    "dem": ("高程", "dem"),
    "urban_rural": ("城乡划分", "urban_rural"),
}

#: Top-level keys of the run manifest -> (Chinese, English), as the xlsx manifest sheet shows them.
MANIFEST_KEY_LABELS: dict[str, tuple[str, str]] = {
    "created": ("生成时间", "created"),
    "inputs": ("输入文件", "inputs"),
    "osm_extract_date": ("OSM 数据日期", "osm_extract_date"),
    "packages": ("软件包版本", "packages"),
    "parameters": ("运行参数", "parameters"),
    "overrides": ("调整的标准值", "overrides"),
    "platform": ("运行平台", "platform"),
    "python": ("Python 版本", "python"),
    "timings": ("各步骤用时（秒）", "timings"),
    "outputs": ("输出文件", "outputs"),
    "run": ("运行概况", "run"),
    "manifest_sha256": ("清单哈希（SHA-256）", "manifest_sha256"),
}

#: Threshold fields of the rules (:data:`covplan.standards.plans.THRESHOLD_FIELDS`) ->
#: (Chinese, English), as the report names a changed threshold.
THRESHOLD_FIELD_LABELS: dict[str, tuple[str, str]] = {
    "minutes": ("时限（分钟）", "minutes"),
    "km": ("距离（公里）", "km"),
    "min_count": ("最少个数", "min_count"),
    "max_count": ("最多个数", "max_count"),
    "lower": ("服务人口下限", "lower"),
    "upper": ("服务人口上限", "upper"),
    "target": ("目标值", "target"),
}

#: The tables :func:`label` searches, in this order (the first that has the key wins).
_TERM_TABLES: tuple[Mapping[str, tuple[str, str]], ...] = (
    RULE_LABELS, STATUS_LABELS, URBAN_RURAL_LABELS, MODE_LABELS, UNIT_LEVEL_LABELS,
    COLUMN_LABELS, FACILITY_TYPE_LABELS, GROUP_LABELS, UNIT_KIND_LABELS,
)  # fmt: skip

#: Name endings of each unit kind, longest first (NBS names: 新山村街道办事处, 平安社区居委会).
_KIND_ENDINGS: tuple[tuple[str, str], ...] = (
    ("街道办事处", "subdistrict"), ("居民委员会", "community"), ("村民委员会", "village"),
    ("社区委员会", "community"),
    ("街道办", "subdistrict"), ("居委会", "community"), ("村委会", "village"),
    ("街道", "subdistrict"), ("社区", "community"), ("镇", "town"), ("乡", "township"),
    ("村", "village"),
)  # fmt: skip


def check_language(language: str | None) -> str:
    """Return ``language`` as one of :data:`LANGUAGES` (``None`` is English; ``zh-CN`` is zh).

    Raises
    ------
    CoverageError
        For any other language code.
    """
    lang = (language or "en").lower()
    for known in LANGUAGES:
        if lang.startswith(known):
            return known
    raise CoverageError(
        f"unknown output language {language!r} (use 'zh' for Chinese or 'en' for English)"
    )


def _pick(pair: tuple[str, str], language: str | None) -> str:
    return pair[0] if check_language(language) == "zh" else pair[1]


def label(key: str, *, language: str | None = "en") -> str:
    """Return the label of a term.

    The term tables are searched in this order: rule kind, status, urban/rural class, travel
    mode, unit level, column, facility type, facility group, unit kind.

    Parameters
    ----------
    key
        E.g. ``"travel_time"``, ``"pass"``, ``"covered_population"``, ``"village_clinic"``.
    language
        ``"en"`` or ``"zh"`` (see :func:`check_language`).

    Returns
    -------
    str
        The label; ``key`` itself when it has none.

    Raises
    ------
    CoverageError
        For an unknown language.

    Examples
    --------
    >>> label("pass", language="zh"), label("township", language="zh")
    ('达标', '乡镇/街道')
    """
    lang = check_language(language)
    for table in _TERM_TABLES:
        if key in table:
            return _pick(table[key], lang)
    return key


def facility_type_label(name: str, *, language: str | None = "en") -> str:
    """Return the label of a facility type or group (the name itself when unknown)."""
    pair = FACILITY_TYPE_LABELS.get(name) or GROUP_LABELS.get(name)
    return _pick(pair, language) if pair else name


def unit_kind_label(kind: str, *, language: str | None = "en") -> str:
    """Return the label of a kind of unit (:data:`UNIT_KIND_LABELS`; unknown kinds unchanged)."""
    pair = UNIT_KIND_LABELS.get(kind)
    return _pick(pair, language) if pair else kind


def unit_kind_from_name(name: object) -> str | None:
    """Return the kind of unit a Chinese unit name ends in, None when it shows none.

    Examples
    --------
    >>> unit_kind_from_name("新山村街道办事处"), unit_kind_from_name("跳磴镇")
    ('subdistrict', 'town')
    >>> unit_kind_from_name("平安社区居委会"), unit_kind_from_name("双河村")
    ('community', 'village')
    >>> unit_kind_from_name("") is None
    True
    """
    text = unicodedata.normalize("NFKC", "" if name is None else str(name)).strip()
    for ending, kind in _KIND_ENDINGS:
        if text.endswith(ending) and len(text) > len(ending):
            return kind
    return None


def text(key: str, language: str | None, **fields: object) -> str:
    """Return the string ``key`` of :data:`TEXT` in ``language``, formatted with ``fields``."""
    value = _pick(TEXT[key], language)
    return value.format(**fields) if fields else value


def column_label(column: str, language: str | None) -> str:
    """Return the heading of an exported column.

    English headings are the column keys (stable for scripts); Chinese ones come from
    :data:`COLUMN_LABELS`; unknown columns keep their name.
    """
    if check_language(language) == "en":
        return column
    pair = COLUMN_LABELS.get(column)
    return pair[0] if pair else column


def status_label(status: str, language: str | None) -> str:
    """Return the word for a status value (unknown values are returned unchanged)."""
    pair = STATUS_LABELS.get(status)
    return _pick(pair, language) if pair else status


def mode_label(mode: str, language: str | None) -> str:
    """Return the name of a travel mode (unknown modes keep their key)."""
    pair = MODE_LABELS.get(mode)
    return _pick(pair, language) if pair else mode


def _blank(value: object) -> bool:
    if value is None or value is pd.NA or value is pd.NaT:
        return True
    return isinstance(value, float) and value != value


def urban_rural_class(value: object, *, strict: bool = True) -> str | None:
    """Decode an urban/rural word or NBS class code to ``"urban"``, ``"rural"`` or None.

    The one decoder of the package (user columns, NBS tables, joins). Accepted: the words of
    :data:`URBAN_RURAL_WORDS` (urban/rural, 城镇/城市/城区/镇区/城, 乡村/农村/乡, u/r, 1/2,
    case-insensitive, full-width forms too) and 3-digit NBS urban-rural class codes (1xx
    urban, 2xx rural; ``111.0`` as read from a spreadsheet too).

    Parameters
    ----------
    value
        One cell. Blanks (None, NaN, ``""``, ``"nan"``, ``"none"``) give None.
    strict
        Raise for a value that is neither a word nor a code; when False return None.

    Raises
    ------
    ValueError
        With the value, when ``strict`` and the value is not a class.

    Examples
    --------
    >>> urban_rural_class("城镇"), urban_rural_class(220), urban_rural_class("121.0")
    ('urban', 'rural', 'urban')
    >>> urban_rural_class("9", strict=False) is None
    True
    """
    if _blank(value):
        return None
    word = unicodedata.normalize("NFKC", str(value)).strip().lower()
    if word.endswith(".0"):
        word = word[:-2]
    if word in ("", "nan", "none", "<na>"):
        return None
    if word in URBAN_RURAL_WORDS:
        return URBAN_RURAL_WORDS[word]
    if len(word) == 3 and word.isdigit() and word[0] in "12":
        return "urban" if word[0] == "1" else "rural"
    if strict:
        raise ValueError(value)
    return None


def translate_table(
    table: pd.DataFrame, *, language: str | None = "en", values: bool = True
) -> pd.DataFrame:
    """Return a copy of a result table with labelled columns (and statuses, kinds, classes).

    Parameters
    ----------
    table
        A table of the audit (:class:`covplan.standards.audit.AuditResult`) or of a run.
    language
        ``"en"`` or ``"zh"``.
    values
        Also translate the values of ``status``, ``region_status``, ``rule``, ``urban_rural``,
        ``level`` and ``mode``.

    Per-mode columns (``minutes_walk``, ``nearest_drive``, ``nearest_name_walk``) are headed
    like the places export (``分钟（步行）``); columns without a label keep their name.

    Returns
    -------
    pandas.DataFrame
        The copy; the active geometry column of a GeoDataFrame keeps its name (renaming it
        would leave the frame without geometry).
    """
    lang = check_language(language)
    out = table.copy()
    if values:
        maps: Mapping[str, Mapping[str, tuple[str, str]]] = {
            "status": STATUS_LABELS, "region_status": STATUS_LABELS, "rule": RULE_LABELS,
            "urban_rural": URBAN_RURAL_LABELS, "level": UNIT_LEVEL_LABELS, "mode": MODE_LABELS,
            "unit_kind": UNIT_KIND_LABELS,
        }  # fmt: skip
        for col, table_map in maps.items():
            if col in out.columns:
                out[col] = out[col].map(
                    lambda v, m=table_map: _pick(m[v], lang) if isinstance(v, str) and v in m
                    else v
                )
    geometry = getattr(table, "_geometry_column_name", None)
    return out.rename(columns={c: _column_heading(str(c), lang)
                               for c in out.columns if c != geometry})


def _column_heading(column: str, language: str) -> str:
    """Readable heading of a column: its label, ``分钟（步行）`` for per-mode ones, else itself."""
    if column in COLUMN_LABELS:
        return _pick(COLUMN_LABELS[column], language)
    for base in _PER_MODE_COLUMNS:
        mode = column.removeprefix(f"{base}_")
        if mode != column and mode in MODE_LABELS:
            head, name = _pick(COLUMN_LABELS[base], language), _pick(MODE_LABELS[mode], language)
            return f"{head}（{name}）" if language == "zh" else f"{head} ({name})"
    return column


# ------------------------------------------------------------------ sentences of the rules
#: Sentences of the rules (evidence and criteria) -> (Chinese, English) templates. The rules
#: of :mod:`covplan.standards.rules` fill both forms from the same fields
#: (:func:`sentence`), so ``evidence`` / ``evidence_zh`` and ``criterion`` / ``criterion_zh``
#: always say the same thing.
SENTENCES: dict[str, tuple[str, str]] = {
    # travel-time and distance coverage
    "cov_criterion": ("{how}{limits}内可到达{types}的常住人口占{share}",
                      "{share} of residents within {limits} {how} of {types}"),
    "cov_limit": ("{value}{unit}", "{value} {unit}"),
    "cov_limit_class": ("{value}{unit}（{cls}）", "{value} {unit} ({cls})"),
    "cov_how_time": ("{mode}", "by {mode}"),
    "cov_how_road": ("道路距离", "by road"),
    "cov_how_line": ("直线距离", "in a straight line"),
    "cov_all": ("全部 {n} 个居民点均已覆盖", "all {n} places covered"),
    "cov_all_far": ("全部 {n} 个居民点均已覆盖；最远的居民点 {place} 为 {value}{unit}",
                    "all {n} places covered; farthest place {place} at {value} {unit}"),
    "cov_some": ("{n} 个居民点中 {k} 个未覆盖，涉及 {pop} 人；最远的居民点 {place}：{far}"
                 "（标准 {limit}{unit}）",
                 "{k} of {n} places uncovered, {pop} residents; worst {place}: {far} "
                 "(limit {limit} {unit})"),
    "cov_far": ("距{facility} {value}{unit}", "{value} {unit} to {facility}"),
    "cov_unreachable": ("不可达任何机构", "no reachable facility"),
    "cov_no_residents": ("本标准适用的居民点无常住人口",
                         "no residents in places this threshold applies to"),
    # presence
    "pres_criterion": ("每个{scope}设置{count}{types}", "{count} of {types} in each {scope}"),
    "pres_exactly": ("{n}个", "exactly {n}"),
    "pres_at_least": ("至少{n}个", "at least {n}"),
    "pres_between": ("{lo}-{hi}个", "{lo}-{hi}"),
    "pres_too_many": ("{n} 个机构，多于 {max} 个：{listed}",
                      "{n} facilities, more than {max}: {listed}"),
    "pres_inside": ("单元内 {n} 个：{listed}", "{n} inside: {listed}"),
    "pres_missing": ("单元内 {n} 个，缺 {k} 个", "{n} inside, {k} missing"),
    "pres_exempt": ("免于设置：{reason}", "exempt: {reason}"),
    "pres_counted_once": ("{head}（含{others}，合并计为1个）",
                          "{head} (with {others}, counted once)"),
    "exempt_hosts": ("设有{names}", "hosts {names}"),
    "exempt_small": ("常住人口 {pop} 人，少于 {limit} 人（由巡诊服务）",
                     "population {pop} < {limit} (served by outreach)"),
    "exempt_near": ("临近{types}（平均 {mean}{unit}，不超过 {limit}{unit}）",
                    "near {types} ({mean} {unit} <= {limit} {unit})"),
    # scope of a rule
    "scope_kind_unknown": (
        "本标准仅适用于{wanted}，该单元类别未知（无统计用区划代码，名称也不以街道/镇/乡/社区/村"
        "结尾）：请为单元提供类别列（kind_column）或12位统计用区划代码",
        "rule applies to {wanted} only and the kind of this unit is unknown (no NBS code, no "
        "name ending 街道/镇/乡/社区/村): give the units a kind_column or their 12-digit codes"),
    "scope_kind_other": ("本标准仅适用于{wanted}；该单元为{kind}（依据：{source}）",
                         "rule applies to {wanted} only; this unit is a {kind_zh} ({kind}, "
                         "from its {source})"),
    "scope_class": ("本标准仅适用于{cls}单元；该单元为{this}",
                    "rule applies to {cls} units; this unit is {this}"),
    "scope_name": ("本标准仅适用于名称匹配 {pattern} 的单元",
                   "rule applies to units whose name matches {pattern}"),
    "unclassified": ("未分类", "unclassified"),
    # population band
    "band_criterion": ("每个{scope}内每{lo}-{hi}常住人口设置1个{types}",
                       "{lo}-{hi} residents per {types} in each {scope}"),
    "band_excluded": ("不核查：单元内设有{types}", "excluded: hosts a {types}"),
    "no_population": ("无常住人口", "no population"),
    "band_no_fit": ("常住人口 {pop} 人：任何整数个机构都不能使每个机构的服务人口落在 {lo}-{hi} "
                    "人之间（1个机构的服务人口也少于 {lo} 人）；现有 {n} 个",
                    "{pop} residents: no whole number of facilities puts them inside {lo}-{hi} "
                    "(one facility would serve fewer than {lo}); {n} present"),
    "band_under": ("配置不足：{n} 个机构服务 {pop} 人；需 {need} 个（还差 {more} 个）",
                   "under-provided: {n} for {pop} residents; needs {need} ({more} more)"),
    "band_over": ("配置过多：{n} 个机构服务 {pop} 人；最多 {most} 个符合区间",
                  "over-provided: {n} for {pop} residents; at most {most} fit the band"),
    "band_pass": ("{n} 个机构服务 {pop} 人（每个机构 {per} 人）",
                  "{n} for {pop} residents ({per} each)"),
    # ratio
    "ratio_criterion": ("每{per}常住人口{attr}{cmp}{target}",
                        "{attr} per {per} residents {cmp} {target}"),
    "ratio_no_values": ("机构数据没有“{attr}”的数值：请在机构图层中加入 {column} 列",
                        "facilities have no {column!r} values: add a {column} column to the "
                        "facility layer"),
    "ratio_evidence": ("{n} 个机构共有{attr} {total}，服务常住人口 {pop} 人{note}",
                       "{total} {attr} in {n} facilities for {pop} residents{note}"),
    "ratio_lacking": ("；{k} 个机构无数值，按0计：{names}",
                      "; {k} without a value, counted as 0: {names}"),
    "ratio_unit": ("每{per}人{attr}", "{attr} per {per}"),
    # a level the data lacks
    "level_missing": ("数据中没有本标准核查的单元层级（{level}），无法核查："
                      "请在单元图层中加入该层级", "{detail}"),
    "none": ("无", "none"),
    "list_sep": ("、", ", "),
    "limit_sep": ("/", " / "),
    "reason_sep": ("；", "; "),
}

#: Attribute of a ratio rule -> (Chinese, English).
ATTRIBUTE_LABELS: dict[str, tuple[str, str]] = {
    "beds": ("床位数", "beds"),
    "doctors": ("执业（助理）医师数", "doctors"),
    "nurses": ("注册护士数", "nurses"),
}

#: Comparison of a ratio rule -> (Chinese, English).
COMPARISON_LABELS: dict[str, tuple[str, str]] = {">=": ("不少于", ">="), "<=": ("不超过", "<=")}

#: Unit of a measured value (the ``value_unit`` column and the place tables) -> (Chinese, English).
VALUE_UNIT_LABELS: dict[str, tuple[str, str]] = {
    "min": ("分钟", "min"),
    "km": ("公里", "km"),
    "share of residents": ("常住人口占比", "share of residents"),
    "share of units passing": ("达标单元占比", "share of units passing"),
    "facilities": ("个", "facilities"),
    "residents per facility": ("人/机构", "residents per facility"),
    "residents": ("人", "residents"),
}

#: Which source decided a place's urban/rural class (``ur_source``) -> (Chinese, English).
UR_SOURCE_LABELS: dict[str, tuple[str, str]] = {
    "column": ("数据列", "column"),
    "nbs": ("统计用城乡分类代码", "nbs"),
    "density": ("人口密度", "density"),
    "default": ("默认", "default"),
}

#: Where a unit's kind came from (``kind_source``) -> (Chinese, English).
KIND_SOURCE_LABELS: dict[str, tuple[str, str]] = {
    "code": ("统计用区划代码", "code"),
    "name": ("名称", "name"),
    "column": ("类别列", "column"),
    "data": ("数据", "data"),
}


def sentence(key: str, **fields: object) -> tuple[str, str]:
    """Return the sentence ``key`` of :data:`SENTENCES` as ``(Chinese, English)``.

    A field given as a ``(Chinese, English)`` pair is put into each form in its language;
    any other field goes into both forms as it is.

    Examples
    --------
    >>> sentence("pres_missing", n=0, k=1)
    ('单元内 0 个，缺 1 个', '0 inside, 1 missing')
    >>> sentence("cov_how_time", mode=MODE_LABELS["walk"])
    ('步行', 'by walk')
    """
    zh, en = SENTENCES[key]
    pick = [{k: (v[i] if isinstance(v, tuple) and len(v) == 2 else v)
             for k, v in fields.items()} for i in (0, 1)]
    return zh.format(**pick[0]), en.format(**pick[1])


def pair_join(pairs: list[tuple[str, str]], sep: str = "list_sep") -> tuple[str, str]:
    """Join ``(Chinese, English)`` pairs with the separator ``sep`` of :data:`SENTENCES`."""
    zh_sep, en_sep = SENTENCES[sep]
    return zh_sep.join(p[0] for p in pairs), en_sep.join(p[1] for p in pairs)


def term_pair(table: Mapping[str, tuple[str, str]], key: object) -> tuple[str, str]:
    """Return ``table[key]``, or ``(key, key)`` for a key without a label."""
    return table.get(str(key), (str(key), str(key)))


def value_unit_label(unit: object, language: str | None) -> object:
    """Return the word for a value unit (``min`` -> 分钟; ``beds per 1000`` -> 每1000人床位数)."""
    if not isinstance(unit, str):
        return unit
    if unit in VALUE_UNIT_LABELS:
        return _pick(VALUE_UNIT_LABELS[unit], language)
    attr, sep, per = unit.partition(" per ")
    if sep and check_language(language) == "zh":
        return sentence("ratio_unit", per=per, attr=term_pair(ATTRIBUTE_LABELS, attr))[0]
    return unit
