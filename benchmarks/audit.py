"""Whole-audit benchmark on Andorra (the default scenario): cold and warm, against a baseline.

Run ``python benchmarks/audit.py``. Each run is a fresh process that audits
``data/scenarios/andorra.toml`` and writes every output into a temporary folder, with
``COVPLAN_CACHE_DIR`` pointing at a temporary cache folder that starts empty: the first run is
*cold* (road networks built from the OSM extract, isochrones computed), the second *warm* (same
cache). Imports are timed separately from the computation (``run_scenario`` plus
``write_outputs``). The baseline is today's method run in the same way: the same two runs with
the isochrones computed the old way (:func:`isochrones_full_union`: every reached edge buffered
and unioned afresh for every level, with no cache).

Printed, one per line: ``audit_andorra_cold_s=`` and ``audit_andorra_warm_s=`` (computation,
wall seconds), their ratios to the baseline, the imports, CPU seconds, the per-step times of
the run's manifest and the time of each output file.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
SCENARIO = REPO / "data" / "scenarios" / "andorra.toml"
_OLD_ENV = "COVPLAN_BENCH_OLD_ISOCHRONES"


# ---------------------------------------------------------------------------------------------
# the baseline: isochrones as computed before (one union of every buffered edge per level)
# ---------------------------------------------------------------------------------------------
def _parts(geoms: Any, lo: Any, hi: Any) -> list[Any]:
    from shapely.ops import substring

    out: list[Any] = []
    whole = (lo <= 0) & (hi >= 1)
    out.extend(geoms[whole].tolist())
    for g, a, b in zip(geoms[~whole], lo[~whole], hi[~whole], strict=True):
        if b > a:
            out.append(substring(g, float(a), float(b), normalized=True))
    return out


def reached_lines_full(
    network: Any, sources: Any, minutes: float, *, direction: str | None = None,
    turnout_minutes: Any = None,
) -> Any:
    """Return the reached road geometry of one level, edge by edge (the old method)."""
    import numpy as np
    from covplan.engine.routing import _as_attachment, _check, _ends, _source_offsets, nearest

    direction = _check(network, "time", direction)
    src = _as_attachment(network, sources)
    res = nearest(network, src, metric="time", direction=direction, turnout_minutes=turnout_minutes)
    d = res.node_value * 60.0
    limit = float(minutes) * 60.0
    t = np.maximum(network.time_s, 1e-9)
    geoms = network.geometry_xy
    if direction == "from_facility":
        reach = d[network.u] < limit
        lo = np.zeros(reach.sum())
        hi = np.minimum(1.0, (limit - d[network.u][reach]) / t[reach])
    else:
        reach = d[network.v] < limit
        hi = np.ones(reach.sum())
        lo = np.maximum(0.0, 1.0 - (limit - d[network.v][reach]) / t[reach])
    lines = _parts(geoms[reach], lo, hi)
    e = _ends(network, src, "time")
    offsets = _source_offsets(network, src, "time", turnout_minutes)
    rem = limit - e["leg"] - offsets
    ok = src.reachable & (rem > 0)
    f = src.fraction
    w_away_end = e["wf"] if direction == "from_facility" else e["wr"]
    w_away_start = e["wr"] if direction == "from_facility" else e["wf"]
    with np.errstate(divide="ignore", invalid="ignore"):
        hi_s = np.minimum(1.0, f + rem / w_away_end)
        lo_s = np.maximum(0.0, f - rem / w_away_start)
    idx = np.flatnonzero(ok)
    segs = network.seg_geometry_xy[np.where(ok, src.segment, 0)]
    lines.extend(_parts(segs[idx], f[idx], np.nan_to_num(hi_s[idx], nan=0.0)))
    lines.extend(_parts(segs[idx], np.nan_to_num(lo_s[idx], nan=1.0), f[idx]))
    return np.asarray([g for g in lines if g is not None and not g.is_empty], dtype=object)


def isochrones_full_union(
    network: Any, sources: Any, *, minutes: Sequence[float] = (15.0, 30.0),
    direction: str | None = None, buffer_m: float = 60.0, turnout_minutes: Any = None,
    **_ignored: Any,
) -> Any:
    """Isochrones the old way: per level, the union of every buffered reached edge."""
    import geopandas as gpd
    import shapely

    levels = sorted(float(m) for m in minutes)
    polys = []
    previous = shapely.Polygon()
    for level in levels:
        lines = reached_lines_full(
            network, sources, level, direction=direction, turnout_minutes=turnout_minutes
        )
        if lines.size:
            area = shapely.union_all(
                shapely.buffer(shapely.simplify(lines, buffer_m / 10.0), buffer_m)
            )
        else:
            area = previous
        area = shapely.union(area, previous)
        polys.append(area)
        previous = area
    gdf = gpd.GeoDataFrame(
        {"minutes": levels, "area_km2": [p.area / 1e6 for p in polys]},
        geometry=polys, crs=network.crs,
    )
    return gdf.to_crs("EPSG:4326")


# ---------------------------------------------------------------------------------------------
# one run (in a fresh process)
# ---------------------------------------------------------------------------------------------
def _child(out: str) -> None:
    """Audit Andorra once; print a JSON line of timings."""
    wall0, cpu0 = time.perf_counter(), time.process_time()
    import covplan.cli  # noqa: F401 - what `covplan audit` imports first
    from covplan.outputs import write_outputs
    from covplan.pipeline import run_scenario
    from covplan.progress import Steps
    from covplan.scenario import load_scenario

    if os.environ.get(_OLD_ENV):
        import covplan.engine.isochrones as iso

        iso.isochrones = isochrones_full_union  # the pipeline imports it when it runs
    wall1, cpu1 = time.perf_counter(), time.process_time()
    scenario = load_scenario(SCENARIO)
    result = run_scenario(scenario, steps=Steps(verbosity=0))
    wall2 = time.perf_counter()
    files: dict[str, float] = {}
    names = ["results.gpkg", "units.csv", "units.xlsx", "places.csv", "map.html", "map.png",
             "report.html"]
    for name in names:  # one file at a time, to time each
        t = time.perf_counter()
        write_outputs(result, Path(out) / name.replace(".", "_"), formats=[name])
        files[name] = round(time.perf_counter() - t, 3)
    wall3, cpu3 = time.perf_counter(), time.process_time()
    print(json.dumps({
        "imports_s": round(wall1 - wall0, 3),
        "imports_cpu_s": round(cpu1 - cpu0, 3),
        "compute_s": round(wall3 - wall1, 3),
        "compute_cpu_s": round(cpu3 - cpu1, 3),
        "run_scenario_s": round(wall2 - wall1, 3),
        "outputs_s": round(wall3 - wall2, 3),
        "steps": result.manifest.get("timings", {}),
        "files": files,
    }))


def _run(cache: Path, out: Path, *, old: bool) -> dict[str, Any]:
    env = {**os.environ, "COVPLAN_CACHE_DIR": str(cache)}
    env.pop(_OLD_ENV, None)
    if old:
        env[_OLD_ENV] = "1"
    t = time.perf_counter()
    done = subprocess.run(
        [sys.executable, str(Path(__file__).resolve()), "--child", str(out)],
        env=env, capture_output=True, text=True, check=False, cwd=REPO,
    )
    process_s = time.perf_counter() - t
    if done.returncode != 0:
        raise SystemExit(f"the audit run failed:\n{done.stderr}")
    answer = json.loads(done.stdout.strip().splitlines()[-1])
    answer["process_s"] = round(process_s, 3)
    return answer


def main() -> None:
    """Run the cold and warm audits, new and baseline; print the results."""
    runs: dict[str, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory(prefix="covplan-bench-") as tmp:
        for label, old in (("baseline", True), ("new", False)):
            cache = Path(tmp) / f"cache-{label}"
            cache.mkdir()
            for temp in ("cold", "warm"):
                runs[f"{label}_{temp}"] = _run(cache, Path(tmp) / f"out-{label}-{temp}", old=old)
    for key, run in runs.items():
        print(f"# {key}: imports {run['imports_s']} s (cpu {run['imports_cpu_s']}), "
              f"compute {run['compute_s']} s (cpu {run['compute_cpu_s']}), "
              f"whole process {run['process_s']} s")
        print(f"#   steps: {json.dumps(run['steps'], ensure_ascii=False)}")
        print(f"#   files: {json.dumps(run['files'])}")
    for temp in ("cold", "warm"):
        new, base = runs[f"new_{temp}"], runs[f"baseline_{temp}"]
        print(f"audit_andorra_{temp}_s={new['compute_s']:.3f}")
        print(f"audit_andorra_{temp}_vs_baseline={new['compute_s'] / base['compute_s']:.3f}")
        print(f"audit_andorra_{temp}_baseline_s={base['compute_s']:.3f}")
        print(f"audit_andorra_{temp}_imports_s={new['imports_s']:.3f}")
        print(f"audit_andorra_{temp}_cpu_s={new['compute_cpu_s']:.3f}")


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--child":
        _child(sys.argv[2])
    else:
        main()
