"""Incremental isochrones against the old full-union method, on the real Andorra network."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest
import shapely
from covplan.engine import isochrones as iso_module
from covplan.engine.isochrones import _substrings, isochrones
from covplan.engine.routing import nearest
from shapely.ops import substring

BENCH = Path(__file__).resolve().parents[1] / "benchmarks" / "audit.py"
#: Andorra la Vella, Encamp and Sant Julià de Lòria (lon, lat) as facility locations
TOWNS = [(1.5218, 42.5063), (1.5803, 42.5343), (1.4910, 42.4637)]


def _bench() -> ModuleType:
    spec = importlib.util.spec_from_file_location("covplan_bench_audit", BENCH)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _nodes(net) -> np.ndarray:
    return np.array(
        [int(np.argmin(np.hypot(net.lonlat[:, 0] - x, net.lonlat[:, 1] - y))) for x, y in TOWNS]
    )


@pytest.mark.parametrize(("direction", "minutes"), [
    ("to_facility", (5.0, 10.0, 15.0)),
    ("from_facility", (4.0, 8.0)),
])
def test_incremental_matches_full_union(andorra_drive, direction, minutes) -> None:
    net = andorra_drive
    fac = _nodes(net)
    new = isochrones(net, fac, minutes=minutes, direction=direction, cache_dir=None)
    old = _bench().isochrones_full_union(net, fac, minutes=minutes, direction=direction)
    new_m, old_m = new.to_crs(net.crs), old.to_crs(net.crs)
    values = nearest(net, fac, direction=direction).node_value
    assert new["minutes"].tolist() == sorted(minutes) == old["minutes"].tolist()
    for i, level in enumerate(sorted(minutes)):
        a, b = new_m.geometry.iloc[i], old_m.geometry.iloc[i]
        assert a.is_valid and a.area > 0
        assert a.symmetric_difference(b).area < 0.005 * b.area
        assert new["area_km2"].iloc[i] == pytest.approx(a.area / 1e6, rel=1e-3)
        reached = values <= level
        assert reached.sum() > 10
        inside = shapely.contains_xy(a.buffer(1.0), net.xy[reached, 0], net.xy[reached, 1])
        assert inside.all()
        if i:  # nested: each level contains the one before
            assert new_m.geometry.iloc[i - 1].difference(a).area < 1e-6 * a.area


def test_substrings_match_shapely(andorra_drive) -> None:
    geoms = andorra_drive.seg_geometry_xy[:400]
    rng = np.random.default_rng(7)
    lo = rng.uniform(-0.2, 0.9, geoms.size)
    hi = np.maximum(lo, 0.0) + rng.uniform(0.01, 0.8, geoms.size)  # may run past 1: clipped
    got = _substrings(geoms, lo, hi)
    for g, a, b, piece in zip(geoms, lo, hi, got, strict=True):
        want = substring(g, float(max(a, 0.0)), float(min(b, 1.0)), normalized=True)
        assert piece.hausdorff_distance(want) < 1e-6
        assert piece.length == pytest.approx(want.length, rel=1e-9, abs=1e-9)


def test_cached_on_disk_and_damage_recomputed(andorra_drive, tmp_path, monkeypatch) -> None:
    net = andorra_drive
    fac = _nodes(net)[:2]
    first = isochrones(net, fac, minutes=(6.0,), cache_dir=tmp_path)
    files = list(tmp_path.glob(f"{net.mode.name}.*{iso_module.SUFFIX}"))
    assert len(files) == 1
    iso_module._memory.clear()
    calls: list[int] = []
    real = iso_module._compute

    def counting(*args, **kwargs):
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(iso_module, "_compute", counting)
    again = isochrones(net, fac, minutes=(6.0,), cache_dir=tmp_path)
    assert calls == [] and again.geometry.iloc[0].equals(first.geometry.iloc[0])
    # another limit is another key
    isochrones(net, fac, minutes=(7.0,), cache_dir=tmp_path)
    assert calls == [1]
    # a damaged file is computed again and overwritten
    iso_module._memory.clear()
    data = files[0].read_bytes()
    files[0].write_bytes(data[:-10] + b"0123456789")
    fixed = isochrones(net, fac, minutes=(6.0,), cache_dir=tmp_path)
    assert calls == [1, 1]
    assert fixed.geometry.iloc[0].symmetric_difference(first.geometry.iloc[0]).area < 1e-12
