"""Node elevations from a digital elevation model (SRTM ``.hgt``, GeoTIFF, or a ``.zip`` of one).

The raster is read once; elevations are sampled bilinearly between pixel centres, NaN outside
the raster, on no-data pixels and on SRTM voids.
"""

from __future__ import annotations

import zipfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
from covplan.errors import CoverageError
from pyproj import CRS

__all__ = ["dem_sampler"]


def _dem_uri(dem: str | Path) -> str:
    """Return the rasterio path of a DEM (a ``zip://`` path to the raster inside a ``.zip``)."""
    text = str(dem)
    if text.startswith("zip://") or "!" in text or not text.lower().endswith(".zip"):
        return text
    with zipfile.ZipFile(text) as zf:
        inner = [n for n in zf.namelist() if n.lower().endswith((".hgt", ".tif", ".tiff"))]
    if not inner:
        raise CoverageError(f"no .hgt or .tif elevation raster inside {text}")
    return f"zip://{Path(text).resolve()}!{inner[0]}"


def dem_sampler(dem: str | Path) -> Callable[[np.ndarray, np.ndarray], np.ndarray]:
    """Return a bilinear sampler ``(lon, lat) -> elevation`` (NaN outside / no data).

    Parameters
    ----------
    dem
        Elevation model in longitude/latitude: GeoTIFF, ``.hgt``, or a ``.zip`` holding one.

    Raises
    ------
    CoverageError
        If the file cannot be opened, holds no raster or is projected.
    """
    import rasterio

    uri = _dem_uri(dem)
    try:
        with rasterio.open(uri) as src:
            band = src.read(1).astype(float)
            t = src.transform
            if src.nodata is not None:
                band[band == src.nodata] = np.nan
            if src.crs is not None and not CRS(src.crs).is_geographic:
                raise CoverageError(f"elevation model {dem} must be in longitude/latitude")
    except rasterio.errors.RasterioIOError as exc:
        raise CoverageError(f"cannot open elevation model {dem}: {exc}") from exc
    band[band < -1000] = np.nan  # SRTM voids

    def sample(lon: np.ndarray, lat: np.ndarray) -> np.ndarray:
        # north-up raster: column/row from the affine coefficients, relative to pixel centres
        col = (np.asarray(lon, dtype=float) - t.c) / t.a - 0.5
        row = (np.asarray(lat, dtype=float) - t.f) / t.e - 0.5
        c0, r0 = np.floor(col).astype(int), np.floor(row).astype(int)
        fc, fr = col - c0, row - r0
        h, w = band.shape
        ok = (c0 >= 0) & (r0 >= 0) & (c0 + 1 < w) & (r0 + 1 < h)
        c0, r0 = np.where(ok, c0, 0), np.where(ok, r0, 0)
        z = (
            band[r0, c0] * (1 - fc) * (1 - fr)
            + band[r0, c0 + 1] * fc * (1 - fr)
            + band[r0 + 1, c0] * (1 - fc) * fr
            + band[r0 + 1, c0 + 1] * fc * fr
        )
        return np.where(ok, z, np.nan)

    return sample

