"""Private reading helpers of :mod:`covplan.inputs.loaders`: formats, encodings, CRS, checks.

Every reader returns a layer in EPSG:4326 with a private ``_row`` column that holds where each
record sits in the user's file (the spreadsheet row for CSV/Excel, header = row 1; the feature
number counted from 1 for vector files), so that later checks can name the offending rows even
after rows were dropped. Problems are collected and raised together as one
:class:`covplan.errors.InputError`; nothing here writes a file.

Limits on untrusted files (uploads, files from many sources):

- Size: every input file is checked against :data:`MAX_INPUT_BYTES` before it is read
  (:func:`check_size`): 2 GiB for road networks (``.osm.pbf``/``.osm``/``.graphml``), 500 MiB
  for the other inputs, 10 MiB for scenario files. Each limit can be changed with an environment
  variable holding a number of bytes (:data:`SIZE_LIMIT_ENV`, e.g.
  ``COVPLAN_MAX_INPUT_BYTES=2000000000``).
- Zip files are never extracted: GDAL reads the dataset inside in place (``/vsizip/``). Before
  that, :func:`inspect_zip` refuses archives whose member names are absolute or climb out of
  the archive's folder with ``..`` (zip-slip), and archives that would unpack to more than the
  size limit (zip bombs).
"""

from __future__ import annotations

import errno
import io
import posixpath
import warnings
import zipfile
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pyogrio
import shapely
from covplan import settings as _settings
from covplan.errors import CoverageError, InputError, InputWarning, Problem
from covplan.inputs.crs import canonical_crs, to_wgs84
from pyproj import CRS, Transformer
from pyproj.exceptions import CRSError

#: File suffixes read as tables of longitude/latitude columns.
TABLE_SUFFIXES = (".csv", ".tsv", ".txt", ".xlsx", ".xlsm")
#: File suffixes read as vector layers with pyogrio.
VECTOR_SUFFIXES = (".geojson", ".json", ".gpkg", ".shp", ".zip", ".fgb", ".kml", ".gml")
#: Encodings tried in order for text tables (UTF-8 with or without BOM, then GB18030 ⊃ GBK).
ENCODINGS = ("utf-8-sig", "gb18030")
#: Column names recognised as longitude / latitude (compared case-insensitively).
LON_NAMES = ("lon", "lng", "long", "longitude", "x", "经度")
LAT_NAMES = ("lat", "latitude", "y", "纬度")
#: How many row numbers a message lists before summarising the rest.
MAX_LISTED = 20
WGS84 = "EPSG:4326"
#: Size limits in bytes per kind of input file (see :func:`check_size`).
MAX_INPUT_BYTES: dict[str, int] = {
    "network": 2 * 1024**3,
    "input": 500 * 1024**2,
    "scenario": 10 * 1024**2,
}
#: Environment variables overriding :data:`MAX_INPUT_BYTES` (a whole number of bytes).
SIZE_LIMIT_ENV: dict[str, str] = _settings.SIZE_LIMIT_ENV
#: Suffixes of the datasets looked for inside a zip file.
ZIP_DATASET_SUFFIXES = (".shp", ".gpkg", ".geojson", ".json", ".fgb", ".kml", ".gml")
_SUPPORTED = (
    "CSV or Excel (.xlsx) with longitude/latitude columns, GeoJSON, GeoPackage (.gpkg), "
    "Shapefile (.shp) or zipped Shapefile (.zip)"
)


@dataclass(frozen=True)
class Source:
    """Where a layer came from, to name places in messages.

    Parameters
    ----------
    path
        The file read.
    kind
        ``"table"`` (CSV/Excel), ``"vector"`` or ``"raster"``.
    encoding
        The text encoding used for a CSV file, else ``""``.
    """

    path: Path
    kind: str
    encoding: str = ""

    @property
    def name(self) -> str:
        """The file name shown in messages."""
        return self.path.name

    @property
    def unit(self) -> str:
        """The word for one record: ``row`` for tables, ``feature`` for vector files."""
        return "row" if self.kind == "table" else "feature"

    def where(self, rows: Iterable[int] | None = None, column: str | None = None) -> str:
        """Return ``"file.csv rows 3, 7, column 'lat'"`` for the given record numbers."""
        text = self.name
        if rows is not None:
            nums = [int(r) for r in rows]
            plural = "s" if len(nums) != 1 else ""
            text += f" {self.unit}{plural} {list_numbers(nums)}"
        if column is not None:
            text += f", column {column!r}"
        return text


def list_numbers(values: Sequence[object]) -> str:
    """Join values with commas, listing at most :data:`MAX_LISTED` and counting the rest."""
    shown = ", ".join(str(v) for v in values[:MAX_LISTED])
    extra = len(values) - MAX_LISTED
    return f"{shown} and {extra} more" if extra > 0 else shown


