"""report.html: a short, self-contained HTML report of one run, in the run's language.

Contents, in order: the conclusion (which standards are met, which are not, which units fall
short and by how much, which cannot be checked); the summary per standard with its plan
citation (``《规划全称》：「条款原文」``, :func:`covplan.standards.plans.plan_citation`);
the failing units with their evidence; the method; the data sources and licences; and, as an
appendix, the run manifest: input file names and SHA-256 hashes, the thresholds changed for
the run (``overrides``), the software version and the manifest as JSON, all without folder
paths (:func:`short_manifest`). Shares are percentages (``86.2%``), an unreachable value reads
不可达 / unreachable. Rule titles, evidence and criteria are the Chinese forms in ``zh``
(:func:`covplan.outputs.tables.localise_rule_texts`).

Every value from the data goes through :func:`covplan.outputs.html_text.escape` (bidi
controls dropped, HTML-escaped, braces as character references, so the page stays inert
even if a template engine reads it) and the manifest through
:func:`~covplan.outputs.html_text.safe_json_text`; the page's one script is the manifest as
``<script type="application/json" id="run-manifest">``, and it has no external resource.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from pathlib import Path, PurePath
from typing import Any

import pandas as pd
from covplan.labels import (
    COLUMN_LABELS,
    INPUT_ROLE_LABELS,
    THRESHOLD_FIELD_LABELS,
    URBAN_RURAL_LABELS,
    check_language,
    column_label,
    status_label,
    text,
    value_unit_label,
)
from covplan.outputs.html_text import escape, number, safe_json_text
from covplan.outputs.manifest import manifest_json, script_safe_json
from covplan.outputs.tables import localise_rule_texts, normalise_summary, normalise_unit_results
from covplan.results import RunResult

__all__ = ["format_value", "percent", "render_report", "short_manifest", "write_report"]

_CSS = """
body{font:14px/1.6 sans-serif;margin:2em auto;max-width:62em;padding:0 1em;color:#222}
table{border-collapse:collapse;margin:0.5em 0 1.5em}
th,td{border:1px solid #bbb;padding:3px 8px;text-align:left;vertical-align:top}
td.num{text-align:right;white-space:nowrap}
.pass{color:#1a7f37}.fail{color:#b42318;font-weight:bold}.not_applicable,.cannot_check{color:#666}
#conclusion{border-left:4px solid #888;padding:0.2em 1em;background:#fafafa}
pre{background:#f6f6f6;padding:0.8em;overflow:auto;font-size:12px}
"""

_e = escape
_num = number
#: Value units whose values are shares (shown as percentages).
_SHARE_UNITS = ("share of residents", "share of units passing")


def percent(value: Any, digits: int = 1) -> str:
    """Return a share (0.862) as a percentage (``86.2%``); ``""`` for a missing value."""
    try:
        number_ = float(value)
    except (TypeError, ValueError):
        return ""
    return "" if math.isnan(number_) else f"{100 * number_:.{digits}f}%"


def _share(value: Any) -> str:
    return percent(value)


def _blank(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value)) or value is pd.NA


def format_value(value: Any, unit: Any, lang: str) -> str:
    """Return a value with its unit: a percentage, 不可达 for infinity, else number + unit."""
    if _blank(value):
        return ""
    try:
        number_ = float(value)
    except (TypeError, ValueError):
        return str(value)
    if math.isinf(number_):
        return text("unreachable", lang)
    if unit in _SHARE_UNITS:
        return percent(number_)
    label = value_unit_label(unit, lang) if isinstance(unit, str) else ""
    shown = _num(number_, 2 if not float(number_).is_integer() else 0)
    return f"{shown} {label}".strip() if lang == "en" else f"{shown}{label}"


def _head(key: str, lang: str) -> str:
    """Heading of a column: the export's Chinese heading, or a readable English one."""
    if lang == "zh":
        return column_label(key, lang)
    return COLUMN_LABELS.get(key, ("", key.replace("_", " ")))[1]


def _rule_info(result: RunResult, lang: str) -> dict[str, dict[str, Any]]:
    """Rule id -> title, criterion, citation in ``lang`` (from the per-unit table)."""
    from covplan.standards.plans import plan_citation

    ur = result.unit_results
    info: dict[str, dict[str, Any]] = {}
    if not ur.empty and "rule_id" in ur.columns:
        first = localise_rule_texts(normalise_unit_results(ur).drop_duplicates("rule_id"), lang)
        for row in first.to_dict("records"):
            info[str(row["rule_id"])] = {
                "title": row.get("rule_name"), "criterion": row.get("criterion"),
                "citation": plan_citation(row.get("source"), row.get("quote"), lang)
                if row.get("source") or row.get("quote") else "",
            }
    summary = normalise_summary(result.summary)
    for row in summary.to_dict("records"):
        entry = info.setdefault(str(row.get("rule_id")), {})
        if not entry.get("title"):
            entry["title"] = row.get("rule_name")
        if not entry.get("citation") and (row.get("source") or row.get("quote")):
            entry["citation"] = plan_citation(row.get("source"), row.get("quote"), lang)
    return info


def _rate(row: Mapping[str, Any]) -> float:
    try:
        total = float(row.get("units_total"))
        passed = float(row.get("units_pass"))
    except (TypeError, ValueError):
        return math.nan
    return passed / total if total > 0 else math.nan


def _conclusion(result: RunResult, lang: str, info: Mapping[str, Mapping[str, Any]]) -> str:
    summary = normalise_summary(result.summary)
    ur = localise_rule_texts(normalise_unit_results(result.unit_results), lang)
    quote = ("「", "」") if lang == "zh" else ("“", "”")
    groups: dict[str, list[str]] = {"pass": [], "fail": [], "cannot_check": [],
                                    "not_applicable": []}
    for row in summary.to_dict("records"):
        rid = str(row.get("rule_id"))
        status = str(row.get("status"))
        title = info.get(rid, {}).get("title") or row.get("rule_name") or rid
        name = f"{quote[0]}{_e(title)}{quote[1]}（{_e(rid)}）" if lang == "zh" else (
            f"{quote[0]}{_e(title)}{quote[1]} ({_e(rid)})")
        rate = _rate(row)
        parts = []
        if not math.isnan(rate):
            parts.append(_e(text("pass_rate_value", lang, rate=percent(rate))))
        if not _blank(row.get("share")):
            parts.append(_e(text("region_share", lang, share=percent(row.get("share")))))
        sep = "，" if lang == "zh" else ", "
        detail = sep.join(parts)
        line = name + (("：" if lang == "zh" else ": ") + detail if detail else "")
        if status == "cannot_check":
            why = ur.loc[ur["rule_id"].astype(str) == rid, "evidence"].dropna()
            if len(why):
                line += ("：" if lang == "zh" else ": ") + _e(str(why.iloc[0]).removeprefix(
                    "无法核查："))
        if status == "fail":
            line += _short_units(ur[(ur["rule_id"].astype(str) == rid)
                                    & (ur["status"] == "fail")], lang)
        groups.setdefault(status, []).append(line)
    keys = {"pass": "met", "fail": "not_met", "cannot_check": "cannot_check_list",
            "not_applicable": "not_applicable_list"}
    verdict, css = {
        "passed": ("all_pass", "pass"), "failed": ("some_fail", "fail"),
        "nothing_checked": ("nothing_checked", "cannot_check"),
    }[result.verdict]
    out = [f'<p id="verdict" class="{css}"><b>{_e(text(verdict, lang))}</b></p>']
    for status, key in keys.items():
        lines = groups.get(status) or []
        if not lines:
            continue
        items = "".join(f"<li>{line}</li>" for line in lines)
        out.append(f'<p class="{status}"><b>{_e(text(key, lang, n=len(lines)))}</b></p>'
                   f"<ul>{items}</ul>")
    head = f'<h2>{_e(text("conclusion", lang))}</h2>'
    return f'<section id="conclusion">{head}{"".join(out)}</section>'


def _gap(row: Mapping[str, Any]) -> float:
    try:
        return float(row.get("population")) - float(row.get("covered_population"))
    except (TypeError, ValueError):
        return math.nan


def _short_units(failing: pd.DataFrame, lang: str) -> str:
    """Return the failing units of one standard, with how far they fall short."""
    if failing.empty:
        return ""
    items = []
    for row in failing.to_dict("records"):
        unit = _e(row.get("unit_name") or row.get("unit_id"))  # the one text from the data
        if row.get("value_unit") in _SHARE_UNITS and not _blank(row.get("covered_population")):
            gap = _gap(row)
            items.append(text("unit_gap", lang, unit=unit, share=percent(row.get("value")),
                              need=percent(row.get("threshold")),
                              gap=_num(gap) if not math.isnan(gap) else ""))
        else:
            items.append(text("unit_value", lang, unit=unit,
                              value=_e(format_value(row.get("value"), row.get("value_unit"), lang)),
                              need=_e(format_value(row.get("threshold"), row.get("value_unit"),
                                             lang))))
    return "<ul>" + "".join(f"<li>{i}</li>" for i in items) + "</ul>"


def _summary_rows(result: RunResult, lang: str, info: Mapping[str, Mapping[str, Any]]) -> str:
    summary = normalise_summary(result.summary)
    rows = []
    for row in summary.to_dict("records"):
        rid = str(row.get("rule_id", ""))
        status = str(row.get("status", ""))
        title = info.get(rid, {}).get("title") or row.get("rule_name", "")
        rows.append(
            "<tr>"
            f"<td>{_e(rid)}</td>"
            f"<td>{_e(title)}</td>"
            f'<td class="{_e(status)}">{_e(status_label(status, lang))}</td>'
            f'<td class="num">{_num(row.get("units_pass"))}'
            f" / {_num(row.get('units_total'))}</td>"
            f'<td class="num">{_e(percent(_rate(row)))}</td>'
            f'<td class="num">{_num(row.get("population"))}</td>'
            f'<td class="num">{_num(row.get("covered_population"))}</td>'
            f'<td class="num">{_e(percent(row.get("share")))}</td>'
            f"<td>{_e(info.get(rid, {}).get('citation') or '')}</td>"
            "</tr>"
        )
    heads = [
        _head("rule_id", lang), _head("rule_name", lang), _head("status", lang),
        f"{_head('units_pass', lang)} / {_head('units_total', lang)}", text("pass_rate", lang),
        _head("population", lang), _head("covered_population", lang), _head("share", lang),
        text("citation", lang),
    ]
    head = "".join(f"<th>{_e(h)}</th>" for h in heads)
    return f'<table id="summary"><tr>{head}</tr>{"".join(rows)}</table>'


def _failing_rows(unit_results: pd.DataFrame, lang: str) -> str:
    if unit_results.empty or "status" not in unit_results:
        return f"<p>{_e(text('none', lang))}</p>"
    failing = localise_rule_texts(
        normalise_unit_results(unit_results[unit_results["status"] == "fail"]), lang)
    if failing.empty:
        return f"<p>{_e(text('none', lang))}</p>"
    heads = [_head(h, lang) for h in ("unit_id", "unit_name", "rule_name", "value",
                                      "threshold", "population", "covered_population")]
    heads += [text("gap_population", lang), _head("evidence", lang)]
    head = "".join(f"<th>{_e(h)}</th>" for h in heads)
    rows = []
    for row in failing.to_dict("records"):
        unit = row.get("value_unit")
        gap = _gap(row) if unit in _SHARE_UNITS else math.nan
        rows.append(
            "<tr>"
            f"<td>{_e(row.get('unit_id', ''))}</td>"
            f"<td>{_e(row.get('unit_name', ''))}</td>"
            f"<td>{_e(row.get('rule_name', ''))}</td>"
            f'<td class="num">{_e(format_value(row.get("value"), unit, lang))}</td>'
            f'<td class="num">{_e(format_value(row.get("threshold"), unit, lang))}</td>'
            f'<td class="num">{_num(row.get("population"))}</td>'
            f'<td class="num">{_num(row.get("covered_population"))}</td>'
            f'<td class="num">{_num(gap) if not math.isnan(gap) else ""}</td>'
            f"<td>{_e(row.get('evidence') or '')}</td>"
            "</tr>"
        )
    return f'<table id="failing"><tr>{head}</tr>{"".join(rows)}</table>'


def _sources(manifest: Mapping[str, Any], lang: str) -> str:
    parts = [f"<p>{_e(text('osm_licence', lang))}</p>"]
    if manifest.get("osm_extract_date"):
        parts.append(
            f"<p>{_e(text('extract_date', lang))}: {_e(manifest['osm_extract_date'])}</p>"
        )
    return "".join(parts)


def _is_path(value: str) -> bool:
    return ("/" in value or "\\" in value) and (
        PurePath(value).is_absolute() or value.startswith((".", "~")) or "\\" in value)


def short_manifest(manifest: Mapping[str, Any]) -> Any:
    """Return ``manifest`` with every file path cut to its file name (no folder is shown).

    Examples
    --------
    >>> short_manifest({"inputs": {"network": {"path": "/data/osm/a.osm.pbf"}}})
    {'inputs': {'network': {'path': 'a.osm.pbf'}}}
    """
    def cut(value: Any) -> Any:
        if isinstance(value, Mapping):
            return {k: cut(v) for k, v in value.items()}
        if isinstance(value, list):
            return [cut(v) for v in value]
        if isinstance(value, str) and _is_path(value):
            return PurePath(value.replace("\\", "/")).name
        return value

    return cut(manifest)


def _appendix(manifest: Mapping[str, Any], lang: str) -> str:
    parts: list[str] = []
    inputs = manifest.get("inputs") or {}
    if inputs:
        rows = "".join(
            f"<tr><td>{_e(_role(role, lang))}</td>"
            f"<td>{_e(PurePath(str(info.get('path', ''))).name)}</td>"
            f"<td><code>{_e(info.get('sha256', ''))}</code></td></tr>"
            for role, info in sorted(inputs.items())
            if isinstance(info, Mapping)
        )
        parts.append(
            f'<table id="inputs"><tr><th>{_e(text("role", lang))}</th>'
            f"<th>{_e(text('file', lang))}</th><th>SHA-256</th></tr>{rows}</table>"
        )
    overrides = manifest.get("overrides") or {}
    parts.append(f"<h3>{_e(text('overrides', lang))}</h3>")
    if overrides:
        items = []
        for rid, fields in sorted(overrides.items()):
            for field, change in (fields or {}).items():
                name = THRESHOLD_FIELD_LABELS.get(field, (field, field))[0 if lang == "zh" else 1]
                items.append(text("changed_from", lang, rule=rid, field=name,
                                  old=_threshold_text(change.get("from"), lang),
                                  new=_threshold_text(change.get("to"), lang)))
        parts.append('<ul id="overrides">' + "".join(f"<li>{_e(i)}</li>" for i in items)
                     + "</ul>")
    else:
        parts.append(f'<p id="overrides">{_e(text("no_overrides", lang))}</p>')
    version = (manifest.get("packages") or {}).get("coverage-planner")
    if version:
        colon = "：" if lang == "zh" else ": "
        parts.append(f"<p>{_e(text('software', lang))}{colon}coverage-planner {_e(version)}</p>")
    parts.append(
        f"<details><summary>{_e(text('manifest_json', lang))}</summary>"
        f'<pre id="manifest-text">{_e(safe_json_text(manifest_json(short_manifest(manifest))))}'
        "</pre></details>"
    )
    return "".join(parts)


def _role(role: str, lang: str) -> str:
    pair = INPUT_ROLE_LABELS.get(role)
    return pair[0 if lang == "zh" else 1] if pair else role


def _threshold_text(value: Any, lang: str = "en") -> str:
    if isinstance(value, Mapping):
        if lang == "zh":
            return "、".join(f"{URBAN_RURAL_LABELS.get(str(k), (k,))[0]}{_threshold_text(v)}"
                            for k, v in value.items())
        return ", ".join(f"{k}={_threshold_text(v)}" for k, v in value.items())
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def render_report(
    result: RunResult,
    *,
    language: str | None = None,
    manifest: Mapping[str, Any] | None = None,
) -> str:
    """Return report.html for ``result`` in ``language`` (default the run's language)."""
    lang = check_language(language or result.language)
    manifest = dict(manifest if manifest is not None else result.manifest)
    info = _rule_info(result, lang)
    colon = "：" if lang == "zh" else ": "
    title = f"{text('report_title', lang)}{colon}{result.name}"
    created = manifest.get("created", "")
    return (
        "<!DOCTYPE html>\n"
        f'<html lang="{"zh-CN" if lang == "zh" else "en"}">\n<head>\n<meta charset="utf-8">\n'
        f"<title>{_e(title)}</title>\n<style>{_CSS}</style>\n"
        '<script type="application/json" id="run-manifest">'
        f"{safe_json_text(script_safe_json(short_manifest(manifest)))}</script>\n"
        "</head>\n<body>\n"
        f"<h1>{_e(title)}</h1>\n"
        f"<p>{_e(text('generated', lang))}{colon}{_e(created)}</p>\n"
        f"{_conclusion(result, lang, info)}\n"
        f"<h2>{_e(text('summary', lang))}</h2>\n{_summary_rows(result, lang, info)}\n"
        f"<h2>{_e(text('failing_units', lang))}</h2>\n{_failing_rows(result.unit_results, lang)}\n"
        f"<h2>{_e(text('method', lang))}</h2>\n<p>{_e(text('method_text', lang))}</p>\n"
        f"<h2>{_e(text('sources', lang))}</h2>\n{_sources(manifest, lang)}\n"
        f'<h2 id="appendix">{_e(text("appendix", lang))}</h2>\n{_appendix(manifest, lang)}\n'
        f"<footer><p>{_e(text('attribution', lang))}</p></footer>\n"
        "</body>\n</html>\n"
    )


def write_report(
    result: RunResult,
    path: str | os.PathLike[str],
    *,
    language: str | None = None,
    manifest: Mapping[str, Any] | None = None,
) -> Path:
    """Write report.html to ``path`` (UTF-8) and return the path."""
    Path(path).write_text(
        render_report(result, language=language, manifest=manifest), encoding="utf-8"
    )
    return Path(path)
