r"""results.gpkg: every layer of a run in one GeoPackage, with the run manifest inside.

Layers: ``facilities``, ``units``, ``unit_results`` (unit polygons joined with one row per
unit and rule), ``places`` (with nearest facility and minutes per mode; NULL minutes =
unreachable), ``isochrones``, ``proposals`` (when the run proposed sites) and the
attribute table ``run_manifest`` (key, value: one row per manifest entry, values as JSON).
The manifest is also stored as GDAL dataset metadata (``gpkg_metadata`` table).

Text is stored as read except for bidirectional control characters (U+202A-202E,
U+2066-2069, U+200E/200F, U+061C), which are dropped from every text column, as in the HTML,
CSV and XLSX exports, so a name cannot show reordered (spoofed) in a GIS; ids lose them the
same way in every layer, so the layers still join. In the manifest JSON they are written as
``\uXXXX`` escapes (the same JSON value, see
:func:`covplan.outputs.html_text.safe_json_text`).
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
from covplan.outputs.html_text import BIDI_CONTROLS, safe_json_text
from covplan.outputs.manifest import manifest_json, to_jsonable
from covplan.results import RunResult

__all__ = ["MANIFEST_TABLE", "gpkg_layers", "write_gpkg"]

MANIFEST_TABLE = "run_manifest"

_BIDI_TABLE = dict.fromkeys(map(ord, BIDI_CONTROLS))


def _strip_bidi(value: Any) -> Any:
    """Return a text without bidi control characters; any other value unchanged."""
    return value.translate(_BIDI_TABLE) if isinstance(value, str) else value


def _clean(frame: gpd.GeoDataFrame) -> gpd.GeoDataFrame:
    """Make columns storable and safe to show.

    JSON text for dicts/lists, NULL for non-finite numbers, and text without bidi control
    characters (column names too).
    """
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
            out[column] = out[column].map(_strip_bidi)
        elif pd.api.types.is_string_dtype(series):
            out[column] = series.str.translate(_BIDI_TABLE)
    return out.rename(columns=lambda c: _strip_bidi(c) if c != out.geometry.name else c)


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
    text = safe_json_text(manifest_json(manifest, indent=None))
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
            (key, safe_json_text(
                json.dumps(to_jsonable(value), ensure_ascii=False, sort_keys=True)))
            for key, value in sorted(dict(manifest).items())
        ],
        columns=["key", "value"],
    )
    pyogrio.write_dataframe(rows, path, layer=MANIFEST_TABLE, driver="GPKG", append=True)
    return path