def symlink_loop_problem(path: str | Path, *, where: str | None = None) -> Problem:
    """Return the problem of a path that is, or passes through, a symbolic link loop.

    Parameters
    ----------
    path
        The path as given.
    where
        Where the path was given (a key path such as ``inputs.facilities.path``); default
        the path itself.
    """
    return Problem(
        where or str(path),
        f"{path} is a symbolic link loop: the link points, directly or through other links, "
        "back to itself, so there is no file to read",
        "replace the link by the file itself or point it to an existing file "
        "(`ls -l` shows where each link points)",
    )


def resolve_path(path: str | Path, *, role: str) -> Path:
    """Return ``path`` with ``~`` expanded, absolute and with links resolved.

    A missing file is not an error here (the readers report it); a symbolic link loop is.

    Parameters
    ----------
    path
        The path as given.
    role
        What the path is, for the message (``scenario``, ``facilities``...).

    Raises
    ------
    InputError
        If the path is a symbolic link loop (Python raises ``RuntimeError`` for that before
        3.13 and ``OSError`` ELOOP after).
    """
    given = Path(path).expanduser()
    try:
        return given.resolve()
    except (RuntimeError, OSError) as exc:
        if isinstance(exc, OSError) and exc.errno != errno.ELOOP:
            raise
        raise InputError([symlink_loop_problem(given)], source=f"the {role} path") from exc


def _is_loop(path: Path) -> bool:
    try:
        path.resolve()
    except RuntimeError:
        return True
    except OSError as exc:
        return exc.errno == errno.ELOOP
    return False


def require_file(path: str | Path, *, role: str, kind: str = "input") -> Path:
    """Return ``path`` as a Path after checking it exists, is a file, and is within the limit.

    Raises
    ------
    CoverageError
        If the file is missing, a folder, empty (0 bytes) or larger than
        :func:`size_limit` of ``kind``, or a symbolic link loop (an
        :class:`~covplan.errors.InputError`).
    """
    p = Path(path)
    if not p.exists():
        if _is_loop(p):
            raise InputError([symlink_loop_problem(p)], source=f"the {role} file")
        raise CoverageError(
            f"{role} file not found: {p} (looked in {p.resolve().parent}); check the path "
            "(paths in a scenario file are relative to that file)"
        )
    if p.is_dir():
        raise CoverageError(f"{role} path {p} is a folder; give the file inside it ({_SUPPORTED})")
    if check_size(p, role=role, kind=kind) == 0:
        raise CoverageError(f"{p.name}: the {role} file is empty (0 bytes); the upload or "
                            "export was probably interrupted: save or copy it again")
    return p


def size_limit(kind: str = "input") -> int:
    """Return the size limit in bytes of a kind of input (``network``, ``input``, ``scenario``).

    The environment variable of :data:`SIZE_LIMIT_ENV` overrides :data:`MAX_INPUT_BYTES`.

    Raises
    ------
    CoverageError
        If the environment variable is not a whole number of bytes above 0.
    """
    default = MAX_INPUT_BYTES[kind]
    value = _settings.size_limit_override(kind, default=default)
    return default if value is None else value


def check_size(path: str | Path, *, role: str, kind: str = "input") -> int:
    """Return the size of a file in bytes, or raise if it is over the limit of ``kind``.

    Raises
    ------
    CoverageError
        Naming the file, its size, the limit and the environment variable that raises it.
    """
    p = Path(path)
    size = p.stat().st_size
    limit = size_limit(kind)
    if size > limit:
        raise CoverageError(
            f"{p.name}: the {role} file is {_mib(size)}, over the limit of {_mib(limit)}; "
            f"cut it to the study area (for OSM: osmium extract), or raise the limit with the "
            f"environment variable {SIZE_LIMIT_ENV[kind]} (bytes)")
    return size


def _mib(n: int) -> str:
    return f"{n / 1024**2:,.1f} MiB" if n >= 1024**2 else f"{n:,} bytes"


# ----------------------------------------------------------------------------------- zips
def unsafe_member(name: str) -> bool:
    """Return True for a zip member name that is absolute or climbs out with ``..``.

    Backslashes count as separators and drive letters (``C:``) as absolute, since archives
    made on Windows use them.
    """
    text = name.replace("\\", "/")
    if text.startswith("/") or (len(text) > 1 and text[1] == ":") or "\0" in text:
        return True
    return ".." in text.split("/") or posixpath.isabs(posixpath.normpath(text))


