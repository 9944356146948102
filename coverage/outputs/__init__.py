"""Exports of one run: GeoPackage, CSV/XLSX tables, web and static maps, report, manifest.

:func:`write_outputs` writes every file into a staging folder beside the output folder and,
once all were written, replaces the output folder as a whole by renaming folders (see
:mod:`covplan.outputs.atomic` for the protocol and its guarantee): a reader, a failed run and
a killed run all see either the previous complete run or the new complete run, never a mix.
:func:`check_output_dir` refuses, before anything is computed, an output folder that is or
contains an input, and a file that cannot be replaced (locked by Excel, read-only).

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
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

from covplan.errors import CoverageError
from covplan.labels import check_language
from covplan.outputs import atomic
from covplan.outputs.atomic import staged_directory
from covplan.outputs.manifest import file_sha256, manifest_digest, manifest_json
from covplan.progress import Steps
from covplan.results import RunResult

__all__ = ["OUTPUT_NAMES", "check_output_dir", "scenario_input_paths", "write_outputs"]

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


def scenario_input_paths(scenario: Any) -> dict[str, Path]:
    """Return every input file or folder of a scenario by role.

    Parameters
    ----------
    scenario
        A :class:`covplan.scenario.Scenario` (any object with its ``path``, ``facilities``,
        ``boundaries``, ``population`` and ``network`` attributes).

    Returns
    -------
    dict of str to pathlib.Path
        ``scenario``, ``facilities``, ``boundaries`` and, where set, ``population``,
        ``network`` (when a file, not a download address) and ``dem``.
    """
    found: dict[str, Any] = {
        "scenario": scenario.path,
        "facilities": scenario.facilities.get("path"),
        "boundaries": scenario.boundaries.get("path"),
        "population": scenario.population.get("path"),
        "network": scenario.network.get("source"),
        "dem": scenario.network.get("dem"),
    }
    return {
        role: Path(value) for role, value in found.items()
        if isinstance(value, str | os.PathLike) and "://" not in str(value)
    }


def check_output_dir(
    out_dir: str | os.PathLike[str],
    input_paths: Any = (),
    *,
    replaces: Iterable[str] | None = None,
) -> Path:
    """Check an output folder before a run computes anything; return it resolved.

    Restores or cleans what killed runs left beside it first, then refuses a folder that
    is or contains an input, is a file or a mount point, or holds a file that cannot be
    replaced (see :func:`covplan.outputs.atomic.check_output_dir`).

    Parameters
    ----------
    out_dir
        The output folder.
    input_paths
        ``{role: path}`` of the run's inputs (e.g. :func:`scenario_input_paths`), or paths.
    replaces
        File names the run writes; default :data:`OUTPUT_NAMES`.

    Returns
    -------
    pathlib.Path
        The folder, absolute.

    Raises
    ------
    InputError
        If the output folder is or contains an input.
    CoverageError
        If it cannot be replaced (the message names the file).

    Examples
    --------
    >>> check_output_dir(out, scenario_input_paths(scenario))  # doctest: +SKIP
    """
    return atomic.check_output_dir(
        out_dir, input_paths, replaces=OUTPUT_NAMES if replaces is None else replaces
    )


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

    shared: dict[str, Any] = {}

    def shortfalls() -> Any:
        """Return the places' shortfalls, computed once for map.html and map.png."""
        if "shortfalls" not in shared:
            from covplan.outputs.webmap import place_shortfalls

            shown = tables.sample_places(result.places)  # the places both maps draw
            shared["shortfalls"] = place_shortfalls(result, place_ids=shown["place_id"])
        return shared["shortfalls"]

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

        return write_map(result, path, language=lang, manifest=manifest,
                         shortfalls=shortfalls())

    def map_png(path: Path) -> object:
        from covplan.outputs.staticmap import write_static_map

        return write_static_map(result, path, language=lang, manifest=manifest,
                                shortfalls=shortfalls())

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
    extra: Mapping[str, Callable[[Path], object]] | None = None,
) -> dict[str, Path]:
    """Write the exports of ``result`` into ``out_dir``, all or nothing.

    Parameters
    ----------
    result
        The run.
    out_dir
        Output folder; created when missing. It is replaced as a whole once every file of
        this call was written; files in it with other names are kept (linked into the new
        folder). It must not be, nor contain, an input of the run (as named in
        ``result.manifest["inputs"]``).
    language
        ``"zh"`` or ``"en"``; default the run's language.
    formats
        File names to write (a subset of :data:`OUTPUT_NAMES`); default all.
    steps
        Progress display: a bar over the files (hidden when quiet or None).
    extra
        More files to write in the same all-or-nothing step: file name -> a function
        writing it to the path it is given (e.g. ``closure_loss.csv``); hashed in
        manifest.json like the others.

    Returns
    -------
    dict of str to pathlib.Path
        File name -> final path, for every file written.

    Raises
    ------
    CoverageError
        For an unknown format or language, an output folder that is or contains an input,
        a file that cannot be replaced (locked, read-only), or when a writer fails
        (``out_dir`` is then unchanged).
    """
    lang = check_language(language or result.language)
    names = _select(formats)
    out_dir = Path(out_dir)
    manifest = dict(result.manifest)
    writers = _writers(result, lang, manifest)
    if extra:
        clash = sorted(set(extra) & set(OUTPUT_NAMES))
        if clash:
            raise CoverageError(f"extra output file(s) {', '.join(clash)} would replace a "
                                "standard output; give them other names")
        writers.update(extra)
        at = names.index("manifest.json") if "manifest.json" in names else len(names)
        names = [*names[:at], *extra, *names[at:]]
    inputs = manifest.get("inputs")
    check_output_dir(out_dir, inputs if isinstance(inputs, dict) else (), replaces=names)
    with staged_directory(out_dir, replaces=names) as staging:
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
