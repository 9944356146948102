"""Load the user's facilities, boundaries and population into the canonical layers.

Each loader reads one file (CSV or Excel with longitude/latitude columns, GeoJSON, GeoPackage,
Shapefile, zipped Shapefile, or a GeoTIFF for population), checks it, and returns a
GeoDataFrame in EPSG:4326 with the column names of ``docs/ARCHITECTURE.md``. Every problem
found in a file is reported at once in one :class:`covplan.errors.InputError` (what, where:
file, row or feature number, column, and how to fix it); loaders never write files, so bad
input changes nothing. Repairs that are safe (invalid polygons made valid, empty geometries
dropped, areas replaced by a point on them) are kept and announced with an
:class:`covplan.errors.InputWarning`.

Coordinate systems: a vector file's own CRS is honoured; tables take ``crs`` (default WGS-84)
and accept ``GCJ-02`` (Amap, Tencent), ``BD-09`` (Baidu) and ``CGCS2000`` (EPSG:4490), which are
converted to WGS-84 with :func:`covplan.inputs.crs.to_wgs84`, or any EPSG code (projected x/y too).

Untrusted files: every file is checked against a size limit before it is read (500 MiB by
default, ``COVPLAN_MAX_INPUT_BYTES`` to change it; see
:data:`covplan.inputs._io.MAX_INPUT_BYTES`); a
0-byte file, a CSV row with more fields than its header, and NaN or infinite numbers are
refused with the row or feature named. Zip files are read in place, never extracted, after
their member names (no absolute paths or ``..``) and unpacked size are checked.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import rasterio
import rasterio.transform
import shapely
import shapely.errors
from covplan.errors import CoverageError, InputError, InputWarning, Problem
from covplan.facility_types import (
    FACILITY_TYPES,
    facility_type_from_osm,
)
from covplan.geo import metric_crs
from covplan.inputs import _io
from covplan.labels import urban_rural_class
from pyproj import CRS, Transformer

__all__ = [
    "check_facilities_within",
    "link_unit_levels",
    "load_boundaries",
    "load_facilities",
    "load_unit_levels",
    "load_population",
    "normalise_urban_rural",
    "resolve_facility_type",
    "warn_above_census",
]

#: Column names tried (case-insensitively) when the caller names none.
ID_NAMES = ("facility_id", "id", "code", "机构编码", "机构代码", "编码", "编号", "代码")
NAME_NAMES = ("name", "facility_name", "名称", "机构名称", "单位名称")
TYPE_NAMES = ("type", "facility_type", "类型", "机构类型", "类别")
POPULATION_NAMES = ("population", "pop", "人口", "常住人口", "户籍人口", "人口数")
PLACE_ID_NAMES = ("place_id", "id", "code", "区划代码", "编码", "代码")
#: Optional facility columns carried over (numeric ones are checked to be >= 0); the register
#: columns (:mod:`covplan.inputs.register`) are found by their Chinese or English headers too.
OPTIONAL_NUMERIC = ("beds", "doctors", "nurses", "gps", "pharmacists", "clinical_pharmacists")
OPTIONAL_TEXT = ("osm_id",)


# ----------------------------------------------------------------------------------- values
def _as_text(values: pd.Series) -> pd.Series:
    """Strings of identifiers: integral floats lose their ``.0``; blanks become missing."""
    if pd.api.types.is_float_dtype(values):
        integral = values.notna() & (values == values.round())
        out = values.astype(object)
        out[integral] = values[integral].astype("int64").astype(str)
        out[values.notna() & ~integral] = values[values.notna() & ~integral].astype(str)
        values = out
    text = values.astype("string").str.strip()
    return text.mask(text == "")


def resolve_facility_type(
    value: str, *, type_map: Mapping[str, str] | None = None
) -> str | None:
    """Return the facility type key a user's label means, or None if unknown.

    Accepted: a key of :data:`~covplan.facility_types.FACILITY_TYPES`, its Chinese or English
    label, a built-in Chinese type name (卫生院, 中心卫生院, 急救站, 三级甲等医院...: see
    :data:`covplan.inputs.register.TYPE_NAME_ALIASES`), or a key of ``type_map`` (whose values
    are any of those); compared case-, space- and bracket-width-insensitively.
    """
    from covplan.inputs.register import normalise_name, type_lookup

    key = normalise_name(value)
    if type_map:
        mapped = {normalise_name(k): v for k, v in type_map.items()}
        if key in mapped:
            return type_lookup().get(normalise_name(mapped[key]))
    return type_lookup().get(key)


def _type_lookup() -> dict[str, str]:
    from covplan.inputs.register import type_lookup

    return type_lookup()


def normalise_urban_rural(value: object) -> str | None:
    """Map a user's urban/rural label to ``"urban"``, ``"rural"`` or None (blank).

    Accepts English, Chinese (城镇/城市/乡村/农村), 1/2, and NBS urban-rural class codes
    (1xx urban, 2xx rural): :func:`covplan.labels.urban_rural_class`, the one decoder.

    Raises
    ------
    ValueError
        If the value is none of these.
    """
    return urban_rural_class(value)


def _urban_rural_column(
    gdf: pd.DataFrame, column: str | None, source: _io.Source, problems: list[Problem]
) -> pd.Series:
    if column is None:
        return pd.Series([None] * len(gdf), index=gdf.index, dtype=object)
    out, bad = [], []
    for i, value in zip(gdf.index, gdf[column], strict=True):
        try:
            out.append(normalise_urban_rural(value))
        except ValueError:
            out.append(None)
            bad.append(i)
    if bad:
        problems.append(Problem(
            source.where(gdf.loc[bad, "_row"].tolist(), column),
            "unknown urban/rural value(s) "
            f"{_io.list_numbers(sorted(set(map(str, gdf.loc[bad, column]))))}",
            "use 'urban'/'rural' (城镇/乡村) or an NBS urban-rural code (1xx urban, 2xx rural)"))
    return pd.Series(out, index=gdf.index, dtype=object)


def _population_values(
    gdf: pd.DataFrame, column: str, source: _io.Source, problems: list[Problem], *,
    allow_missing: bool,
) -> pd.Series:
    values, bad = _io.numeric_column(gdf, column, source=source, what="population")
    problems += bad
    negative = values < 0
    if negative.any():
        problems.append(Problem(
            source.where(gdf.loc[negative, "_row"].tolist(), column),
            f"negative population: {_io.list_numbers([f'{v:g}' for v in values[negative]])}",
            "population counts people and must be 0 or more"))
    missing = values.isna() & gdf[column].isna()
    if not allow_missing and missing.any():
        problems.append(Problem(
            source.where(gdf.loc[missing, "_row"].tolist(), column),
            "missing population", "fill in the number of residents (0 if nobody lives there)"))
    return values


def _finish(gdf: gpd.GeoDataFrame, canonical: dict[str, pd.Series | list[object]],
            used: Sequence[str]) -> gpd.GeoDataFrame:
    """Canonical columns first, then the file's other columns, then geometry."""
    extras = [c for c in gdf.columns
              if c not in ("_row", gdf.geometry.name, *canonical, *used)]
    data = {k: (v.to_numpy() if isinstance(v, pd.Series) else v) for k, v in canonical.items()}
    frame = pd.DataFrame(data)
    for col in extras:
        frame[col] = gdf[col].to_numpy()
    out = gpd.GeoDataFrame(frame, geometry=gdf.geometry.to_numpy(), crs=_io.WGS84)
    out.attrs.update(gdf.attrs)
    return out


