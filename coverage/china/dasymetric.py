"""Dasymetric population: spread census counts over a population raster inside each unit.

Census counts by township or village are control totals: each unit's count is shared among
the raster cells whose centre lies in the unit, in proportion to the raster value (a WorldPop
or GHS-POP GeoTIFF the user supplies), so that coverage is computed where people live inside
the unit. The unit totals are preserved exactly. :func:`coverage_shift` reports how much a
coverage share moves between counting each unit at one point and counting the spread cells.
"""

from __future__ import annotations

from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import rasterio
import rasterio.features
import rasterio.windows
import shapely
from covplan.errors import CoverageError
from shapely.geometry.base import BaseGeometry

__all__ = ["coverage_shift", "spread_over_raster"]


def spread_over_raster(
    units: gpd.GeoDataFrame,
    raster: str | Path,
    *,
    population_column: str = "population",
    id_column: str = "unit_id",
    urban_rural_column: str | None = "urban_rural",
    band: int = 1,
) -> gpd.GeoDataFrame:
    """Share each unit's census count among the raster cells inside it.

    Parameters
    ----------
    units
        Polygons with a census count (control total) per unit.
    raster
        A population (or any non-negative weight) GeoTIFF; nodata and negative cells weigh 0.
    population_column, id_column
        The units' count and id columns.
    urban_rural_column
        Copied to the cells when present.
    band
        The raster band to read.

    Returns
    -------
    geopandas.GeoDataFrame
        Population places (canonical schema): ``place_id`` (``<unit_id>:<row>:<col>``),
        ``unit_id``, ``population``, ``urban_rural``, ``ur_source`` (``"column"`` or
        ``"default"``), plus ``weight`` (the raster value) and ``method`` (``"raster"``;
        ``"uniform"`` when every cell of the unit weighs 0; ``"point"`` when no cell centre
        falls in the unit, the count then sits at the unit's representative point), Point
        geometry in EPSG:4326. Per unit the populations sum to the census count.

    Raises
    ------
    CoverageError
        When a column is missing, a count is negative, or the raster cannot be read or has no
        CRS.
    """
    for col in (population_column, id_column):
        if col not in units.columns:
            raise CoverageError(f"units have no column {col!r}: columns {list(units.columns)}")
    counts = pd.to_numeric(units[population_column], errors="coerce").to_numpy(dtype=float)
    if (counts[np.isfinite(counts)] < 0).any():
        raise CoverageError(f"units.{population_column} has negative counts")
    try:
        src = rasterio.open(raster)
    except rasterio.errors.RasterioIOError as exc:
        raise CoverageError(f"cannot read population raster {raster}: {exc}") from exc
    with src:
        if src.crs is None:
            raise CoverageError(f"population raster {raster} has no CRS; give it one (gdal_edit)")
        shapes = units.to_crs(src.crs) if units.crs is not None else units.set_crs(
            "EPSG:4326").to_crs(src.crs)
        window = rasterio.windows.from_bounds(*shapes.total_bounds, transform=src.transform)
        window = window.round_offsets().round_lengths()
        window = window.intersection(rasterio.windows.Window(0, 0, src.width, src.height))
        data = src.read(band, window=window, masked=True).astype(float)
        transform = src.window_transform(window)
        weights = np.where(np.ma.getmaskarray(data), 0.0, np.ma.getdata(data))
        weights = np.where(np.isfinite(weights) & (weights > 0), weights, 0.0)
        labels = rasterio.features.rasterize(
            ((geom, i + 1) for i, geom in enumerate(shapes.geometry) if geom is not None),
            out_shape=weights.shape, transform=transform, fill=0, all_touched=False,
            dtype="int32",
        )
        crs = src.crs
    n = len(units)
    flat_labels = labels.ravel()
    flat_weights = weights.ravel()
    wsum = np.bincount(flat_labels, weights=flat_weights, minlength=n + 1)[1:]
    ncell = np.bincount(flat_labels, minlength=n + 1)[1:]
    rows, cols = np.nonzero(labels)
    lab = labels[rows, cols] - 1
    w = weights[rows, cols]
    total = np.nan_to_num(counts)
    share = np.where(wsum[lab] > 0, w / np.where(wsum[lab] > 0, wsum[lab], 1.0),
                     1.0 / np.maximum(ncell[lab], 1))
    pop = total[lab] * share
    xs, ys = rasterio.transform.xy(transform, rows, cols)
    ids = [str(v) for v in units[id_column]]
    ur = (list(units[urban_rural_column]) if urban_rural_column and urban_rural_column in
          units.columns else [None] * n)
    ur = [u if isinstance(u, str) else None for u in ur]
    cells = gpd.GeoDataFrame(
        {
            "place_id": [f"{ids[k]}:{r + int(window.row_off)}:{c + int(window.col_off)}"
                         for k, r, c in zip(lab, rows, cols, strict=True)],
            "unit_id": [ids[k] for k in lab],
            "population": pop,
            "urban_rural": [ur[k] for k in lab],
            "ur_source": ["column" if ur[k] else "default" for k in lab],
            "weight": w,
            "method": np.where(wsum[lab] > 0, "raster", "uniform"),
        },
        geometry=gpd.points_from_xy(np.asarray(xs), np.asarray(ys)),
        crs=crs,
    ).to_crs("EPSG:4326")
    missing = [k for k in range(n) if ncell[k] == 0]
    if missing:
        reps = shapes.geometry.iloc[missing].representative_point()
        extra = gpd.GeoDataFrame(
            {
                "place_id": [f"{ids[k]}:point" for k in missing],
                "unit_id": [ids[k] for k in missing],
                "population": total[missing],
                "urban_rural": [ur[k] for k in missing],
                "ur_source": ["column" if ur[k] else "default" for k in missing],
                "weight": np.nan,
                "method": "point",
            },
            geometry=list(reps), crs=crs,
        ).to_crs("EPSG:4326")
        cells = pd.concat([cells, extra], ignore_index=True)
    return cells.reset_index(drop=True)


