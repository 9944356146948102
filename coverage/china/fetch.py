"""``covplan data fetch``: from a district name to a ready scenario, using open data.

The pipeline, :func:`fetch_district`:

1. get the OpenStreetMap extract covering the district: a local file, or a download
   (by default the Geofabrik region extract, ``asia/china/chongqing`` or ``asia/china/sichuan``)
   that resumes a partial file (HTTP Range, only while the server's ETag or Last-Modified is
   the partial's), becomes the extract only once its size, published md5 and PBF structure
   check out (else it is deleted), stops at an overall deadline, reuses a complete one, is
   named after the region or district (never the URL), and is recorded with its URL, date and
   sha256 in ``manifest.json``;
2. find the district outline: the OSM administrative relation (by id, or by the county's name
   for the shipped NBS counties) or a geoBoundaries file the user gives;
3. cut the extract to the district plus a buffer (``district.osm.pbf``: nodes inside the
   buffered outline, the ways and relations using them, completed with everything they
   reference);
4. extract the township boundaries (``admin_level = 8``) where mapped, else approximate them
   by Voronoi cells of the township seats (:mod:`covplan.china.approximate`); health facilities;
   place nodes for villages;
5. write the layers as GeoJSON and a scenario TOML beside them.

The OSM data is © OpenStreetMap contributors, ODbL 1.0; the scenario file says so.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import http.client
import json
import re
import time
import urllib.error
import urllib.request
import warnings
import zlib
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import osmium
import pandas as pd
import shapely
from covplan import settings
from covplan.china.approximate import voronoi_units
from covplan.china.names import clean_name, match_names
from covplan.errors import CoverageError, InputWarning
from covplan.geo import metric_crs
from shapely.geometry.base import BaseGeometry

__all__ = [
    "BASE_URL_ENV",
    "DEFAULT_BASE_URL",
    "DEFAULT_DEADLINE_S",
    "DownloadRecord",
    "FetchResult",
    "cut_extract",
    "download",
    "download_name",
    "fetch_district",
    "md5_file",
    "pbf_problem",
    "region_url",
    "sha256_file",
    "update_manifest",
]

#: Where region extracts are downloaded from (the product's documented data source).
DEFAULT_BASE_URL = "https://download.geofabrik.de"
#: Environment variable overriding :data:`DEFAULT_BASE_URL` (a mirror or a local server).
BASE_URL_ENV = "COVPLAN_OSM_BASE_URL"
#: Older name of ``COVPLAN_CACHE_DIR``: downloads go to its ``osm`` folder (covplan.settings).
CACHE_ENV = "COVPLAN_CACHE"

_REGION_ALIASES = {
    "chongqing": "asia/china/chongqing",
    "重庆": "asia/china/chongqing",
    "重庆市": "asia/china/chongqing",
    "sichuan": "asia/china/sichuan",
    "四川": "asia/china/sichuan",
    "四川省": "asia/china/sichuan",
}

#: Place kinds kept as population places (village-level settlements and urban quarters).
PLACE_KINDS: tuple[str, ...] = (
    "city", "town", "village", "hamlet", "suburb", "quarter", "neighbourhood",
    "isolated_dwelling",
)
#: Place kinds that can be a township seat when the NBS township names are not known.
SEAT_KINDS: tuple[str, ...] = ("city", "town", "village")
_URBAN_PLACES = {"city", "town", "suburb", "quarter", "neighbourhood"}


def region_url(region: str, *, base_url: str | None = None) -> str:
    """Return the URL of a Geofabrik-style region extract.

    Parameters
    ----------
    region
        ``"chongqing"``, ``"sichuan"`` (or 重庆/四川) or a region path such as
        ``"asia/china/chongqing"``.
    base_url
        The server; default ``$COVPLAN_OSM_BASE_URL`` or :data:`DEFAULT_BASE_URL`.

    Examples
    --------
    >>> region_url("chongqing", base_url="http://127.0.0.1:8000/")
    'http://127.0.0.1:8000/asia/china/chongqing-latest.osm.pbf'
    """
    path = _region_path(region)
    base = (base_url or settings.osm_base_url() or DEFAULT_BASE_URL).rstrip("/")
    return f"{base}/{path}-latest.osm.pbf"


def _region_path(region: str) -> str:
    path = _REGION_ALIASES.get(clean_name(region).lower(), clean_name(region).strip("/"))
    if not re.fullmatch(r"[a-z0-9_\-]+(/[a-z0-9_\-]+)*", path):
        raise CoverageError(
            f"unknown region {region!r}: use chongqing, sichuan or a path like asia/china/sichuan"
        )
    return path


def download_name(
    *, region: str | None = None, district_code: str | None = None,
    relation_id: int | None = None, url: str | None = None,
) -> str:
    """Return the file name a download is kept under: from the region or district, never the URL.

    A region extract is named after the region (``chongqing-latest.osm.pbf``, shared by all
    its districts); any other download after the district: its NBS code (``500104.osm.pbf``),
    else its OSM relation (``osm-r2804753.osm.pbf``), else a hash of the URL. Names are made
    of ``[a-z0-9_-]`` only, so no URL can make a download land outside its folder.

    Examples
    --------
    >>> download_name(region="重庆")
    'chongqing-latest.osm.pbf'
    >>> download_name(district_code="500104", url="http://h/x/../../etc")
    '500104.osm.pbf'
    """
    if region is not None:
        return f"{_region_path(region).rsplit('/', 1)[-1]}-latest.osm.pbf"
    if district_code is not None and re.fullmatch(r"[0-9A-Za-z_\-]+", str(district_code)):
        return f"{district_code}.osm.pbf"
    if relation_id is not None:
        return f"osm-r{int(relation_id)}.osm.pbf"
    if url is None:
        raise CoverageError("no name for the download: give a region, a district or a URL")
    return f"url-{hashlib.sha256(url.encode('utf-8')).hexdigest()[:16]}.osm.pbf"


def sha256_file(path: str | Path, *, chunk_size: int = 1 << 20) -> str:
    """Return the hex sha256 of a file."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(chunk_size):
            digest.update(chunk)
    return digest.hexdigest()