# ----------------------------------------------------------------------------------- facilities
def load_facilities(
    path: str | Path | gpd.GeoDataFrame,
    *,
    crs: str | None = None,
    id_column: str | None = None,
    name_column: str | None = None,
    type_column: str | None = None,
    lon_column: str | None = None,
    lat_column: str | None = None,
    type_map: Mapping[str, str] | None = None,
    layer: str | None = None,
    status: Sequence[str] | None = None,
) -> gpd.GeoDataFrame:
    """Load health facilities as the canonical facilities layer.

    A Chinese facility register (机构名录: 机构名称, 机构类别, 经度, 纬度, 坐标系, 床位数（实有）,
    执业（助理）医师数, 等级, 上级机构, 状态...) is read with its Chinese or English headers and
    type names; see :mod:`covplan.inputs.register` for its columns.

    Parameters
    ----------
    path
        CSV/Excel with longitude/latitude columns, GeoJSON, GeoPackage, Shapefile or zip, or a
        GeoDataFrame in memory (checked like a file).
    crs
        Coordinate system of a table's coordinates (default WGS-84; ``GCJ-02``, ``BD-09``,
        ``CGCS2000`` or an EPSG code), or of a vector file that has none. For vector files
        ``GCJ-02``/``BD-09`` mean their longitude/latitude are web-map coordinates. A
        坐标系 (``crs``) column overrides it row by row where filled.
    id_column, name_column, type_column
        Columns holding the facility id, name and type; found by common names (``id``,
        ``name``, ``type``, ``名称``, ``机构类型``...) when not given. Without an id column, ids
        are ``<file stem>-<row>``; without a name, the id is the name; without a type column,
        OSM ``amenity``/``healthcare`` columns decide the type.
    lon_column, lat_column
        Coordinate columns of a table (found as lon/lng/longitude/x/经度 and lat/latitude/y/纬度).
    type_map
        The user's own type names mapped to facility types, e.g. ``{"卫生院":
        "township_health_centre"}``.
    layer
        Layer of a GeoPackage/zip or sheet of a workbook.
    status
        With a 状态 (``status``) column: the statuses counted, from ``existing``,
        ``under_construction``, ``planned`` (现有/在建/规划). None counts ``existing`` only;
        the other rows are left out with an :class:`InputWarning` naming them (and their ids
        are in ``attrs["excluded_by_status"]``).

    Returns
    -------
    GeoDataFrame
        ``facility_id``, ``name``, ``type``, ``source``, optional ``beds``/``doctors``/
        ``nurses``/``gps``/``pharmacists``/``clinical_pharmacists`` (numbers),
        ``unit_code``/``grade`` (text), ``standardised``/``emergency_dept``/``fever_clinic``
        (boolean), ``parent_id``/``main_id``, ``status``, ``osm_id``, then the file's other
        columns; Points in EPSG:4326.

    Raises
    ------
    CoverageError
        Missing/unreadable file or empty layer.
    InputError
        Listing every bad coordinate, missing or duplicate id, unknown type, bad number.
    """
    gdf, src = _io.read_layer(path, role="facilities", layer=layer, crs=crs,
                              lon_column=lon_column, lat_column=lat_column,
                              columns={"id_column": id_column, "name_column": name_column,
                                       "type_column": type_column})
    from covplan.inputs import register

    columns = [c for c in gdf.columns if c not in ("_row", gdf.geometry.name)]
    id_col = _io.find_column(columns, id_column, (*ID_NAMES, *register.header_names(
        "facility_id")), what="id", option="id_column", source=src, required=False)
    name_col = _io.find_column(columns, name_column, (*NAME_NAMES, *register.header_names(
        "name")), what="name", option="name_column", source=src, required=False)
    type_col = _io.find_column(columns, type_column, (*TYPE_NAMES, *register.header_names(
        "type")), what="type", option="type_column", source=src, required=False)
    gdf = _io.drop_empty(gdf, source=src, role="facilities")
    gdf = _io.as_points(gdf, source=src, role="facilities")
    reg_cols, problems = register.standardise_headers(
        gdf, source=src, keep=(id_col, name_col, type_col, lon_column, lat_column))
    _check_type_map(type_map, problems)

    if id_col is not None:
        ids = _as_text(gdf[id_col])
        if ids.isna().any():
            problems.append(Problem(src.where(gdf.loc[ids.isna(), "_row"].tolist(), id_col),
                                    "missing facility id", "give every facility an id"))
        dup = _io.duplicates(ids.dropna(), gdf["_row"])
        if dup:
            problems.append(Problem(src.where(column=id_col),
                                    f"duplicate facility ids: {_io.list_numbers(dup)}",
                                    "give every facility its own id"))
    else:
        ids = pd.Series([f"{src.path.stem}-{r}" for r in gdf["_row"]], index=gdf.index)
    names = _as_text(gdf[name_col]) if name_col is not None else pd.Series(pd.NA, index=gdf.index)
    names = names.fillna(ids)

    types = _facility_types(gdf, type_col, type_map, src, problems)
    reg = register.read_register_fields(
        gdf, source=src, columns=reg_cols, ids=ids, names=names, name_column=name_col,
        types=types, crs=crs, lon_column=lon_column, lat_column=lat_column, status=status,
        problems=problems)
    types = reg.types
    if "source" in gdf.columns:
        sources = _as_text(gdf["source"]).fillna(src.name)
    else:
        sources = pd.Series(src.name, index=gdf.index)
    canonical: dict[str, pd.Series | list[object]] = {
        "facility_id": ids.astype(str), "name": names.astype(str), "type": types,
        "source": sources.astype(str),
    }
    lowered = {c.lower(): c for c in columns}
    found = {o: reg_cols.get(o, lowered.get(o)) for o in (*OPTIONAL_NUMERIC, *OPTIONAL_TEXT)}
    found = {o: c for o, c in found.items() if c is not None}
    for opt in OPTIONAL_NUMERIC:
        if opt in found:
            values, bad = _io.numeric_column(gdf, found[opt], source=src, what=opt)
            problems += bad
            if (values < 0).any():
                problems.append(Problem(src.where(gdf.loc[values < 0, "_row"].tolist(),
                                                  found[opt]),
                                        f"negative {opt}", "counts must be 0 or more"))
            canonical[opt] = values
    canonical.update(reg.columns)
    for opt in OPTIONAL_TEXT:
        if opt in found:
            canonical[opt] = gdf[found[opt]]
    if problems:
        raise InputError(problems, source=src.name)
    used = [c for c in (id_col, name_col, type_col) if c is not None]
    used += [*found.values(), *reg.used]
    if reg.geometry is not gdf.geometry:
        gdf = gdf.set_geometry(gpd.GeoSeries(reg.geometry.to_numpy(), index=gdf.index,
                                             crs=gdf.crs))
    out = _finish(gdf, canonical, used)
    return _keep_status(out, reg.keep.to_numpy(bool), src)