def inspect_zip(path: Path, *, role: str, kind: str = "input") -> list[zipfile.ZipInfo]:
    """Check a zip file's members before anything reads them; return the file members.

    Raises
    ------
    CoverageError
        If it is not a readable zip, a member name is absolute or climbs out of the archive's
        folder (zip-slip), or the members would unpack to more than :func:`size_limit`.
    """
    try:
        with zipfile.ZipFile(path) as zf:
            infos = zf.infolist()
    except (zipfile.BadZipFile, OSError, ValueError, EOFError) as exc:
        raise CoverageError(f"{path.name}: not a readable zip file ({exc}); zip the files "
                            "again, or give the Shapefile/GeoPackage itself") from exc
    unsafe = [i.filename for i in infos if unsafe_member(i.filename)]
    if unsafe:
        raise CoverageError(
            f"{path.name}: refused, {len(unsafe)} member(s) of the zip would be written outside "
            f"its folder ({list_numbers([repr(n) for n in unsafe])}); make the zip again "
            "from the folder holding the files, without absolute paths or '..'")
    total = sum(i.file_size for i in infos)
    limit = size_limit(kind)
    if total > limit:
        raise CoverageError(
            f"{path.name}: the {role} zip would unpack to {_mib(total)}, over the limit of "
            f"{_mib(limit)}; cut the data to the study area, or raise the limit with the "
            f"environment variable {SIZE_LIMIT_ENV[kind]} (bytes)")
    return [i for i in infos if not i.is_dir()]


def zip_dataset(path: Path, *, layer: str | None, role: str) -> tuple[str, str | None]:
    """Return the GDAL path of the dataset inside a zip (read in place) and the layer to read.

    One dataset (``.shp``, ``.gpkg``, ``.geojson``...) anywhere in the zip is read; with
    several, ``layer`` names one by its file stem (several Shapefiles in one folder are read as
    the layers of that folder, as GDAL does).

    Raises
    ------
    CoverageError
        As :func:`inspect_zip`, or when the zip holds no dataset, or several and ``layer``
        does not pick one.
    """
    members = inspect_zip(path, role=role)
    data = [m.filename for m in members
            if m.filename.lower().endswith(ZIP_DATASET_SUFFIXES)
            and not posixpath.basename(m.filename).startswith(("._", "."))]
    root = f"/vsizip/{path.resolve().as_posix()}"
    if not data:
        names = list_numbers([m.filename for m in members])
        raise CoverageError(f"{path.name}: no Shapefile (.shp), GeoPackage or GeoJSON inside the "
                            f"zip (it holds {names or 'nothing'}); zip the .shp with its .shx, "
                            ".dbf and .prj files")
    if len(data) == 1:
        return f"{root}/{data[0]}", layer
    folders = {posixpath.dirname(n) for n in data}
    if len(folders) == 1 and all(n.lower().endswith(".shp") for n in data):
        folder = folders.pop()
        return (f"{root}/{folder}" if folder else root), layer
    if layer is not None:
        picked = [n for n in data if posixpath.splitext(posixpath.basename(n))[0] == layer]
        if len(picked) == 1:
            return f"{root}/{picked[0]}", None
    raise CoverageError(f"{path.name} holds {len(data)} datasets {data}; say which one to read "
                        "with layer (its file name without suffix), or zip one dataset per file")


# ----------------------------------------------------------------------------------- tables
def read_text_table(path: Path) -> tuple[pd.DataFrame, str]:
    """Read a CSV/TSV file as strings, trying UTF-8 (with BOM) and then GB18030.

    Returns
    -------
    (DataFrame, str)
        The table (every cell a string or missing) and the encoding that decoded it.
    """
    raw = path.read_bytes()
    for encoding in ENCODINGS:
        try:
            text = raw.decode(encoding)
        except UnicodeDecodeError:
            continue
        break
    else:
        raise CoverageError(
            f"{path.name}: cannot decode the file as UTF-8 or GB18030/GBK; "
            "save it as 'CSV UTF-8' from your spreadsheet program"
        )
    sep = "\t" if path.suffix.lower() == ".tsv" else ","
    try:
        with warnings.catch_warnings():
            # more fields in a row than in the header: pandas would shift the columns (or drop
            # the extra fields with index_col=False); refuse instead
            warnings.simplefilter("error", pd.errors.ParserWarning)
            df = pd.read_csv(io.StringIO(text), sep=sep, dtype=str, skipinitialspace=True,
                             skip_blank_lines=False, index_col=False)
    except pd.errors.EmptyDataError:
        df = pd.DataFrame()
    except pd.errors.ParserWarning as exc:
        raise CoverageError(
            f"{path.name}: some rows have more fields than the header line ({exc}); check the "
            "separators: quote values that contain a comma, and use a dot as decimal separator"
        ) from exc
    except pd.errors.ParserError as exc:
        raise CoverageError(
            f"{path.name}: not a readable CSV table ({exc}); check quoting and separators"
        ) from exc
    df.columns = [str(c).strip() for c in df.columns]
    return df, encoding


