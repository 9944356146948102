"""Scenario tables a planner edits: standards with changed thresholds, and upload scenarios.

:func:`standards_tables` returns the ``[[standards]]`` tables of a plan (the scenario's own
or a shipped preset's, with the plan's threshold edits); :func:`write_upload_scenario`
writes a planner's uploaded files and a scenario TOML naming them into a private folder,
after :func:`check_upload` has checked each file's role, ending and size.
"""

from __future__ import annotations

import copy
import json
import shutil
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from covplan.errors import CoverageError
from covplan.inputs.uploads import safe_name
from covplan.standards.presets import list_presets, preset_tables

__all__ = [
    "UPLOAD_CRS",
    "UPLOAD_LIMITS_MB",
    "UPLOAD_SUFFIXES",
    "check_upload",
    "standards_tables",
    "upload_names",
    "write_upload_scenario",
]


def standards_tables(
    base: Sequence[Mapping[str, Any]],
    *,
    preset: str | None = None,
    thresholds: Mapping[str, Mapping[str, Any]] | None = None,
) -> list[dict[str, Any]]:
    """Return the ``[[standards]]`` tables of a plan: the scenario's or a preset's, edited.

    Parameters
    ----------
    base
        The scenario file's standards tables (used when ``preset`` is None).
    preset
        A shipped preset whose every rule replaces the scenario's standards.
    thresholds
        Rule id -> values replacing the rule's own (``minutes``, ``km``, ...). Rules pulled
        from a preset get them as ``override`` entries; plain rules are edited directly.

    Returns
    -------
    list of dict
        New tables (``base`` is not modified).

    Raises
    ------
    CoverageError
        When a threshold edit names a rule the standards do not have.
    """
    tables = [{"preset": preset}] if preset else copy.deepcopy([dict(t) for t in base])
    edits = dict(thresholds or {})
    applied: set[str] = set()
    for table in tables:
        if "preset" in table:
            ids = [str(t.get("id")) for t in preset_tables(str(table["preset"]))]
            only = table.get("only")
            chosen = [i for i in ids if only is None or i in only]
            override = dict(table.get("override", {}))
            for rid in chosen:
                if rid in edits:
                    override[rid] = {**dict(override.get(rid, {})), **dict(edits[rid])}
                    applied.add(rid)
            if override:
                table["override"] = override
        elif str(table.get("id")) in edits:
            table.update(copy.deepcopy(dict(edits[str(table["id"])])))
            applied.add(str(table["id"]))
    missing = sorted(set(edits) - applied)
    if missing:
        raise CoverageError(
            f"threshold edits for {', '.join(missing)} match no standard of this plan; "
            "reset the thresholds or choose the standards that have these rules"
        )
    return tables


#: Largest upload accepted per role, in MB.
UPLOAD_LIMITS_MB: dict[str, float] = {
    "facilities": 20.0,
    "boundaries": 100.0,
    "population": 200.0,
    "network": 200.0,
}
#: File endings accepted per role.
UPLOAD_SUFFIXES: dict[str, tuple[str, ...]] = {
    "facilities": (".csv", ".xlsx", ".xls", ".geojson", ".json", ".gpkg", ".zip"),
    "boundaries": (".geojson", ".json", ".gpkg", ".zip"),
    "population": (".csv", ".xlsx", ".geojson", ".json", ".gpkg", ".zip", ".tif", ".tiff"),
    "network": (".pbf", ".osm", ".graphml", ".xml"),
}
#: Coordinate systems offered for uploaded tables (see :mod:`covplan.inputs.crs`).
UPLOAD_CRS: tuple[str, ...] = ("WGS-84", "GCJ-02", "BD-09", "CGCS2000")


def check_upload(role: str, name: str, size: int) -> str:
    """Check an uploaded file's role, ending and size; return a safe file name for it.

    Raises
    ------
    CoverageError
        For an unknown role, an unsupported ending or a file over the role's size limit.
    """
    if role not in UPLOAD_LIMITS_MB:
        raise CoverageError(f"unknown upload role {role!r}; use one of {list(UPLOAD_LIMITS_MB)}")
    safe = safe_name(name)
    lower = safe.lower()
    if not lower.endswith(UPLOAD_SUFFIXES[role]):
        raise CoverageError(
            f"{name}: a {role} file must end with one of {', '.join(UPLOAD_SUFFIXES[role])}"
        )
    limit = UPLOAD_LIMITS_MB[role]
    if size > limit * 1024 * 1024:
        raise CoverageError(
            f"{name} is {size / 1024 / 1024:,.1f} MB; {role} files are limited to {limit:g} MB "
            "(cut the file to the study area)"
        )
    return safe