def _keep_status(fac: gpd.GeoDataFrame, keep: np.ndarray, src: _io.Source) -> gpd.GeoDataFrame:
    """Leave out the facilities whose 状态 is not counted, warning which."""
    if keep.all():
        fac.attrs["excluded_by_status"] = []
        return fac
    from covplan.inputs.register import STATUS_VALUES

    left = fac[~keep]
    shown = ", ".join(f"{i} {n} ({STATUS_VALUES[s][0]})" for i, n, s in
                      zip(left["facility_id"][:8], left["name"][:8], left["status"][:8],
                          strict=True))
    more = f" and {len(left) - 8} more" if len(left) > 8 else ""
    fix = ("set status = [\"existing\", \"under_construction\", \"planned\"] in "
           "[inputs.facilities] to count them")
    if not keep.any():
        raise CoverageError(f"{src.name}: no facility is counted: every row's 状态 is outside "
                            f"the statuses counted ({shown}{more}); {fix}")
    warnings.warn(f"{src.name}: {len(left)} facilit{'y' if len(left) == 1 else 'ies'} not "
                  f"counted, as 在建/规划 (under construction/planned): {shown}{more}; {fix}",
                  InputWarning, stacklevel=3)
    out = fac[keep].reset_index(drop=True)
    out.attrs.update(fac.attrs)
    out.attrs["excluded_by_status"] = left["facility_id"].tolist()
    return out


def _check_type_map(type_map: Mapping[str, str] | None, problems: list[Problem]) -> None:
    lookup = _type_lookup()
    from covplan.inputs.register import normalise_name

    for user, target in (type_map or {}).items():
        if normalise_name(target) not in lookup:
            problems.append(Problem(
                f"type_map[{user!r}]", f"maps to unknown facility type {target!r}",
                f"use one of {', '.join(FACILITY_TYPES)}"))


def _facility_types(gdf: gpd.GeoDataFrame, type_col: str | None,
                    type_map: Mapping[str, str] | None, src: _io.Source,
                    problems: list[Problem]) -> list[str | None]:
    known = ", ".join(f"{k} ({zh})" for k, (zh, _) in FACILITY_TYPES.items())
    if type_col is None:
        osm_cols = [c for c in ("amenity", "healthcare", "emergency") if c in gdf.columns]
        if not osm_cols:
            problems.append(Problem(
                src.name, "no facility type column (looked for "
                f"{list(TYPE_NAMES)} and the OSM tags amenity/healthcare)",
                f"add a column 'type' with one of: {known}; or name it with type_column"))
            return [None] * len(gdf)
        records = gdf[osm_cols].astype(object).where(gdf[osm_cols].notna(), "")
        types = [facility_type_from_osm({k: str(v) for k, v in rec.items() if v != ""})
                 for rec in records.to_dict("records")]
        bad = [i for i, t in enumerate(types) if t is None]
        if bad:
            problems.append(Problem(
                src.where(gdf["_row"].iloc[bad].tolist()),
                "OSM tags (amenity/healthcare) do not name a health facility",
                f"add a 'type' column with one of: {known}"))
        return types
    from covplan.inputs.register import unknown_type_problems

    labels = _as_text(gdf[type_col])
    types = [resolve_facility_type(v, type_map=type_map) if v is not pd.NA and v is not None
             else None for v in labels]
    unknown = [i for i, t in enumerate(types) if t is None]
    if unknown:  # one problem per name, with the nearest known names
        problems += unknown_type_problems(
            [None if labels.iloc[i] is pd.NA else labels.iloc[i] for i in unknown],
            gdf["_row"].iloc[unknown].tolist(), source=src, column=type_col)
    return types