def read_excel_table(path: Path, *, sheet: str | None) -> pd.DataFrame:
    """Read one sheet of an .xlsx workbook as strings (the first sheet unless ``sheet``)."""
    try:
        book = pd.ExcelFile(path, engine="openpyxl")
    except Exception as exc:  # openpyxl raises several unrelated types for broken files
        raise CoverageError(
            f"{path.name}: not a readable Excel .xlsx workbook ({exc}); "
            "open it in a spreadsheet program and save it again as .xlsx or CSV UTF-8"
        ) from exc
    with book:
        if sheet is not None and sheet not in book.sheet_names:
            raise CoverageError(
                f"{path.name}: no sheet {sheet!r}; its sheets are {book.sheet_names} "
                "(set layer to one of them)"
            )
        df = pd.read_excel(book, sheet_name=sheet if sheet is not None else 0, dtype=str)
    df.columns = [str(c).strip() for c in df.columns]
    return df


def find_column(
    columns: Sequence[str], wanted: str | None, candidates: Sequence[str], *, what: str,
    option: str, source: Source, required: bool = True,
) -> str | None:
    """Return the column named ``wanted``, else the first of ``candidates`` present.

    Raises
    ------
    InputError
        If ``wanted`` is not a column, or nothing matches and ``required``.
    """
    if wanted is not None:
        if wanted in columns:
            return wanted
        raise InputError(
            [Problem(source.name, f"no column {wanted!r} (the {what} column given by {option})",
                     f"its columns are {list(columns)}; correct {option}")],
            source=source.name,
        )
    lowered = {str(c).strip().lower(): c for c in columns}
    for cand in candidates:
        if cand.lower() in lowered:
            return lowered[cand.lower()]
    if required:
        raise InputError(
            [Problem(source.name, f"no {what} column found (looked for {list(candidates)})",
                     f"its columns are {list(columns)}; name the column with {option}")],
            source=source.name,
        )
    return None


def numeric_column(
    df: pd.DataFrame, column: str, *, source: Source, what: str
) -> tuple[pd.Series, list[Problem]]:
    """Parse a column as floats; return the values and problems for non-numeric or infinite cells.

    Infinite values (``inf``, ``1e400``) are reported and returned as NaN.
    """
    raw = df[column]
    values = pd.to_numeric(raw, errors="coerce").astype(float)
    text = raw.astype("string").str.strip()
    bad = values.isna() & raw.notna() & (text.fillna("") != "")
    problems = []
    if bad.any():
        rows = df.loc[bad, "_row"].tolist()
        samples = list_numbers([repr(v) for v in raw[bad].tolist()])
        problems.append(Problem(source.where(rows, column),
                                f"{what} is not a number: {samples}",
                                "write plain numbers with a dot as decimal separator"))
    infinite = np.isinf(values.to_numpy())
    if infinite.any():
        rows = df.loc[infinite, "_row"].tolist()
        samples = list_numbers([repr(v) for v in raw[infinite].tolist()])
        problems.append(Problem(source.where(rows, column),
                                f"{what} is not a finite number: {samples}",
                                "write an ordinary number (at most 1e308)"))
        values = values.mask(pd.Series(infinite, index=values.index))
    return values, problems


