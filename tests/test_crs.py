"""GCJ-02 / BD-09 conversions (covplan.inputs.crs) against published vectors and a textbook copy."""

from __future__ import annotations

import math

import numpy as np
import pytest
from covplan.errors import CoverageError
from covplan.geo import haversine_m
from covplan.inputs import crs

# Published test vectors, (lon, lat) order.
# eviltransform (github.com/googollee/eviltransform, test fixtures of every port), WGS -> GCJ:
EVILTRANSFORM_WGS_GCJ = [
    ((121.5272106, 31.1774276), (121.531541859215, 31.17530398364597)),  # Shanghai
    ((113.912316, 22.543847), (113.9171764808363, 22.540796131694766)),  # Shenzhen
    ((116.377817, 39.911954), (116.38404722455657, 39.91334545536069)),  # Beijing
]
# coordtransform (github.com/wandergis/coordtransform, test/app.js), all applied to
# (116.404, 39.915):
CT_POINT = (116.404, 39.915)
CT_WGS84_TO_GCJ02 = (116.41024449916938, 39.91640428150164)
CT_GCJ02_TO_BD09 = (116.41036949371029, 39.92133699351021)
CT_BD09_TO_GCJ02 = (116.39762729119315, 39.90865673957631)
# coordtransform's gcj02towgs84 is the one-step approximation wgs = 2*gcj - f(gcj):
CT_GCJ02_TO_WGS84_APPROX = (116.39775550083061, 39.91359571849836)


def _textbook_wgs_to_gcj(lon: float, lat: float) -> tuple[float, float]:
    """The forward transform as printed in eviltransform, written out with the math module."""
    if not (72.004 <= lon <= 137.8347 and 0.8293 <= lat <= 55.8271):
        return lon, lat
    x, y = lon - 105.0, lat - 35.0
    xy, abs_x, x_pi, y_pi = x * y, math.sqrt(abs(x)), x * math.pi, y * math.pi
    d = 20.0 * math.sin(6.0 * x_pi) + 20.0 * math.sin(2.0 * x_pi)
    t_lat = d + 20.0 * math.sin(y_pi) + 40.0 * math.sin(y_pi / 3.0)
    t_lng = d + 20.0 * math.sin(x_pi) + 40.0 * math.sin(x_pi / 3.0)
    t_lat += 160.0 * math.sin(y_pi / 12.0) + 320 * math.sin(y_pi / 30.0)
    t_lng += 150.0 * math.sin(x_pi / 12.0) + 300.0 * math.sin(x_pi / 30.0)
    t_lat = t_lat * 2.0 / 3.0 - 100.0 + 2.0 * x + 3.0 * y + 0.2 * y * y + 0.1 * xy + 0.2 * abs_x
    t_lng = t_lng * 2.0 / 3.0 + 300.0 + x + 2.0 * y + 0.1 * x * x + 0.1 * xy + 0.1 * abs_x
    a, ee = 6378245.0, 0.00669342162296594323
    rad = lat / 180.0 * math.pi
    magic = 1 - ee * math.sin(rad) ** 2
    d_lat = t_lat * 180.0 / ((a * (1 - ee)) / (magic * math.sqrt(magic)) * math.pi)
    d_lng = t_lng * 180.0 / (a / math.sqrt(magic) * math.cos(rad) * math.pi)
    return lon + d_lng, lat + d_lat


def _textbook_gcj_to_bd(lon: float, lat: float) -> tuple[float, float]:
    x_pi = math.pi * 3000.0 / 180.0
    z = math.hypot(lon, lat) + 0.00002 * math.sin(lat * x_pi)
    theta = math.atan2(lat, lon) + 0.000003 * math.cos(lon * x_pi)
    return z * math.cos(theta) + 0.0065, z * math.sin(theta) + 0.006


def _china_sample(n: int, seed: int = 7) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.uniform(73.7, 134.7, n), rng.uniform(18.2, 53.5, n)


@pytest.mark.parametrize(("wgs", "gcj"), EVILTRANSFORM_WGS_GCJ)
def test_forward_matches_eviltransform_vectors(wgs, gcj):
    lon, lat = crs.wgs84_to_gcj02(*wgs)
    assert float(lon) == pytest.approx(gcj[0], abs=1e-10)
    assert float(lat) == pytest.approx(gcj[1], abs=1e-10)
    back = crs.gcj02_to_wgs84(*gcj)
    assert float(back[0]) == pytest.approx(wgs[0], abs=1e-9)
    assert float(back[1]) == pytest.approx(wgs[1], abs=1e-9)