# ----------------------------------------------------------------------------------- boundaries
def load_boundaries(
    path: str | Path | gpd.GeoDataFrame,
    *,
    id_column: str,
    name_column: str,
    level: str,
    population_column: str | None = None,
    parent_column: str | None = None,
    urban_rural_column: str | None = None,
    layer: str | None = None,
    crs: str | None = None,
    code_column: str | None = None,
    kind_column: str | None = None,
) -> gpd.GeoDataFrame:
    """Load administrative units as the canonical units layer.

    Parameters
    ----------
    path
        GeoJSON, GeoPackage, Shapefile or zipped Shapefile of polygons, or a GeoDataFrame.
    id_column, name_column
        Columns holding the unit id (unique) and name.
    level
        The level of every unit, for example ``"township"`` or ``"parish"``.
    population_column
        Column with the population (blank cells become NaN).
    parent_column
        Column with the id of the enclosing unit.
    urban_rural_column
        Column with urban/rural labels (see :func:`normalise_urban_rural`).
    layer
        Layer of a GeoPackage or zip.
    crs
        Coordinate system for a file that declares none (a Shapefile without .prj).
    code_column
        Column with the NBS code (统计用区划代码) of each unit, kept as ``nbs_code``; without
        it the id is taken as the code when it is one (6, 9 or 12 digits).
    kind_column
        Column with each unit's kind (街道, 镇, 乡, 社区, 行政村), used when neither the code
        nor the name says (:func:`covplan.inputs.unit_kinds.classify_unit_kinds`).

    Returns
    -------
    GeoDataFrame
        ``unit_id``, ``name``, ``level``, ``parent_id``, ``population``, ``urban_rural``,
        ``unit_kind``, ``kind_source`` (and ``nbs_code`` with ``code_column``), then the file's
        other columns; Polygon/MultiPolygon in EPSG:4326.

    Raises
    ------
    CoverageError, InputError
        Missing file, empty layer, missing columns, non-polygons that cannot be repaired,
        missing or duplicate ids, negative or non-numeric population.
    """
    gdf, src = _io.read_layer(path, role="boundaries", layer=layer, crs=crs, points=False,
                              columns={"id_column": id_column, "name_column": name_column,
                                       "population_column": population_column,
                                       "parent_column": parent_column,
                                       "urban_rural_column": urban_rural_column,
                                       "code_column": code_column,
                                       "kind_column": kind_column})
    gdf = _io.drop_empty(gdf, source=src, role="boundaries")
    gdf = _io.as_polygons(gdf, source=src, role="boundaries")
    problems: list[Problem] = []
    ids = _as_text(gdf[id_column])
    if ids.isna().any():
        problems.append(Problem(src.where(gdf.loc[ids.isna(), "_row"].tolist(), id_column),
                                "missing unit id", "give every unit an id"))
    dup = _io.duplicates(ids.dropna(), gdf["_row"])
    if dup:
        problems.append(Problem(src.where(column=id_column),
                                f"duplicate unit ids: {_io.list_numbers(dup)}",
                                "give every unit its own id (or dissolve the parts in QGIS)"))
    population = (_population_values(gdf, population_column, src, problems, allow_missing=True)
                  if population_column else pd.Series(np.nan, index=gdf.index))
    parent = (_as_text(gdf[parent_column]).astype(object) if parent_column
              else pd.Series([None] * len(gdf), index=gdf.index, dtype=object))
    parent = parent.where(parent.notna(), None)
    urban_rural = _urban_rural_column(gdf, urban_rural_column, src, problems)
    if problems:
        raise InputError(problems, source=src.name)
    names = _as_text(gdf[name_column]).fillna(ids).astype(str)
    from covplan.inputs.unit_kinds import classify_unit_kinds

    codes = (_nbs_code_text(gdf[code_column]) if code_column
             else pd.Series(None, index=gdf.index, dtype=object))
    kinds = classify_unit_kinds(
        pd.DataFrame({"nbs_code": codes.to_numpy(), "unit_id": ids.astype(str).to_numpy(),
                      "name": names.to_numpy(),
                      "kind": gdf[kind_column].to_numpy() if kind_column else None},
                     index=gdf.index),
        kind_column="kind" if kind_column else None)
    canonical: dict[str, pd.Series | list[object]] = {
        "unit_id": ids.astype(str), "name": names, "level": [str(level)] * len(gdf),
        "parent_id": parent, "population": population.astype(float),
        "urban_rural": urban_rural, "unit_kind": kinds["unit_kind"],
        "kind_source": kinds["kind_source"],
    }
    if code_column:
        canonical["nbs_code"] = codes
    used = [c for c in (id_column, name_column, population_column, parent_column,
                        urban_rural_column, code_column, kind_column) if c]
    units = _finish(gdf, canonical, used)
    _warn_odd_units(units, src)
    warn_above_census(units, units["population"], source=src.name)
    return units


def _nbs_code_text(values: pd.Series) -> pd.Series:
    """Return codes as text (``500104001001.0`` read from a spreadsheet -> ``500104001001``)."""
    text = values.astype("string").str.strip().str.replace(r"\.0$", "", regex=True)
    return text.astype(object).where(text.notna() & (text != ""), None)


# ------------------------------------------------------------------------------ unit levels
def load_unit_levels(levels: Sequence[Mapping[str, object]]) -> gpd.GeoDataFrame:
    """Load several levels of units (区县, 镇街, 村社区) as one linked units layer.

    Parameters
    ----------
    levels
        One mapping per level, coarsest first (the ``[[inputs.units]]`` tables): ``level``,
        and either ``path`` (with the :func:`load_boundaries` keys: ``id_column``,
        ``name_column``, ``code_column``, ``population_column``, ``parent_column``,
        ``urban_rural_column``, ``kind_column``, ``layer``, ``crs``) or ``derive = "union"``
        (with an optional ``name``): the unions of the next finer level's units grouped by
        NBS code prefix (a village's code's first 9 digits are its township's, a township's
        first 6 its county's), else by their ``parent_id``, else all in one unit.

    Returns
    -------
    GeoDataFrame
        The units of every level (:func:`load_boundaries` columns), ``parent_id`` linking each
        unit to the level above (:func:`link_unit_levels`).

    Raises
    ------
    CoverageError
        If no level has a file, or a level is derived from nothing finer.
    """
    tables = [dict(t) for t in levels]
    if not tables:
        raise CoverageError("no unit levels given: add [[inputs.units]] tables")
    loaded: list[gpd.GeoDataFrame | None] = [None] * len(tables)
    for i in range(len(tables) - 1, -1, -1):  # finest first: a derived level needs the finer
        table = dict(tables[i])
        level = str(table.pop("level"))
        derive = table.pop("derive", None)
        name = table.pop("name", None)
        if derive is None:
            path = table.pop("path")
            loaded[i] = load_boundaries(
                path, id_column=str(table.pop("id_column", "unit_id")),
                name_column=str(table.pop("name_column", "name")), level=level,
                **table,  # type: ignore[arg-type]
            )
        else:
            finer = loaded[i + 1] if i + 1 < len(loaded) else None
            if finer is None:
                raise CoverageError(f"units level {level!r}: derive = {derive!r} needs a finer "
                                    "level listed after it (levels go coarsest first)")
            loaded[i] = _derive_level(finer, level=level, name=name)
    frames = [u for u in loaded if u is not None]
    return link_unit_levels(frames)


