"""Coordinate systems of Chinese web maps: GCJ-02 and BD-09 to and from WGS-84.

GCJ-02 (Amap, Tencent) is WGS-84 shifted by an obfuscation polynomial; BD-09 (Baidu) is
GCJ-02 shifted again. The forward formulas below are the widely published ones (the same
constants as in eviltransform and coordtransform). The inverse of GCJ-02 has no closed form;
it is solved by fixed-point iteration to below 1e-9 degrees (about 0.1 mm). Outside mainland
China the offsets are zero, as the web maps themselves apply them only inside China.

CGCS2000 (EPSG:4490) differs from WGS-84 by centimetres and is treated as equal to it.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
from covplan.errors import CoverageError

_A = 6378245.0
_EE = 0.00669342162296594323
_X_PI = np.pi * 3000.0 / 180.0

#: Names accepted for ``crs`` of tabular inputs, mapped to the canonical name.
CHINESE_CRS_NAMES = {
    "gcj-02": "GCJ-02",
    "gcj02": "GCJ-02",
    "bd-09": "BD-09",
    "bd09": "BD-09",
    "cgcs2000": "EPSG:4490",
    "epsg:4490": "EPSG:4490",
    "wgs-84": "EPSG:4326",
    "wgs84": "EPSG:4326",
    "epsg:4326": "EPSG:4326",
}

ArrayLike = npt.ArrayLike


def out_of_china(lon: ArrayLike, lat: ArrayLike) -> np.ndarray:
    """Return True where a point lies outside the rough mainland-China box the offsets use."""
    lon = np.asarray(lon, dtype=float)
    lat = np.asarray(lat, dtype=float)
    return (lon < 72.004) | (lon > 137.8347) | (lat < 0.8293) | (lat > 55.8271)


def _delta(lon: np.ndarray, lat: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    x = lon - 105.0
    y = lat - 35.0
    dlat = (
        -100.0 + 2.0 * x + 3.0 * y + 0.2 * y * y + 0.1 * x * y + 0.2 * np.sqrt(np.abs(x))
        + (20.0 * np.sin(6.0 * x * np.pi) + 20.0 * np.sin(2.0 * x * np.pi)) * 2.0 / 3.0
        + (20.0 * np.sin(y * np.pi) + 40.0 * np.sin(y / 3.0 * np.pi)) * 2.0 / 3.0
        + (160.0 * np.sin(y / 12.0 * np.pi) + 320 * np.sin(y * np.pi / 30.0)) * 2.0 / 3.0
    )
    dlon = (
        300.0 + x + 2.0 * y + 0.1 * x * x + 0.1 * x * y + 0.1 * np.sqrt(np.abs(x))
        + (20.0 * np.sin(6.0 * x * np.pi) + 20.0 * np.sin(2.0 * x * np.pi)) * 2.0 / 3.0
        + (20.0 * np.sin(x * np.pi) + 40.0 * np.sin(x / 3.0 * np.pi)) * 2.0 / 3.0
        + (150.0 * np.sin(x / 12.0 * np.pi) + 300.0 * np.sin(x / 30.0 * np.pi)) * 2.0 / 3.0
    )
    radlat = lat / 180.0 * np.pi
    magic = 1 - _EE * np.sin(radlat) ** 2
    sqrtmagic = np.sqrt(magic)
    dlat = (dlat * 180.0) / ((_A * (1 - _EE)) / (magic * sqrtmagic) * np.pi)
    dlon = (dlon * 180.0) / (_A / sqrtmagic * np.cos(radlat) * np.pi)
    outside = out_of_china(lon, lat)
    return np.where(outside, 0.0, dlon), np.where(outside, 0.0, dlat)


def wgs84_to_gcj02(lon: ArrayLike, lat: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    """Convert WGS-84 longitude/latitude (degrees) to GCJ-02."""
    lon = np.asarray(lon, dtype=float)
    lat = np.asarray(lat, dtype=float)
    dlon, dlat = _delta(lon, lat)
    return lon + dlon, lat + dlat


def gcj02_to_wgs84(lon: ArrayLike, lat: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    """Convert GCJ-02 longitude/latitude to WGS-84 by fixed-point iteration (< 1e-9 degrees)."""
    glon = np.asarray(lon, dtype=float)
    glat = np.asarray(lat, dtype=float)
    wlon, wlat = glon.copy(), glat.copy()
    for _ in range(30):
        tlon, tlat = wgs84_to_gcj02(wlon, wlat)
        elon, elat = tlon - glon, tlat - glat
        wlon, wlat = wlon - elon, wlat - elat
        if np.nanmax(np.abs(np.concatenate([np.ravel(elon), np.ravel(elat)])), initial=0) < 1e-10:
            break
    return wlon, wlat


def gcj02_to_bd09(lon: ArrayLike, lat: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    """Convert GCJ-02 to BD-09 (Baidu)."""
    x = np.asarray(lon, dtype=float)
    y = np.asarray(lat, dtype=float)
    z = np.sqrt(x * x + y * y) + 0.00002 * np.sin(y * _X_PI)
    theta = np.arctan2(y, x) + 0.000003 * np.cos(x * _X_PI)
    return z * np.cos(theta) + 0.0065, z * np.sin(theta) + 0.006


def bd09_to_gcj02(lon: ArrayLike, lat: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    """Convert BD-09 (Baidu) to GCJ-02."""
    x = np.asarray(lon, dtype=float) - 0.0065
    y = np.asarray(lat, dtype=float) - 0.006
    z = np.sqrt(x * x + y * y) - 0.00002 * np.sin(y * _X_PI)
    theta = np.arctan2(y, x) - 0.000003 * np.cos(x * _X_PI)
    return z * np.cos(theta), z * np.sin(theta)


def wgs84_to_bd09(lon: ArrayLike, lat: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    """Convert WGS-84 to BD-09."""
    return gcj02_to_bd09(*wgs84_to_gcj02(lon, lat))


def bd09_to_wgs84(lon: ArrayLike, lat: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    """Convert BD-09 to WGS-84."""
    return gcj02_to_wgs84(*bd09_to_gcj02(lon, lat))


def canonical_crs(name: str | None) -> str:
    """Return the canonical name of a coordinate system given in a scenario or upload.

    ``GCJ-02`` and ``BD-09`` are returned as such; anything else is returned as an EPSG or
    pyproj-readable string. ``None`` means WGS-84.
    """
    if name is None or str(name).strip() == "":
        return "EPSG:4326"
    key = str(name).strip().lower()
    return CHINESE_CRS_NAMES.get(key, str(name).strip())


def to_wgs84(lon: ArrayLike, lat: ArrayLike, crs: str | None) -> tuple[np.ndarray, np.ndarray]:
    """Convert longitude/latitude in a geographic ``crs`` (WGS-84, CGCS2000, GCJ-02, BD-09).

    Raises
    ------
    CoverageError
        If ``crs`` is not one of the geographic systems handled here.
    """
    canon = canonical_crs(crs)
    if canon in ("EPSG:4326", "EPSG:4490"):
        return np.asarray(lon, dtype=float), np.asarray(lat, dtype=float)
    if canon == "GCJ-02":
        return gcj02_to_wgs84(lon, lat)
    if canon == "BD-09":
        return bd09_to_wgs84(lon, lat)
    raise CoverageError(
        f"coordinate system {crs!r} is not a longitude/latitude system this loader converts; "
        "use WGS-84, CGCS2000, GCJ-02 or BD-09, or give a file that carries its own CRS"
    )
