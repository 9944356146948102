"""Urban or rural class of each population place, and which source decided it.

The class picks the threshold of standards such as BZ-12/BZ-13 (城区15分钟、农村30分钟). Sources,
in order (the first that gives a class wins; ``ur_source`` records it):

1. ``"column"``: a column of the places the user names (``urban``/``rural``, or 城镇/乡村,
   城区/农村, 城/乡, NBS class codes: :func:`covplan.labels.urban_rural_class`);
2. ``"nbs"``: the NBS urban-rural class code (统计用区划代码和城乡划分代码) of the place's
   12-digit village code, joined to the shipped NBS table
   ``covplan/china/tables/admin_units_nbs2016.csv``: 1xx urban
   (111 主城区, 112 城乡结合区, 121 镇中心区, 122 镇乡结合区, 123 特殊区域), 2xx rural
   (210 乡中心区, 220 村庄);
3. ``"density"``: residents per km² at or above a threshold is urban, below is rural;
4. ``"default"``: the class given as ``default`` (rural unless told otherwise).
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
from covplan.errors import CoverageError, InputError, Problem
from covplan.labels import urban_rural_class

__all__ = ["NBS_TABLE", "classify_places", "load_nbs_codes", "urban_rural_from_code"]

#: The shipped NBS 2016 table of the nine plan counties (village rows carry ``ur_code``).
NBS_TABLE = Path(str(resources.files("covplan.china") / "tables" / "admin_units_nbs2016.csv"))

def urban_rural_from_code(codes: pd.Series) -> pd.Series:
    """Map NBS urban-rural class codes to ``"urban"`` (1xx) / ``"rural"`` (2xx) / None.

    Parameters
    ----------
    codes
        Codes such as 111, 112, 121, 122, 123, 210, 220 (numbers or strings), decoded by
        :func:`covplan.labels.urban_rural_class`; anything else gives None.
    """
    out = [urban_rural_class(v, strict=False) for v in codes]
    return pd.Series(out, index=codes.index, dtype=object)


def load_nbs_codes(path: str | Path | None = None) -> pd.DataFrame:
    """Read the NBS village table: 12-digit ``code``, ``name``, ``ur_code``, ``urban_rural``.

    Parameters
    ----------
    path
        CSV with columns ``code``, ``name``, ``level``, ``ur_code`` (default :data:`NBS_TABLE`).
    """
    path = Path(path) if path is not None else NBS_TABLE
    if not path.is_file():
        raise CoverageError(f"NBS code table not found: {path} (give nbs_table=path/to.csv)")
    table = pd.read_csv(path, dtype={"code": str, "parent": str})
    missing = [c for c in ("code", "ur_code") if c not in table.columns]
    if missing:
        raise CoverageError(f"{path}: missing column(s) {missing}; expected the NBS table layout")
    table = table[table["ur_code"].notna()].copy()
    table["ur_code"] = table["ur_code"].astype(int)
    table["urban_rural"] = urban_rural_from_code(table["ur_code"])
    cols = [c for c in ("code", "name", "ur_code", "urban_rural") if c in table.columns]
    return table[cols].reset_index(drop=True)


def classify_places(
    places: gpd.GeoDataFrame,
    *,
    column: str | None = None,
    nbs_code_column: str | None = None,
    nbs_table: str | Path | pd.DataFrame | None = None,
    density_per_km2: float | None = None,
    area_km2: float | None = None,
    default: str | None = "rural",
) -> gpd.GeoDataFrame:
    """Return a copy of the places with ``urban_rural`` and ``ur_source`` set.

    Parameters
    ----------
    places
        Population places (``place_id``, ``population``; geometry).
    column
        Column holding a class given by the user (source ``"column"``); empty cells fall
        through to the next source.
    nbs_code_column
        Column holding each place's 12-digit NBS village code (source ``"nbs"``).
    nbs_table
        The NBS table (path or the frame of :func:`load_nbs_codes`); default :data:`NBS_TABLE`.
    density_per_km2
        Density threshold (residents per km²) at or above which a place is urban (source
        ``"density"``); None skips this source.
    area_km2
        Area each place stands for (e.g. 0.0625 for 250 m cells). Without it the ``area_km2``
        column, or the area of polygon geometries, is used.
    default
        Class of places no source decided (source ``"default"``); None leaves them empty.

    Raises
    ------
    InputError
        If ``column`` holds values that are not a class (each value listed).
    CoverageError
        If a named column is missing, or a density threshold is given with no area.
    """
    out = places.copy()
    n = len(out)
    ur = pd.Series([None] * n, index=out.index, dtype=object)
    src = pd.Series([None] * n, index=out.index, dtype=object)

    if column is not None:
        if column not in out.columns:
            raise CoverageError(f"places: no column {column!r} (urban_rural_column); columns: "
                                f"{list(out.columns)}")
        raw = out[column]
        words = raw.map(lambda v: urban_rural_class(v, strict=False) if _given(v) else None)
        bad = sorted(
            {str(v) for v, w in zip(raw, words, strict=True) if _given(v) and pd.isna(w)}
        )
        if bad:
            raise InputError(
                [Problem(f"places.{column}", f"not an urban/rural class: {v!r}",
                         "use urban or rural (or 城镇/乡村)") for v in bad],
                source="places",
            )
        take = ur.isna() & words.notna()
        ur[take], src[take] = words[take], "column"

    if nbs_code_column is not None:
        if nbs_code_column not in out.columns:
            raise CoverageError(f"places: no column {nbs_code_column!r} (NBS village code)")
        table = nbs_table if isinstance(nbs_table, pd.DataFrame) else load_nbs_codes(nbs_table)
        by_code = dict(zip(table["code"].astype(str), table["urban_rural"], strict=True))
        codes = out[nbs_code_column].map(lambda v: _code12(v) if _given(v) else None)
        cls = codes.map(lambda c: by_code.get(c) if c else None)
        take = ur.isna() & cls.notna()
        ur[take], src[take] = cls[take], "nbs"

    if density_per_km2 is not None:
        area = _areas(out, area_km2)
        dens = pd.to_numeric(out["population"], errors="coerce") / area
        cls = pd.Series(np.where(dens >= density_per_km2, "urban", "rural"), index=out.index)
        cls[dens.isna()] = None
        take = ur.isna() & cls.notna()
        ur[take], src[take] = cls[take], "density"

    if default is not None:
        if default not in ("urban", "rural"):
            raise CoverageError(f"default must be 'urban', 'rural' or None, got {default!r}")
        take = ur.isna()
        ur[take], src[take] = default, "default"

    out["urban_rural"] = ur
    out["ur_source"] = src
    return out


def _given(value: object) -> bool:
    if value is None or (pd.api.types.is_scalar(value) and pd.isna(value)):
        return False
    return str(value).strip() != ""


def _code12(value: object) -> str:
    text = str(value).strip()
    if text.endswith(".0"):
        text = text[:-2]
    return text


def _areas(places: gpd.GeoDataFrame, area_km2: float | None) -> pd.Series:
    if area_km2 is not None:
        if not area_km2 > 0:
            raise CoverageError(f"area_km2 must be positive, got {area_km2!r}")
        return pd.Series(float(area_km2), index=places.index)
    if "area_km2" in places.columns:
        return pd.to_numeric(places["area_km2"], errors="coerce").where(lambda a: a > 0)
    geom = places.geometry if isinstance(places, gpd.GeoDataFrame) else None
    if geom is not None and len(geom) and geom.geom_type.isin(["Polygon", "MultiPolygon"]).all():
        metric = places.to_crs(places.estimate_utm_crs())
        return (metric.geometry.area / 1e6).where(lambda a: a > 0)
    raise CoverageError(
        "a density threshold needs each place's area: pass area_km2= (e.g. 0.0625 for 250 m "
        "cells), add an area_km2 column, or give polygon places"
    )
