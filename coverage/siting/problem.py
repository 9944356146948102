"""One siting problem, built once per scenario from a facility-by-place travel-time matrix.

The matrix comes from the engine (``routing.reach_matrix``): a scipy sparse CSR of minutes,
``n_sites x n_places``, holding every pair within the routing cutoff as an explicit entry (0 is a
valid time) and leaving pairs beyond the cutoff absent. Rows are sites: the existing facilities
(kept open) and the candidate sites. Columns are population places.

Everything the solvers and the what-if engine need again and again is computed here once:
which place each site covers within that place's own threshold (urban 15 / rural 30 minutes),
the coverage and the best and second-best time the existing facilities give, and the
marginal gain of every candidate over that baseline.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property

import numpy as np
import numpy.typing as npt
import pandas as pd
import scipy.sparse as sp
from covplan.errors import CoverageError, InputError, Problem

__all__ = ["SitingProblem", "SitingResult", "filter_csr", "make_result", "row_slice"]

IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]


def filter_csr(matrix: sp.csr_matrix, keep: BoolArray) -> sp.csr_matrix:
    """Keep the stored entries of ``matrix`` where ``keep`` (aligned with ``data``) is True.

    Unlike scipy's arithmetic this never drops explicitly stored zeros that are kept.

    Parameters
    ----------
    matrix
        CSR matrix.
    keep
        Boolean array of length ``matrix.nnz``.

    Returns
    -------
    scipy.sparse.csr_matrix
        Same shape, only the kept entries, in the original order.
    """
    rows = np.repeat(np.arange(matrix.shape[0]), np.diff(matrix.indptr))[keep]
    counts = np.bincount(rows, minlength=matrix.shape[0])
    indptr = np.zeros(matrix.shape[0] + 1, dtype=np.int64)
    np.cumsum(counts, out=indptr[1:])
    return sp.csr_matrix(
        (matrix.data[keep], matrix.indices[keep], indptr), shape=matrix.shape, copy=False
    )


def row_slice(matrix: sp.csr_matrix, row: int) -> tuple[IntArray, np.ndarray]:
    """Column indices and values stored in one CSR row, without building a new matrix."""
    start, stop = matrix.indptr[row], matrix.indptr[row + 1]
    return matrix.indices[start:stop], matrix.data[start:stop]


def _as_index(
    value: Sequence[int] | npt.ArrayLike | None, n: int, *, name: str, problems: list[Problem]
) -> IntArray:
    """Turn a boolean mask or an index list into sorted unique row indices."""
    if value is None:
        return np.zeros(0, dtype=np.int64)
    arr = np.asarray(value)
    if arr.dtype == bool:
        if arr.shape != (n,):
            problems.append(
                Problem(name, f"boolean mask has shape {arr.shape}, expected ({n},)",
                        "give one flag per matrix row")
            )
            return np.zeros(0, dtype=np.int64)
        return np.flatnonzero(arr).astype(np.int64)
    if arr.size == 0:
        return np.zeros(0, dtype=np.int64)
    if not np.issubdtype(arr.dtype, np.integer):
        problems.append(Problem(name, f"expected row indices or a boolean mask, got {arr.dtype}"))
        return np.zeros(0, dtype=np.int64)
    arr = arr.astype(np.int64).ravel()
    bad = arr[(arr < 0) | (arr >= n)]
    if bad.size:
        problems.append(
            Problem(name, f"row indices out of range 0..{n - 1}: {bad[:5].tolist()}",
                    "use row numbers of the travel-time matrix")
        )
        return np.zeros(0, dtype=np.int64)
    return np.unique(arr)


class SitingProblem:
    """A siting scenario: travel times, existing facilities, candidates, population, thresholds.

    Build it with :meth:`from_matrix`. All arrays are read-only in spirit; the solvers and
    :class:`covplan.siting.whatif.WhatIf` share one instance.

    Attributes
    ----------
    times
        CSR ``n_sites x n_places`` of minutes (explicit entries within the routing cutoff).
    cover
        CSR of the same shape holding the pairs with ``time <= threshold_minutes[place]``
        (values are the times).
    population, threshold_minutes
        Per place.
    existing
        Sorted row indices of existing facilities (always open).
    candidates
        Sorted row indices of candidate new sites (never overlapping ``existing``).
    base_covered
        Per place: covered by an existing facility within its threshold.
    best_minutes, best_site, second_minutes, second_site
        Per place: the best and second-best time among existing facilities and their rows
        (``inf`` / ``-1`` when there is none within the cutoff). Ties go to the lower row.
    gain
        Per row: population newly covered if that site alone were added to the existing ones
        (0 for existing rows).
    unreached_minutes
        Time counted for a place beyond the cutoff of every open site in p-median objectives.
    unit_ids
        Per place, the unit (township) it belongs to, or None.
    """

    def __init__(
        self,
        *,
        times: sp.csr_matrix,
        existing: IntArray,
        candidates: IntArray,
        population: FloatArray,
        threshold_minutes: FloatArray,
        unreached_minutes: float,
        site_ids: np.ndarray,
        place_ids: np.ndarray,
        unit_ids: np.ndarray | None,
    ) -> None:
        self.times = times
        self.existing = existing
        self.candidates = candidates
        self.population = population
        self.threshold_minutes = threshold_minutes
        self.unreached_minutes = float(unreached_minutes)
        self.site_ids = site_ids
        self.place_ids = place_ids
        self.unit_ids = unit_ids
        self.n_sites, self.n_places = times.shape
        self.total_population = float(population.sum())

        within = times.data <= threshold_minutes[times.indices]
        self.cover = filter_csr(times, within)

        self.is_existing = np.zeros(self.n_sites, dtype=bool)
        self.is_existing[existing] = True
        self.is_candidate = np.zeros(self.n_sites, dtype=bool)
        self.is_candidate[candidates] = True

        self._best_and_second()
        self.base_covered = self.best_minutes <= threshold_minutes
        self.base_covered_population = float(population[self.base_covered].sum())
        # marginal gain of each site over the existing ones: population of places it covers
        # that no existing facility covers
        self.gain = self.gain_vector(self.base_covered)
        self.gain[self.is_existing] = 0.0

    # -- construction -------------------------------------------------------------------------

    @classmethod
    def from_matrix(
        cls,
        times: sp.spmatrix | sp.sparray,
        *,
        existing: Sequence[int] | npt.ArrayLike | None,
        population: npt.ArrayLike,
        threshold_minutes: npt.ArrayLike | float,
        candidates: Sequence[int] | npt.ArrayLike | None = None,
        unreached_minutes: float | None = None,
        site_ids: Sequence[str] | None = None,
        place_ids: Sequence[str] | None = None,
        unit_ids: Sequence[str] | None = None,
    ) -> SitingProblem:
        """Validate the inputs and precompute everything once.

        Parameters
        ----------
        times
            Sparse ``n_sites x n_places`` minutes; absent pairs are beyond the routing cutoff.
        existing
            Boolean mask or row indices of existing facilities (kept open).
        population
            Population per place (``>= 0``).
        threshold_minutes
            Coverage threshold per place (for example 15 urban, 30 rural), or one number.
        candidates
            Boolean mask or row indices of candidate new sites; default every row that is not
            an existing facility.
        unreached_minutes
            Minutes counted in p-median objectives for a place beyond the cutoff of every open
            site; default the largest stored time (a lower bound of the true time).
        site_ids, place_ids, unit_ids
            Labels per row / per place; ``unit_ids`` (the township of each place) enables
            per-unit what-if results.

        Returns
        -------
        SitingProblem

        Raises
        ------
        InputError
            Every problem with the inputs, at once.
        """
        problems: list[Problem] = []
        if not sp.issparse(times):
            raise InputError(
                [Problem("times", f"expected a scipy sparse matrix, got {type(times).__name__}",
                         "pass the engine's reach_matrix(...) result")],
                source="siting matrix",
            )
        csr = sp.csr_matrix(times, dtype=np.float64, copy=True)
        csr.sum_duplicates()
        csr.sort_indices()
        n_sites, n_places = csr.shape
        if csr.nnz and (not np.all(np.isfinite(csr.data)) or csr.data.min() < 0):
            problems.append(Problem("times", "contains negative, NaN or infinite minutes",
                                    "store only finite times >= 0; leave unreachable pairs out"))
        pop = np.asarray(population, dtype=np.float64).ravel()
        if pop.shape != (n_places,):
            problems.append(Problem("population", f"has {pop.size} values, matrix has "
                                    f"{n_places} places (columns)"))
        elif not np.all(np.isfinite(pop)) or (pop < 0).any():
            problems.append(Problem("population", "contains NaN, infinite or negative values",
                                    "fill missing population with 0"))
        thr = np.asarray(threshold_minutes, dtype=np.float64)
        thr = np.full(n_places, float(thr)) if thr.ndim == 0 else thr.ravel()
        if thr.shape != (n_places,):
            problems.append(Problem("threshold_minutes", f"has {thr.size} values, matrix has "
                                    f"{n_places} places"))
        elif not np.all(np.isfinite(thr)) or (thr < 0).any():
            problems.append(Problem("threshold_minutes", "must be finite and >= 0"))
        ex = _as_index(existing, n_sites, name="existing", problems=problems)
        if candidates is None:
            cand = np.setdiff1d(np.arange(n_sites, dtype=np.int64), ex)
        else:
            cand = _as_index(candidates, n_sites, name="candidates", problems=problems)
            both = np.intersect1d(cand, ex)
            if both.size:
                problems.append(Problem("candidates", f"rows {both[:5].tolist()} are also "
                                        "existing facilities", "list each row in one of them"))
        labels = {}
        for name, value, n in (("site_ids", site_ids, n_sites), ("place_ids", place_ids, n_places),
                               ("unit_ids", unit_ids, n_places)):
            if value is None:
                labels[name] = None
                continue
            arr = np.asarray(value, dtype=object).ravel()
            if arr.shape != (n,):
                problems.append(Problem(name, f"has {arr.size} labels, expected {n}"))
            labels[name] = arr
        if problems:
            raise InputError(problems, source="siting matrix")
        if unreached_minutes is None:
            unreached_minutes = float(csr.data.max()) if csr.nnz else 0.0
        return cls(
            times=csr,
            existing=ex,
            candidates=cand,
            population=pop,
            threshold_minutes=thr,
            unreached_minutes=unreached_minutes,
            site_ids=labels["site_ids"] if labels["site_ids"] is not None
            else np.arange(n_sites).astype(str).astype(object),
            place_ids=labels["place_ids"] if labels["place_ids"] is not None
            else np.arange(n_places).astype(str).astype(object),
            unit_ids=labels["unit_ids"],
        )

    def _best_and_second(self) -> None:
        """Best and second-best time among existing facilities per place (ties: lower row)."""
        n = self.n_places
        self.best_minutes = np.full(n, np.inf)
        self.best_site = np.full(n, -1, dtype=np.int64)
        self.second_minutes = np.full(n, np.inf)
        self.second_site = np.full(n, -1, dtype=np.int64)
        if self.existing.size == 0:
            return
        sub = self.times[self.existing].tocoo()
        rows = self.existing[sub.row]
        order = np.lexsort((rows, sub.data, sub.col))
        cols, vals, rows = sub.col[order], sub.data[order], rows[order]
        first = np.ones(cols.size, dtype=bool)
        first[1:] = cols[1:] != cols[:-1]
        self.best_minutes[cols[first]] = vals[first]
        self.best_site[cols[first]] = rows[first]
        second = np.zeros(cols.size, dtype=bool)
        second[1:] = first[:-1] & ~first[1:]
        self.second_minutes[cols[second]] = vals[second]
        self.second_site[cols[second]] = rows[second]

    # -- shared helpers -----------------------------------------------------------------------

    def gain_vector(self, covered: BoolArray) -> FloatArray:
        """Per row, the population of places it covers that are not yet ``covered``."""
        weights = np.where(covered, 0.0, self.population)[self.cover.indices]
        return np.add.reduceat(
            np.append(weights, 0.0), self.cover.indptr[:-1]
        ) * (np.diff(self.cover.indptr) > 0)

    def site_gain(self, row: int, covered: BoolArray) -> float:
        """Return the population of the places ``row`` covers that are not yet ``covered``."""
        idx, _ = row_slice(self.cover, row)
        # zeroing (not dropping) covered places keeps the summation tree, so the result can
        # only shrink as ``covered`` grows, in floating point too (lazy greedy relies on it)
        return float(np.sum(np.where(covered[idx], 0.0, self.population[idx])))

    def covered_by(self, rows: Sequence[int] | IntArray) -> BoolArray:
        """Per place: covered by the existing facilities or any of ``rows``."""
        covered = self.base_covered.copy()
        for row in np.asarray(rows, dtype=np.int64):
            idx, _ = row_slice(self.cover, int(row))
            covered[idx] = True
        return covered

    def coverage_of(self, rows: Sequence[int] | IntArray) -> float:
        """Return the population covered with the existing facilities plus ``rows`` open."""
        return float(self.population[self.covered_by(rows)].sum())

    def base_cost_minutes(self) -> FloatArray:
        """Per place: minutes to the nearest existing facility, ``unreached_minutes`` if none."""
        return np.minimum(self.best_minutes, self.unreached_minutes)

    def best_minutes_with(self, rows: Sequence[int] | IntArray) -> FloatArray:
        """Per place: minutes to the nearest open site (existing plus ``rows``), capped."""
        cost = self.base_cost_minutes()
        for row in np.asarray(rows, dtype=np.int64):
            idx, val = row_slice(self.times, int(row))
            np.minimum.at(cost, idx, val)
        return cost

    def weighted_minutes_of(self, rows: Sequence[int] | IntArray) -> float:
        """Population-weighted travel minutes to the nearest open site (p-median objective)."""
        return float(self.population @ self.best_minutes_with(rows))

    @cached_property
    def times_csc(self) -> sp.csc_matrix:
        """The times by place (column access), built on first use."""
        return self.times.tocsc()

    @cached_property
    def unit_codes(self) -> tuple[IntArray, np.ndarray]:
        """Integer code per place and the unit labels in code order (requires ``unit_ids``)."""
        if self.unit_ids is None:
            raise CoverageError(
                "per-unit results need the unit of every place: pass unit_ids=... to "
                "SitingProblem.from_matrix (the places layer's unit_id column)"
            )
        codes, labels = pd.factorize(pd.Series(self.unit_ids, dtype=object), sort=True)
        return codes.astype(np.int64), np.asarray(labels, dtype=object)

    def check_rows(self, rows: Sequence[int] | IntArray, *, name: str) -> IntArray:
        """Validate row indices; raise with the offending values."""
        arr = np.asarray(rows, dtype=np.int64).ravel()
        bad = arr[(arr < 0) | (arr >= self.n_sites)]
        if bad.size:
            raise CoverageError(
                f"{name}: rows {bad[:5].tolist()} are outside the matrix (0..{self.n_sites - 1}); "
                "use row numbers of the travel-time matrix"
            )
        return arr

    def __repr__(self) -> str:
        return (
            f"SitingProblem({self.n_sites} sites: {self.existing.size} existing, "
            f"{self.candidates.size} candidates; {self.n_places} places, "
            f"population {self.total_population:,.0f}, base coverage "
            f"{self.base_covered_population:,.0f}; {self.times.nnz} pairs)"
        )


@dataclass(frozen=True)
class SitingResult:
    """The answer of one siting solve (exact or greedy), with what was used to get it.

    Attributes
    ----------
    model
        ``"mclp"`` (maximal covering), ``"lscp"`` (set covering to a target share) or
        ``"pmedian"``.
    method
        ``"exact"`` or ``"greedy"``.
    solver
        The solver that produced it, for example ``"CBC 2.10.12 via PuLP 3.3.2"`` or
        ``"lazy greedy (Minoux)"``.
    status
        ``"optimal"``, ``"feasible"`` (time limit hit with a solution) or ``"heuristic"``.
    sites
        Matrix rows of the proposed new sites (greedy: in the order chosen; exact: sorted).
    site_ids
        Their labels.
    objective
        Covered population (MCLP), number of new sites (LSCP) or population-weighted minutes
        (p-median).
    covered_population, covered_share
        Population within its threshold of an open site (existing plus new), and its share.
    weighted_minutes
        Population-weighted minutes to the nearest open site (places beyond the cutoff of every
        open site count ``unreached_minutes``).
    gap
        Relative optimality gap of an exact solve (0 when proven optimal), None for greedy.
    seconds
        Wall-clock time of the solve.
    marginal_gains
        Greedy only: the objective improvement of each chosen site, in order.
    notes
        Everything a planner should know about how the answer was obtained (fallbacks,
        constraints not applied, early stops).
    assigned_population
        With capacity or band constraints: population assigned to each open site (row -> people).
    """

    model: str
    method: str
    solver: str
    status: str
    sites: tuple[int, ...]
    site_ids: tuple[str, ...]
    objective: float
    covered_population: float
    covered_share: float
    weighted_minutes: float
    gap: float | None = None
    seconds: float = 0.0
    marginal_gains: tuple[float, ...] = ()
    notes: tuple[str, ...] = ()
    assigned_population: dict[int, float] | None = None

    @property
    def n_new_sites(self) -> int:
        """Number of proposed new sites."""
        return len(self.sites)

    def summary(self) -> str:
        """One line for logs and the CLI."""
        gap = "" if self.gap is None else f", gap {self.gap:.2%}"
        return (
            f"{self.model} by {self.method} ({self.solver}, {self.status}{gap}): "
            f"{self.n_new_sites} new sites, covered {self.covered_population:,.0f} "
            f"({self.covered_share:.1%}), objective {self.objective:,.2f}, {self.seconds:.2f} s"
        )


def make_result(
    problem: SitingProblem,
    *,
    model: str,
    method: str,
    solver: str,
    status: str,
    sites: Sequence[int],
    objective: float | None = None,
    gap: float | None = None,
    seconds: float = 0.0,
    marginal_gains: Sequence[float] = (),
    notes: Sequence[str] = (),
    assigned_population: dict[int, float] | None = None,
) -> SitingResult:
    """Build a :class:`SitingResult`, computing coverage and weighted minutes from the sites."""
    rows = tuple(int(s) for s in sites)
    covered = problem.coverage_of(rows)
    weighted = problem.weighted_minutes_of(rows)
    if objective is None:
        objective = {"mclp": covered, "lscp": float(len(rows)), "pmedian": weighted}[model]
    total = problem.total_population
    return SitingResult(
        model=model,
        method=method,
        solver=solver,
        status=status,
        sites=rows,
        site_ids=tuple(str(problem.site_ids[r]) for r in rows),
        objective=float(objective),
        covered_population=covered,
        covered_share=covered / total if total > 0 else 0.0,
        weighted_minutes=weighted,
        gap=gap,
        seconds=seconds,
        marginal_gains=tuple(float(g) for g in marginal_gains),
        notes=tuple(notes),
        assigned_population=assigned_population,
    )
