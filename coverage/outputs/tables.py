"""Per-unit and per-place tables of a run: units.csv, units.xlsx and places.csv.

Column headings and status words are Chinese when the language is ``zh`` (see
:mod:`covplan.labels`); in English the headings are the column keys and the
status keeps its machine-readable values ``pass`` / ``fail`` / ``not_applicable``.
Text cells that a spreadsheet would run as a formula (starting with ``=``, ``+``, ``-``,
``@``) are neutralised: prefixed with ``'`` in CSV and stored as plain strings in XLSX.
Bidi and other control characters are dropped from every text cell
(:func:`covplan.outputs.html_text.plain_text`); the text is otherwise kept whole.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from covplan.labels import (
    KIND_SOURCE_LABELS,
    RULE_LABELS,
    UNIT_KIND_LABELS,
    UNIT_LEVEL_LABELS,
    UR_SOURCE_LABELS,
    URBAN_RURAL_LABELS,
    check_language,
    column_label,
    mode_label,
    status_label,
    value_unit_label,
)
from covplan.outputs.html_text import plain_text
from covplan.outputs.manifest import to_jsonable
from covplan.results import RunResult

__all__ = [
    "localise_rule_texts",
    "normalise_summary",
    "normalise_unit_results",
    "place_modes",
    "places_table",
    "sample_note",
    "sample_places",
    "summary_table",
    "unit_table",
    "write_csv",
    "write_xlsx",
]

UNIT_COLUMNS: tuple[str, ...] = (
    "unit_id",
    "unit_name",
    "level",
    "rule_id",
    "rule_name",
    "status",
    "value",
    "threshold",
    "margin",
    "population",
    "covered_population",
    "share",
    "evidence",
)
SUMMARY_COLUMNS: tuple[str, ...] = (
    "rule_id",
    "rule_name",
    "status",
    "units_pass",
    "units_total",
    "population",
    "covered_population",
    "share",
)
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def _cell_text(value: Any) -> Any:
    """Dicts/lists (for example ``evidence``) become JSON text; scalars pass through."""
    if isinstance(value, (dict, list, tuple)):
        return json.dumps(to_jsonable(value), ensure_ascii=False, sort_keys=True)
    return value


def _finite_or_nan(series: pd.Series) -> pd.Series:
    numbers = pd.to_numeric(series, errors="coerce").astype(float)
    return numbers.where(np.isfinite(numbers))


def _share(covered: pd.Series, population: pd.Series) -> pd.Series:
    cov = pd.to_numeric(covered, errors="coerce").astype(float)
    pop = pd.to_numeric(population, errors="coerce").astype(float)
    return (cov / pop.where(pop > 0)).round(4)


def _localise(frame: pd.DataFrame, language: str, *, extra: Mapping[str, str] | None = None
              ) -> pd.DataFrame:
    out = frame.copy()
    if "status" in out.columns and check_language(language) == "zh":
        # English tables keep the machine-readable keys pass / fail / not_applicable.
        out["status"] = out["status"].map(lambda s: status_label(str(s), language))
    if "urban_rural" in out.columns:
        zh = check_language(language) == "zh"
        out["urban_rural"] = out["urban_rural"].map(
            lambda v: URBAN_RURAL_LABELS[v][0 if zh else 1] if v in URBAN_RURAL_LABELS else v
        )
    if check_language(language) == "zh":
        # every text value in Chinese: rule kinds, levels, unit kinds, value units, sources
        for column, table in (("rule", RULE_LABELS), ("level", UNIT_LEVEL_LABELS),
                              ("unit_kind", UNIT_KIND_LABELS), ("ur_source", UR_SOURCE_LABELS),
                              ("kind_source", KIND_SOURCE_LABELS)):
            if column in out.columns:
                out[column] = out[column].map(
                    lambda v, t=table: t[v][0] if isinstance(v, str) and v in t else v)
        if "value_unit" in out.columns:
            out["value_unit"] = out["value_unit"].map(lambda v: value_unit_label(v, "zh"))
    if "source" in out.columns:
        from covplan.standards.plans import plan_title

        out["source"] = out["source"].map(
            lambda v: plan_title(v, language) if isinstance(v, str) else v)
    names = {c: (extra or {}).get(c) or column_label(c, language) for c in out.columns}
    return out.rename(columns=names)


#: Columns with a Chinese twin (``evidence`` / ``evidence_zh``) in the audit's tables.
_ZH_TWINS: dict[str, str] = {"rule_name": "title_zh", "evidence": "evidence_zh",
                             "criterion": "criterion_zh"}


def localise_rule_texts(frame: pd.DataFrame, language: str | None) -> pd.DataFrame:
    """Return ``frame`` with its rule texts in ``language``, without the ``*_zh`` twins.

    In Chinese ``rule_name`` (or ``title``), ``evidence`` and ``criterion`` take the values of
    ``title_zh``, ``evidence_zh`` and ``criterion_zh`` where those are filled (the rules write
    both forms, :class:`covplan.standards.rules.Sentence`); in English they stay as they are.
    """
    out = frame.copy()
    if check_language(language) == "zh":
        twins = dict(_ZH_TWINS)
        if "rule_name" not in out.columns and "title" in out.columns:
            twins["title"] = twins.pop("rule_name")
        for column, twin in twins.items():
            if column in out.columns and twin in out.columns:
                zh = out[twin]
                out[column] = zh.where(zh.notna() & (zh.astype(str) != ""), out[column])
    return out.drop(columns=[c for c in ("title_zh", "evidence_zh", "criterion_zh")
                             if c in out.columns])


def _rule_texts(unit_results: pd.DataFrame, language: str) -> dict[str, str]:
    """Rule id -> its title in ``language`` (from the per-unit table's ``title_zh``)."""
    if unit_results.empty or "rule_id" not in unit_results.columns:
        return {}
    first = normalise_unit_results(unit_results).drop_duplicates("rule_id")
    first = localise_rule_texts(first, language)
    return dict(zip(first["rule_id"], first["rule_name"], strict=False))


def normalise_unit_results(frame: pd.DataFrame) -> pd.DataFrame:
    """Return ``unit_results`` with ``rule_name`` (the audit calls it ``title``) and ``share``.

    Pass the result through :func:`localise_rule_texts` for the texts of one language.
    """
    out = frame.copy()
    if "rule_name" not in out.columns:
        out["rule_name"] = out["title"] if "title" in out.columns else out.get("rule_id")
    if "share" not in out.columns:
        out["share"] = (
            _share(out["covered_population"], out["population"])
            if {"covered_population", "population"} <= set(out.columns)
            else np.nan
        )
    return out


def normalise_summary(frame: pd.DataFrame) -> pd.DataFrame:
    """Return the summary in the RunResult columns, filling them from the audit's names.

    ``rule_name`` <- ``title``, ``status`` <- ``region_status``, ``units_total`` <-
    ``units_pass + units_fail`` (else ``units_checked``),
    ``share`` <- ``covered_population / population``.
    """
    out = frame.copy()
    fallbacks = {"rule_name": "title", "status": "region_status"}
    for column, source in fallbacks.items():
        if column not in out.columns and source in out.columns:
            out[column] = out[source]
    if "units_total" not in out.columns:
        if {"units_pass", "units_fail"} <= set(out.columns):
            out["units_total"] = out["units_pass"] + out["units_fail"]
        elif "units_checked" in out.columns:
            out["units_total"] = out["units_checked"]
    if "share" not in out.columns and {"covered_population", "population"} <= set(out.columns):
        out["share"] = _share(out["covered_population"], out["population"])
    return out


def unit_table(result: RunResult, *, language: str | None = None) -> pd.DataFrame:
    """One row per unit and rule, with headings in ``language`` (default: the run's).

    Columns (English keys): unit_id, unit_name, level, rule_id, rule_name, status, value,
    threshold, margin, population, covered_population, share (covered / population,
    4 decimals, empty when the population is 0 or unknown), evidence, then any further
    columns of the audit (value_unit, facility_count, needed, criterion, ...).
    """
    lang = check_language(language or result.language)
    frame = localise_rule_texts(normalise_unit_results(result.unit_results), lang)
    for column in UNIT_COLUMNS:
        if column not in frame.columns:
            frame[column] = None
    extra = [c for c in frame.columns
             if c not in UNIT_COLUMNS and c not in ("title", "title_zh", "geometry")]
    frame = frame[[*UNIT_COLUMNS, *extra]].copy()
    frame["evidence"] = frame["evidence"].map(_cell_text)
    for column in ("value", "threshold", "margin"):
        frame[column] = _finite_or_nan(frame[column])
    return _localise(frame, lang)


def summary_table(result: RunResult, *, language: str | None = None) -> pd.DataFrame:
    """One row per rule across the region, with headings in ``language``."""
    lang = check_language(language or result.language)
    frame = normalise_summary(result.summary)
    for column in SUMMARY_COLUMNS:
        if column not in frame.columns:
            frame[column] = None
    frame = frame[list(SUMMARY_COLUMNS)].copy()
    titles = _rule_texts(result.unit_results, lang)
    if titles:
        frame["rule_name"] = [titles.get(r, n) for r, n in zip(frame["rule_id"],
                                                               frame["rule_name"], strict=False)]
    return _localise(frame, lang)


def place_modes(places: pd.DataFrame) -> list[str]:
    """Return the travel modes of a places layer: every ``m`` with a ``minutes_<m>`` column."""
    return [c[len("minutes_"):] for c in places.columns if c.startswith("minutes_")]


def places_table(result: RunResult, *, language: str | None = None) -> pd.DataFrame:
    """One row per population place with its nearest facility and minutes by each mode.

    Columns (English): place_id, unit_id, unit_name, population, urban_rural, ur_source, lon,
    lat, then
    per mode ``m``: nearest_<m> (facility_id), nearest_name_<m>, minutes_<m> (2 decimals,
    empty when the place cannot reach any facility). In Chinese the per-mode headings are
    ``最近机构（步行）`` and so on.
    """
    lang = check_language(language or result.language)
    places = result.places
    unit_names = dict(zip(result.units["unit_id"], result.units["name"], strict=False))
    facility_names = dict(
        zip(result.facilities["facility_id"], result.facilities["name"], strict=False)
    )
    frame = pd.DataFrame(
        {
            "place_id": places["place_id"].to_numpy(),
            "unit_id": places["unit_id"].to_numpy(),
            "unit_name": places["unit_id"].map(unit_names).to_numpy(),
            "population": pd.to_numeric(places["population"], errors="coerce").to_numpy(),
            "urban_rural": (
                places["urban_rural"].to_numpy() if "urban_rural" in places else None
            ),
            # which source decided urban or rural: column, nbs, density or default
            "ur_source": places["ur_source"].to_numpy() if "ur_source" in places else None,
            "lon": places.geometry.x.round(6).to_numpy(),
            "lat": places.geometry.y.round(6).to_numpy(),
        }
    )
    headings: dict[str, str] = {}
    zh = lang == "zh"
    for mode in place_modes(places):
        nearest = places.get(f"nearest_{mode}")
        ids = nearest.to_numpy() if nearest is not None else np.full(len(places), None)
        minutes = _finite_or_nan(places[f"minutes_{mode}"]).round(2)
        frame[f"nearest_{mode}"] = [
            None if v is None or (isinstance(v, float) and math.isnan(v)) else v for v in ids
        ]
        frame[f"nearest_name_{mode}"] = frame[f"nearest_{mode}"].map(facility_names)
        frame[f"minutes_{mode}"] = minutes.to_numpy()
        label = mode_label(mode, lang)
        for key in ("nearest", "nearest_name", "minutes"):
            base = column_label(key, lang)
            headings[f"{key}_{mode}"] = f"{base}（{label}）" if zh else f"{key}_{mode}"
    return _localise(frame, lang, extra=headings)


def _neutralise(value: Any) -> Any:
    """Text without bidi/control characters, prefixed with ``'`` where it reads as a formula."""
    if isinstance(value, str):
        value = plain_text(value)
    if isinstance(value, str) and value.startswith(_FORMULA_START):
        try:
            float(value)
        except ValueError:
            return "'" + value
    return value


def write_csv(frame: pd.DataFrame, path: str | os.PathLike[str], *, language: str) -> Path:
    """Write ``frame`` as CSV (UTF-8; with a byte-order mark for ``zh`` so Excel reads it).

    Text cells that would run as a spreadsheet formula are prefixed with ``'``.
    """
    safe = frame.copy()
    for column in safe.columns:
        if safe[column].dtype == object or pd.api.types.is_string_dtype(safe[column]):
            safe[column] = safe[column].map(_neutralise)
    encoding = "utf-8-sig" if check_language(language) == "zh" else "utf-8"
    safe.to_csv(path, index=False, encoding=encoding, lineterminator="\n")
    return Path(path)


def _xlsx_value(value: Any) -> Any:
    if value is None:
        return None
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, np.generic):
        value = value.item()
        if isinstance(value, float) and not math.isfinite(value):
            return None
    if value is pd.NA or value is pd.NaT:
        return None
    value = _cell_text(value)
    return plain_text(value) if isinstance(value, str) else value


