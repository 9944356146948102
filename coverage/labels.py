"""Chinese and English labels for rule kinds, facility types, statuses and result columns.

Facility types reuse :data:`covplan.facility_types.FACILITY_TYPES`; hospitals by grade are
its ``hospital_grade_1/2/3`` entries (一级/二级/三级医院).
"""

from __future__ import annotations

from collections.abc import Mapping

import pandas as pd
from covplan.errors import CoverageError
from covplan.facility_types import FACILITY_GROUPS, FACILITY_TYPES

__all__ = [
    "COLUMN_LABELS",
    "GROUP_LABELS",
    "LANGUAGES",
    "RULE_LABELS",
    "STATUS_LABELS",
    "URBAN_RURAL_LABELS",
    "facility_type_label",
    "label",
    "translate_table",
]

LANGUAGES: tuple[str, ...] = ("en", "zh")

#: Rule kind -> (Chinese, English).
RULE_LABELS: dict[str, tuple[str, str]] = {
    "travel_time": ("通行时间覆盖", "travel-time coverage"),
    "distance": ("距离覆盖", "distance coverage"),
    "presence": ("按单元设置", "presence per unit"),
    "population_band": ("服务人口区间", "residents per facility band"),
    "ratio": ("每千人口指标", "ratio per 1,000 residents"),
}

#: Facility group -> (Chinese, English).
GROUP_LABELS: dict[str, tuple[str, str]] = {
    "hospitals": ("医院（各等级）", "hospitals (any grade)"),
    "serious_illness": ("可解决大病的医院", "hospitals treating serious illness"),
    "emergency": ("急救站及设急诊的医院", "emergency stations and hospitals with emergency"),
    "grassroots": ("基层医疗卫生机构", "grassroots health facilities"),
    "medical_institutions": ("医疗卫生机构", "medical institutions"),
}

#: Result status -> (Chinese, English).
STATUS_LABELS: dict[str, tuple[str, str]] = {
    "pass": ("达标", "pass"),
    "fail": ("未达标", "fail"),
    "not_applicable": ("不适用", "not applicable"),
}

#: Urban/rural class -> (Chinese, English).
URBAN_RURAL_LABELS: dict[str, tuple[str, str]] = {
    "urban": ("城镇", "urban"),
    "rural": ("乡村", "rural"),
}

#: Result column -> (Chinese, English), for every table the audit returns and the exports
#: write (the one place these headings are defined; the exports add only their own columns).
COLUMN_LABELS: dict[str, tuple[str, str]] = {
    "rule_id": ("规则编号", "rule id"),
    "rule": ("标准类型", "rule kind"),
    "title": ("规则", "standard"),
    "unit_id": ("单元编码", "unit id"),
    "unit_name": ("单元名称", "unit"),
    "level": ("层级", "level"),
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
    "region_value": ("全域实测值", "region value"),
    "region_status": ("全域结果", "region status"),
    "total_needed": ("需新增机构数", "facilities to add"),
    "source": ("来源文件", "source document"),
    "quote": ("规划原文", "plan wording (quote)"),
}


def _pick(pair: tuple[str, str], language: str) -> str:
    if language not in LANGUAGES:
        raise CoverageError(f"language must be one of {LANGUAGES}, got {language!r}")
    return pair[0] if language == "zh" else pair[1]


def facility_type_label(name: str, *, language: str = "en") -> str:
    """Return the label of a facility type or group (the name itself when unknown)."""
    pair = FACILITY_TYPES.get(name) or GROUP_LABELS.get(name)
    if pair is None and name in FACILITY_GROUPS:
        return name
    return _pick(pair, language) if pair else name


def label(key: str, *, language: str = "en") -> str:
    """Return the label of a rule kind, status, class, column, facility type or group.

    Parameters
    ----------
    key
        E.g. ``"travel_time"``, ``"pass"``, ``"covered_population"``, ``"village_clinic"``.
    language
        ``"en"`` or ``"zh"``.

    Returns
    -------
    str
        The label; ``key`` itself when it has none.
    """
    for table in (RULE_LABELS, STATUS_LABELS, URBAN_RURAL_LABELS, COLUMN_LABELS):
        if key in table:
            return _pick(table[key], language)
    return facility_type_label(key, language=language)


def translate_table(
    table: pd.DataFrame, *, language: str = "en", values: bool = True
) -> pd.DataFrame:
    """Return a copy of a result table with labelled columns (and statuses, kinds, classes).

    Parameters
    ----------
    table
        A table of the audit (:class:`covplan.standards.audit.AuditResult`).
    language
        ``"en"`` or ``"zh"``.
    values
        Also translate the values of ``status``, ``rule`` and ``urban_rural``.
    """
    out = table.copy()
    if values:
        maps: Mapping[str, Mapping[str, tuple[str, str]]] = {
            "status": STATUS_LABELS, "rule": RULE_LABELS, "urban_rural": URBAN_RURAL_LABELS,
            "region_status": STATUS_LABELS,
        }  # fmt: skip
        for col, table_map in maps.items():
            if col in out.columns:
                out[col] = out[col].map(
                    lambda v, m=table_map: _pick(m[v], language) if v in m else v
                )
    return out.rename(columns={c: _pick(COLUMN_LABELS[c], language)
                               for c in out.columns if c in COLUMN_LABELS})