def test_coordtransform_readme_vectors():
    assert np.allclose(crs.wgs84_to_gcj02(*CT_POINT), CT_WGS84_TO_GCJ02, atol=1e-10, rtol=0)
    assert np.allclose(crs.gcj02_to_bd09(*CT_POINT), CT_GCJ02_TO_BD09, atol=1e-10, rtol=0)
    assert np.allclose(crs.bd09_to_gcj02(*CT_POINT), CT_BD09_TO_GCJ02, atol=1e-10, rtol=0)
    # our exact inverse differs from the published one-step approximation by well under 1 m
    exact = crs.gcj02_to_wgs84(*CT_POINT)
    gap = haversine_m(exact[0], exact[1], *CT_GCJ02_TO_WGS84_APPROX)
    assert 0.0 < gap < 1.0
    # and maps forward onto the input, which the approximation does not do as closely
    fwd = crs.wgs84_to_gcj02(*exact)
    assert haversine_m(fwd[0], fwd[1], *CT_POINT) < 1e-4


def test_forward_agrees_with_textbook_copy_across_china():
    lon, lat = _china_sample(300)
    glon, glat = crs.wgs84_to_gcj02(lon, lat)
    ref = np.array([_textbook_wgs_to_gcj(a, b) for a, b in zip(lon, lat, strict=True)])
    assert np.abs(glon - ref[:, 0]).max() < 1e-11
    assert np.abs(glat - ref[:, 1]).max() < 1e-11
    blon, blat = crs.gcj02_to_bd09(glon, glat)
    bref = np.array([_textbook_gcj_to_bd(a, b) for a, b in ref])
    assert np.abs(blon - bref[:, 0]).max() < 1e-11
    assert np.abs(blat - bref[:, 1]).max() < 1e-11


def test_round_trips_within_1e7_degrees():
    lon, lat = _china_sample(2000, seed=11)
    back = crs.gcj02_to_wgs84(*crs.wgs84_to_gcj02(lon, lat))
    assert np.abs(back[0] - lon).max() < 1e-7
    assert np.abs(back[1] - lat).max() < 1e-7
    # The published BD-09 inverse (bd09_to_gcj02) is itself an approximation of the forward
    # formula: it leaves up to ~2e-6 degrees (0.2 m), measured 1.9e-6 over this sample.
    back = crs.bd09_to_wgs84(*crs.wgs84_to_bd09(lon, lat))
    assert np.abs(back[0] - lon).max() < 2.5e-6
    assert np.abs(back[1] - lat).max() < 2.5e-6
    assert haversine_m(lon, lat, *back).max() < 0.3
    # the shift itself is far larger than the round-trip error
    glon, glat = crs.wgs84_to_gcj02(lon, lat)
    assert haversine_m(lon, lat, glon, glat).min() > 20.0


@pytest.mark.parametrize(
    ("name", "lon", "lat"),
    [
        ("Dadukou, Chongqing", 106.482, 29.484),
        ("Yuzhong, Chongqing", 106.569, 29.553),
        ("Yongchuan, Chongqing", 105.927, 29.356),
        ("Dazu, Chongqing", 105.722, 29.707),
        ("Bazhou, Bazhong", 106.769, 31.859),
    ],
)
def test_offset_in_the_plan_districts_is_300_to_700_m(name, lon, lat):
    g = crs.wgs84_to_gcj02(lon, lat)
    d_gcj = float(haversine_m(lon, lat, *g))
    assert 300.0 < d_gcj < 700.0, name
    b = crs.wgs84_to_bd09(lon, lat)
    d_bd = float(haversine_m(lon, lat, *b))
    assert 300.0 < d_bd < 1500.0 and d_bd != d_gcj, name


@pytest.mark.parametrize(
    ("lon", "lat"),
    [(9.5224777, 47.1343767), (1.5218, 42.5063), (-104.9903, 39.7392), (153.0251, -27.4698)],
)
def test_no_offset_outside_china(lon, lat):
    g = crs.wgs84_to_gcj02(lon, lat)
    assert (float(g[0]), float(g[1])) == (lon, lat)
    w = crs.gcj02_to_wgs84(lon, lat)
    assert (float(w[0]), float(w[1])) == (lon, lat)
    assert bool(crs.out_of_china(lon, lat))


def test_to_wgs84_accepts_the_scenario_names():
    gcj = CT_WGS84_TO_GCJ02
    for name in ("GCJ-02", "gcj02", " gcj-02 "):
        lon, lat = crs.to_wgs84([gcj[0]], [gcj[1]], name)
        assert np.allclose([lon[0], lat[0]], CT_POINT, atol=1e-9, rtol=0)
    bd = crs.gcj02_to_bd09(*gcj)
    lon, lat = crs.to_wgs84(bd[0], bd[1], "BD-09")
    assert np.allclose([lon, lat], CT_POINT, atol=2.5e-6, rtol=0)
    for name in (None, "", "WGS-84", "CGCS2000", "EPSG:4490"):
        lon, lat = crs.to_wgs84([106.5], [29.5], name)
        assert (lon[0], lat[0]) == (106.5, 29.5)
    with pytest.raises(CoverageError, match="WGS-84, CGCS2000, GCJ-02 or BD-09"):
        crs.to_wgs84([106.5], [29.5], "EPSG:3857")