#: Where the full table of a sheet is when the sheet was cut (by sheet title).
FULL_TABLE_FILES: dict[str, str] = {
    "居民点": "places.csv", "places": "places.csv",
    "单元结果": "units.csv", "units": "units.csv",
}
#: Title of the sheet listing the cut sheets (written only when one was cut).
NOTES_SHEET = "说明 notes"


def cut_note(title: str, shown: int, total: int) -> str:
    """Return the note of a sheet cut to ``shown`` of its ``total`` rows (Chinese and English)."""
    where = FULL_TABLE_FILES.get(title, "the CSV files")
    return (f"仅显示 {total:,} 行中的前 {shown:,} 行；完整表格见 {where} 与 results.gpkg / "
            f"showing the first {shown:,} of {total:,} rows; the full table is in {where} "
            "and results.gpkg")


def write_xlsx(
    path: str | os.PathLike[str],
    *,
    sheets: Mapping[str, pd.DataFrame],
    manifest: Mapping[str, Any] | None = None,
    manifest_sheet: str = "manifest",
    max_rows: int | None = None,
    language: str | None = None,
) -> Path:
    """Write each DataFrame to its own sheet, plus the run manifest as key/value rows.

    Strings are always stored as text cells (never as formulas). The workbook is written
    row by row (openpyxl's write-only mode), so memory does not grow with the table.

    Parameters
    ----------
    path
        The file to write.
    sheets
        Sheet title -> table.
    manifest, manifest_sheet
        The run manifest and the title of its sheet.
    max_rows
        The most data rows of one sheet; default :func:`covplan.settings.xlsx_max_rows`
        (200,000). A longer table is cut there: a last row and a notes sheet
        (:data:`NOTES_SHEET`) say so and where the full table is (:func:`cut_note`).
    language
        Language of the manifest sheet's headings and keys (:data:`~covplan.labels.
        MANIFEST_KEY_LABELS`); default Chinese when ``manifest_sheet`` is not ASCII
        (运行清单), else English. The values stay JSON.
    """
    from covplan.labels import MANIFEST_KEY_LABELS
    from covplan.settings import xlsx_max_rows
    from openpyxl import Workbook
    from openpyxl.cell import WriteOnlyCell
    from openpyxl.cell.cell import TYPE_STRING

    limit = xlsx_max_rows() if max_rows is None else int(max_rows)
    book = Workbook(write_only=True)
    notes: list[str] = []

    def text_cell(sheet: Any, value: str) -> Any:
        cell = WriteOnlyCell(sheet, value=value)
        cell.data_type = TYPE_STRING  # never a formula, whatever the text starts with
        return cell

    def add(title: str, frame: pd.DataFrame) -> None:
        sheet = book.create_sheet(title=title[:31])
        sheet.freeze_panes = "A2"
        sheet.append([text_cell(sheet, str(c)) for c in frame.columns])
        for row in frame.head(limit).itertuples(index=False, name=None):
            values = [_xlsx_value(v) for v in row]
            sheet.append([text_cell(sheet, v) if isinstance(v, str) else v for v in values])
        if len(frame) > limit:
            note = cut_note(title, limit, len(frame))
            sheet.append([text_cell(sheet, note)])
            notes.append(f"{title[:31]}: {note}")

    for title, frame in sheets.items():
        add(title, frame)
    if manifest is not None:
        lang = check_language(language or ("en" if manifest_sheet.isascii() else "zh"))
        zh = lang == "zh"
        rows = [
            (MANIFEST_KEY_LABELS.get(key, (key, key))[0] if zh else key,
             json.dumps(to_jsonable(value), ensure_ascii=False, sort_keys=True)
             if isinstance(value, (dict, list)) else to_jsonable(value))
            for key, value in sorted(manifest.items())
        ]
        heads = ["项目", "内容"] if zh else ["key", "value"]
        add(manifest_sheet, pd.DataFrame(rows, columns=heads))
    if notes:
        add(NOTES_SHEET, pd.DataFrame({"note": notes}))
    book.save(path)
    return Path(path)


