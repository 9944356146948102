"""results.gpkg: every layer of a run in one GeoPackage, with the run manifest inside.

Layers: ``facilities``, ``units``, ``unit_results`` (unit polygons joined with one row per
unit and rule), ``places`` (with nearest facility and minutes per mode; NULL minutes =
unreachable), ``isochrones``, ``proposals`` (when the run proposed sites) and the
attribute table ``run_manifest`` (key, value: one row per manifest entry, values as JSON).
The manifest is also stored as GDAL dataset metadata (``gpkg_metadata`` table).
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import pyogrio
from covplan.errors import CoverageError
from covplan.outputs.manifest import manifest_json, to_jsonable
from covplan.results import RunResult

__all__ = ["MANIFEST_TABLE", "gpkg_layers", "write_gpkg"]

MANIFEST_TABLE = "run_manifest"


def _clean(frame: gpd.GeoDataFrame) -> gpd.GeoDataFrame:
    """Make columns storable: JSON text for dicts/lists, NULL for non-finite numbers."""
    out = frame.copy()
    for column in out.columns:
        if column == out.geometry.name:
            continue
        series = out[column]
        if pd.api.types.is_float_dtype(series):
            out[column] = series.where(np.isfinite(series))
        elif series.dtype == object:
            if series.map(lambda v: isinstance(v, (dict, list, tuple, set))).any():
                out[column] = series.map(
                    lambda v: json.dumps(to_jsonable(v), ensure_ascii=False, sort_keys=True)
                    if isinstance(v, (dict, list, tuple, set)) else v
                )
    return out


def gpkg_layers(result: RunResult) -> dict[str, gpd.GeoDataFrame]:
    """Return the spatial layers that :func:`write_gpkg` writes, in order, keyed by layer name."""
    unit_results = result.units[["unit_id", "geometry"]].merge(
        result.unit_results.drop(columns=["geometry"], errors="ignore"),
        on="unit_id",
        how="inner",
    )
    unit_results = gpd.GeoDataFrame(unit_results, geometry="geometry", crs=result.units.crs)
    layers: dict[str, gpd.GeoDataFrame] = {
        "facilities": result.facilities,
        "units": result.units,
        "unit_results": unit_results,
        "places": result.places,
        "isochrones": result.isochrones,
    }
    if result.proposals is not None and len(result.proposals):
        layers["proposals"] = result.proposals
    return layers


def write_gpkg(
    result: RunResult, path: str | os.PathLike[str], *, manifest: Mapping[str, Any]
) -> Path:
    """Write every layer of ``result`` and the manifest into a new GeoPackage at ``path``.

    Raises
    ------
    CoverageError
        If ``path`` exists already or GDAL fails to write a layer.
    """
    path = Path(path)
    if path.exists():
        raise CoverageError(f"{path} exists; write_gpkg writes new files only (use atomic_path)")
    text = manifest_json(manifest, indent=None)
    first = True
    for name, layer in gpkg_layers(result).items():
        frame = _clean(layer)
        kwargs: dict[str, Any] = {}
        if first:
            kwargs["dataset_metadata"] = {"run_manifest": text}
        if frame.empty:
            geom_types = {
                "facilities": "Point", "places": "Point", "proposals": "Point",
            }
            kwargs["geometry_type"] = geom_types.get(name, "MultiPolygon")
        try:
            pyogrio.write_dataframe(
                frame, path, layer=name, driver="GPKG", append=not first, promote_to_multi=None,
                **kwargs,
            )
        except Exception as exc:  # noqa: BLE001 - GDAL raises several types
            raise CoverageError(f"cannot write layer {name!r} to {path}: {exc}") from exc
        first = False
    rows = pd.DataFrame(
        [
            (key, json.dumps(to_jsonable(value), ensure_ascii=False, sort_keys=True))
            for key, value in sorted(dict(manifest).items())
        ],
        columns=["key", "value"],
    )
    pyogrio.write_dataframe(rows, path, layer=MANIFEST_TABLE, driver="GPKG", append=True)
    return path
