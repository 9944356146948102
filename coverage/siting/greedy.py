"""Fast heuristics: greedy MCLP and LSCP with the lazy-greedy speed-up, p-median greedy + swaps.

Coverage of a set of sites is a monotone submodular function, so the marginal gain of a
candidate can only shrink as sites are added. The lazy greedy (Minoux 1978) keeps the gains in a
max-heap and re-evaluates only the top entry until the top is up to date; it picks exactly the
same sites as the plain greedy (ties go to the lower matrix row) with far fewer evaluations. For
MCLP the greedy is within a factor ``1 - 1/e`` of the optimal added coverage (Nemhauser, Wolsey
and Fisher 1978).

The p-median greedy adds the site that most reduces population-weighted minutes (the same lazy
heap: the reduction is submodular too), then improves the set by vertex substitution
(Teitz and Bart 1968): replace a chosen site by the best other candidate while that helps.
"""

from __future__ import annotations

import heapq
import time
from collections.abc import Callable, Sequence

import numpy as np
import numpy.typing as npt
from covplan.errors import CoverageError
from covplan.siting.problem import SitingProblem, SitingResult, make_result, row_slice

__all__ = ["greedy_lscp", "greedy_mclp", "greedy_pmedian", "lazy_greedy"]

GREEDY_SOLVER = "lazy greedy (Minoux)"


def _candidate_rows(problem: SitingProblem, candidates: Sequence[int] | None) -> np.ndarray:
    if candidates is None:
        return problem.candidates
    rows = problem.check_rows(candidates, name="candidates")
    clash = rows[problem.is_existing[rows]]
    if clash.size:
        raise CoverageError(
            f"candidates: rows {clash[:5].tolist()} are existing facilities (already open); "
            "leave them out of the candidate list"
        )
    return np.unique(rows)


def lazy_greedy(
    rows: np.ndarray,
    gain_of: Callable[[int], float],
    take: Callable[[int], None],
    *,
    stop: Callable[[int, float], bool],
) -> tuple[list[int], list[float], int]:
    """Run a lazy greedy over a submodular gain (ties broken by the lower row).

    Parameters
    ----------
    rows
        Rows that may be chosen.
    gain_of
        Current marginal gain of a row. It must be monotone in floating point too (never larger
        after more rows are taken) and is rounded to 1e-6 here, so that gains equal in exact
        arithmetic tie and go to the lower row whatever the summation order.
    take
        Called with each chosen row to update the state ``gain_of`` reads.
    stop
        ``stop(n_chosen, best_gain)`` is asked before each pick with the best current gain;
        True ends the loop without taking that row.

    Returns
    -------
    chosen, gains, evaluations
        Rows in the order chosen, their marginal gains and how many gains were evaluated.
    """
    heap = [(-round(gain_of(int(r)), 6), int(r)) for r in rows]
    heapq.heapify(heap)
    stamp = dict.fromkeys((int(r) for r in rows), 0)
    chosen: list[int] = []
    gains: list[float] = []
    evaluations = 0
    while heap:
        round_ = len(chosen)
        neg, row = heapq.heappop(heap)
        if stamp[row] != round_:
            evaluations += 1
            stamp[row] = round_
            heapq.heappush(heap, (-round(gain_of(row), 6), row))
            continue
        if stop(round_, -neg):
            break
        chosen.append(row)
        gains.append(-neg)
        take(row)
    return chosen, gains, evaluations


def greedy_mclp(
    problem: SitingProblem, n_sites: int, *, candidates: Sequence[int] | None = None
) -> SitingResult:
    """Choose up to ``n_sites`` new sites maximising the population covered (lazy greedy).

    Parameters
    ----------
    problem
        The siting problem (existing facilities are kept open).
    n_sites
        Number of new sites to propose.
    candidates
        Restrict to these rows (default: the problem's candidates).

    Returns
    -------
    SitingResult
        Sites in the order picked with their marginal gains. Stops early, with a note, when no
        candidate adds any coverage.
    """
    if n_sites < 0:
        raise CoverageError(f"n_sites must be >= 0, got {n_sites}")
    start = time.perf_counter()
    rows = _candidate_rows(problem, candidates)
    covered = problem.base_covered.copy()

    def take(row: int) -> None:
        idx, _ = row_slice(problem.cover, row)
        covered[idx] = True

    chosen, gains, evals = lazy_greedy(
        rows, lambda r: problem.site_gain(r, covered), take,
        stop=lambda k, g: k >= n_sites or g <= 0.0,
    )
    notes = [f"{evals} gain re-evaluations for {rows.size} candidates"]
    if len(chosen) < n_sites:
        notes.append(
            f"stopped after {len(chosen)} sites: no remaining candidate covers anyone not yet "
            "covered"
        )
    return make_result(
        problem, model="mclp", method="greedy", solver=GREEDY_SOLVER, status="heuristic",
        sites=chosen, seconds=time.perf_counter() - start, marginal_gains=gains, notes=notes,
    )