#: The map's note on a sample, per language (``{shown}`` of ``{total}`` places).
_SAMPLE_NOTES = {
    "zh": "显示 {total} 个居民点中的 {shown} 个（随机抽样）",
    "en": "showing {shown} of {total} places (random sample)",
}
#: Seed of the map's random sample of places: the same run draws the same sample.
SAMPLE_SEED = 20_200_101


def sample_places(places: Any, limit: int | None = None) -> Any:
    """Return at most ``limit`` rows of ``places``: all, or a seeded random sample in order.

    Parameters
    ----------
    places
        A (Geo)DataFrame of places.
    limit
        The most rows; default :func:`covplan.settings.map_max_points` (20,000).

    Returns
    -------
    (Geo)DataFrame
        ``places`` itself when short enough, else ``limit`` rows drawn without replacement
        with :data:`SAMPLE_SEED`, in their original order.
    """
    from covplan.settings import map_max_points

    limit = map_max_points() if limit is None else int(limit)
    if len(places) <= limit:
        return places
    rows = np.random.default_rng(SAMPLE_SEED).choice(len(places), size=limit, replace=False)
    return places.iloc[np.sort(rows)]


def sample_note(total: int, shown: int, language: str) -> str | None:
    """Return the map's note on a sample of ``shown`` of ``total`` places, None if all shown."""
    if shown >= total:
        return None
    return _SAMPLE_NOTES[check_language(language)].format(total=f"{total:,}", shown=f"{shown:,}")