@dataclass(frozen=True)
class DownloadRecord:
    """One file obtained for a run, as written to the manifest.

    Attributes
    ----------
    url
        Where it came from (``file://`` path for a local file).
    path
        Where it is (absolute).
    sha256, bytes
        Checksum and size of the complete file.
    date
        When it was downloaded or checked (UTC, ISO 8601).
    status
        ``"downloaded"``, ``"resumed"`` (a partial file was continued), ``"reused"`` (the file
        was already present) or ``"local"`` (given by the user).
    """

    url: str
    path: str
    sha256: str
    bytes: int
    date: str
    status: str


def _now() -> str:
    return dt.datetime.now(dt.UTC).replace(microsecond=0).isoformat()


def _offline_error(url: str, exc: BaseException, dest: Path) -> CoverageError:
    return CoverageError(
        f"cannot download {url}: {exc}. Is this machine offline? Download the file on a "
        f"machine with internet, copy it to {dest} and run again (it will be reused), or pass "
        "the local .osm.pbf with --pbf"
    )


#: Seconds a download may take in all, across restarts (``covplan data fetch --deadline``).
DEFAULT_DEADLINE_S = 3600.0
#: Largest BlobHeader and Blob of a valid OSM PBF file (the format's own limits).
_MAX_BLOB_HEADER = 64 * 1024
_MAX_BLOB = 32 * 1024 * 1024


