"""Outputs that scale: write every output of a run with 1,000,000 population places.

Builds a synthetic run (a 10 x 10 grid of square units, 25 facilities, places spread at
random, straight-line drive minutes, one 15-minute rule whose uncovered places are the
evidence), writes all outputs with :func:`covplan.outputs.write_outputs` for 20,000 and then
1,000,000 places, each in a fresh process, and prints the time of the writing and the peak
resident memory of the process of each, and their ratios. Above ``COVPLAN_MAP_MAX_POINTS`` (20,000)
the maps draw a sample, above ``COVPLAN_XLSX_MAX_ROWS`` (200,000) the xlsx places sheet is cut.

Run: ``python benchmarks/outputs_scale.py [--places 1000000] [--base 20000]``.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from covplan.results import RunResult

#: Straight-line drive speed of the synthetic run, metres per minute (30 km/h).
SPEED = 500.0
#: The rule's limit in minutes.
LIMIT = 15.0
#: Degrees of one unit's side (about 11 km at the equator).
SIDE = 0.1


def synthetic_result(n_places: int, *, seed: int = 0) -> RunResult:
    """Return a synthetic run with ``n_places`` places (numbers computed, not random-looking).

    Parameters
    ----------
    n_places
        Population places, spread uniformly over the 10 x 10 units.
    seed
        Seed of the places' positions and populations.
    """
    rng = np.random.default_rng(seed)
    cells = [(i, j) for i in range(10) for j in range(10)]
    units = gpd.GeoDataFrame({
        "unit_id": [f"U{i}{j}" for i, j in cells],
        "name": [f"Unit {i}-{j}" for i, j in cells],
        "level": "unit", "parent_id": None, "urban_rural": None,
    }, geometry=[shapely.box(i * SIDE, j * SIDE, (i + 1) * SIDE, (j + 1) * SIDE)
                 for i, j in cells], crs="EPSG:4326")
    fx = (np.arange(25) % 5) * 0.2 + 0.1
    fy = (np.arange(25) // 5) * 0.2 + 0.1
    facilities = gpd.GeoDataFrame({
        "facility_id": [f"F{k}" for k in range(25)], "name": [f"Clinic {k}" for k in range(25)],
        "type": "clinic", "source": "synthetic",
    }, geometry=gpd.points_from_xy(fx, fy), crs="EPSG:4326")
    x, y = rng.uniform(0, 1, n_places), rng.uniform(0, 1, n_places)
    population = rng.integers(1, 500, n_places).astype(float)
    # the nearest facility is the centre of the 0.2-degree block the place lies in
    col, row = np.minimum((x / 0.2).astype(int), 4), np.minimum((y / 0.2).astype(int), 4)
    nearest = row * 5 + col
    metres = np.hypot(x - fx[nearest], y - fy[nearest]) * 111_320.0
    minutes = metres / SPEED
    unit_index = np.minimum((x / SIDE).astype(int), 9) * 10 + np.minimum((y / SIDE).astype(int), 9)
    unit_ids = units["unit_id"].to_numpy()[unit_index]
    place_ids = np.char.add("p", np.arange(n_places).astype(str))
    places = gpd.GeoDataFrame({
        "place_id": place_ids, "unit_id": unit_ids, "population": population,
        "urban_rural": "rural", "ur_source": "default",
        "minutes_drive": minutes, "nearest_drive": facilities["facility_id"].to_numpy()[nearest],
    }, geometry=gpd.points_from_xy(x, y), crs="EPSG:4326")
    units["population"] = pd.Series(population).groupby(unit_index).sum().reindex(
        range(100), fill_value=0.0).to_numpy()
    ok = minutes <= LIMIT
    covered = pd.Series(np.where(ok, population, 0.0)).groupby(unit_index).sum().reindex(
        range(100), fill_value=0.0).to_numpy()
    share = np.divide(covered, units["population"].to_numpy(),
                      out=np.zeros(100), where=units["population"].to_numpy() > 0)
    unit_results = pd.DataFrame({
        "rule_id": "DRIVE-15", "rule_name": "Within 15 minutes' drive",
        "unit_id": units["unit_id"], "unit_name": units["name"], "level": "unit",
        "status": np.where(share >= 0.9, "pass", "fail"), "value": share, "threshold": 0.9,
        "margin": share - 0.9, "population": units["population"],
        "covered_population": covered, "evidence": "",
    })
    summary = pd.DataFrame([{
        "rule_id": "DRIVE-15", "rule_name": "Within 15 minutes' drive",
        "status": "pass" if (share >= 0.9).all() else "fail",
        "units_pass": int((share >= 0.9).sum()), "units_total": 100,
        "population": population.sum(), "covered_population": covered.sum(),
        "share": covered.sum() / population.sum(),
    }])
    far = ~ok
    evidence = pd.DataFrame({
        "rule_id": "DRIVE-15", "place_id": place_ids[far], "unit_id": unit_ids[far],
        "population": population[far], "facility_id": places["nearest_drive"].to_numpy()[far],
        "minutes": minutes[far], "threshold": LIMIT,
    })
    isochrones = gpd.GeoDataFrame(
        {"mode": ["drive"], "minutes": [LIMIT], "facility_types": ["any"]},
        geometry=[shapely.union_all(shapely.buffer(facilities.geometry.to_numpy(),
                                                    LIMIT * SPEED / 111_320.0))],
        crs="EPSG:4326")
    return RunResult(
        name="Synthetic scale run", language="en", facilities=facilities, units=units,
        places=places, unit_results=unit_results, summary=summary, evidence=evidence,
        isochrones=isochrones, proposals=None,
        manifest={"inputs": {}, "parameters": {"places": n_places}},
    )


def _write_once(n_places: int, folder: Path) -> None:
    """Write every output of a synthetic run of ``n_places``; print seconds and peak RSS."""
    from covplan.outputs import write_outputs

    result = synthetic_result(n_places)
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        write_outputs(result, folder / f"out-{n_places}")
    seconds = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
    print(json.dumps({"seconds": seconds, "peak_mib": peak}))


def measure(n_places: int, folder: Path) -> tuple[float, float]:
    """Write the outputs of ``n_places`` in a fresh process; return (seconds, peak MiB).

    The peak is the process's maximum resident memory (imports and the synthetic run
    included), so the base and the large case are measured the same way.
    """
    done = subprocess.run(
        [sys.executable, __file__, "--one", str(n_places), "--folder", str(folder)],
        check=False, capture_output=True, text=True,
    )
    if done.returncode != 0:
        raise RuntimeError(f"writing {n_places:,} places failed:\n{done.stderr}")
    numbers = json.loads(done.stdout.strip().splitlines()[-1])
    return float(numbers["seconds"]), float(numbers["peak_mib"])


def main() -> None:
    """Measure the base and the large case and print both and their ratios."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--places", type=int, default=1_000_000)
    parser.add_argument("--base", type=int, default=20_000)
    parser.add_argument("--one", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--folder", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        _write_once(args.one, args.folder)
        return
    with tempfile.TemporaryDirectory() as tmp:
        base_s, base_mb = measure(args.base, Path(tmp))
        print(f"{args.base:>9,} places: {base_s:7.1f} s, peak {base_mb:8.1f} MiB")
        big_s, big_mb = measure(args.places, Path(tmp))
        print(f"{args.places:>9,} places: {big_s:7.1f} s, peak {big_mb:8.1f} MiB")
        print(f"ratio ({args.places // args.base}x the places): time {big_s / base_s:.1f}x, "
              f"peak memory {big_mb / base_mb:.1f}x")


if __name__ == "__main__":
    main()
