"""The run manifest: input hashes, OSM extract date, package versions, parameters, timings."""

from __future__ import annotations

import datetime as dt
import hashlib
import importlib.metadata
import json
import math
import os
import platform
import re
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from covplan.errors import CoverageError

__all__ = [
    "PACKAGES",
    "build_manifest",
    "file_sha256",
    "manifest_digest",
    "manifest_json",
    "read_osm_extract_date",
    "script_safe_json",
    "to_jsonable",
]

#: Distributions whose versions every manifest records (None when not installed).
PACKAGES: tuple[str, ...] = (
    "coverage-planner",
    "numpy",
    "scipy",
    "pandas",
    "geopandas",
    "shapely",
    "pyproj",
    "pyogrio",
    "networkx",
    "osmnx",
    "osmium",
    "rasterio",
    "folium",
    "matplotlib",
    "openpyxl",
    "pulp",
    "spopt",
)

_DATE_IN_NAME = re.compile(r"(\d{4}-\d{2}-\d{2})")


def file_sha256(path: str | os.PathLike[str], *, chunk_size: int = 1 << 20) -> str:
    """Return the hex SHA-256 of a file's bytes.

    Raises
    ------
    CoverageError
        If the file cannot be read.
    """
    digest = hashlib.sha256()
    try:
        with open(path, "rb") as handle:
            for block in iter(lambda: handle.read(chunk_size), b""):
                digest.update(block)
    except OSError as exc:
        raise CoverageError(
            f"cannot hash input file {path}: {exc} (check that it exists and is readable)"
        ) from exc
    return digest.hexdigest()


def read_osm_extract_date(path: str | os.PathLike[str]) -> str | None:
    """Return the date of an OSM extract (``YYYY-MM-DD``), or None when it cannot be told.

    The PBF header's ``osmosis_replication_timestamp`` (or ``timestamp``) is used first,
    then a ``YYYY-MM-DD`` in the file name.
    """
    path = Path(path)
    try:
        import osmium

        reader = osmium.io.Reader(str(path), osmium.osm.osm_entity_bits.NOTHING)
        try:
            header = reader.header()
            stamp = header.get("osmosis_replication_timestamp") or header.get("timestamp")
        finally:
            reader.close()
        if stamp:
            return str(stamp)[:10]
    except Exception:  # noqa: BLE001 - an unreadable header falls back to the file name
        pass
    match = _DATE_IN_NAME.search(path.name)
    return match.group(1) if match else None


def _package_versions() -> dict[str, str | None]:
    versions: dict[str, str | None] = {}
    for name in PACKAGES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def to_jsonable(value: Any) -> Any:
    """Convert ``value`` into plain JSON types (paths, numpy scalars, dates, non-finite floats).

    Non-finite floats become ``None`` so the result is strict JSON.
    """
    if isinstance(value, Mapping):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [to_jsonable(v) for v in value]
    if isinstance(value, (str, bool)) or value is None:
        return value
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    if isinstance(value, (dt.datetime, dt.date)):
        return value.isoformat()
    item = getattr(value, "item", None)  # numpy scalars
    if callable(item):
        try:
            return to_jsonable(item())
        except (TypeError, ValueError):
            pass
    tolist = getattr(value, "tolist", None)  # numpy arrays
    if callable(tolist):
        return to_jsonable(tolist())
    return str(value)


def manifest_json(manifest: Mapping[str, Any], *, indent: int | None = 2) -> str:
    """Serialise a manifest as UTF-8-friendly JSON with sorted keys."""
    return json.dumps(
        to_jsonable(manifest), ensure_ascii=False, sort_keys=True, indent=indent, allow_nan=False
    )


def manifest_digest(manifest: Mapping[str, Any]) -> str:
    """Return the SHA-256 of the manifest's canonical (compact, sorted) JSON."""
    canonical = json.dumps(
        to_jsonable(manifest), ensure_ascii=False, sort_keys=True, separators=(",", ":")
    )
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def script_safe_json(manifest: Mapping[str, Any]) -> str:
    """JSON that is safe inside an HTML ``<script>`` element (no ``<``, ``>``, ``&``)."""
    text = manifest_json(manifest, indent=1)
    return (
        text.replace("&", "\\u0026")
        .replace("<", "\\u003c")
        .replace(">", "\\u003e")
        .replace("\u2028", "\\u2028")
        .replace("\u2029", "\\u2029")
    )


def build_manifest(
    *,
    inputs: Mapping[str, str | os.PathLike[str]],
    parameters: Mapping[str, Any],
    timings: Mapping[str, float],
    osm_extract_date: str | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Describe one run so that its results can be traced and reproduced.

    Parameters
    ----------
    inputs
        Role -> input file (for example ``{"network": Path("…/liechtenstein.osm.pbf")}``).
        Each file is hashed with SHA-256.
    parameters
        The effective scenario parameters (any JSON-like values).
    timings
        Step name -> seconds.
    osm_extract_date
        The OSM extract's date; when None it is read from the first ``.osm.pbf`` input.
    overrides
        Rule id -> changed threshold -> ``{"from": preset value, "to": value used}``
        (:func:`covplan.standards.plans.rule_overrides`: every ``override`` of the scenario and
        every ``--set`` of a rule's threshold); recorded as ``overrides`` (``{}`` when none).

    Returns
    -------
    dict
        ``created`` (UTC ISO timestamp), ``python``, ``platform``, ``packages``
        (distribution -> version or None), ``inputs`` (role -> path, bytes, sha256),
        ``osm_extract_date``, ``parameters``, ``overrides``, ``timings``. Plain JSON types only.

    Raises
    ------
    CoverageError
        If an input file cannot be read.
    """
    files: dict[str, dict[str, Any]] = {}
    for role, raw in inputs.items():
        path = Path(raw)
        if not path.is_file():
            raise CoverageError(
                f"manifest input {role!r}: {path} is not a file (check the scenario's inputs)"
            )
        files[str(role)] = {
            "path": str(path),
            "bytes": path.stat().st_size,
            "sha256": file_sha256(path),
        }
    if osm_extract_date is None:
        for info in files.values():
            if info["path"].endswith((".osm.pbf", ".pbf", ".osm")):
                osm_extract_date = read_osm_extract_date(info["path"])
                if osm_extract_date:
                    break
    return {
        "created": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "packages": _package_versions(),
        "inputs": files,
        "osm_extract_date": osm_extract_date,
        "parameters": to_jsonable(parameters),
        "overrides": to_jsonable(dict(overrides or {})),
        "timings": {str(k): round(float(v), 3) for k, v in timings.items()},
    }