def _varint(buf: bytes, i: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        if i >= len(buf) or shift > 63:
            raise ValueError("a number runs past the end of its block")
        byte = buf[i]
        i += 1
        value |= (byte & 0x7F) << shift
        shift += 7
        if not byte & 0x80:
            return value, i


def _protobuf_fields(buf: bytes) -> dict[int, Any]:
    """Decode the top-level fields of a protobuf message (last value of each field wins)."""
    fields: dict[int, Any] = {}
    i = 0
    while i < len(buf):
        key, i = _varint(buf, i)
        number, wire = key >> 3, key & 7
        if wire == 0:
            fields[number], i = _varint(buf, i)
        elif wire == 2:
            size, i = _varint(buf, i)
            if i + size > len(buf):
                raise ValueError("a field runs past the end of its block")
            fields.setdefault(number, [])
            if not isinstance(fields[number], list):
                fields[number] = []
            fields[number].append(buf[i:i + size])
            i += size
        elif wire == 1:
            i += 8
        elif wire == 5:
            i += 4
        else:
            raise ValueError(f"unknown protobuf wire type {wire}")
        if i > len(buf):
            raise ValueError("a field runs past the end of its block")
    return fields


def pbf_problem(path: str | Path) -> str | None:
    """Check that a file is a whole OSM PBF file; return what is wrong, or None.

    The file must start with an ``OSMHeader`` block declaring ``OsmSchema-V0.6``, be followed
    by ``OSMData`` blocks, and every block's framing (4-byte length, ``BlobHeader``, ``Blob`` of
    ``datasize`` bytes) must fit exactly up to the end of the file: a truncated download, an
    HTML error page or two files spliced at a wrong offset fail here.

    Parameters
    ----------
    path
        The file to check.

    Returns
    -------
    str or None
        A sentence saying what is wrong (and where), or None for a valid file.
    """
    path = Path(path)
    size = path.stat().st_size
    if size == 0:
        return "the file is empty"
    pos = blocks = 0
    with open(path, "rb") as fh:
        while pos < size:
            where = f"block {blocks} at byte {pos:,}"
            head = fh.read(4)
            if len(head) < 4:
                return f"it is truncated: {where} is cut off in its length"
            header_len = int.from_bytes(head, "big")
            if not 0 < header_len <= _MAX_BLOB_HEADER:
                return (f"{where} gives a header length of {header_len:,} bytes, which no OSM "
                        "PBF file has (is it an OSM PBF file at all?)")
            header = fh.read(header_len)
            if len(header) < header_len:
                return f"it is truncated: {where} is cut off in its header"
            try:
                fields = _protobuf_fields(header)
                kind = fields[1][0].decode("ascii")
                datasize = int(fields[3])
            except (KeyError, IndexError, TypeError, ValueError, UnicodeDecodeError) as exc:
                return f"{where} has no valid BlobHeader ({exc or type(exc).__name__})"
            expected = "OSMHeader" if blocks == 0 else "OSMData"
            if kind != expected:
                return f"{where} is a {kind!r} block where an {expected!r} block must be"
            if not 0 < datasize <= _MAX_BLOB:
                return f"{where} gives a data size of {datasize:,} bytes, beyond the format"
            end = pos + 4 + header_len + datasize
            if end > size:
                return (f"it is truncated: {where} needs bytes up to {end:,} but the file "
                        f"ends at {size:,}")
            if blocks == 0:
                problem = _header_block_problem(fh.read(datasize))
                if problem:
                    return f"{where}: {problem}"
            else:
                fh.seek(datasize, 1)
            pos = end
            blocks += 1
    if blocks < 2:
        return "it holds a header but no OSM data"
    return None


def _header_block_problem(blob: bytes) -> str | None:
    try:
        fields = _protobuf_fields(blob)
        if 1 in fields:
            data = fields[1][0]
        elif 3 in fields:
            data = zlib.decompress(fields[3][0])
        else:  # lzma, lz4 or zstd data: the framing was checked, the content is left to osmium
            return None
        required = [f.decode("utf-8") for f in _protobuf_fields(data).get(4, [])]
    except (ValueError, TypeError, zlib.error, UnicodeDecodeError) as exc:
        return f"the OSMHeader block cannot be read ({exc})"
    if "OsmSchema-V0.6" not in required:
        return f"the OSMHeader block does not declare OsmSchema-V0.6 (it requires {required})"
    return None


def md5_file(path: str | Path, *, chunk_size: int = 1 << 20) -> str:
    """Return the hex md5 of a file (the checksum download servers publish as ``.md5``)."""
    digest = hashlib.md5()  # noqa: S324 - matching the server's published checksum
    with open(path, "rb") as fh:
        while chunk := fh.read(chunk_size):
            digest.update(chunk)
    return digest.hexdigest()


class _Deadline:
    """Seconds left of an overall time budget (None: no budget)."""

    def __init__(self, seconds: float | None) -> None:
        self.seconds = seconds
        self.end = None if seconds is None else time.monotonic() + seconds

    def left(self) -> float:
        return float("inf") if self.end is None else self.end - time.monotonic()

    def timeout(self, timeout: float) -> float:
        """Return the socket timeout of the next operation: the per-operation one, or less."""
        return max(0.001, min(timeout, self.left()))


def _deadline_error(url: str, seconds: float | None, done: int, part: Path) -> CoverageError:
    return CoverageError(
        f"download of {url} stopped at its deadline of {seconds:g} s after {done:,} bytes; "
        f"run again to resume from {part}, or allow more time with --deadline SECONDS"
    )


def _validators(headers: Any) -> dict[str, str | None]:
    return {"etag": headers.get("ETag"), "last_modified": headers.get("Last-Modified")}


def _read_meta(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return {}
    return data if isinstance(data, dict) else {}


def _write_meta(path: Path, data: dict[str, Any]) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    tmp.replace(path)


def _same_file(stored: dict[str, Any], served: dict[str, str | None]) -> bool:
    """Tell whether the server's ETag (else Last-Modified) is the one stored with the partial."""
    if stored.get("etag") or served.get("etag"):
        return bool(stored.get("etag")) and stored.get("etag") == served.get("etag")
    return bool(stored.get("last_modified")) and (
        stored.get("last_modified") == served.get("last_modified"))


def _discard(*paths: Path) -> None:
    for p in paths:
        p.unlink(missing_ok=True)


def _published_md5(url: str, *, timeout: float, deadline: _Deadline) -> str | None:
    """Return the md5 the server publishes at ``<url>.md5``, or None if it publishes none."""
    request = urllib.request.Request(url + ".md5", headers={"User-Agent": _USER_AGENT})
    try:
        response = urllib.request.urlopen(request, timeout=deadline.timeout(timeout))  # noqa: S310
        with response:
            text = response.read(4096).decode("ascii", "replace")
    except (urllib.error.URLError, OSError, http.client.HTTPException, ValueError):
        return None
    token = (text.split() or [""])[0].lower()
    return token if re.fullmatch(r"[0-9a-f]{32}", token) else None


_USER_AGENT = "covplan (coverage-planner)"


def download(
    url: str,
    dest: str | Path,
    *,
    timeout: float = 60.0,
    chunk_size: int = 1 << 20,
    reuse: bool = True,
    progress: Callable[[int, int | None], None] | None = None,
    deadline: float | None = DEFAULT_DEADLINE_S,
    verify: bool = True,
) -> DownloadRecord:
    """Download an OSM PBF extract to a file, resuming a partial download safely.

    Data goes to ``<dest>.part`` first; the server's ``ETag`` and ``Last-Modified`` go beside
    it in ``<dest>.part.json``. A later call resumes the partial file (``Range``, with
    ``If-Range``) only when the server still serves the same file (same ETag, else same
    Last-Modified); otherwise, or when nothing says which file the partial came from, the
    download starts over (with a warning) so that two different files are never spliced.

    The partial file becomes ``dest`` only when its size is the ``Content-Length`` the server
    announced (when it did), its md5 is the one the server publishes at ``<url>.md5`` (when it
    does) and it is a whole OSM PBF file (:func:`pbf_problem`). Otherwise it is deleted and
    the error says why.

    Parameters
    ----------
    url
        An ``http(s)://`` URL.
    dest
        The file to write.
    timeout
        Seconds to wait for the server on each network operation.
    chunk_size
        Bytes read at a time (at most).
    reuse
        Keep and return a ``dest`` that already exists and is a whole OSM PBF file instead of
        downloading again (one that is not is deleted, with a warning, and downloaded again).
    progress
        Called as ``progress(bytes_so_far, total_or_None)`` after each chunk.
    deadline
        Seconds the whole download may take, across restarts and the checksum request; None
        for no limit. When it passes, the partial file is kept to be resumed.
    verify
        Check the checksum and the PBF structure before keeping the file (turn off only for
        files that are not OSM PBF).

    Returns
    -------
    DownloadRecord

    Raises
    ------
    CoverageError
        When the server cannot be reached (offline, refused), answers with an HTTP error, the
        connection ends early or the deadline passes (the partial file is kept when it can be
        resumed; running again resumes it), or the file is not what was announced (wrong size,
        wrong checksum, not a whole OSM PBF file: it is deleted).
    """
    budget = _Deadline(deadline)
    dest = Path(dest).expanduser().resolve()
    source = dest.with_name(dest.name + ".source.json")
    if reuse and dest.is_file():
        problem = pbf_problem(dest) if verify else None
        recorded = _read_meta(source).get("url")
        if problem is None and recorded not in (None, url):
            problem = f"it was downloaded from {recorded}"
        if problem is None:
            return DownloadRecord(url, str(dest), sha256_file(dest), dest.stat().st_size,
                                  _now(), "reused")
        warnings.warn(f"{dest} is not the extract of {url} ({problem}); deleted it and "
                      "downloading it again", InputWarning, stacklevel=2)
        _discard(dest, source)
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    meta = dest.with_name(dest.name + ".part.json")
    state = "downloaded"
    for _restart in range(3):
        state, done = _fetch_once(url, dest, part, meta, timeout=timeout, chunk_size=chunk_size,
                                  progress=progress, budget=budget)
        if state != "restart":
            break
    else:  # pragma: no cover - a server that keeps changing the file under us
        _discard(part, meta)
        raise CoverageError(f"download of {url}: the file kept changing on the server; try "
                            "again later")
    if verify:
        if budget.left() <= 0:
            raise _deadline_error(url, deadline, done, part)
        published = _published_md5(url, timeout=timeout, deadline=budget)
        if published is not None and (got := md5_file(part)) != published:
            _discard(part, meta)
            raise CoverageError(
                f"download of {url} does not match the checksum the server publishes "
                f"({url}.md5: {published}, the download: {got}); it was deleted. Run again to "
                f"download it anew, or download it by hand to {dest}"
            )
        problem = pbf_problem(part)
        if problem is not None:
            _discard(part, meta)
            raise CoverageError(
                f"download of {url} is not a usable OSM PBF extract: {problem}; it was deleted. "
                "Check the URL (region name, --base-url, --extract-url) and run again, or pass "
                "a local .osm.pbf with --pbf"
            )
    part.replace(dest)
    _discard(meta)
    _write_meta(source, {"url": url, "date": _now()})
    return DownloadRecord(url, str(dest), sha256_file(dest), dest.stat().st_size, _now(), state)


def _fetch_once(
    url: str, dest: Path, part: Path, meta: Path, *, timeout: float, chunk_size: int,
    progress: Callable[[int, int | None], None] | None, budget: _Deadline,
) -> tuple[str, int]:
    """One request into ``part``: ``("downloaded"|"resumed", bytes)`` or ``("restart", 0)``."""
    stored = _read_meta(meta) if part.is_file() else {}
    if part.is_file() and not (stored.get("url") == url and
                               (stored.get("etag") or stored.get("last_modified"))):
        warnings.warn(f"{part} does not record which file it is part of (no ETag or "
                      "Last-Modified beside it); starting the download over", InputWarning,
                      stacklevel=3)
        _discard(part, meta)
        stored = {}
    offset = part.stat().st_size if part.is_file() else 0
    request = urllib.request.Request(url, headers={"User-Agent": _USER_AGENT})
    if offset:
        request.add_header("Range", f"bytes={offset}-")
        request.add_header("If-Range", stored.get("etag") or stored["last_modified"])
    if budget.left() <= 0:
        raise _deadline_error(url, budget.seconds, offset, part)
    try:
        response = urllib.request.urlopen(request, timeout=budget.timeout(timeout))  # noqa: S310
    except urllib.error.HTTPError as exc:
        if exc.code == 416 and offset:
            total = _content_range_total(exc.headers.get("Content-Range", ""))
            if total == offset and _same_file(stored, _validators(exc.headers)):
                return "resumed", offset  # the partial file is already complete
            _discard(part, meta)
            return "restart", 0
        raise CoverageError(
            f"download of {url} failed: HTTP {exc.code} {exc.reason}. Check the URL (region "
            f"name, --base-url) or download it by hand to {dest}"
        ) from exc
    except TimeoutError as exc:
        if budget.left() <= 0:
            raise _deadline_error(url, budget.seconds, offset, part) from exc
        raise _offline_error(url, exc, dest) from exc
    except (urllib.error.URLError, OSError) as exc:
        raise _offline_error(url, exc, dest) from exc
    with response:
        served = _validators(response.headers)
        length = response.headers.get("Content-Length")
        if response.status == 206:
            start = _content_range_start(response.headers.get("Content-Range", ""))
            if start != offset or not _same_file(stored, served):
                why = (f"resumed at byte {start}, not {offset}" if start != offset else
                       "does not serve the version of the file the partial download is part "
                       "of (its ETag or Last-Modified differs, or is missing)")
                warnings.warn(f"the server of {url} {why}; starting the download over",
                              InputWarning, stacklevel=3)
                _discard(part, meta)
                return "restart", 0
            mode, done, state = "ab", offset, "resumed"
            total = offset + int(length) if length is not None else None
        else:
            if offset:
                warnings.warn(f"the server of {url} sent the whole file instead of the rest "
                              f"of {part} (it changed, or does not resume); starting over",
                              InputWarning, stacklevel=3)
            mode, done, state = "wb", 0, "downloaded"
            total = int(length) if length is not None else None
        resumable = bool(served["etag"] or served["last_modified"])
        if resumable:
            _write_meta(meta, {"url": url, **served, "bytes": total})
        else:
            _discard(meta)
        read = getattr(response, "read1", response.read)
        try:
            with open(part, mode) as fh:
                while chunk := read(chunk_size):
                    fh.write(chunk)
                    done += len(chunk)
                    if progress is not None:
                        progress(done, total)
                    if budget.left() <= 0:
                        raise _deadline_error(url, budget.seconds, done, part)
        except (urllib.error.URLError, OSError, http.client.HTTPException) as exc:
            if budget.left() <= 0:
                raise _deadline_error(url, budget.seconds, done, part) from exc
            if not resumable:
                _discard(part)
            raise CoverageError(
                f"download of {url} interrupted after {done:,} bytes ({exc}); "
                + (f"run again to resume from {part}" if resumable else
                   "the server gives no ETag or Last-Modified, so it cannot be resumed safely "
                   "and was deleted; run again to start over")
            ) from exc
    if total is not None and done != total:
        if done < total and resumable:
            raise CoverageError(
                f"download of {url} ended early: {done:,} of {total:,} bytes; run again to "
                f"resume from {part}"
            )
        _discard(part, meta)
        raise CoverageError(
            f"download of {url} ended early: {done:,} of {total:,} bytes (the size the server "
            "announced); the server gives no ETag or Last-Modified, so the partial file "
            "cannot be resumed safely and was deleted; run again to start over"
            if done < total else
            f"download of {url} is larger than announced: {done:,} bytes, not {total:,}; "
            "it was deleted; run again"
        )
    return state, done


def _content_range_start(text: str) -> int | None:
    m = re.match(r"bytes\s+(\d+)-", text.strip())
    return int(m.group(1)) if m else None


def _content_range_total(text: str) -> int | None:
    m = re.search(r"/(\d+)\s*$", text.strip())
    return int(m.group(1)) if m else None


def update_manifest(folder: str | Path, **entries: Any) -> Path:
    """Merge entries into ``<folder>/manifest.json`` (lists under ``downloads`` are keyed by path).

    Returns
    -------
    Path
        The manifest file.
    """
    path = Path(folder) / "manifest.json"
    data: dict[str, Any] = {}
    if path.is_file():
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as exc:
            raise CoverageError(f"{path} is not valid JSON ({exc}); delete it and run again") \
                from exc
    for key, value in entries.items():
        if key == "downloads":
            known = {d["path"]: d for d in data.get("downloads", [])}
            for rec in value:
                rec = asdict(rec) if isinstance(rec, DownloadRecord) else dict(rec)
                known[rec["path"]] = rec
            data["downloads"] = list(known.values())
        else:
            data[key] = value
    data["updated"] = _now()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, ensure_ascii=False, indent=2, default=str) + "\n",
                    encoding="utf-8")
    return path