def coverage_shift(
    units: gpd.GeoDataFrame,
    cells: gpd.GeoDataFrame,
    covered_area: BaseGeometry,
    *,
    id_column: str = "unit_id",
    population_column: str = "population",
) -> pd.DataFrame:
    """Compare the covered population share with and without dasymetric spreading.

    Without spreading, a unit's whole count sits at its representative point (inside the
    polygon) and is covered or not as a whole; with spreading, each cell counts for its share.

    Parameters
    ----------
    units
        The units with their census counts.
    cells
        The spread population (:func:`spread_over_raster`).
    covered_area
        The area within the standard (for example the union of 15-minute isochrones), lon/lat.
    id_column, population_column
        Columns of ``units`` (``cells`` use ``unit_id`` and ``population``).

    Returns
    -------
    pandas.DataFrame
        One row per unit plus a last row ``"TOTAL"``: ``population``, ``covered_units`` and
        ``covered_cells`` (people covered each way), ``share_units`` and ``share_cells``
        (fractions) and ``shift_pp`` (``share_cells - share_units`` in percentage points).
    """
    shapely.prepare(covered_area)
    layer = units.to_crs("EPSG:4326")
    reps = layer.geometry.representative_point()
    pops = pd.to_numeric(layer[population_column], errors="coerce").fillna(0.0).to_numpy()
    at_point = shapely.intersects(covered_area, reps.values)
    cell_layer = cells.to_crs("EPSG:4326")
    cell_in = shapely.intersects(covered_area, cell_layer.geometry.values)
    by_unit = (
        cell_layer.assign(c=np.where(cell_in, cell_layer["population"], 0.0))
        .groupby("unit_id")["c"].sum()
    )
    ids = [str(v) for v in layer[id_column]]
    out = pd.DataFrame(
        {
            "population": pops,
            "covered_units": np.where(at_point, pops, 0.0),
            "covered_cells": [float(by_unit.get(i, 0.0)) for i in ids],
        },
        index=pd.Index(ids, name=id_column),
    )
    out.loc["TOTAL"] = out.sum()
    denom = out["population"].where(out["population"] > 0)
    out["share_units"] = out["covered_units"] / denom
    out["share_cells"] = out["covered_cells"] / denom
    out["shift_pp"] = 100.0 * (out["share_cells"] - out["share_units"])
    return out
