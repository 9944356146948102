"""Settings from the environment: the one module of the package that reads ``os.environ``.

Every setting is read when it is used (each is a function, none is a module constant), so a
variable set after ``import covplan`` still counts. Every variable starts with ``COVPLAN_``.

``COVPLAN_CACHE_DIR``
    The cache folder (:func:`cache_dir`). Default: the user's cache folder of the platform,
    ``platformdirs.user_cache_dir("covplan")`` (``~/.cache/covplan`` on Linux,
    ``~/Library/Caches/covplan`` on macOS, ``covplan/Cache`` in ``%LOCALAPPDATA%`` on Windows).
    Built road networks go to its ``networks`` subfolder (:func:`network_cache_dir`),
    downloaded OpenStreetMap extracts to its ``osm`` subfolder (:func:`download_dir`).
    Replaces ``COVERAGE_CACHE_DIR``, which is no longer read.
``COVPLAN_CACHE``
    The older name of ``COVPLAN_CACHE_DIR`` (it named the folder whose ``osm`` subfolder holds
    the downloads); still honoured when ``COVPLAN_CACHE_DIR`` is not set. Default: unset.
``COVPLAN_OSM_BASE_URL``
    The server region extracts are downloaded from, a mirror or a local server
    (:func:`osm_base_url`). Default: unset, meaning
    :data:`covplan.china.fetch.DEFAULT_BASE_URL` (the Geofabrik download server).
``COVPLAN_CHINA_DATA``
    A folder of NBS tables replacing the ones shipped in ``covplan/china/tables``
    (:func:`china_data_dir`). Default: unset (the shipped tables).
``COVPLAN_SCENARIOS``
    The folder of the app's demo scenarios (:func:`scenarios_dir`). Default: ``data/scenarios``
    in the current folder (a checkout of the repository).
``COVPLAN_MAX_NETWORK_BYTES``, ``COVPLAN_MAX_INPUT_BYTES``, ``COVPLAN_MAX_SCENARIO_BYTES``
    Size limits in bytes (a whole number above 0) of road-network files, other input files and
    scenario files (:func:`size_limit_override`). Default: unset, meaning the limits of
    :data:`covplan.inputs._io.MAX_INPUT_BYTES` (2 GiB, 500 MiB and 10 MiB).
``COVPLAN_MAP_MAX_POINTS``
    The most population places map.html and map.png draw (:func:`map_max_points`); a run with
    more draws a seeded random sample of this many and says so on the map. Default: 20000.
``COVPLAN_XLSX_MAX_ROWS``
    The most data rows of one units.xlsx sheet (:func:`xlsx_max_rows`); a longer table is cut
    there with a note (the full table is in places.csv / units.csv and results.gpkg). At most
    1048575 (Excel's limit less the heading row). Default: 200000.
"""

from __future__ import annotations

import os
from pathlib import Path

from covplan.errors import CoverageError

__all__ = [
    "CACHE_DIR_ENV",
    "LEGACY_CACHE_ENV",
    "SIZE_LIMIT_ENV",
    "VARIABLES",
    "cache_dir",
    "china_data_dir",
    "map_max_points",
    "xlsx_max_rows",
    "download_dir",
    "network_cache_dir",
    "osm_base_url",
    "scenarios_dir",
    "size_limit_override",
]

#: The variable naming the cache folder.
CACHE_DIR_ENV = "COVPLAN_CACHE_DIR"
#: The older name of :data:`CACHE_DIR_ENV` (the folder of the ``osm`` download subfolder).
LEGACY_CACHE_ENV = "COVPLAN_CACHE"
#: Variables overriding the size limits, per kind of input file.
SIZE_LIMIT_ENV: dict[str, str] = {
    "network": "COVPLAN_MAX_NETWORK_BYTES",
    "input": "COVPLAN_MAX_INPUT_BYTES",
    "scenario": "COVPLAN_MAX_SCENARIO_BYTES",
}
#: Every variable this module reads.
VARIABLES: tuple[str, ...] = (
    CACHE_DIR_ENV, LEGACY_CACHE_ENV, "COVPLAN_OSM_BASE_URL", "COVPLAN_CHINA_DATA",
    "COVPLAN_SCENARIOS", *SIZE_LIMIT_ENV.values(), "COVPLAN_MAP_MAX_POINTS",
    "COVPLAN_XLSX_MAX_ROWS",
)  # fmt: skip
#: Default of ``COVPLAN_MAP_MAX_POINTS`` (places drawn on a map).
MAP_MAX_POINTS = 20_000
#: Default of ``COVPLAN_XLSX_MAX_ROWS`` (data rows of one XLSX sheet).
XLSX_MAX_ROWS = 200_000
#: Rows of an XLSX sheet (1,048,576) less its heading row.
XLSX_SHEET_ROWS = 1_048_575