def cut_extract(
    source: str | Path, area: BaseGeometry, dest: str | Path
) -> dict[str, int]:
    """Write the part of an OSM file inside a lon/lat polygon, reference-complete.

    Kept: every node inside ``area``, every way with a node inside, every relation with a
    member kept, and (completing the references) all nodes of kept ways and all member ways
    and nodes of kept relations, so boundaries and roads crossing the edge stay whole.

    Parameters
    ----------
    source
        The OSM file to cut (.osm.pbf).
    area
        The polygon to keep (EPSG:4326).
    dest
        The output file (.osm.pbf); replaced when it exists.

    Returns
    -------
    dict
        Numbers of ``nodes``, ``ways`` and ``relations`` written.
    """
    source = str(source)
    dest = Path(dest)
    minx, miny, maxx, maxy = area.bounds
    shapely.prepare(area)
    ids: list[int] = []
    xs: list[float] = []
    ys: list[float] = []
    for node in osmium.FileProcessor(source, osmium.osm.NODE):
        loc = node.location
        if loc.valid() and minx <= loc.lon <= maxx and miny <= loc.lat <= maxy:
            ids.append(node.id)
            xs.append(loc.lon)
            ys.append(loc.lat)
    tracker = osmium.IdTracker()
    if ids:
        inside = shapely.contains_xy(area, np.asarray(xs), np.asarray(ys))
        inside |= shapely.intersects_xy(area.boundary, np.asarray(xs), np.asarray(ys))
        for nid in np.asarray(ids)[inside]:
            tracker.add_node(int(nid))
    inner_nodes = tracker.node_ids()
    for way in osmium.FileProcessor(source, osmium.osm.WAY):
        if any(n.ref in inner_nodes for n in way.nodes):
            tracker.add_way(way.id)
    kept_ways = tracker.way_ids()
    for rel in osmium.FileProcessor(source, osmium.osm.RELATION):
        for m in rel.members:
            if (m.type == "n" and m.ref in inner_nodes) or (m.type == "w" and m.ref in kept_ways):
                tracker.add_relation(rel.id)
                break
    tracker.complete_backward_references(source, relation_depth=0)
    counts = {"nodes": 0, "ways": 0, "relations": 0}
    if dest.exists():
        dest.unlink()
    dest.parent.mkdir(parents=True, exist_ok=True)
    writer = osmium.SimpleWriter(str(dest))
    try:
        for obj in osmium.FileProcessor(source).with_filter(tracker.id_filter()):
            writer.add(obj)
            counts[{"n": "nodes", "w": "ways", "r": "relations"}[obj.type_str()]] += 1
    finally:
        writer.close()
    return counts


