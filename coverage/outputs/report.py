"""report.html: a short, self-contained HTML report of one run.

The summary table per rule, the units that fail, the method, the data sources and licences
and the run manifest (shown, and embedded as ``<script type="application/json"
id="run-manifest">``). Every value from the data goes through
:func:`covplan.outputs.html_text.escape` (bidi controls dropped, HTML-escaped, braces as
character references, so the page stays inert even if a template engine reads it) and the
manifest through :func:`~covplan.outputs.html_text.safe_json_text`; the page has no other
script and no external resource.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pandas as pd
from covplan.labels import (
    COLUMN_LABELS,
    check_language,
    column_label,
    status_label,
    text,
)
from covplan.outputs.html_text import escape, number, safe_json_text
from covplan.outputs.manifest import manifest_json, script_safe_json
from covplan.outputs.tables import normalise_summary, normalise_unit_results
from covplan.results import RunResult

__all__ = ["render_report", "write_report"]

_CSS = """
body{font:14px/1.5 sans-serif;margin:2em auto;max-width:60em;padding:0 1em;color:#222}
table{border-collapse:collapse;margin:0.5em 0 1.5em}
th,td{border:1px solid #bbb;padding:3px 8px;text-align:left;vertical-align:top}
td.num{text-align:right}
.pass{color:#1a7f37}.fail{color:#b42318;font-weight:bold}.not_applicable{color:#666}
pre{background:#f6f6f6;padding:0.8em;overflow:auto;font-size:12px}
"""


_e = escape
_num = number


def _share(value: Any) -> str:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return ""
    return "" if math.isnan(number) else f"{100 * number:.1f}%"


def _head(key: str, lang: str) -> str:
    """Heading of a column: the export's Chinese heading, or a readable English one."""
    if lang == "zh":
        return column_label(key, lang)
    return COLUMN_LABELS.get(key, ("", key.replace("_", " ")))[1]


def _summary_rows(summary: pd.DataFrame, lang: str) -> str:
    summary = normalise_summary(summary)
    rows = []
    for row in summary.itertuples(index=False):
        status = str(getattr(row, "status", ""))
        rows.append(
            "<tr>"
            f"<td>{_e(getattr(row, 'rule_id', ''))}</td>"
            f"<td>{_e(getattr(row, 'rule_name', ''))}</td>"
            f'<td class="{_e(status)}">{_e(status_label(status, lang))}</td>'
            f'<td class="num">{_num(getattr(row, "units_pass", None))}'
            f" / {_num(getattr(row, 'units_total', None))}</td>"
            f'<td class="num">{_num(getattr(row, "population", None))}</td>'
            f'<td class="num">{_num(getattr(row, "covered_population", None))}</td>'
            f'<td class="num">{_share(getattr(row, "share", None))}</td>'
            "</tr>"
        )
    heads = [
        _head("rule_id", lang), _head("rule_name", lang), _head("status", lang),
        f"{_head('units_pass', lang)} / {_head('units_total', lang)}",
        _head("population", lang), _head("covered_population", lang), _head("share", lang),
    ]
    head = "".join(f"<th>{_e(h)}</th>" for h in heads)
    return f'<table id="summary"><tr>{head}</tr>{"".join(rows)}</table>'


def _failing_rows(unit_results: pd.DataFrame, lang: str) -> str:
    if unit_results.empty or "status" not in unit_results:
        return f"<p>{_e(text('none', lang))}</p>"
    failing = normalise_unit_results(unit_results[unit_results["status"] == "fail"])
    if failing.empty:
        return f"<p>{_e(text('none', lang))}</p>"
    heads = ["unit_id", "unit_name", "rule_name", "value", "threshold", "population",
             "covered_population"]
    head = "".join(f"<th>{_e(_head(h, lang))}</th>" for h in heads)
    rows = []
    for row in failing.itertuples(index=False):
        rows.append(
            "<tr>"
            f"<td>{_e(getattr(row, 'unit_id', ''))}</td>"
            f"<td>{_e(getattr(row, 'unit_name', ''))}</td>"
            f"<td>{_e(getattr(row, 'rule_name', ''))}</td>"
            f'<td class="num">{_num(getattr(row, "value", None), 2)}</td>'
            f'<td class="num">{_num(getattr(row, "threshold", None), 2)}</td>'
            f'<td class="num">{_num(getattr(row, "population", None))}</td>'
            f'<td class="num">{_num(getattr(row, "covered_population", None))}</td>'
            "</tr>"
        )
    return f'<table id="failing"><tr>{head}</tr>{"".join(rows)}</table>'


def _sources(manifest: Mapping[str, Any], lang: str) -> str:
    parts = [f"<p>{_e(text('osm_licence', lang))}</p>"]
    if manifest.get("osm_extract_date"):
        parts.append(
            f"<p>{_e(text('extract_date', lang))}: {_e(manifest['osm_extract_date'])}</p>"
        )
    inputs = manifest.get("inputs") or {}
    if inputs:
        rows = "".join(
            f"<tr><td>{_e(role)}</td><td>{_e(Path(str(info.get('path', ''))).name)}</td>"
            f"<td><code>{_e(info.get('sha256', ''))}</code></td></tr>"
            for role, info in sorted(inputs.items())
            if isinstance(info, Mapping)
        )
        parts.append(
            f'<table id="inputs"><tr><th>{_e(text("role", lang))}</th>'
            f"<th>{_e(text('file', lang))}</th><th>SHA-256</th></tr>{rows}</table>"
        )
    return "".join(parts)


def render_report(
    result: RunResult,
    *,
    language: str | None = None,
    manifest: Mapping[str, Any] | None = None,
) -> str:
    """Return report.html for ``result`` in ``language`` (default the run's language)."""
    lang = check_language(language or result.language)
    manifest = dict(manifest if manifest is not None else result.manifest)
    verdict = text("all_pass", lang) if result.all_pass else text("some_fail", lang)
    verdict_class = "pass" if result.all_pass else "fail"
    title = f"{text('report_title', lang)}: {result.name}"
    created = manifest.get("created", "")
    return (
        "<!DOCTYPE html>\n"
        f'<html lang="{"zh-CN" if lang == "zh" else "en"}">\n<head>\n<meta charset="utf-8">\n'
        f"<title>{_e(title)}</title>\n<style>{_CSS}</style>\n"
        '<script type="application/json" id="run-manifest">'
        f"{safe_json_text(script_safe_json(manifest))}</script>\n"
        "</head>\n<body>\n"
        f"<h1>{_e(title)}</h1>\n"
        f"<p>{_e(text('generated', lang))}: {_e(created)}</p>\n"
        f'<p>{_e(text("verdict", lang))}: <span class="{verdict_class}">{_e(verdict)}</span></p>\n'
        f"<h2>{_e(text('summary', lang))}</h2>\n{_summary_rows(result.summary, lang)}\n"
        f"<h2>{_e(text('failing_units', lang))}</h2>\n{_failing_rows(result.unit_results, lang)}\n"
        f"<h2>{_e(text('method', lang))}</h2>\n<p>{_e(text('method_text', lang))}</p>\n"
        f"<h2>{_e(text('sources', lang))}</h2>\n{_sources(manifest, lang)}\n"
        f"<h2>{_e(text('manifest', lang))}</h2>\n"
        f'<pre id="manifest-text">{_e(safe_json_text(manifest_json(manifest)))}</pre>\n'
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
