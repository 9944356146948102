"""The on-disk cache of built road networks: arrays, WKB geometries and a JSON header, no pickle.

Reading a cache file runs no code: numeric arrays come from an ``.npz`` archive loaded with
``allow_pickle=False``, geometries from WKB bytes (:func:`shapely.from_wkb`), text and other
per-edge values from JSON. A file written by anyone can at worst hold a wrong network, and a
SHA-256 checksum in the header catches every damaged one (a truncated copy, a bad disk block).

File layout (``<source file name>.<mode>.<key>.covnet`` in the cache folder)::

    MAGIC (16 bytes) | header length n (8 bytes, little-endian) | header (n bytes, UTF-8 JSON)
    | payload (an uncompressed .npz archive)

The header holds ``format`` (:data:`FORMAT`), ``covplan`` (the package version that wrote it),
``key`` (the cache key, :func:`cache_key`), ``payload_bytes`` and ``payload_sha256`` (checked
before the payload is parsed) and whatever the writer adds (:func:`write_network` adds the CRS,
the mode table and the build report). In the payload, an array kept as WKB is stored
as ``<name>.wkb`` (uint8, all geometries' bytes end to end) plus ``<name>.wkb_len`` (int64 byte
count per geometry, -1 for a missing one); an object array of other values is stored as
``<name>.json`` (one JSON text per element); every other array under its own name.

The cache key (:func:`cache_key`) hashes everything the built network depends on: this format,
the package version, the SHA-256 of the source file, the mode table (every parameter of the
:class:`~covplan.engine.modes.Mode` but its description), the buffer, the simplification, the
study area (WKB) and the elevation model (its SHA-256 and its name).
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import struct
import tempfile
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import asdict
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import numpy as np
import shapely
from covplan.engine.modes import Mode
from covplan.engine.road_network import BuildReport, RoadNetwork
from covplan.errors import InputWarning
from pyproj import CRS
from shapely.geometry.base import BaseGeometry

__all__ = [
    "FORMAT",
    "MAGIC",
    "SUFFIX",
    "CacheFileError",
    "cache_key",
    "file_sha256",
    "mode_table",
    "network_from_arrays",
    "package_version",
    "read_arrays",
    "read_network",
    "warn_unusable",
    "write_arrays",
    "write_network",
]

#: Version of the file layout; part of every key, so a new layout never reads an old file.
FORMAT = 2
#: First bytes of every cache file.
MAGIC = b"COVPLAN-NETCACHE"
#: Suffix of cache files.
SUFFIX = ".covnet"
_LENGTH = struct.Struct("<Q")
_MAX_HEADER_BYTES = 1 << 24  # a header is a few kB; a larger length means a damaged file
_WKB = ".wkb"
_WKB_LEN = ".wkb_len"
_JSON = ".json"
#: Arrays of a network's cache file kept as WKB; the fields of the header.
_NETWORK_GEOMETRY = ("geometry", "seg_geometry")
_NETWORK_HEADER_FIELDS = ("mode", "crs", "report")


class CacheFileError(Exception):
    """A cache file that cannot be used: damaged, of another format or for another key."""


def package_version() -> str:
    """Return the installed version of coverage-planner (``0.0.0`` in an uninstalled tree)."""
    try:
        return version("coverage-planner")
    except PackageNotFoundError:
        return "0.0.0"


def file_sha256(path: str | Path) -> str:
    """Return the hex SHA-256 of a file's bytes."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def mode_table(mode: Mode) -> dict[str, Any]:
    """Return every parameter of a mode that changes a built network, as plain JSON values."""
    data = asdict(mode)
    data.pop("description", None)
    data.pop("on_scene_minutes", None)  # added to response times after routing, not built in
    data["speeds_kmh"] = {k: float(v) for k, v in sorted(mode.speeds_kmh.items())}
    return json.loads(json.dumps(data, sort_keys=True, default=str))


def cache_key(
    source: str | Path,
    mode: Mode,
    *,
    buffer_m: float,
    simplify: bool,
    study_area: BaseGeometry | None,
    dem: str | Path | None,
    version: str | None = None,
) -> str:
    """Return the cache key of a network build (32 hex digits).

    Parameters
    ----------
    source
        The road network file; its SHA-256 is part of the key.
    mode
        The travel mode; its whole table (:func:`mode_table`) is part of the key.
    buffer_m, simplify, study_area, dem
        The build's other settings (:func:`covplan.engine.network.build_network`).
    version
        The package version; default :func:`package_version`.
    """
    dem_file = Path(str(dem)) if dem is not None else None
    parts = {
        "format": FORMAT,
        "covplan": version if version is not None else package_version(),
        "source_sha256": file_sha256(source),
        "mode": mode_table(mode),
        "buffer_m": float(buffer_m),
        "simplify": bool(simplify),
        "study_area": shapely.to_wkb(study_area, hex=True) if study_area is not None else None,
        "dem_sha256": file_sha256(dem_file) if dem_file is not None and dem_file.is_file()
        else None,
        "dem": str(dem) if dem is not None else None,
    }
    text = json.dumps(parts, sort_keys=True)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:32]