@dataclass
class FetchResult:
    """What :func:`fetch_district` produced.

    Attributes
    ----------
    out_dir, scenario, manifest, extract
        The output folder, the scenario TOML, the manifest JSON and the cut extract.
    district, townships, facilities, places
        The written layers (also as GeoJSON files in ``out_dir``).
    townships_approximate
        True when the township polygons are Voronoi approximations.
    downloads
        The download records.
    """

    out_dir: Path
    scenario: Path
    manifest: Path
    extract: Path
    district: gpd.GeoDataFrame
    townships: gpd.GeoDataFrame
    facilities: gpd.GeoDataFrame
    places: gpd.GeoDataFrame
    townships_approximate: bool
    downloads: list[DownloadRecord] = field(default_factory=list)


def _default_download_dir() -> Path:
    return settings.download_dir()  # the ``osm`` folder in $COVPLAN_CACHE_DIR (or $CACHE_ENV)


def _district_outline(
    source: Path,
    *,
    relation_id: int | None,
    boundary_file: Path | None,
    boundary_name: str | None,
    names: tuple[str, ...],
    admin_level: int,
) -> tuple[BaseGeometry, str, dict[str, Any]]:
    from covplan.inputs.osm_features import read_admin_boundaries

    if boundary_file is not None:
        layer = gpd.read_file(boundary_file)
        layer = layer.to_crs("EPSG:4326") if layer.crs is not None else layer
        if boundary_name is not None or (len(layer) > 1 and names):
            wanted = {clean_name(n).lower() for n in ((boundary_name,) if boundary_name else names)}
            text_cols = [c for c in layer.columns if c != "geometry" and layer[c].dtype != float]
            hit = layer[[any(clean_name(v).lower() in wanted for v in row)
                         for row in layer[text_cols].itertuples(index=False)]]
            if len(hit) != 1:
                raise CoverageError(
                    f"{boundary_file}: {len(hit)} features named {sorted(wanted)}; give "
                    "boundary_name matching exactly one feature (for geoBoundaries, its shapeName "
                    "or shapeID)"
                )
            layer = hit
        elif len(layer) != 1:
            raise CoverageError(
                f"{boundary_file} has {len(layer)} features: give boundary_name to pick one"
            )
        row = layer.iloc[0]
        name = next((str(row[c]) for c in ("shapeName", "name", "NAME") if c in layer.columns),
                    boundary_name or "")
        return row.geometry, name, {"source": str(boundary_file), "feature": name}
    if relation_id is not None:
        rel = read_admin_boundaries(source, relation_ids=[relation_id])
        row = rel.iloc[0]
        return row.geometry, str(row["name"]), {
            "source": "OpenStreetMap", "osm_relation": int(relation_id)}
    if not names:
        raise CoverageError(
            "no district outline: give the OSM relation id of the district (relation_id), a "
            "geoBoundaries file (boundary_file), or a shipped NBS county"
        )
    with warnings.catch_warnings():  # only the district's own relation matters here
        warnings.simplefilter("ignore", InputWarning)
        rels = read_admin_boundaries(source, admin_level=admin_level)
    wanted = {clean_name(n) for n in names}
    hit = rels[[clean_name(n) in wanted for n in rels["name"]]]
    if len(hit) != 1:
        raise CoverageError(
            f"{len(hit)} admin_level={admin_level} relations named {sorted(wanted)} in {source}; "
            "give the district's OSM relation id (relation_id) or a geoBoundaries file"
        )
    row = hit.iloc[0]
    return row.geometry, str(row["name"]), {
        "source": "OpenStreetMap", "osm_relation": int(row["osm_id"])}


