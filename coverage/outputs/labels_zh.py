"""Column headings, status words and map/report strings of the exports, in Chinese and English.

Each entry is ``key -> (Chinese, English)``, the convention of
:data:`covplan.facility_types.FACILITY_TYPES`. Status words, urban/rural classes and the
headings of audit columns the exports do not name themselves come from
:mod:`covplan.labels`; the headings here are the ones the export files promise (单元编码,
单元名称, 规则, 状态, 人口, 覆盖人口, 覆盖率, 最近机构, 分钟). Rule names come from the rules
themselves (the ``rule_name`` column of a run's tables).
"""

from __future__ import annotations

from covplan.errors import CoverageError
from covplan.labels import COLUMN_LABELS, STATUS_LABELS, URBAN_RURAL_LABELS

__all__ = [
    "COLUMNS",
    "STATUS",
    "TEXT",
    "URBAN_RURAL",
    "check_language",
    "column_label",
    "mode_label",
    "status_label",
    "text",
]

LANGUAGES = ("en", "zh")

#: Headings of the exports' own columns; the audit's columns are in covplan.labels.
COLUMNS: dict[str, tuple[str, str]] = {
    "units_passing": ("达标单元数", "units_passing"),
    "units_total": ("单元总数", "units_total"),
    "lon": ("经度", "lon"),
    "lat": ("纬度", "lat"),
    "nearest": ("最近机构", "nearest"),
    "nearest_name": ("最近机构名称", "nearest_name"),
    "minutes": ("分钟", "minutes"),
    "key": ("项目", "key"),
}

#: Status words and urban/rural classes are shared with the audit's tables.
STATUS: dict[str, tuple[str, str]] = STATUS_LABELS
URBAN_RURAL: dict[str, tuple[str, str]] = URBAN_RURAL_LABELS

#: Travel-mode names shown in headings and layer names.
MODES: dict[str, tuple[str, str]] = {
    "walk": ("步行", "walk"),
    "drive": ("驾车", "drive"),
    "ambulance": ("救护车", "ambulance"),
    "bike": ("骑行", "bike"),
}

#: Words of the map, the static map and the report.
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
    "not_applicable": ("不适用", "not applicable"),
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
}


def check_language(language: str | None) -> str:
    """Return ``language`` normalised to ``"en"`` or ``"zh"``.

    Raises
    ------
    CoverageError
        For any other language code.
    """
    lang = (language or "en").lower()
    if lang.startswith("zh"):
        return "zh"
    if lang.startswith("en"):
        return "en"
    raise CoverageError(
        f"unknown output language {language!r} (use 'zh' for Chinese or 'en' for English)"
    )


def _pick(pair: tuple[str, str], language: str) -> str:
    return pair[0] if check_language(language) == "zh" else pair[1]


def text(key: str, language: str, **fields: object) -> str:
    """Return the export string ``key`` in ``language``, formatted with ``fields``."""
    value = _pick(TEXT[key], language)
    return value.format(**fields) if fields else value


def column_label(column: str, language: str) -> str:
    """Return the heading of ``column``.

    English headings are the column keys (stable for scripts); Chinese ones come from
    :data:`COLUMNS`, then :data:`covplan.labels.COLUMN_LABELS`; unknown columns keep their
    name.
    """
    if check_language(language) == "en":
        return column
    pair = COLUMNS.get(column) or COLUMN_LABELS.get(column)
    return pair[0] if pair else column


def status_label(status: str, language: str) -> str:
    """Return the word for a status value (unknown values are returned unchanged)."""
    pair = STATUS.get(status)
    return _pick(pair, language) if pair else status


def mode_label(mode: str, language: str) -> str:
    """Return the name of a travel mode (unknown modes keep their key)."""
    pair = MODES.get(mode)
    return _pick(pair, language) if pair else mode