def _unit_codes(units: gpd.GeoDataFrame) -> pd.Series:
    """NBS codes of the units (``nbs_code``, else ``unit_id`` when 6/9/12 digits; else NA)."""
    for column in ("nbs_code", "unit_id"):
        if column in units.columns:
            text = units[column].astype("string").str.strip()
            codes = text.where(text.str.fullmatch(_NBS_CODE).fillna(False))
            if codes.notna().any():
                return codes
    return pd.Series(pd.NA, index=units.index, dtype="string")


def _derive_level(finer: gpd.GeoDataFrame, *, level: str, name: str | None) -> gpd.GeoDataFrame:
    """Build a coarser level as unions of ``finer`` (see :func:`load_unit_levels`)."""
    from covplan.china.nbs import load_units
    from covplan.inputs.unit_kinds import classify_unit_kinds

    codes = _unit_codes(finer)
    lengths = codes.dropna().str.len()
    if codes.notna().all() and lengths.nunique() == 1 and int(lengths.iloc[0]) in (9, 12):
        width = 9 if int(lengths.iloc[0]) == 12 else 6
        keys = codes.str[:width].astype(str)
        known = load_units(year=2023).set_index("code")["name"]
        names = {k: str(known.get(k, name if name and keys.nunique() == 1 else k))
                 for k in keys.unique()}
        how = f"the first {width} digits of the {level} units' codes"
    elif finer["parent_id"].notna().all():
        keys = finer["parent_id"].astype(str)
        names = {k: (name if name and keys.nunique() == 1 else k) for k in keys.unique()}
        how = "parent_id"
    else:
        keys = pd.Series(name or level, index=finer.index)
        names = {name or level: name or level}
        how = "one unit"
    rows = []
    for key, part in finer.groupby(keys.to_numpy(), sort=True):
        pop = part["population"]
        rows.append({"unit_id": str(key), "name": names[str(key)], "level": level,
                     "parent_id": None,
                     "population": float(pop.sum()) if pop.notna().all() else np.nan,
                     "urban_rural": None, "derived_from": how,
                     "geometry": shapely.union_all(part.geometry.to_numpy())})
    out = gpd.GeoDataFrame(rows, geometry="geometry", crs=finer.crs)
    kinds = classify_unit_kinds(out)
    out.insert(6, "unit_kind", kinds["unit_kind"].to_numpy())
    out.insert(7, "kind_source", kinds["kind_source"].to_numpy())
    return out


def link_unit_levels(levels: Sequence[gpd.GeoDataFrame]) -> gpd.GeoDataFrame:
    """Link each level's units to the level above and return them as one layer.

    A unit keeps a ``parent_id`` it has when that names a unit of the level above; otherwise
    its parent is the unit of the level above whose NBS code its code starts with, otherwise
    the one it overlaps most. Units left without a parent (orphans) are reported in one
    :class:`~covplan.errors.InputWarning` per level, worded as a problem (where, what, how to
    fix); they stay in the layer and are judged at their own level.

    Parameters
    ----------
    levels
        Units layers, coarsest level first.

    Returns
    -------
    GeoDataFrame
        All units; ``parent_id`` filled; ``parent_by`` says how (``column``, ``code``,
        ``overlap`` or None for the coarsest level and orphans).
    """
    out: list[gpd.GeoDataFrame] = []
    for i, units in enumerate(levels):
        units = units.copy()
        units["parent_by"] = None
        if i == 0:
            units["parent_id"] = None
            out.append(units)
            continue
        above = levels[i - 1]
        above_ids = set(above["unit_id"].astype(str))
        parent = pd.Series([None] * len(units), index=units.index, dtype=object)
        by = pd.Series([None] * len(units), index=units.index, dtype=object)
        given = units["parent_id"].astype(object)
        ok = given.notna() & given.astype(str).isin(above_ids)
        parent[ok] = given[ok].astype(str)
        by[ok] = "column"
        codes, above_codes = _unit_codes(units), _unit_codes(above)
        code_to_id = dict(zip(above_codes.dropna().astype(str),
                              above.loc[above_codes.notna(), "unit_id"].astype(str),
                              strict=True))
        for idx in units.index[parent.isna() & codes.notna()]:
            code = str(codes[idx])
            for width in (9, 6):
                if width < len(code) and code[:width] in code_to_id:
                    parent[idx] = code_to_id[code[:width]]
                    by[idx] = "code"
                    break
        todo = units.index[parent.isna()]
        if len(todo) and above.geometry.notna().any():
            crs = metric_crs(units)
            mine = units.loc[todo].geometry.to_crs(crs).make_valid()
            theirs = above.geometry.to_crs(crs).make_valid()
            for idx, geom in mine.items():
                if geom is None or geom.is_empty:
                    continue
                areas = theirs.intersection(geom).area
                if len(areas) and float(areas.max()) > 0:
                    parent[idx] = str(above.loc[areas.idxmax(), "unit_id"])
                    by[idx] = "overlap"
        units["parent_id"] = parent.to_numpy()
        units["parent_by"] = by.to_numpy()
        orphans = units.loc[parent.isna(), "unit_id"].astype(str).tolist()
        if orphans:
            level, up = units["level"].iloc[0], above["level"].iloc[0]
            warnings.warn(str(Problem(
                f"units of level {level!r}: {_shown(orphans)}",
                f"{len(orphans)} unit(s) have no {up!r} unit above them (no parent_id naming "
                f"one, no NBS code starting with a {up!r} code, no overlap with a {up!r} "
                "polygon); they are judged at their own level only and left out of the "
                f"{up!r} totals",
                f"check their codes and polygons, or give a parent_column naming their {up!r} "
                "unit",
            )), InputWarning, stacklevel=2)
        out.append(units)
    merged = pd.concat(out, ignore_index=True)
    for column in ("parent_id", "parent_by", "unit_kind", "kind_source"):
        if column in merged.columns:
            values = merged[column].astype(object)
            merged[column] = values.where(values.notna(), None)
    return gpd.GeoDataFrame(merged, geometry="geometry", crs=levels[0].crs)