def greedy_lscp(
    problem: SitingProblem,
    target_share: float,
    *,
    candidates: Sequence[int] | None = None,
) -> SitingResult:
    """Add sites greedily until ``target_share`` of the population is covered.

    Parameters
    ----------
    problem
        The siting problem.
    target_share
        Share of the total population (0..1) to cover, existing coverage included.
    candidates
        Restrict to these rows.

    Returns
    -------
    SitingResult
        ``objective`` is the number of new sites (not guaranteed minimal).

    Raises
    ------
    CoverageError
        When even all candidates together cannot reach the target.
    """
    if not 0.0 <= target_share <= 1.0:
        raise CoverageError(f"target_share must be between 0 and 1, got {target_share}")
    start = time.perf_counter()
    rows = _candidate_rows(problem, candidates)
    target = target_share * problem.total_population
    tol = 1e-9 * max(problem.total_population, 1.0)
    reachable = problem.coverage_of(rows)
    if reachable + tol < target:
        raise CoverageError(
            f"LSCP target {target_share:.1%} cannot be met: the existing facilities and all "
            f"{rows.size} candidates together cover {reachable:,.0f} of "
            f"{problem.total_population:,.0f} people ({reachable / problem.total_population:.1%}); "
            "lower the target or add candidate sites"
        )
    covered = problem.base_covered.copy()
    state = {"pop": problem.base_covered_population}

    def take(row: int) -> None:
        idx, _ = row_slice(problem.cover, row)
        idx = idx[~covered[idx]]
        state["pop"] += float(problem.population[idx].sum())
        covered[idx] = True

    chosen, gains, evals = lazy_greedy(
        rows, lambda r: problem.site_gain(r, covered), take,
        stop=lambda k, g: state["pop"] + tol >= target or g <= 0.0,
    )
    return make_result(
        problem, model="lscp", method="greedy", solver=GREEDY_SOLVER, status="heuristic",
        sites=chosen, seconds=time.perf_counter() - start, marginal_gains=gains,
        notes=[f"{evals} gain re-evaluations for {rows.size} candidates"],
    )


def _pmedian_gains(problem: SitingProblem, cost: npt.NDArray[np.float64]) -> np.ndarray:
    """Per row: reduction of population-weighted minutes if that row were opened."""
    times = problem.times
    saving = problem.population[times.indices] * np.maximum(
        cost[times.indices] - times.data, 0.0
    )
    out = np.add.reduceat(np.append(saving, 0.0), times.indptr[:-1])
    out[np.diff(times.indptr) == 0] = 0.0
    return out


def greedy_pmedian(
    problem: SitingProblem,
    n_sites: int,
    *,
    candidates: Sequence[int] | None = None,
    interchange: bool = True,
    max_passes: int = 20,
) -> SitingResult:
    """Choose ``n_sites`` new sites minimising population-weighted travel minutes.

    Parameters
    ----------
    problem
        The siting problem; places beyond the cutoff of every open site count
        ``problem.unreached_minutes``.
    n_sites
        Number of new sites.
    candidates
        Restrict to these rows.
    interchange
        Improve the greedy set by vertex substitution (Teitz-Bart) afterwards.
    max_passes
        Upper limit on substitution passes over the chosen sites.

    Returns
    -------
    SitingResult
    """
    if n_sites < 0:
        raise CoverageError(f"n_sites must be >= 0, got {n_sites}")
    start = time.perf_counter()
    rows = _candidate_rows(problem, candidates)
    cost = problem.base_cost_minutes()
    pop = problem.population

    def gain_of(row: int) -> float:
        idx, val = row_slice(problem.times, row)
        return float(np.sum(pop[idx] * np.maximum(cost[idx] - val, 0.0)))

    def take(row: int) -> None:
        idx, val = row_slice(problem.times, row)
        np.minimum.at(cost, idx, val)

    chosen, gains, evals = lazy_greedy(
        rows, gain_of, take,
        stop=lambda k, g: k >= n_sites or g <= 0.0,
    )
    notes = [f"{evals} gain re-evaluations for {rows.size} candidates"]
    if len(chosen) < n_sites:
        notes.append(f"stopped after {len(chosen)} sites: no other candidate shortens any trip")
    method_notes: list[str] = []
    swaps = 0
    if interchange and chosen:
        allowed = np.zeros(problem.n_sites, dtype=bool)
        allowed[rows] = True
        for _ in range(max_passes):
            improved = False
            for pos in range(len(chosen)):
                others = chosen[:pos] + chosen[pos + 1:]
                cost_wo = problem.best_minutes_with(others)
                g = _pmedian_gains(problem, cost_wo)
                g[~allowed] = -np.inf
                g[others] = -np.inf
                best = int(np.argmax(g))  # first maximum: lowest row on ties
                tol = 1e-9 * max(float(pop @ cost_wo), 1.0)
                if g[best] > g[chosen[pos]] + tol:
                    chosen[pos] = best
                    swaps += 1
                    improved = True
            if not improved:
                break
        method_notes.append(f"vertex substitution made {swaps} swap(s)")
    return make_result(
        problem, model="pmedian", method="greedy", solver=GREEDY_SOLVER
        + (" + vertex substitution" if interchange else ""),
        status="heuristic", sites=chosen, seconds=time.perf_counter() - start,
        marginal_gains=gains if swaps == 0 else (), notes=notes + method_notes,
    )