def table_points(
    df: pd.DataFrame, *, source: Source, crs: str | None, lon_column: str | None,
    lat_column: str | None,
) -> gpd.GeoDataFrame:
    """Turn a table with longitude/latitude (or projected x/y) columns into WGS-84 points.

    Parameters
    ----------
    df
        The table, with the private ``_row`` column.
    source
        Where it came from.
    crs
        ``None``/WGS-84, ``CGCS2000``, ``GCJ-02``, ``BD-09`` or any pyproj-readable CRS.
    lon_column, lat_column
        Column names; detected from :data:`LON_NAMES` / :data:`LAT_NAMES` when None.

    Raises
    ------
    InputError
        Listing missing, non-numeric, out-of-range or swapped coordinates with their rows.
    """
    columns = [c for c in df.columns if c != "_row"]
    lon_col = find_column(columns, lon_column, LON_NAMES, what="longitude", option="lon_column",
                          source=source)
    lat_col = find_column(columns, lat_column, LAT_NAMES, what="latitude", option="lat_column",
                          source=source)
    assert lon_col is not None and lat_col is not None
    canon = canonical_crs(crs)
    target = _parse_crs(canon, source) if canon not in ("GCJ-02", "BD-09") else None
    geographic = target is None or target.is_geographic
    lon, problems = numeric_column(df, lon_col, source=source, what="longitude")
    lat, more = numeric_column(df, lat_col, source=source, what="latitude")
    problems += more
    missing = (df[lon_col].isna() | df[lat_col].isna()
               | (df[lon_col].astype("string").str.strip() == "")
               | (df[lat_col].astype("string").str.strip() == "")).fillna(True).to_numpy(bool)
    if missing.any():
        problems.append(Problem(
            source.where(df.loc[missing, "_row"].tolist()),
            f"missing coordinates (columns {lon_col!r}/{lat_col!r} empty)",
            "fill in longitude and latitude or delete those rows"))
    finite = np.isfinite(lon.to_numpy()) & np.isfinite(lat.to_numpy())
    if geographic:
        lon_bad = finite & (np.abs(lon.to_numpy()) > 180.0)
        lat_bad = finite & (np.abs(lat.to_numpy()) > 90.0)
        if lat_bad.any() and np.all(np.abs(lon.to_numpy()[finite]) <= 90.0):
            rows = df.loc[lat_bad, "_row"].tolist()
            problems.append(Problem(
                source.where(rows, lat_col),
                f"columns look swapped: latitude column {lat_col!r} holds values beyond ±90 "
                f"(up to {np.nanmax(np.abs(lat.to_numpy()[lat_bad])):g}) while longitude "
                f"column {lon_col!r} stays within ±90",
                f"swap the columns, or set lon_column={lat_col!r}, lat_column={lon_col!r}"))
        else:
            for bad, col, limit in ((lon_bad, lon_col, 180), (lat_bad, lat_col, 90)):
                if bad.any():
                    values = (lon if col == lon_col else lat)[bad].tolist()
                    problems.append(Problem(
                        source.where(df.loc[bad, "_row"].tolist(), col),
                        f"coordinates outside the valid range ±{limit}: "
                        f"{list_numbers([f'{v:g}' for v in values])}",
                        "give degrees of longitude/latitude, or set crs to the projected "
                        "system the numbers are in"))
    if problems:
        raise InputError(problems, source=source.name)
    x, y = lon.to_numpy(float), lat.to_numpy(float)
    if target is None or (geographic and _is_wgs84_like(target)):
        x, y = to_wgs84(x, y, canon if target is None else WGS84)
    else:
        x, y = Transformer.from_crs(target, WGS84, always_xy=True).transform(x, y)
        _check_range(np.asarray(x), np.asarray(y), df["_row"].tolist(), source,
                     crs_text=str(crs))
    return gpd.GeoDataFrame(df.copy(), geometry=gpd.points_from_xy(x, y), crs=WGS84)


def _is_wgs84_like(crs: CRS) -> bool:
    """Return True for WGS-84 and CGCS2000 (equal to within centimetres)."""
    return crs.to_epsg() in (4326, 4490)


def _parse_crs(text: str, source: Source) -> CRS:
    try:
        return CRS.from_user_input(text)
    except CRSError as exc:
        raise CoverageError(
            f"{source.name}: unknown coordinate system {text!r}; use WGS-84, CGCS2000, GCJ-02, "
            "BD-09 or an EPSG code such as EPSG:4547"
        ) from exc


def _check_range(x: np.ndarray, y: np.ndarray, rows: Sequence[int], source: Source, *,
                 crs_text: str) -> None:
    bad = ~(np.isfinite(x) & np.isfinite(y) & (np.abs(x) <= 180.0) & (np.abs(y) <= 90.0))
    if bad.any():
        idx = np.flatnonzero(bad)
        sample = ", ".join(f"({x[i]:g}, {y[i]:g})" for i in idx[:3])
        raise InputError([Problem(
            source.where([rows[i] for i in idx]),
            f"coordinates outside the valid longitude/latitude range after reading them in "
            f"{crs_text}: {sample}",
            "the coordinate system is probably wrong: fix the file's .prj/CRS or the crs option")],
            source=source.name)


# ----------------------------------------------------------------------------------- vectors
def read_vector(path: Path, *, layer: str | None, source: Source,
                role: str = "input") -> gpd.GeoDataFrame:
    """Read a vector file with pyogrio, insisting on a named layer when there are several.

    A ``.zip`` is checked with :func:`zip_dataset` and read in place, never extracted.
    """
    target: str | Path = path
    if path.suffix.lower() == ".zip":
        target, layer = zip_dataset(path, layer=layer, role=role)
    try:
        layers = pyogrio.list_layers(target)
    except Exception as exc:  # pyogrio.errors.DataSourceError and friends
        raise CoverageError(
            f"{path.name}: cannot read it as a vector file ({exc}); supported formats: "
            f"{_SUPPORTED}"
        ) from exc
    names = [str(row[0]) for row in layers]
    if layer is not None and layer not in names:
        raise CoverageError(f"{path.name}: no layer {layer!r}; its layers are {names} "
                            "(set layer to one of them)")
    if layer is None and len(names) > 1:
        raise CoverageError(f"{path.name} holds {len(names)} layers {names}; "
                            "say which one to read with layer")
    try:
        return gpd.read_file(target, layer=layer, engine="pyogrio")
    except Exception as exc:
        raise CoverageError(f"{path.name}: cannot read layer {layer or names[0]!r} ({exc}); "
                            "open it in QGIS and export it again as GeoPackage") from exc