def _buffer(geom: BaseGeometry, metres: float) -> BaseGeometry:
    crs = metric_crs(geom)
    series = gpd.GeoSeries([geom], crs="EPSG:4326").to_crs(crs).buffer(metres)
    return series.to_crs("EPSG:4326").iloc[0]


def fetch_district(
    district: str | int | None = None,
    *,
    out_dir: str | Path,
    pbf: str | Path | None = None,
    url: str | None = None,
    region: str | None = None,
    base_url: str | None = None,
    download_dir: str | Path | None = None,
    relation_id: int | None = None,
    boundary_file: str | Path | None = None,
    boundary_name: str | None = None,
    district_admin_level: int = 6,
    township_admin_level: int = 8,
    buffer_m: float = 5000.0,
    seat_kinds: tuple[str, ...] = SEAT_KINDS,
    place_kinds: tuple[str, ...] = PLACE_KINDS,
    name: str | None = None,
    language: str = "zh",
    timeout: float = 60.0,
    progress: Callable[[int, int | None], None] | None = None,
    deadline: float | None = DEFAULT_DEADLINE_S,
) -> FetchResult:
    """Fetch open data for one district and write a ready scenario.

    Parameters
    ----------
    district
        A shipped NBS county (code, Chinese or romanised name, e.g. ``"500104"``,
        ``"大渡口区"``, ``"Dadukou"``), or None when ``relation_id`` or ``boundary_file`` names
        the district.
    out_dir
        Folder for the layers, the cut extract, ``manifest.json`` and ``scenario.toml``.
    pbf
        A local OSM extract to use instead of downloading.
    url
        The extract to download; default the Geofabrik region of the county
        (:func:`region_url` of ``region``).
    region
        Region extract to download (``chongqing``/``sichuan``); default from the county's
        province.
    base_url
        Server of the region extracts (a mirror); default ``$COVPLAN_OSM_BASE_URL`` or
        :data:`DEFAULT_BASE_URL`.
    download_dir
        Where downloads are kept and reused; default ``$COVPLAN_CACHE/osm`` or
        ``~/.cache/covplan/osm``.
    relation_id
        The OSM ``boundary=administrative`` relation of the district.
    boundary_file, boundary_name
        A boundary file (geoBoundaries CHN ADM3 GeoJSON, for example) and the name or id of
        the district's feature in it.
    district_admin_level
        ``admin_level`` of the district relation when found by name (Chinese counties: 6).
    township_admin_level
        ``admin_level`` of township relations (China: 8).
    buffer_m
        Metres kept around the district (roads and facilities across the border matter).
    seat_kinds
        ``place`` values that can be a township seat when the township polygons must be
        approximated and the township names are not known from NBS.
    place_kinds
        ``place`` values written as population places.
    name
        Scenario name; default the district's name.
    language
        Scenario language (``"zh"`` or ``"en"``).
    timeout
        Network timeout in seconds.
    progress
        Download progress callback ``(bytes_so_far, total_or_None)``.
    deadline
        Seconds the download may take in all, across restarts (None: no limit).

    Returns
    -------
    FetchResult

    Raises
    ------
    CoverageError
        When offline or on HTTP errors, when the district outline cannot be found, or when the
        district holds no township seat to approximate townships from.
    """
    from covplan.china import nbs
    from covplan.inputs.osm_features import (
        read_admin_boundaries,
        read_health_facilities,
        read_places,
    )

    out = Path(out_dir).expanduser().resolve()
    out.mkdir(parents=True, exist_ok=True)
    county = nbs.lookup_county(district) if district is not None else None

    # 1. the extract
    downloads: list[DownloadRecord] = []
    if pbf is not None:
        source = Path(pbf).expanduser().resolve()
        if not source.is_file():
            raise CoverageError(f"OSM extract not found: {source}")
        downloads.append(DownloadRecord(source.as_uri(), str(source), sha256_file(source),
                                        source.stat().st_size, _now(), "local"))
    else:
        if url is None:
            reg = region or (county.geofabrik_region if county is not None else None)
            if not reg:
                raise CoverageError(
                    "no extract to download: give url=, region= (chongqing/sichuan), pbf= or a "
                    "shipped NBS county"
                )
            url = region_url(reg, base_url=base_url)
            filename = download_name(region=reg)
        else:
            filename = download_name(district_code=county.code if county else None,
                                     relation_id=relation_id, url=url)
        folder = Path(download_dir) if download_dir is not None else _default_download_dir()
        record = download(url, folder / filename, timeout=timeout, progress=progress,
                          deadline=deadline)
        downloads.append(record)
        source = Path(record.path)
    update_manifest(out, downloads=downloads)

    # 2. the district outline
    names: tuple[str, ...] = ()
    if county is not None:
        names = (county.name, county.pinyin, f"{county.pinyin} District")
    outline, found_name, outline_meta = _district_outline(
        source, relation_id=relation_id,
        boundary_file=Path(boundary_file) if boundary_file is not None else None,
        boundary_name=boundary_name, names=names, admin_level=district_admin_level,
    )
    district_id = county.code if county is not None else (
        f"osm-r{outline_meta['osm_relation']}" if "osm_relation" in outline_meta
        else clean_name(found_name) or "district")
    district_name = county.name if county is not None else found_name

    # 3. cut to district + buffer
    area = _buffer(outline, buffer_m)
    extract = out / "district.osm.pbf"
    counts = cut_extract(source, area, extract)

    # 4. layers
    district_gdf = gpd.GeoDataFrame(
        {"unit_id": [district_id], "name": [district_name], "level": ["district"],
         "parent_id": [None], "population": [float(county.population) if county and
                                             county.population else np.nan],
         "urban_rural": [None]},
        geometry=[outline], crs="EPSG:4326",
    )
    shapely.prepare(outline)
    places = read_places(extract)
    places = places[places["place"].isin(place_kinds)
                    & shapely.intersects(outline, places.geometry.values)]
    townships, approximate = _townships(
        extract, outline, places, county=county, district_id=district_id,
        admin_level=township_admin_level, seat_kinds=seat_kinds,
        read_admin_boundaries=read_admin_boundaries,
    )
    facilities = read_health_facilities(extract, area=area)
    facilities = facilities.assign(
        in_district=shapely.intersects(outline, facilities.geometry.values))
    place_layer = _place_layer(places, townships)

    # 5. write
    files = {
        "district": out / "district.geojson",
        "townships": out / "townships.geojson",
        "facilities": out / "facilities.geojson",
        "places": out / "places.geojson",
    }
    district_gdf.to_file(files["district"], driver="GeoJSON")
    townships.to_file(files["townships"], driver="GeoJSON")
    facilities.to_file(files["facilities"], driver="GeoJSON")
    place_layer.to_file(files["places"], driver="GeoJSON")
    scenario = out / "scenario.toml"
    scenario.write_text(
        _scenario_text(name or district_name, language=language, buffer_m=buffer_m,
                       approximate=approximate, district=district_name,
                       source_url=downloads[0].url),
        encoding="utf-8",
    )
    manifest = update_manifest(
        out,
        district={"id": district_id, "name": district_name, **outline_meta,
                  "buffer_m": buffer_m},
        extract={"path": str(extract), "sha256": sha256_file(extract), **counts},
        outputs={k: str(v) for k, v in {**files, "scenario": scenario}.items()},
        counts={"townships": len(townships), "facilities": len(facilities),
                "facilities_in_district": int(facilities["in_district"].sum()),
                "places": len(place_layer)},
        townships_approximate=approximate,
        licence="Data © OpenStreetMap contributors, ODbL 1.0",
    )
    return FetchResult(out, scenario, manifest, extract, district_gdf, townships, facilities,
                       place_layer, approximate, downloads)