#: A unit population above this is taken for a typing or unit error (China: 1.4e9 in all).
IMPLAUSIBLE_UNIT_POPULATION = 1e8
#: Overlaps smaller than this share of the smaller unit are digitising slivers, not errors.
OVERLAP_SHARE = 0.01


def _warn_odd_units(units: gpd.GeoDataFrame, src: _io.Source) -> None:
    """Warn of zero-area units, units that overlap, and implausible populations."""
    metric = units.geometry.to_crs(metric_crs(units)).make_valid()  # projecting may unmake it
    area = metric.area.to_numpy()
    ids = units["unit_id"].to_numpy()
    flat = ids[area < 1.0]
    if len(flat):
        warnings.warn(f"{src.name}: {len(flat)} unit(s) with no area (under 1 m²): {_shown(flat)}; "
                      "redraw them or remove them",
                      InputWarning, stacklevel=3)
    left, right = metric.sindex.query(metric.to_numpy(), predicate="intersects")
    pairs = [(i, j) for i, j in zip(left, right, strict=True) if i < j]
    overlaps = []
    for i, j in pairs:
        try:
            shared = metric.iloc[i].intersection(metric.iloc[j]).area
        except shapely.errors.GEOSException:  # a check that warns must never stop a run
            continue
        smaller = min(area[i], area[j])
        if smaller > 0 and shared > OVERLAP_SHARE * smaller:
            overlaps.append(f"{ids[i]} and {ids[j]} ({shared / smaller:.0%})")
    if overlaps:
        warnings.warn(f"{src.name}: {len(overlaps)} pair(s) of units overlap: "
                      f"{_shown(overlaps)}; residents there count in both: fix the boundaries "
                      "(QGIS: Vector > Geometry Tools > Check Validity / Topology Checker)",
                      InputWarning, stacklevel=3)
    huge = ids[units["population"].to_numpy() > IMPLAUSIBLE_UNIT_POPULATION]
    if len(huge):
        warnings.warn(f"{src.name}: implausible population (over "
                      f"{IMPLAUSIBLE_UNIT_POPULATION:,.0f}) in {_shown(huge)}: check the column "
                      "and its unit (persons, not 10,000 persons or a sum)",
                      InputWarning, stacklevel=3)


#: A summed population more than this share above its county's 2020 census total is warned.
CENSUS_MARGIN = 0.10
#: NBS codes of a county (6 digits), a township (9) or a village (12).
_NBS_CODE = r"\d{6}|\d{9}|\d{12}"


def _county_codes(units: gpd.GeoDataFrame) -> pd.Series:
    """Return the 6-digit NBS county code of every unit (NA where none is known).

    Taken from a ``nbs_code`` column (written by ``covplan data fetch`` and
    :func:`covplan.china.nbs.join_by_code_or_name`), else from ``unit_id`` when it holds NBS
    codes (6, 9 or 12 digits: county, township or village).
    """
    for column in ("nbs_code", "unit_id"):
        if column in units.columns:
            text = units[column].astype("string").str.strip()
            codes = text.str[:6].where(text.str.fullmatch(_NBS_CODE).fillna(False))
            if codes.notna().any():
                return codes
    return pd.Series(pd.NA, index=units.index, dtype="string")


def warn_above_census(units: gpd.GeoDataFrame, population: pd.Series, *, source: str,
                      what: str = "population") -> list[Problem]:
    """Warn where the population of a county's units exceeds its 2020 census total by > 10 %.

    Units are matched to a shipped county (:func:`covplan.china.nbs.list_counties`) by NBS
    code (:func:`_county_codes`); units without a code, and counties without a census total,
    are not checked. Each county above ``(1 + CENSUS_MARGIN)`` times its total gets one
    :class:`~covplan.errors.InputWarning` worded as a problem: where, what, how to fix.

    Parameters
    ----------
    units
        The units layer (``unit_id`` and perhaps ``nbs_code``).
    population
        Population per unit, aligned with ``units`` (NaN counts as 0).
    source
        The file the population came from, for the message.
    what
        What the population is (``population``, ``population places``), for the message.

    Returns
    -------
    list of Problem
        The problems warned (empty when none).
    """
    codes = _county_codes(units)
    if codes.isna().all():
        return []
    from covplan.china.nbs import list_counties

    totals = {c.code: c for c in list_counties() if c.population}
    summed = pd.Series(population.to_numpy(dtype=float), index=units.index).fillna(0.0)
    summed = summed.groupby(codes.to_numpy()).sum()
    problems = []
    for code, value in summed.items():
        county = totals.get(str(code))
        if county is None or county.population is None:
            continue
        if value > county.population * (1 + CENSUS_MARGIN):
            n_units = int((codes == code).sum())
            problems.append(Problem(
                f"{source}: the {n_units} unit(s) of {county.name} ({code})",
                f"the {what} sums to {value:,.0f}, {value / county.population - 1:.0%} above "
                f"the 2020 census total of {county.population:,} (more than "
                f"{CENSUS_MARGIN:.0%} above it)",
                "check the population column and its unit (persons, not 10,000 persons), "
                "rows counted twice, and overlapping units",
            ))
    for problem in problems:
        warnings.warn(str(problem), InputWarning, stacklevel=3)
    return problems


def _shown(values: Sequence[object], most: int = 8) -> str:
    text = ", ".join(str(v) for v in list(values)[:most])
    return text + (f" and {len(values) - most} more" if len(values) > most else "")