def vector_to_wgs84(gdf: gpd.GeoDataFrame, *, source: Source,
                    crs: str | None) -> gpd.GeoDataFrame:
    """Reproject a vector layer to EPSG:4326, honouring the file's CRS.

    A file without a CRS takes ``crs``; without either it is read as WGS-84 (with an
    :class:`InputWarning`) only when every coordinate is a plausible longitude/latitude.
    ``GCJ-02``/``BD-09`` in ``crs`` are applied on top of the file's longitude/latitude, since
    no file format can declare them.
    """
    canon = canonical_crs(crs) if crs is not None else None
    chinese = canon in ("GCJ-02", "BD-09")
    if gdf.crs is None:
        if canon is not None and not chinese:
            gdf = gdf.set_crs(_parse_crs(canon, source))
        else:
            minx, miny, maxx, maxy = gdf.total_bounds if len(gdf) else (0, 0, 0, 0)
            if not (abs(minx) <= 180 and abs(maxx) <= 180 and abs(miny) <= 90
                    and abs(maxy) <= 90):
                raise CoverageError(
                    f"{source.name} has no coordinate system and its coordinates "
                    f"({minx:g}..{maxx:g}, {miny:g}..{maxy:g}) are not longitude/latitude; "
                    "add the .prj file beside the .shp, or give the crs option "
                    "(for example EPSG:4547 for CGCS2000 / 3-degree Gauss-Kruger CM 114E)")
            if not chinese:
                warnings.warn(f"{source.name} has no coordinate system; its coordinates look "
                              "like longitude/latitude and were read as WGS-84 (add a .prj "
                              "file or give crs to be explicit)", InputWarning, stacklevel=3)
            gdf = gdf.set_crs(WGS84)
    elif canon is not None and not chinese:
        given = _parse_crs(canon, source)
        same = given.equals(gdf.crs) or (_is_wgs84_like(given) and _is_wgs84_like(gdf.crs))
        if not same:
            raise CoverageError(
                f"{source.name} declares its coordinate system as {gdf.crs.to_string()} but "
                f"crs = {crs!r} was given; remove the crs option (the file's own CRS is used) "
                "or fix the file")
    if chinese and gdf.crs is not None and not gdf.crs.is_geographic:
        raise CoverageError(f"{source.name}: crs = {crs!r} needs longitude/latitude "
                            f"coordinates but the file is in {gdf.crs.to_string()}")
    out = gdf.to_crs(WGS84) if not _is_wgs84_like(gdf.crs) else gdf.set_crs(WGS84,
                                                                            allow_override=True)
    if chinese:
        def _shift(coords: np.ndarray) -> np.ndarray:
            x, y = to_wgs84(coords[:, 0], coords[:, 1], canon)
            return np.column_stack([x, y])

        out = out.set_geometry(shapely.transform(out.geometry.to_numpy(), _shift), crs=WGS84)
    geoms = out.geometry.to_numpy()
    coords, index = shapely.get_coordinates(geoms, return_index=True)
    finite = np.isfinite(coords).all(axis=1)
    nonfinite = np.zeros(len(out), bool)
    nonfinite[index[~finite]] = True
    outside = np.zeros(len(out), bool)
    outside[index[finite & ((np.abs(coords[:, 0]) > 180) | (np.abs(coords[:, 1]) > 90))]] = True
    outside &= ~nonfinite
    problems = []
    if nonfinite.any():
        problems.append(Problem(
            source.where(out.loc[nonfinite, "_row"].tolist()),
            "coordinates that are not finite numbers (NaN or infinity, or too large to "
            "convert to longitude/latitude)",
            "fix or delete those features in QGIS"))
    if outside.any():
        first = shapely.bounds(geoms[outside][0])
        problems.append(Problem(
            source.where(out.loc[outside, "_row"].tolist()),
            f"coordinates outside the valid longitude/latitude range (bounds "
            f"{[float(f'{v:.6g}') for v in first]}) although the layer says "
            f"{gdf.crs.to_string()}",
            "the file's coordinate system is wrong: set the right CRS (.prj) in QGIS"))
    if problems:
        raise InputError(problems, source=source.name)
    return out


# ----------------------------------------------------------------------------------- reading
def check_columns(columns: Sequence[str], wanted: Mapping[str, str | None],
                  source: Source) -> None:
    """Raise one InputError naming every requested column (option -> name) the file lacks."""
    missing = [Problem(source.name, f"no column {col!r} (given as {option})",
                       f"its columns are {list(columns)}; correct {option}")
               for option, col in wanted.items() if col is not None and col not in columns]
    if missing:
        raise InputError(missing, source=source.name)


