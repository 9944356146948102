"""Exports of one run: GeoPackage, CSV/XLSX tables, web and static maps, report, manifest.

:func:`write_outputs` writes every file into a staging folder beside the output folder and
moves them into place only when all were written (each by an atomic rename), so an
interrupted run leaves the previous results intact and never a half-written file.

File names (scripts rely on them): ``results.gpkg``, ``units.csv``, ``units.xlsx``,
``places.csv``, ``map.html``, ``map.png``, ``report.html``, ``manifest.json``.

The run manifest (``result.manifest``) is embedded in every export that can hold it: a
``<script type="application/json" id="run-manifest">`` in map.html and report.html, the
``manifest`` sheet of units.xlsx, the ``run_manifest`` table (and GDAL metadata) of
results.gpkg and the ``run-manifest`` text chunk of map.png. The CSV files stay plain;
manifest.json holds the manifest, its own SHA-256 (``manifest_sha256``) and the SHA-256 of
every file written with it (``outputs``), which ties the CSV files to the run.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from covplan.errors import CoverageError
from covplan.outputs.atomic import staged_directory
from covplan.outputs.labels_zh import check_language
from covplan.outputs.manifest import file_sha256, manifest_digest, manifest_json
from covplan.progress import Steps
from covplan.results import RunResult

__all__ = ["OUTPUT_NAMES", "write_outputs"]

#: Every output file, in the order they are written (manifest.json last: it hashes the rest).
OUTPUT_NAMES: tuple[str, ...] = (
    "results.gpkg",
    "units.csv",
    "units.xlsx",
    "places.csv",
    "map.html",
    "map.png",
    "report.html",
    "manifest.json",
)

_SHEETS = {
    "units": ("单元结果", "units"),
    "summary": ("规则汇总", "summary"),
    "places": ("居民点", "places"),
    "manifest": ("运行清单", "manifest"),
}


def _select(formats: Iterable[str] | None) -> list[str]:
    if formats is None:
        return list(OUTPUT_NAMES)
    wanted = [str(f) for f in formats]
    unknown = [f for f in wanted if f not in OUTPUT_NAMES]
    if unknown:
        raise CoverageError(
            f"unknown output format(s) {', '.join(unknown)}; choose from {', '.join(OUTPUT_NAMES)}"
        )
    return [name for name in OUTPUT_NAMES if name in wanted]


def _writers(result: RunResult, lang: str, manifest: dict[str, Any]
             ) -> dict[str, Callable[[Path], object]]:
    from covplan.outputs import tables

    def gpkg(path: Path) -> object:
        from covplan.outputs.gpkg import write_gpkg

        return write_gpkg(result, path, manifest=manifest)

    def units_csv(path: Path) -> object:
        return tables.write_csv(tables.unit_table(result, language=lang), path, language=lang)

    def units_xlsx(path: Path) -> object:
        idx = 0 if lang == "zh" else 1
        return tables.write_xlsx(
            path,
            sheets={
                _SHEETS["units"][idx]: tables.unit_table(result, language=lang),
                _SHEETS["summary"][idx]: tables.summary_table(result, language=lang),
                _SHEETS["places"][idx]: tables.places_table(result, language=lang),
            },
            manifest=manifest,
            manifest_sheet=_SHEETS["manifest"][idx],
        )

    def places_csv(path: Path) -> object:
        return tables.write_csv(tables.places_table(result, language=lang), path, language=lang)

    def map_html(path: Path) -> object:
        from covplan.outputs.webmap import write_map

        return write_map(result, path, language=lang, manifest=manifest)

    def map_png(path: Path) -> object:
        from covplan.outputs.staticmap import write_static_map

        return write_static_map(result, path, language=lang, manifest=manifest)

    def report_html(path: Path) -> object:
        from covplan.outputs.report import write_report

        return write_report(result, path, language=lang, manifest=manifest)

    return {
        "results.gpkg": gpkg,
        "units.csv": units_csv,
        "units.xlsx": units_xlsx,
        "places.csv": places_csv,
        "map.html": map_html,
        "map.png": map_png,
        "report.html": report_html,
    }


def write_outputs(
    result: RunResult,
    out_dir: str | os.PathLike[str],
    *,
    language: str | None = None,
    formats: Iterable[str] | None = None,
    steps: Steps | None = None,
) -> dict[str, Path]:
    """Write the exports of ``result`` into ``out_dir``, all or nothing.

    Parameters
    ----------
    result
        The run.
    out_dir
        Output folder; created when missing. Files of earlier runs with other names are
        kept; files with the names written here are replaced only once every file of this
        call was written.
    language
        ``"zh"`` or ``"en"``; default the run's language.
    formats
        File names to write (a subset of :data:`OUTPUT_NAMES`); default all.
    steps
        Progress display: a bar over the files (hidden when quiet or None).

    Returns
    -------
    dict of str to pathlib.Path
        File name -> final path, for every file written.

    Raises
    ------
    CoverageError
        For an unknown format or language, or when a writer fails (``out_dir`` is then
        unchanged).
    """
    lang = check_language(language or result.language)
    names = _select(formats)
    out_dir = Path(out_dir)
    manifest = dict(result.manifest)
    writers = _writers(result, lang, manifest)
    with staged_directory(out_dir) as staging:
        files = [n for n in names if n != "manifest.json"]
        shown = steps.bar(files, "Writing outputs", total=len(files)) if steps else files
        for name in shown:
            writers[name](staging / name)
        if "manifest.json" in names:
            document = {
                **manifest,
                "run": {"name": result.name, "language": lang, "all_pass": result.all_pass},
                "manifest_sha256": manifest_digest(manifest),
                "outputs": {
                    name: {
                        "sha256": file_sha256(staging / name),
                        "bytes": (staging / name).stat().st_size,
                    }
                    for name in names
                    if name != "manifest.json"
                },
            }
            (staging / "manifest.json").write_text(manifest_json(document) + "\n",
                                                   encoding="utf-8")
    return {name: out_dir / name for name in names}
