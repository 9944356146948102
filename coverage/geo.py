"""Small shared geometry helpers: the metric CRS of a layer, reprojection, great-circle length."""

from __future__ import annotations

import geopandas as gpd
import numpy as np
import shapely
from covplan.errors import CoverageError
from pyproj import CRS, Transformer
from shapely.geometry.base import BaseGeometry

__all__ = [
    "EARTH_RADIUS_M",
    "haversine_m",
    "metric_crs",
    "project_geoms",
    "utm_crs",
]

#: Mean Earth radius (IUGG), metres.
EARTH_RADIUS_M = 6_371_008.8


def utm_crs(lon: float, lat: float) -> CRS:
    """Return the WGS-84 UTM zone CRS (EPSG:326xx north, 327xx south) containing a point."""
    if not (np.isfinite(lon) and np.isfinite(lat)) or abs(lat) > 84.0:
        raise CoverageError(
            f"cannot pick a UTM zone for lon={lon}, lat={lat}: coordinates must be finite "
            "longitude/latitude within 84 degrees of the equator"
        )
    zone = int((lon + 180.0) // 6.0) % 60 + 1
    return CRS.from_epsg((32600 if lat >= 0 else 32700) + zone)


def metric_crs(gdf: gpd.GeoDataFrame | gpd.GeoSeries | BaseGeometry) -> CRS:
    """Return the UTM zone CRS of the centroid of a layer's bounds (lon/lat layers assumed).

    Parameters
    ----------
    gdf
        A GeoDataFrame/GeoSeries (any CRS; reprojected to EPSG:4326 to find the zone) or a
        shapely geometry in lon/lat.

    Raises
    ------
    CoverageError
        If the layer is empty or its centroid is not a valid lon/lat position.
    """
    if isinstance(gdf, BaseGeometry):
        if gdf.is_empty:
            raise CoverageError("cannot pick a metric CRS for an empty geometry")
        minx, miny, maxx, maxy = gdf.bounds
    else:
        if len(gdf) == 0:
            raise CoverageError("cannot pick a metric CRS for an empty layer")
        layer = gdf if gdf.crs is None else gdf.to_crs("EPSG:4326")
        minx, miny, maxx, maxy = layer.total_bounds
    return utm_crs((minx + maxx) / 2.0, (miny + maxy) / 2.0)


def project_geoms(geoms: np.ndarray, src: CRS | str, dst: CRS | str) -> np.ndarray:
    """Reproject an array of shapely geometries from ``src`` to ``dst`` (vectorised)."""
    transformer = Transformer.from_crs(src, dst, always_xy=True)

    def _fn(coords: np.ndarray) -> np.ndarray:
        x, y = transformer.transform(coords[:, 0], coords[:, 1])
        return np.column_stack([x, y])

    return shapely.transform(np.asarray(geoms, dtype=object), _fn)


def haversine_m(
    lon1: np.ndarray, lat1: np.ndarray, lon2: np.ndarray, lat2: np.ndarray
) -> np.ndarray:
    """Great-circle distance in metres between arrays of lon/lat points (degrees)."""
    x1, y1, x2, y2 = (np.radians(np.asarray(a, dtype=float)) for a in (lon1, lat1, lon2, lat2))
    a = np.sin((y2 - y1) / 2.0) ** 2 + np.cos(y1) * np.cos(y2) * np.sin((x2 - x1) / 2.0) ** 2
    return 2.0 * EARTH_RADIUS_M * np.arcsin(np.sqrt(np.clip(a, 0.0, 1.0)))
