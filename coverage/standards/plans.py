"""The plan documents the shipped standards come from, and what a run changed in them.

* :data:`PLAN_TITLES`: seed file -> the plan's full title, in Chinese (as the document names
  itself, with its document number where it has one) and in English. Outputs cite a rule's
  plan as :func:`plan_citation` gives it (``《重庆市沙坪坝区卫生健康发展“十四五”规划》``),
  never by the seed's file name.
* :func:`rule_changes`: the thresholds of a rule that differ from its preset (an
  ``override`` in the scenario or ``--set BZ-12.minutes=20``), and :func:`current_titles`, the
  rule's titles with the current threshold and the original one
  (``城区20分钟急救圈（原标准15分钟）``).
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from functools import cache
from typing import Any

from covplan.labels import check_language
from covplan.standards.presets import list_presets, preset_tables

__all__ = [
    "PLAN_TITLES",
    "THRESHOLD_FIELDS",
    "current_titles",
    "plan_citation",
    "plan_title",
    "rule_changes",
    "rule_overrides",
]

#: Seed file -> (Chinese full title, English title) of the plan (the five seeds of
#: docs/standards-from-plans.md; the Chinese title as the document names itself).
PLAN_TITLES: dict[str, tuple[str, str]] = {
    "000_4feffd95a8c6be53.txt": (
        "《大渡口区进一步完善医疗卫生服务体系实施方案》（大渡口府办发〔2024〕28号）",
        "Dadukou District: implementation plan for further improving the medical and health "
        "service system (Dadukou Fubanfa [2024] No. 28)",
    ),
    "001_9353a596acdf4576.txt": (
        "《重庆市永川区建设区域性医疗中心实施方案》（永川府办发〔2022〕119号）",
        "Yongchuan District, Chongqing: implementation plan for building a regional medical "
        "centre (Yongchuan Fubanfa [2022] No. 119)",
    ),
    "002_4e352a708a2be2a6.txt": (
        "巴中市《关于深化医疗卫生服务体系改革 促进卫生健康事业高质量发展的实施意见"
        "（征求意见稿）》",
        "Bazhong City: implementation opinions on deepening the reform of the medical and "
        "health service system and promoting high-quality development of health (draft for "
        "comment)",
    ),
    "003_2d4d48866867521e.txt": (
        "《重庆市沙坪坝区卫生健康发展“十四五”规划》",
        "Shapingba District, Chongqing: 14th Five-Year Plan for health development",
    ),
    "004_dec91b6d16cc7e29.txt": (
        "《重庆市大足区“十四五”卫生健康事业发展规划》",
        "Dazu District, Chongqing: 14th Five-Year Plan for health",
    ),
}

#: Rule kind -> the fields holding its threshold, with their unit (Chinese, English).
THRESHOLD_FIELDS: dict[str, dict[str, tuple[str, str]]] = {
    "travel_time": {"minutes": ("分钟", " minutes")},
    "distance": {"km": ("公里", " km")},
    "presence": {"min_count": ("个", ""), "max_count": ("个", "")},
    "population_band": {"lower": ("人", " residents"), "upper": ("人", " residents")},
    "ratio": {"target": ("", "")},
}


def plan_title(source: object, language: str | None = "zh") -> str:
    """Return the full title of the plan a rule cites, or ``source`` itself when unknown.

    Parameters
    ----------
    source
        The rule's ``source`` (a seed file name, or a title a user wrote).
    language
        ``"zh"``: the Chinese title in 《》; ``"en"``: the English title.

    Examples
    --------
    >>> plan_title("003_2d4d48866867521e.txt")
    '《重庆市沙坪坝区卫生健康发展“十四五”规划》'
    """
    text = "" if source is None or (isinstance(source, float) and math.isnan(source)) else str(
        source)
    pair = PLAN_TITLES.get(text.strip())
    if pair is None:
        return text
    return pair[0] if check_language(language) == "zh" else pair[1]


def plan_citation(source: object, quote: object = "", language: str | None = "zh") -> str:
    """Return the plan's title followed by the clause quoted (``《…》：「…」``)."""
    title = plan_title(source, language)
    clause = "" if not isinstance(quote, str) else quote.strip()
    if not clause:
        return title
    if check_language(language) == "zh":
        return f"{title}：「{clause}」" if title else f"「{clause}」"
    return f"{title}: 「{clause}」" if title else f"「{clause}」"