# ----------------------------------------------------------------------------------- population
def load_population(
    path: str | Path | gpd.GeoDataFrame | None = None,
    *,
    kind: str,
    units: gpd.GeoDataFrame | None = None,
    population_column: str | None = None,
    id_column: str | None = None,
    urban_rural_column: str | None = None,
    layer: str | None = None,
    crs: str | None = None,
    lon_column: str | None = None,
    lat_column: str | None = None,
    band: int = 1,
) -> gpd.GeoDataFrame:
    """Load population as the canonical places layer (one point per populated place or cell).

    Parameters
    ----------
    path
        The points file (``kind="points"``: CSV/Excel/GeoJSON/GeoPackage/Shapefile) or the
        GeoTIFF (``kind="raster"``); unused for ``kind="units"``.
    kind
        ``"units"``: the ``population`` column of ``units`` (one place per unit, at a point
        inside it); ``"points"``: a points layer such as villages; ``"raster"``: a population
        grid whose cells become points at their centres (nodata and values <= 0 dropped).
    units
        The units layer (from :func:`load_boundaries`); required for ``"units"``. For points
        and rasters it gives each place the ``unit_id`` of the unit containing it.
    population_column, id_column, urban_rural_column
        Columns of a points layer (population found as population/pop/人口/常住人口 when not
        given; ids default to ``<file stem>-<row>``).
    layer
        Layer of a GeoPackage/zip or sheet of a workbook.
    crs
        Coordinate system of a table's coordinates (as in :func:`load_facilities`).
    lon_column, lat_column
        Coordinate columns of a table.
    band
        Raster band holding the population.

    Returns
    -------
    GeoDataFrame
        ``place_id``, ``unit_id`` (from ``units`` when given, else the file's ``unit_id``
        column, else None; None outside every unit), ``population`` (float >= 0),
        ``urban_rural`` and ``ur_source`` (the file's ``ur_source``, or ``"column"`` where
        the input said, else None: the classification step fills them), Points in EPSG:4326.

    Raises
    ------
    CoverageError, InputError
        Unknown kind, missing file, a raster without CRS or without populated cells, bad
        population values.
    """
    if kind == "units":
        return _population_from_units(units)
    if kind not in ("points", "raster"):
        raise CoverageError(f"unknown population kind {kind!r}; use 'units' (a column on the "
                            "boundaries), 'points' (villages...) or 'raster' (a GeoTIFF grid)")
    if path is None:
        raise CoverageError(f"population kind {kind!r} needs a path to the file")
    if kind == "raster":
        places = _population_from_raster(path, band=band)
    else:
        places = _population_from_points(path, population_column=population_column,
                                         id_column=id_column,
                                         urban_rural_column=urban_rural_column, layer=layer,
                                         crs=crs, lon_column=lon_column, lat_column=lat_column)
    if units is not None:
        places["unit_id"] = _containing_unit(places, units).to_numpy()
        per_unit = places.groupby("unit_id")["population"].sum()
        name = Path(path).name if isinstance(path, str | Path) else "population"
        warn_above_census(units, units["unit_id"].map(per_unit), source=name,
                          what="population of the places in them")
        outside = places["unit_id"].isna()
        if outside.any():
            warnings.warn(
                f"{int(outside.sum())} population place(s) holding "
                f"{places.loc[outside, 'population'].sum():g} people lie outside every "
                f"boundary (e.g. {_io.list_numbers(places.loc[outside, 'place_id'].tolist()[:5])})"
                "; they are kept without a unit", InputWarning, stacklevel=2)
    return places


def _population_from_units(units: gpd.GeoDataFrame | None) -> gpd.GeoDataFrame:
    if units is None or "population" not in units.columns:
        raise CoverageError("population kind 'units' needs the boundaries loaded with "
                            "population_column (the column holding each unit's population)")
    missing = units["population"].isna()
    if missing.any():
        raise InputError([Problem(
            f"boundaries units {_io.list_numbers(units.loc[missing, 'unit_id'].tolist())}",
            "missing population", "fill in the population of every unit, or use population "
            "points or a raster")], source="boundaries")
    ur = units["urban_rural"] if "urban_rural" in units.columns else pd.Series(
        [None] * len(units), index=units.index)
    places = gpd.GeoDataFrame({
        "place_id": units["unit_id"].astype(str).to_numpy(),
        "unit_id": units["unit_id"].astype(str).to_numpy(),
        "population": units["population"].astype(float).to_numpy(),
        "urban_rural": ur.to_numpy(),
        "ur_source": np.where(ur.notna(), "column", None),
    }, geometry=units.geometry.representative_point().to_numpy(), crs=_io.WGS84)
    return places


def _population_from_points(path: str | Path | gpd.GeoDataFrame, *, population_column: str | None,
                            id_column: str | None, urban_rural_column: str | None,
                            layer: str | None, crs: str | None, lon_column: str | None,
                            lat_column: str | None) -> gpd.GeoDataFrame:
    gdf, src = _io.read_layer(path, role="population", layer=layer, crs=crs,
                              lon_column=lon_column, lat_column=lat_column,
                              columns={"population_column": population_column,
                                       "id_column": id_column,
                                       "urban_rural_column": urban_rural_column})
    columns = [c for c in gdf.columns if c not in ("_row", gdf.geometry.name)]
    pop_col = _io.find_column(columns, population_column, POPULATION_NAMES, what="population",
                              option="population_column", source=src)
    id_col = _io.find_column(columns, id_column, PLACE_ID_NAMES, what="id", option="id_column",
                             source=src, required=False)
    assert pop_col is not None
    gdf = _io.drop_empty(gdf, source=src, role="population places")
    gdf = _io.as_points(gdf, source=src, role="population places")
    problems: list[Problem] = []
    population = _population_values(gdf, pop_col, src, problems, allow_missing=False)
    if id_col is not None:
        ids = _as_text(gdf[id_col])
        dup = _io.duplicates(ids.dropna(), gdf["_row"])
        if dup:
            problems.append(Problem(src.where(column=id_col),
                                    f"duplicate place ids: {_io.list_numbers(dup)}",
                                    "give every place its own id"))
        ids = ids.fillna(pd.Series([f"{src.path.stem}-{r}" for r in gdf["_row"]],
                                   index=gdf.index))
    else:
        ids = pd.Series([f"{src.path.stem}-{r}" for r in gdf["_row"]], index=gdf.index)
    ur = _urban_rural_column(gdf, urban_rural_column, src, problems)
    if problems:
        raise InputError(problems, source=src.name)
    # a unit_id / ur_source the file already carries is kept (the units layer, when given,
    # re-decides unit_id from the geometry)
    unit_ids = (_as_text(gdf["unit_id"]).astype(object) if "unit_id" in gdf.columns
                else pd.Series([None] * len(gdf), index=gdf.index, dtype=object))
    ur_source = pd.Series(np.where(ur.notna(), "column", None), index=gdf.index, dtype=object)
    if "ur_source" in gdf.columns and urban_rural_column is not None:
        ur_source = _as_text(gdf["ur_source"]).astype(object).where(ur.notna(), None).fillna(
            ur_source)
    canonical: dict[str, pd.Series | list[object]] = {
        "place_id": ids.astype(str), "unit_id": unit_ids.where(unit_ids.notna(), None),
        "population": population.astype(float), "urban_rural": ur,
        "ur_source": ur_source.where(ur_source.notna(), None),
    }
    used = [c for c in (pop_col, id_col, urban_rural_column) if c]
    return _finish(gdf, canonical, used)