def _townships(
    extract: Path,
    outline: BaseGeometry,
    places: gpd.GeoDataFrame,
    *,
    county: Any,
    district_id: str,
    admin_level: int,
    seat_kinds: tuple[str, ...],
    read_admin_boundaries: Callable[..., gpd.GeoDataFrame],
) -> tuple[gpd.GeoDataFrame, bool]:
    from covplan.china import nbs

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", InputWarning)
        rels = read_admin_boundaries(extract, admin_level=admin_level)
    if len(rels):
        inside = rels[[outline.contains(g.representative_point()) for g in rels.geometry]]
    else:
        inside = rels
    nbs_towns = nbs.load_units(level="township", county=county.code) if county else None
    if len(inside):
        units = gpd.GeoDataFrame(
            {"unit_id": [f"osm-r{i}" for i in inside["osm_id"]],
             "name": list(inside["name"]), "level": "township", "parent_id": district_id,
             "population": np.nan, "urban_rural": None, "approximate": False,
             "method": "osm"},
            geometry=list(inside.geometry), crs="EPSG:4326",
        )
        approximate = False
    else:
        if nbs_towns is not None:
            match = match_names(list(places["name"]), list(nbs_towns["name"]), level="township")
            keep = [m.index is not None for m in match]
            seats = places[keep].assign(
                unit_id=[nbs_towns["code"].iloc[m.index] for m in match if m.index is not None],
                name=[nbs_towns["name"].iloc[m.index] for m in match if m.index is not None],
            ).drop_duplicates("unit_id")
        else:
            seats = places[places["place"].isin(seat_kinds)]
            seats = seats.assign(unit_id=[f"osm-n{i}" for i in seats["osm_id"]])
        units = voronoi_units(seats, outline, parent_id=district_id)
        approximate = True
    if nbs_towns is not None:
        joined, _ = nbs.join_by_code_or_name(
            pd.DataFrame({"name": units["name"]}), level="township", county=county.code)
        units["nbs_code"] = list(joined["nbs_code"])
        units["urban_rural"] = list(joined["urban_rural"])
    return units.reset_index(drop=True), approximate