@cache
def _preset_rules() -> dict[tuple[str, str], dict[str, Any]]:
    rules: dict[tuple[str, str], dict[str, Any]] = {}
    for name in list_presets():
        for table in preset_tables(name):
            rules[(str(table.get("source", "")), str(table.get("id", "")))] = table
    return rules


def _original(rule: Any) -> Mapping[str, Any] | None:
    return _preset_rules().get((str(getattr(rule, "source", "")), str(getattr(rule, "id", ""))))


def _numbers(value: Any) -> dict[str, float]:
    """Return a threshold as class -> number (``{"": 15}`` for one number, ``{}`` for none)."""
    if value is None:
        return {}
    if isinstance(value, Mapping):
        return {str(k): float(v) for k, v in value.items()}
    try:
        return {"": float(value)}
    except (TypeError, ValueError):
        return {}


def rule_changes(rule: Any) -> dict[str, dict[str, Any]]:
    """Return the thresholds of ``rule`` that differ from its preset's.

    Returns
    -------
    dict
        Field -> ``{"from": preset value, "to": current value}`` (JSON types); empty when the
        rule is not from a preset or keeps its thresholds.
    """
    original = _original(rule)
    if original is None:
        return {}
    fields = THRESHOLD_FIELDS.get(getattr(rule, "kind", ""), {})
    changes: dict[str, dict[str, Any]] = {}
    for field in fields:
        if not hasattr(rule, field):
            continue
        old, new = original.get(field), getattr(rule, field)
        if field == "max_count" and old is None and "exactly" in original:
            old = original["exactly"]
        if field == "min_count" and old is None:
            old = original.get("exactly", 1)
        if _numbers(old) != _numbers(new):
            changes[field] = {"from": _jsonable(old), "to": _jsonable(new)}
    return changes


def _jsonable(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def rule_overrides(rules: Iterable[Any]) -> dict[str, dict[str, dict[str, Any]]]:
    """Return rule id -> :func:`rule_changes` for every rule whose thresholds were changed."""
    return {str(r.id): c for r in rules if (c := rule_changes(r))}


def _num(x: float) -> str:
    return f"{x:g}"


def current_titles(rule: Any) -> tuple[str, str]:
    """Return ``(title, title_zh)`` of ``rule`` with its current thresholds.

    When a threshold differs from the preset (see :func:`rule_changes`) and the titles are the
    preset's, each number of the old threshold in the titles becomes the new one and the old
    one is named after it: ``城区20分钟急救圈（原标准15分钟）``, ``... within 20 minutes
    (original standard: 15 minutes)``. Other rules keep their titles.
    """
    title, title_zh = str(getattr(rule, "title", "")), str(getattr(rule, "title_zh", ""))
    original = _original(rule)
    changes = rule_changes(rule)
    if not changes or original is None:
        return title, title_zh
    if title != original.get("title", "") or title_zh != original.get("title_zh", ""):
        return title, title_zh  # already rewritten, or the user's own titles
    units = THRESHOLD_FIELDS.get(getattr(rule, "kind", ""), {})
    old_zh: list[str] = []
    old_en: list[str] = []
    for field, change in changes.items():
        zh_unit, en_unit = units[field]
        old, new = _numbers(change["from"]), _numbers(change["to"])
        single_new = new.get("") if len(new) == 1 else None
        for cls, value in old.items():
            target = new.get(cls, single_new)
            if target is None or target == value:
                continue
            pattern = re.compile(rf"(?<![\d.]){re.escape(_num(value))}(?![\d.])")
            title = pattern.sub(_num(target), title)
            title_zh = pattern.sub(_num(target), title_zh)
            old_zh.append(f"{_num(value)}{zh_unit}")
            old_en.append(f"{_num(value)}{en_unit}")
    if not old_zh:
        return title, title_zh
    return (f"{title} (original standard: {', '.join(old_en)})",
            f"{title_zh}（原标准{'、'.join(old_zh)}）")