def _toml(value: Any) -> str:
    """TOML text of a string, number or list (JSON strings are valid TOML basic strings)."""
    return json.dumps(value, ensure_ascii=False)


def write_upload_scenario(
    folder: str | Path,
    files: Mapping[str, tuple[str, bytes]],
    *,
    crs: str = "WGS-84",
    id_column: str = "unit_id",
    name_column: str = "name",
    level: str = "township",
    population_column: str = "population",
    preset: str = "bazhong",
) -> Path:
    """Write uploaded files and a scenario file naming them into ``folder``; return its path.

    Parameters
    ----------
    folder
        The session's private folder.
    files
        Role (``facilities``, ``boundaries``, ``population`` (optional), ``network``) ->
        (original file name, content).
    crs
        Coordinate system of the facilities' and population's coordinates.
    id_column, name_column, level, population_column
        How to read the boundaries (and the population, for points or units).
    preset
        The standards preset the scenario starts with.

    Raises
    ------
    CoverageError
        When a required file is missing, a file is refused by :func:`check_upload`, or the
        CRS or preset is unknown.
    """
    missing = [r for r in ("facilities", "boundaries", "network") if r not in files]
    if missing:
        raise CoverageError(
            f"upload the {', '.join(missing)} file(s): facilities, boundaries and a road "
            "network are needed (population is optional: without it the boundaries' "
            "population column is used)"
        )
    if crs not in UPLOAD_CRS:
        raise CoverageError(f"unknown coordinate system {crs!r}; choose one of {UPLOAD_CRS}")
    if preset not in list_presets():
        raise CoverageError(f"unknown preset {preset!r}; known: {', '.join(list_presets())}")
    folder = Path(folder) / "upload"
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    paths: dict[str, Path] = {}
    for role, (name, content) in files.items():
        safe = check_upload(role, name, len(content))
        path = folder / f"{role}-{safe}"
        path.write_bytes(content)
        paths[role] = path
    lines = [
        "[scenario]",
        f"name = {_toml('Uploaded data')}",
        "",
        "[inputs.facilities]",
        f"path = {_toml(str(paths['facilities']))}",
        f"crs = {_toml(crs)}",
        "",
        "[inputs.boundaries]",
        f"path = {_toml(str(paths['boundaries']))}",
        f"id_column = {_toml(id_column)}",
        f"name_column = {_toml(name_column)}",
        f"level = {_toml(level)}",
    ]
    if "population" not in paths:
        lines.append(f"population_column = {_toml(population_column)}")
    lines += ["", "[inputs.population]"]
    if "population" in paths:
        raster = paths["population"].suffix.lower() in (".tif", ".tiff")
        lines += [
            f"kind = {_toml('raster' if raster else 'points')}",
            f"path = {_toml(str(paths['population']))}",
        ]
        if not raster:
            lines += [f"population_column = {_toml(population_column)}", f"crs = {_toml(crs)}"]
    else:
        lines.append(f"kind = {_toml('units')}")
    lines += [
        "",
        "[inputs.network]",
        f"source = {_toml(str(paths['network']))}",
        "buffer_m = 2000",
        "",
        "[[standards]]",
        f"preset = {_toml(preset)}",
        "",
        "[outputs]",
        f"dir = {_toml(str(folder / 'out'))}",
        "",
    ]
    scenario = folder / "scenario.toml"
    scenario.write_text("\n".join(lines), encoding="utf-8")
    return scenario


def upload_names(folder: str | Path, files: Mapping[str, tuple[str, bytes]]) -> dict[str, str]:
    """Return how messages may name the files :func:`write_upload_scenario` writes.

    Parameters
    ----------
    folder
        The session's private folder (as given to :func:`write_upload_scenario`).
    files
        Role -> (original file name, content), as given to :func:`write_upload_scenario`.

    Returns
    -------
    dict
        Each written file's path (as given and resolved) and stored name -> the uploaded
        file's own name, for :func:`covplan.planning.messages.public_message`.
    """
    written = Path(folder) / "upload"
    names: dict[str, str] = {}
    for role, (name, _) in files.items():
        stored = f"{role}-{safe_name(name)}"
        for where in (written, written.resolve()):
            names[str(where / stored)] = name
        names[stored] = name
    return names