def read_layer(path: str | Path | gpd.GeoDataFrame, *, role: str, layer: str | None = None,
               crs: str | None = None, lon_column: str | None = None,
               lat_column: str | None = None, points: bool = True,
               columns: Mapping[str, str | None] | None = None,
               ) -> tuple[gpd.GeoDataFrame, Source]:
    """Read any supported file as a WGS-84 layer with a private ``_row`` column.

    Parameters
    ----------
    path
        The file (see :data:`TABLE_SUFFIXES` and :data:`VECTOR_SUFFIXES`), or a GeoDataFrame
        already in memory (checked the same way; its CRS is used, ``crs`` if it has none).
    role
        What it is (``"facilities"``, ``"boundaries"``...), for messages.
    layer
        Layer of a GeoPackage / zip, or sheet of a workbook.
    crs
        Coordinate system of a table's coordinates, or of a vector file without one.
    lon_column, lat_column
        Coordinate columns of a table.
    points
        False when the layer must carry polygons (tables are then refused).
    columns
        Columns the caller was told to use (option name -> column); all missing ones are
        reported together before anything else is checked.

    Raises
    ------
    CoverageError
        Missing or unreadable file, empty layer, bad coordinates.
    """
    if isinstance(path, gpd.GeoDataFrame):
        return _from_memory(path, role=role, crs=crs, columns=columns)
    p = require_file(path, role=role)
    suffix = p.suffix.lower()
    if suffix == ".xls":
        raise CoverageError(f"{p.name}: old Excel .xls files are not read; save it as .xlsx "
                            "or CSV UTF-8")
    if suffix in TABLE_SUFFIXES:
        if not points:
            raise CoverageError(f"{p.name}: {role} need polygons, a table of coordinates "
                                "cannot carry them; give GeoJSON, GeoPackage or Shapefile")
        if suffix in (".xlsx", ".xlsm"):
            df, source = read_excel_table(p, sheet=layer), Source(p, "table")
        else:
            df, encoding = read_text_table(p)
            source = Source(p, "table", encoding)
            if encoding != "utf-8-sig":
                warnings.warn(f"{p.name} is not UTF-8; it was read as {encoding.upper()} "
                              "(GBK-compatible)", InputWarning, stacklevel=3)
        df = df.dropna(how="all").copy()
        _require_rows(df, source, role)
        check_columns(list(df.columns), {**(columns or {}), "lon_column": lon_column,
                                         "lat_column": lat_column}, source)
        df["_row"] = df.index.to_numpy() + 2
        gdf = table_points(df.reset_index(drop=True), source=source, crs=crs,
                           lon_column=lon_column, lat_column=lat_column)
    else:
        source = Source(p, "vector")
        gdf = read_vector(p, layer=layer, source=source, role=role)
        _require_rows(gdf, source, role)
        check_columns([c for c in gdf.columns if c != gdf.geometry.name], columns or {}, source)
        gdf = gdf.reset_index(drop=True)
        gdf["_row"] = np.arange(1, len(gdf) + 1)
        gdf = vector_to_wgs84(gdf, source=source, crs=crs)
    gdf.attrs["source"] = str(p)
    gdf.attrs["encoding"] = source.encoding
    return gdf, source


def _from_memory(gdf: gpd.GeoDataFrame, *, role: str, crs: str | None,
                 columns: Mapping[str, str | None] | None) -> tuple[gpd.GeoDataFrame, Source]:
    source = Source(Path(f"{role} GeoDataFrame"), "vector")
    _require_rows(gdf, source, role)
    check_columns([c for c in gdf.columns if c != gdf.geometry.name], columns or {}, source)
    out = gdf.reset_index(drop=True).copy()
    out["_row"] = np.arange(1, len(out) + 1)
    out = vector_to_wgs84(out, source=source, crs=crs)
    out.attrs["source"] = source.name
    out.attrs["encoding"] = ""
    return out, source


def _require_rows(df: pd.DataFrame, source: Source, role: str) -> None:
    if len(df) == 0:
        raise CoverageError(f"{source.name}: the {role} layer is empty (no {source.unit}s); "
                            f"give a file with at least one {source.unit} of {role}")


# ----------------------------------------------------------------------------------- geometry
def drop_empty(gdf: gpd.GeoDataFrame, *, source: Source, role: str) -> gpd.GeoDataFrame:
    """Drop records without geometry, warning which; raise if none are left."""
    empty = (gdf.geometry.isna() | gdf.geometry.is_empty).to_numpy(bool)
    if empty.all():
        raise CoverageError(f"{source.name}: every {source.unit} of the {role} layer has an "
                            "empty geometry; nothing to use (check the export from your GIS)")
    if empty.any():
        rows = gdf.loc[empty, "_row"].tolist()
        warnings.warn(f"{source.where(rows)}: dropped {len(rows)} {source.unit}(s) with an "
                      f"empty geometry from the {role} layer", InputWarning, stacklevel=3)
        gdf = gdf.loc[~empty].reset_index(drop=True)
    return gdf