def _get(name: str) -> str | None:
    """Return the stripped value of a variable, None when unset or blank."""
    text = os.environ.get(name, "").strip()
    return text or None


def cache_dir() -> Path:
    """Return the cache folder: ``$COVPLAN_CACHE_DIR``, else ``$COVPLAN_CACHE``, else the user's.

    The folder is not created here; writers create it when they first store something.
    """
    text = _get(CACHE_DIR_ENV) or _get(LEGACY_CACHE_ENV)
    if text is not None:
        return Path(text).expanduser()
    import platformdirs

    return Path(platformdirs.user_cache_dir("covplan"))


def network_cache_dir() -> Path:
    """Return the folder of the built road networks (``networks`` in :func:`cache_dir`)."""
    return cache_dir() / "networks"


def download_dir() -> Path:
    """Return the folder of downloaded OpenStreetMap extracts (``osm`` in :func:`cache_dir`)."""
    return cache_dir() / "osm"


def osm_base_url() -> str | None:
    """Return ``$COVPLAN_OSM_BASE_URL`` (the server of region extracts), None when unset."""
    return _get("COVPLAN_OSM_BASE_URL")


def china_data_dir() -> Path | None:
    """Return ``$COVPLAN_CHINA_DATA`` (a folder of NBS tables), None when unset."""
    text = _get("COVPLAN_CHINA_DATA")
    return Path(text).expanduser() if text is not None else None


def scenarios_dir() -> Path:
    """Return the folder of the app's demo scenarios ($COVPLAN_SCENARIOS, else ./data/scenarios)."""
    text = _get("COVPLAN_SCENARIOS")
    if text is not None:
        return Path(text).expanduser()
    return Path.cwd() / "data" / "scenarios"


def child_environment(**changes: str) -> dict[str, str]:
    """Return this process's environment with ``changes``, for a child process (the app)."""
    return {**os.environ, **changes}


def size_limit_override(kind: str, *, default: int | None = None) -> int | None:
    """Return the size limit in bytes a variable sets for a kind of input file, None if unset.

    Parameters
    ----------
    kind
        ``network``, ``input`` or ``scenario`` (the keys of :data:`SIZE_LIMIT_ENV`).
    default
        The limit when the variable is unset, only to name it in the error message.

    Raises
    ------
    CoverageError
        If the variable is not a whole number of bytes above 0, or the kind is unknown.
    """
    if kind not in SIZE_LIMIT_ENV:
        raise CoverageError(
            f"unknown kind of input file {kind!r}; use one of {', '.join(SIZE_LIMIT_ENV)}"
        )
    name = SIZE_LIMIT_ENV[kind]
    text = _get(name)
    if text is None:
        return None
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value <= 0:
        raise CoverageError(
            f"environment variable {name}={text!r} is not a size limit; give a whole number of "
            "bytes above 0, or unset it for the default"
            + (f" ({default})" if default is not None else "")
        )
    return value


def _whole_number(name: str, default: int, *, most: int | None = None) -> int:
    """Return a variable as a whole number above 0 (``default`` when unset).

    Raises
    ------
    CoverageError
        If the variable is set to anything else, or above ``most``.
    """
    text = _get(name)
    if text is None:
        return default
    try:
        value = int(text.replace("_", "").replace(",", ""))
    except ValueError:
        value = 0
    if value <= 0 or (most is not None and value > most):
        limit = f" and at most {most}" if most is not None else ""
        raise CoverageError(
            f"environment variable {name}={text!r} is not a valid number; give a whole number "
            f"above 0{limit}, or unset it for the default ({default})"
        )
    return value


def map_max_points() -> int:
    """Return the most places a map draws (``$COVPLAN_MAP_MAX_POINTS``, default 20,000)."""
    return _whole_number("COVPLAN_MAP_MAX_POINTS", MAP_MAX_POINTS)


def xlsx_max_rows() -> int:
    """Return the most data rows of one XLSX sheet (``$COVPLAN_XLSX_MAX_ROWS``, default 200,000)."""
    return _whole_number("COVPLAN_XLSX_MAX_ROWS", XLSX_MAX_ROWS, most=XLSX_SHEET_ROWS)