def _place_layer(places: gpd.GeoDataFrame, townships: gpd.GeoDataFrame) -> gpd.GeoDataFrame:
    joined = gpd.sjoin(places, townships[["unit_id", "urban_rural", "geometry"]],
                       how="left", predicate="intersects")
    joined = joined[~joined.index.duplicated(keep="first")]
    by_kind = ["urban" if k in _URBAN_PLACES else "rural" for k in joined["place"]]
    from_unit = joined["urban_rural"].where(joined["urban_rural"].notna(), None)
    urban_rural = [u if isinstance(u, str) else k for u, k in zip(from_unit, by_kind,
                                                                    strict=True)]
    source = ["nbs" if isinstance(u, str) else "default" for u in from_unit]
    return gpd.GeoDataFrame(
        {"place_id": [f"osm-n{i}" for i in joined["osm_id"]],
         "name": list(joined["name"]), "place": list(joined["place"]),
         "unit_id": list(joined["unit_id"]), "population": list(joined["population"]),
         "urban_rural": urban_rural, "ur_source": source,
         "approximate_unit": [bool(a) for a in townships.set_index("unit_id")
                              .reindex(joined["unit_id"])["approximate"].fillna(False)]},
        geometry=list(joined.geometry), crs="EPSG:4326",
    ).reset_index(drop=True)


def _scenario_text(name: str, *, language: str, buffer_m: float, approximate: bool,
                   district: str, source_url: str) -> str:
    note = (
        "# Township polygons are APPROXIMATE (Voronoi cells of the township seats clipped to "
        "the district):\n# the column `approximate` says so in every output.\n"
        if approximate else "# Township polygons are the OSM admin_level 8 relations.\n"
    )
    return f"""# {name}: written by `covplan data fetch`.
# Data © OpenStreetMap contributors, ODbL 1.0 (source: {source_url}); see manifest.json.
{note}# Township populations are empty: fill the `population` column of townships.geojson from
# the census (乡镇街道人口), for example with covplan.china.nbs.join_by_code_or_name.

[scenario]
name = {json.dumps(name, ensure_ascii=False)}
language = {json.dumps(language)}
description = {json.dumps(f"{district}: open-data scenario", ensure_ascii=False)}

[inputs.facilities]
path = "facilities.geojson"

[inputs.boundaries]
path = "townships.geojson"
id_column = "unit_id"
name_column = "name"
level = "township"
population_column = "population"
urban_rural_column = "urban_rural"

[inputs.population]
kind = "units"

[inputs.network]
source = "district.osm.pbf"
buffer_m = {float(buffer_m)}
max_snap_m = 1000

# The emergency circle (BZ-12 urban 15 min / BZ-13 rural 30 min) and 15 minutes / 5 km to
# care (SPB-01, SPB-02), with the Shapingba counts per 区县 and 镇街; add the presets of your
# own plan (`covplan presets`).
[[standards]]
preset = "bazhong"
only = ["BZ-12", "BZ-13"]

[[standards]]
preset = "shapingba"

[outputs]
language = {json.dumps(language)}
isochrone_minutes = [15, 30]
"""