def _population_from_raster(path: str | Path, *, band: int) -> gpd.GeoDataFrame:
    p = _io.require_file(path, role="population raster")
    try:
        with rasterio.open(p) as ds:
            if ds.crs is None:
                raise CoverageError(
                    f"{p.name}: the raster has no coordinate system, so its cells cannot be "
                    "placed; assign one (GDAL: gdal_edit.py -a_srs EPSG:xxxx, or QGIS "
                    "'Assign projection') and try again")
            if not 1 <= band <= ds.count:
                raise CoverageError(f"{p.name} has {ds.count} band(s); band {band} does not "
                                    "exist (set band)")
            data = ds.read(band, masked=True)
            transform = ds.transform
            raster_crs = CRS.from_wkt(ds.crs.to_wkt())
    except rasterio.errors.RasterioIOError as exc:
        raise CoverageError(f"{p.name}: cannot read it as a raster ({exc}); give a GeoTIFF") \
            from exc
    values = np.ma.filled(data.astype(float), np.nan)
    valid = np.isfinite(values) & (values > 0)
    if not valid.any():
        raise CoverageError(f"{p.name}: no raster cell holds a population above 0 (all are "
                            "nodata, zero or negative); check the band and the nodata value")
    rows, cols = np.nonzero(valid)
    xs, ys = rasterio.transform.xy(transform, rows, cols, offset="center")
    xs, ys = np.asarray(xs, dtype=float), np.asarray(ys, dtype=float)
    area_km2 = _cell_areas_km2(transform, raster_crs, ys)
    if not (raster_crs.is_geographic and raster_crs.to_epsg() in (4326, 4490)):
        xs, ys = Transformer.from_crs(raster_crs, _io.WGS84, always_xy=True).transform(xs, ys)
    return gpd.GeoDataFrame({
        "place_id": [f"cell-{r}-{c}" for r, c in zip(rows, cols, strict=True)],
        "unit_id": [None] * len(rows),
        "population": values[rows, cols],
        "urban_rural": [None] * len(rows),
        "ur_source": [None] * len(rows),
        "area_km2": area_km2,
    }, geometry=gpd.points_from_xy(xs, ys), crs=_io.WGS84)


def _cell_areas_km2(transform: rasterio.Affine, crs: CRS, ys: np.ndarray) -> np.ndarray:
    """Return the area of raster cells (km²) centred at ``ys`` (in the raster's CRS).

    Projected grids: the cell's width times height (in the CRS unit, metres assumed unless
    the CRS says feet); geographic grids: the exact area of the cell on the authalic sphere.
    """
    width, height = abs(transform.a), abs(transform.e)
    if not crs.is_geographic:
        unit = crs.axis_info[0].unit_conversion_factor if crs.axis_info else 1.0
        return np.full(len(ys), width * height * unit * unit / 1e6)
    radius_km = 6371.0072
    south = np.radians(ys - height / 2)
    north = np.radians(ys + height / 2)
    return radius_km**2 * np.radians(width) * np.abs(np.sin(north) - np.sin(south))


def _containing_unit(points: gpd.GeoDataFrame, units: gpd.GeoDataFrame) -> pd.Series:
    """Return the ``unit_id`` of the unit containing each point (None if none).

    On a shared border the first unit wins.
    """
    joined = gpd.sjoin(points[[points.geometry.name]],
                       units[["unit_id", units.geometry.name]].to_crs(points.crs),
                       how="left", predicate="intersects")
    first = joined[~joined.index.duplicated(keep="first")]
    return first["unit_id"].reindex(points.index).astype(object).where(
        first["unit_id"].reindex(points.index).notna(), None)


# ----------------------------------------------------------------------------------- checks
def check_facilities_within(facilities: gpd.GeoDataFrame, units: gpd.GeoDataFrame) -> list[str]:
    """Warn about facilities outside every unit, and keep them.

    A facility just outside the district still serves its residents, so it stays in the layer;
    a facility far outside usually means wrong coordinates or coordinate system.

    Returns
    -------
    list of str
        ``facility_id`` of each facility outside every unit (empty if all are inside).
    """
    unit = _containing_unit(facilities, units)
    outside = unit.isna().to_numpy()
    ids = facilities.loc[outside, "facility_id"].astype(str).tolist()
    if ids:
        pts = facilities.geometry[outside]
        described = [f"{fid} ({name}, {p.x:.6f}, {p.y:.6f})" for fid, name, p in
                     zip(ids, facilities.loc[outside, "name"], pts, strict=True)]
        warnings.warn(
            f"{len(ids)} facilit{'y lies' if len(ids) == 1 else 'ies lie'} outside every "
            f"boundary: {_io.list_numbers(described)}; kept (they may serve residents across "
            "the border). If that is wrong, check the coordinates and the crs (GCJ-02/BD-09 "
            "read as WGS-84 are about 500 m off)", InputWarning, stacklevel=2)
    return ids