# ---------------------------------------------------------------------------------------------
# arrays <-> payload
# ---------------------------------------------------------------------------------------------
def _encode(arrays: Mapping[str, np.ndarray], geometry: Sequence[str]) -> dict[str, np.ndarray]:
    out: dict[str, np.ndarray] = {}
    for name, arr in arrays.items():
        if name in geometry:
            wkb = shapely.to_wkb(arr)
            lengths = np.asarray([-1 if b is None else len(b) for b in wkb], dtype=np.int64)
            out[name + _WKB] = np.frombuffer(b"".join(b for b in wkb if b is not None), np.uint8)
            out[name + _WKB_LEN] = lengths
        elif arr.dtype == object:
            out[name + _JSON] = np.asarray([json.dumps(x) for x in arr.tolist()], dtype=str)
        else:
            out[name] = arr
    return out


def _decode(stored: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    out: dict[str, np.ndarray] = {}
    for name, arr in stored.items():
        if name.endswith(_WKB_LEN):
            continue
        if name.endswith(_WKB):
            base = name.removesuffix(_WKB)
            lengths = stored[base + _WKB_LEN]
            data = arr.tobytes()
            ends = np.cumsum(np.maximum(lengths, 0))
            if lengths.ndim != 1 or (ends[-1] if ends.size else 0) != len(data):
                raise CacheFileError(f"the WKB lengths of {base} do not add up to its bytes")
            starts = ends - np.maximum(lengths, 0)
            wkb = np.empty(lengths.shape[0], dtype=object)
            for i, (a, b, n) in enumerate(zip(starts.tolist(), ends.tolist(), lengths.tolist(),
                                              strict=True)):
                wkb[i] = data[a:b] if n >= 0 else None
            out[base] = shapely.from_wkb(wkb)
        elif name.endswith(_JSON):
            texts = arr.tolist()
            out[name.removesuffix(_JSON)] = np.fromiter(
                (json.loads(t) for t in texts), dtype=object, count=len(texts)
            )
        else:
            out[name] = arr
    return out


def write_arrays(
    path: str | Path,
    arrays: Mapping[str, np.ndarray],
    header: Mapping[str, Any],
    *,
    key: str,
    geometry: Sequence[str] = (),
) -> None:
    """Write arrays and a header to a cache file, atomically (a temporary file, then a rename).

    Parameters
    ----------
    path
        The cache file; its folder is created (private to the user) when missing.
    arrays
        Numeric, text or object arrays; object arrays must hold JSON values or, when named in
        ``geometry``, shapely geometries.
    header
        JSON values stored beside the arrays (returned by :func:`read_arrays`).
    key
        The cache key (:func:`cache_key`), checked when the file is read.
    geometry
        The names of the arrays of geometries.

    Raises
    ------
    OSError
        If the folder or the file cannot be written.
    """
    buffer = io.BytesIO()
    np.savez(buffer, **_encode(arrays, geometry))
    payload = buffer.getvalue()
    head = {
        **header,
        "format": FORMAT,
        "covplan": package_version(),
        "key": key,
        "payload_bytes": len(payload),
        "payload_sha256": hashlib.sha256(payload).hexdigest(),
    }
    head_bytes = json.dumps(head, sort_keys=True).encode("utf-8")
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd, tmp = tempfile.mkstemp(prefix=target.name + ".", suffix=".tmp", dir=target.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(MAGIC + _LENGTH.pack(len(head_bytes)) + head_bytes)
            fh.write(payload)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def read_arrays(path: str | Path, *, key: str) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """Read a cache file written by :func:`write_arrays`, checking its format, key and checksum.

    Returns
    -------
    tuple
        The arrays (geometry and JSON arrays decoded) and the header.

    Raises
    ------
    CacheFileError
        If the file is not a cache file of this format, is for another key, is damaged (the
        checksum differs) or holds anything that would need unpickling.
    OSError
        If the file cannot be read.
    """
    with open(path, "rb") as fh:
        data = fh.read()
    start = len(MAGIC) + _LENGTH.size
    if len(data) < start or not data.startswith(MAGIC):
        raise CacheFileError("it is not a covplan network cache file")
    (n,) = _LENGTH.unpack_from(data, len(MAGIC))
    if n > _MAX_HEADER_BYTES or start + n > len(data):
        raise CacheFileError("its header length is damaged")
    try:
        header = json.loads(data[start:start + n].decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CacheFileError(f"its header is damaged ({exc})") from exc
    if not isinstance(header, dict):
        raise CacheFileError("its header is not a JSON object")
    if header.get("format") != FORMAT:
        raise CacheFileError(f"it has format {header.get('format')!r}, not {FORMAT}")
    if header.get("key") != key:
        raise CacheFileError("it holds another build (its key differs from its name)")
    payload = data[start + n:]
    if header.get("payload_bytes") != len(payload):
        raise CacheFileError(
            f"it holds {len(payload)} payload bytes, its header says {header.get('payload_bytes')}"
        )
    if hashlib.sha256(payload).hexdigest() != header.get("payload_sha256"):
        raise CacheFileError("its checksum differs (the file is damaged)")
    try:
        with np.load(io.BytesIO(payload), allow_pickle=False) as npz:
            stored = {name: npz[name] for name in npz.files}
        return _decode(stored), header
    except CacheFileError:
        raise
    except Exception as exc:  # zip, npy-format and pickle refusals (ValueError) alike
        raise CacheFileError(f"its arrays cannot be read ({type(exc).__name__}: {exc})") from exc


def warn_unusable(path: str | Path, problem: BaseException) -> None:
    """Warn (:class:`~covplan.errors.InputWarning`) that a cache file is unusable and rebuilt."""
    warnings.warn(
        f"network cache file {path} is not usable: {problem}; rebuilding the network from its "
        "source and overwriting the file",
        InputWarning,
        stacklevel=3,
    )


# ---------------------------------------------------------------------------------------------
# road network files
# ---------------------------------------------------------------------------------------------
def write_network(path: Path, net: RoadNetwork, *, key: str) -> None:
    """Write a network to a cache file (:func:`write_arrays`; geometries as WKB).

    Parameters
    ----------
    path
        The cache file.
    net
        The network; its CRS, mode table and build report go to the header.
    key
        The cache key (:func:`cache_key`).
    """
    arrays = {
        name: getattr(net, name)
        for name in net.__dataclass_fields__
        if name not in _NETWORK_HEADER_FIELDS and getattr(net, name) is not None
    }
    header = {
        "crs": net.crs.to_wkt(),
        "mode": mode_table(net.mode),
        "report": asdict(net.report),
    }
    write_arrays(path, arrays, header, key=key, geometry=_NETWORK_GEOMETRY)


def read_network(path: Path, *, key: str, mode: Mode) -> RoadNetwork | None:
    """Return the network of a cache file, None if missing or unusable (then warn).

    Parameters
    ----------
    path
        The cache file.
    key
        The cache key it must have been written with (:func:`cache_key`).
    mode
        The travel mode it must have been built with (same :func:`mode_table`).
    """
    if not path.is_file():
        return None
    try:
        arrays, header = read_arrays(path, key=key)
        return network_from_arrays(arrays, header, mode)
    except (CacheFileError, OSError) as exc:
        warn_unusable(path, exc)
        return None


def network_from_arrays(
    arrays: dict[str, np.ndarray], header: dict[str, Any], mode: Mode
) -> RoadNetwork:
    """Assemble and check a :class:`RoadNetwork` from a cache file's arrays and header.

    Raises
    ------
    CacheFileError
        If anything is missing, of another mode table, or of inconsistent sizes.
    """
    if header.get("mode") != mode_table(mode):
        raise CacheFileError("it was built with another mode table")
    try:
        crs = CRS.from_wkt(header["crs"])
        report = BuildReport(**header["report"])
        net = RoadNetwork(mode=mode, crs=crs, report=report, **arrays)
    except Exception as exc:  # missing/extra fields (TypeError, KeyError), bad CRS text
        raise CacheFileError(
            f"its contents are incomplete ({type(exc).__name__}: {exc})"
        ) from exc
    n, m, s = net.n_nodes, net.n_edges, int(net.seg_fwd.shape[0])
    shapes = {
        "lonlat": (n, 2), "xy": (n, 2), "u": (m,), "v": (m,), "length_m": (m,), "time_s": (m,),
        "highway": (m,), "osmid": (m,), "oneway": (m,), "maxspeed": (m,), "geometry": (m,),
        "seg_rev": (s,), "seg_start": (s,), "seg_end": (s,), "seg_geometry": (s,),
    }  # fmt: skip
    if net.elevation is not None:
        shapes["elevation"] = (n,)
    wrong = [name for name, shape in shapes.items() if getattr(net, name).shape != shape]
    in_range = all(
        idx.size == 0 or (idx.min() >= low and idx.max() < high)
        for idx, low, high in ((net.u, 0, n), (net.v, 0, n), (net.seg_start, 0, n),
                               (net.seg_end, 0, n), (net.seg_fwd, -1, m), (net.seg_rev, -1, m))
    )  # fmt: skip
    if wrong or not in_range:
        raise CacheFileError(
            f"its arrays do not fit together ({', '.join(wrong) or 'node or edge indices'})"
        )
    return net