def as_points(gdf: gpd.GeoDataFrame, *, source: Source, role: str) -> gpd.GeoDataFrame:
    """Make every geometry a Point (one-point multipoints unwrap; areas and lines: a point on them).

    Warns (:class:`InputWarning`) about areas and lines replaced by a representative point.
    """
    geoms = gdf.geometry.to_numpy()
    types = shapely.get_type_id(geoms)
    multi = (types == 4) & (shapely.get_num_geometries(geoms) == 1)
    geoms = np.where(multi, shapely.get_geometry(geoms, 0), geoms)
    other = shapely.get_type_id(geoms) != 0
    if other.any():
        rows = gdf.loc[other, "_row"].tolist()
        warnings.warn(f"{source.where(rows)}: {int(other.sum())} {role} are not points; "
                      "each was replaced by a point inside it", InputWarning, stacklevel=3)
        geoms = np.where(other, shapely.point_on_surface(geoms), geoms)
    return gdf.set_geometry(gpd.GeoSeries(geoms, index=gdf.index, crs=gdf.crs))


def as_polygons(gdf: gpd.GeoDataFrame, *, source: Source, role: str) -> gpd.GeoDataFrame:
    """Check polygons, repairing invalid ones with :func:`shapely.make_valid` where safe.

    A repair is safe when it yields a non-empty polygonal shape (lines or points the repair
    produces are dropped). Warns with the number repaired.

    Raises
    ------
    InputError
        For non-polygon geometries and polygons the repair cannot save.
    """
    geoms = gdf.geometry.to_numpy()
    problems: list[Problem] = []
    types = shapely.get_type_id(geoms)
    wrong = ~np.isin(types, (3, 6))
    if wrong.any():
        kinds = sorted({shapely.get_type_id(g) for g in geoms[wrong]})
        names = ", ".join(_TYPE_NAMES.get(k, str(k)) for k in kinds)
        problems.append(Problem(source.where(gdf.loc[wrong, "_row"].tolist()),
                                f"{role} must be polygons, found {names}",
                                "give the administrative areas as Polygon/MultiPolygon"))
    invalid = ~wrong & ~shapely.is_valid(geoms)
    repaired_rows: list[int] = []
    for i in np.flatnonzero(invalid):
        fixed = _polygonal(shapely.make_valid(geoms[i]))
        if fixed is None:
            problems.append(Problem(source.where([gdf["_row"].iloc[i]]),
                                    f"invalid polygon ({shapely.is_valid_reason(geoms[i])}) "
                                    "that cannot be repaired",
                                    "redraw it or run 'Fix geometries' in QGIS"))
        else:
            geoms[i] = fixed
            repaired_rows.append(int(gdf["_row"].iloc[i]))
    if problems:
        raise InputError(problems, source=source.name)
    if repaired_rows:
        warnings.warn(f"{source.where(repaired_rows)}: repaired {len(repaired_rows)} invalid "
                      f"{role} geometr{'y' if len(repaired_rows) == 1 else 'ies'} with "
                      "shapely.make_valid; check the shapes", InputWarning, stacklevel=3)
    return gdf.set_geometry(gpd.GeoSeries(geoms, index=gdf.index, crs=gdf.crs))


_TYPE_NAMES = {0: "Point", 1: "LineString", 2: "LinearRing", 3: "Polygon", 4: "MultiPoint",
               5: "MultiLineString", 6: "MultiPolygon", 7: "GeometryCollection"}


def _polygonal(geom: shapely.Geometry) -> shapely.Geometry | None:
    """Return the polygonal part of a geometry (None if it has none)."""
    if geom is None or geom.is_empty:
        return None
    if geom.geom_type in ("Polygon", "MultiPolygon"):
        return geom
    parts = [g for g in getattr(geom, "geoms", []) if g.geom_type in ("Polygon", "MultiPolygon")]
    if not parts:
        return None
    merged = shapely.union_all(parts)
    return merged if not merged.is_empty else None


def duplicates(values: pd.Series, rows: pd.Series) -> list[str]:
    """Describe duplicated values as ``"'A' (rows 2, 5)"`` strings."""
    dup = values[values.duplicated(keep=False)]
    out = []
    for value, idx in dup.groupby(dup, sort=False).groups.items():
        out.append(f"{value!r} ({list_numbers(rows.loc[idx].tolist())})")
    return out
