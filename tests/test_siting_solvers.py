"""Siting solvers on a small REAL instance, checked against brute force.

The instance is built from the Liechtenstein OSM extract without the routing engine:

- places: the 308 bus stops (``highway=bus_stop`` nodes); each municipality's official 2014
  population (data/population/...csv) is split equally over the bus stops nearest to its seat
  (the ``place=*`` node named like the municipality; Mauren has no such node, so its stops go to
  the nearest other seat and its population is left out). A stop is urban (15-minute
  threshold) when its municipality has >= 5,000 people, else rural (30 minutes).
- sites: row 0 the hospital (``amenity=hospital``, existing), then 26 candidates: every
  ``place_of_worship``, ``post_office``, ``fire_station`` and ``pharmacy`` node.
- times: STRAIGHT-LINE APPROXIMATION: distance in UTM zone 32N / 10 km/h, in minutes, kept up to a
  60-minute cutoff. Not road travel times; it only has to be a real instance for the solvers.
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import osmium
import pandas as pd
import pytest
import scipy.sparse as sp
from covplan.errors import CoverageError, InputError
from covplan.siting import (
    SitingProblem,
    exact_lscp,
    exact_mclp,
    exact_pmedian,
    greedy_lscp,
    greedy_mclp,
    greedy_pmedian,
    solve,
)
from covplan.siting.curve import coverage_curve
from covplan.siting.whatif import WhatIf
from pyproj import Transformer
from scipy.optimize import linprog
from scipy.spatial import cKDTree
from shipped import LIECHTENSTEIN_PBF, LIECHTENSTEIN_POPULATION

SPEED_KMH = 10.0
CUTOFF_MIN = 60.0
CANDIDATE_AMENITIES = ("place_of_worship", "post_office", "fire_station", "pharmacy")


class Instance:
    def __init__(self) -> None:
        table = pd.read_csv(LIECHTENSTEIN_POPULATION)
        popmap = dict(zip(table.municipality, table.population_2014_12_31, strict=True))
        seats: dict[str, tuple[float, float]] = {}
        stops: list[tuple[float, float]] = []
        hospital: list[tuple[float, float]] = []
        cands: list[tuple[float, float]] = []
        for node in osmium.FileProcessor(str(LIECHTENSTEIN_PBF), osmium.osm.NODE):
            tags = dict(node.tags)
            lonlat = (node.location.lon, node.location.lat)
            if tags.get("place") and tags.get("name") in popmap:
                seats[tags["name"]] = lonlat
            if tags.get("highway") == "bus_stop":
                stops.append(lonlat)
            if tags.get("amenity") == "hospital":
                hospital.append(lonlat)
            if tags.get("amenity") in CANDIDATE_AMENITIES:
                cands.append(lonlat)
        to_utm = Transformer.from_crs(4326, 32632, always_xy=True)

        def xy(points: list[tuple[float, float]]) -> np.ndarray:
            return np.array([to_utm.transform(lon, lat) for lon, lat in points])

        self.names = sorted(seats)
        seat_xy = xy([seats[n] for n in self.names])
        self.place_xy = xy(stops)
        self.site_xy = xy(hospital + cands)
        _, near = cKDTree(seat_xy).query(self.place_xy)
        counts = np.bincount(near, minlength=len(self.names))
        self.unit = np.array([self.names[i] for i in near], dtype=object)
        self.population = np.array([popmap[self.names[i]] / counts[i] for i in near])
        urban = np.array([popmap[self.names[i]] >= 5000 for i in near])
        self.threshold = np.where(urban, 15.0, 30.0)
        dist = np.hypot(self.site_xy[:, None, 0] - self.place_xy[None, :, 0],
                        self.site_xy[:, None, 1] - self.place_xy[None, :, 1])
        self.dense = dist / 1000.0 / SPEED_KMH * 60.0
        r, c = np.nonzero(self.dense <= CUTOFF_MIN)
        self.times = sp.csr_matrix((self.dense[r, c], (r, c)), shape=self.dense.shape)

    def problem(self, existing=(0,)) -> SitingProblem:
        return SitingProblem.from_matrix(
            self.times, existing=list(existing), population=self.population,
            threshold_minutes=self.threshold, unit_ids=self.unit,
        )


@pytest.fixture(scope="module")
def inst() -> Instance:
    return Instance()


@pytest.fixture(scope="module")
def prob(inst: Instance) -> SitingProblem:
    return inst.problem()


# -- independent, dense recomputations -----------------------------------------------------------

def dense_coverage(inst: Instance, open_rows) -> float:
    t = inst.dense[list(open_rows)]
    t = np.where(t <= CUTOFF_MIN, t, np.inf)
    return float(inst.population[(t <= inst.threshold).any(axis=0)].sum())


def dense_weighted(inst: Instance, open_rows, unreached: float) -> float:
    t = inst.dense[list(open_rows)]
    t = np.where(t <= CUTOFF_MIN, t, np.inf).min(axis=0)
    return float(inst.population @ np.minimum(t, unreached))


def brute_mclp(inst: Instance, prob: SitingProblem, k: int) -> float:
    return max(dense_coverage(inst, (0, *c)) for c in itertools.combinations(prob.candidates, k))


# -- the instance itself ------------------------------------------------------------------------

def test_instance_is_the_real_one(inst: Instance, prob: SitingProblem) -> None:
    assert inst.times.shape == (27, 308)
    # official total minus Mauren (no seat node): 37,370 - 4,189
    assert inst.population.sum() == pytest.approx(37_370 - 4_189)
    assert prob.base_covered_population == pytest.approx(dense_coverage(inst, [0]))
    # Vaduz stops are urban: the hospital is in Vaduz
    assert set(inst.threshold[inst.unit == "Vaduz"]) == {15.0}


def test_from_matrix_reports_every_problem() -> None:
    times = sp.csr_matrix(np.array([[1.0, -2.0], [3.0, 0.0]]))
    with pytest.raises(InputError) as err:
        SitingProblem.from_matrix(times, existing=[5], population=[1.0, 2.0, 3.0],
                                  threshold_minutes=[15.0, np.nan])
    text = str(err.value)
    assert "times" in text and "existing" in text and "population" in text
    assert "threshold_minutes" in text


def test_explicit_zero_minutes_count_as_covered() -> None:
    # a site on the place itself: 0 minutes stored explicitly
    times = sp.csr_matrix((np.array([0.0, 20.0]), np.array([0, 1]), np.array([0, 1, 2])),
                          shape=(2, 2))
    assert times.nnz == 2
    problem = SitingProblem.from_matrix(times, existing=np.array([True, False]),
                                        population=[100.0, 50.0], threshold_minutes=15.0)
    assert problem.base_covered_population == 100.0
    assert problem.best_minutes[0] == 0.0
    assert greedy_mclp(problem, 1).covered_population == 100.0  # 20 > 15: nothing to add


# -- MCLP ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("k", [1, 2, 3, 4])
def test_mclp_exact_matches_brute_force_and_greedy_is_bounded(
    inst: Instance, prob: SitingProblem, k: int
) -> None:
    best = brute_mclp(inst, prob, k)
    exact = exact_mclp(prob, k)
    greedy = greedy_mclp(prob, k)
    assert exact.method == "exact" and exact.status == "optimal"
    assert exact.solver.startswith("CBC") and exact.gap == pytest.approx(0.0, abs=1e-6)
    assert exact.covered_population == pytest.approx(best)
    assert dense_coverage(inst, (0, *exact.sites)) == pytest.approx(best)
    base = prob.base_covered_population
    assert greedy.covered_population <= exact.covered_population + 1e-6
    # Nemhauser-Wolsey-Fisher: greedy added coverage >= (1 - 1/e) of the optimal added coverage
    assert greedy.covered_population - base >= (1 - 1 / math.e) * (best - base) - 1e-6
    assert dense_coverage(inst, (0, *greedy.sites)) == pytest.approx(greedy.covered_population)


def test_greedy_is_strictly_worse_on_four_sites(inst: Instance, prob: SitingProblem) -> None:
    # on this instance the greedy's 4th pick is not optimal: the exact solver must find better
    greedy, exact = greedy_mclp(prob, 4), exact_mclp(prob, 4)
    assert greedy.covered_population == pytest.approx(32_592.085, abs=0.01)
    assert exact.covered_population == pytest.approx(32_897.957, abs=0.01)


def test_lazy_greedy_equals_plain_greedy(inst: Instance, prob: SitingProblem) -> None:
    chosen: list[int] = []
    for _ in range(6):
        values = {int(c): dense_coverage(inst, (0, *chosen, c)) for c in prob.candidates
                  if c not in chosen}
        top = max(values.values())
        # highest coverage; ties (equal up to float round-off) go to the lower row
        chosen.append(min(c for c, v in values.items() if v >= top - 1e-6))
    assert list(greedy_mclp(prob, 6).sites) == chosen


# -- LSCP ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("share", [0.5, 0.9, 0.99])
def test_lscp_exact_is_minimal_by_brute_force(
    inst: Instance, prob: SitingProblem, share: float
) -> None:
    target = share * inst.population.sum()
    minimal = next(
        k for k in range(0, 6)
        if any(dense_coverage(inst, (0, *c)) >= target
               for c in itertools.combinations(prob.candidates, k))
    )
    exact = exact_lscp(prob, share)
    greedy = greedy_lscp(prob, share)
    assert exact.n_new_sites == minimal
    assert exact.covered_population >= target - 1e-6
    assert greedy.n_new_sites >= minimal
    assert greedy.covered_population >= target - 1e-6
    if share == 0.99:
        assert (minimal, greedy.n_new_sites) == (4, 5)  # greedy needs one site more


def test_lscp_impossible_target_says_so(inst: Instance) -> None:
    problem = inst.problem()
    few = problem.candidates[:2]
    with pytest.raises(CoverageError, match="cannot be met"):
        greedy_lscp(problem, 0.99, candidates=few)
    with pytest.raises(CoverageError, match="infeasible"):
        exact_lscp(problem, 0.99, candidates=few)


# -- p-median -----------------------------------------------------------------------------------

@pytest.mark.parametrize("k", [1, 2, 3])
def test_pmedian_exact_matches_brute_force(inst: Instance, prob: SitingProblem, k: int) -> None:
    u = prob.unreached_minutes
    assert u == pytest.approx(inst.dense[inst.dense <= CUTOFF_MIN].max())
    best = min(dense_weighted(inst, (0, *c), u) for c in itertools.combinations(prob.candidates, k))
    exact = exact_pmedian(prob, k)
    greedy = greedy_pmedian(prob, k)
    assert exact.status == "optimal"
    assert exact.objective == pytest.approx(best)
    assert dense_weighted(inst, (0, *exact.sites), u) == pytest.approx(best)
    assert greedy.objective >= best - 1e-6
    assert greedy.objective == pytest.approx(dense_weighted(inst, (0, *greedy.sites), u))


def test_interchange_never_hurts(prob: SitingProblem) -> None:
    for k in (2, 4):
        plain = greedy_pmedian(prob, k, interchange=False)
        swapped = greedy_pmedian(prob, k)
        assert swapped.objective <= plain.objective + 1e-6


# -- constraints --------------------------------------------------------------------------------

def lp_served(inst: Instance, prob: SitingProblem, new: tuple[int, ...], *, cap: float,
              band: tuple[float, float] | None) -> float | None:
    """Max population served within threshold by open sites under capacity (scipy HiGHS LP)."""
    open_rows = [0, *new]
    pairs = [(i, j) for j in open_rows
             for i in np.flatnonzero(inst.dense[j] <= np.minimum(inst.threshold, CUTOFF_MIN))]
    n = len(pairs)
    if n == 0:
        return 0.0
    pop = inst.population
    c = -np.array([pop[i] for i, _ in pairs])
    a_ub, b_ub = [], []
    for i in {i for i, _ in pairs}:
        a_ub.append([1.0 if p[0] == i else 0.0 for p in pairs])
        b_ub.append(1.0)
    for j in open_rows:
        load = [pop[i] if jj == j else 0.0 for i, jj in pairs]
        a_ub.append(load)
        b_ub.append(cap if band is None or j == 0 else min(cap, band[1]))
        if band is not None and j != 0:
            a_ub.append([-v for v in load])
            b_ub.append(-band[0])
    res = linprog(c, A_ub=np.array(a_ub), b_ub=np.array(b_ub), bounds=(0, 1), method="highs")
    return -res.fun if res.status == 0 else None


def test_capacity_and_band_match_brute_force(inst: Instance, prob: SitingProblem) -> None:
    cap = 9_000.0
    band = (3_000.0, 8_000.0)
    values = [lp_served(inst, prob, c, cap=cap, band=band)
              for c in itertools.combinations(prob.candidates, 2)]
    best = max(v for v in values if v is not None)
    exact = exact_mclp(prob, 2, capacity=cap, band=band)
    assert exact.objective == pytest.approx(best, rel=1e-6)
    assert exact.n_new_sites == 2
    assigned = exact.assigned_population
    assert assigned is not None and set(assigned) == {0, *exact.sites}
    assert assigned[0] <= cap + 1e-6
    for s in exact.sites:
        assert band[0] - 1e-6 <= assigned[s] <= band[1] + 1e-6
    assert sum(assigned.values()) == pytest.approx(exact.objective)


# -- solve() ------------------------------------------------------------------------------------

def test_solve_falls_back_to_greedy_above_the_size_limit(prob: SitingProblem) -> None:
    small = solve(prob, "mclp", n_sites=3)
    assert small.method == "exact" and small.gap is not None
    big = solve(prob, "mclp", n_sites=3, max_exact_size=10)
    assert big.method == "greedy" and big.gap is None
    assert "too large" in big.notes[0]
    assert big.sites == greedy_mclp(prob, 3).sites
    constrained = solve(prob, "mclp", n_sites=2, band=(3_000, 8_000), max_exact_size=10)
    assert any("does NOT apply" in n for n in constrained.notes)
    with pytest.raises(CoverageError, match="unknown siting model"):
        solve(prob, "pcenter", n_sites=1)
    with pytest.raises(CoverageError, match="n_sites"):
        solve(prob, "pmedian")


# -- coverage curve -----------------------------------------------------------------------------

def test_curve_is_monotone_reproducible_and_exact_matches_brute_force(
    inst: Instance, prob: SitingProblem
) -> None:
    greedy = coverage_curve(prob, 6)
    again = coverage_curve(inst.problem(), 6)
    pd.testing.assert_frame_equal(greedy, again)
    assert greedy["covered_population"].is_monotonic_increasing
    assert greedy.loc[0, "covered_population"] == pytest.approx(prob.base_covered_population)
    order = greedy_mclp(prob, 6).sites
    assert greedy.loc[6, "sites"] == order
    assert (greedy["added_population"].iloc[1:] >= 0).all()
    exact = coverage_curve(prob, 4, method="exact")
    assert exact["covered_population"].is_monotonic_increasing
    for k in range(1, 5):
        assert exact.loc[k, "covered_population"] == pytest.approx(brute_mclp(inst, prob, k))
        assert exact.loc[k, "covered_population"] >= greedy.loc[k, "covered_population"] - 1e-6


# -- what-if ------------------------------------------------------------------------------------

EXISTING = (0, 3, 9, 15, 20)


def per_unit(problem: SitingProblem) -> pd.Series:
    covered = np.where(problem.base_covered, problem.population, 0.0)
    return pd.Series(covered).groupby(problem.unit_ids).sum()


def check_against_scratch(inst: Instance, base: SitingProblem, result, new_existing) -> None:
    scratch = inst.problem(existing=sorted(new_existing))
    assert result.covered_after == pytest.approx(scratch.base_covered_population)
    assert result.delta == pytest.approx(
        scratch.base_covered_population - base.base_covered_population)
    assert result.covered_after == pytest.approx(dense_coverage(inst, sorted(new_existing)))
    got = result.per_unit.set_index("unit_id")
    expected_after = per_unit(scratch)
    np.testing.assert_allclose(got["covered_after"].to_numpy(),
                               expected_after.loc[got.index].to_numpy(), atol=1e-6)
    np.testing.assert_allclose(got["delta"].to_numpy(),
                               (expected_after - per_unit(base)).loc[got.index].to_numpy(),
                               atol=1e-6)
    # the places reported as changed are exactly those whose best time changed
    changed = np.flatnonzero(scratch.best_minutes != base.best_minutes)
    np.testing.assert_array_equal(result.places, changed)
    np.testing.assert_array_equal(result.minutes_after, scratch.best_minutes[changed])
    u = base.unreached_minutes
    assert result.weighted_minutes_delta == pytest.approx(
        dense_weighted(inst, sorted(new_existing), u) - dense_weighted(inst, base.existing, u))


def test_whatif_add_close_move_equal_recomputation(inst: Instance) -> None:
    base = inst.problem(existing=EXISTING)
    whatif = WhatIf(base)
    for site in (1, 7, 16, 26):
        check_against_scratch(inst, base, whatif.add(site), {*EXISTING, site})
    for site in EXISTING:
        check_against_scratch(inst, base, whatif.close(site), set(EXISTING) - {site})
    for old, new in ((0, 7), (15, 16), (20, 1)):
        result = whatif.move(old, new)
        assert result.action == f"move {old} -> {new}"
        check_against_scratch(inst, base, result, (set(EXISTING) - {old}) | {new})
    # several closures at once: places whose best and second-best both close need a rescan
    both = (0, 3, 9)
    assert np.isin(base.second_site[np.isin(base.best_site, both)], both).any()
    check_against_scratch(inst, base, whatif.apply(close=both, add=[7]),
                          (set(EXISTING) - set(both)) | {7})


def test_whatif_add_sparse_row_equals_add_by_index(inst: Instance) -> None:
    base = inst.problem(existing=EXISTING)
    whatif = WhatIf(base)
    row = base.times[[7]]
    by_row, by_index = whatif.add(row), whatif.add(7)
    assert by_row.delta == by_index.delta
    np.testing.assert_array_equal(by_row.places, by_index.places)
    with pytest.raises(CoverageError, match="not existing"):
        whatif.close(7)
    with pytest.raises(CoverageError, match="already open"):
        whatif.add(0)
