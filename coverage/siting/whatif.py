"""Instant what-if: add, move or close a facility and see what changes against the baseline.

The baseline is the existing facilities of a :class:`SitingProblem`, which already holds, per
place, the best and the second-best time among them. So:

- adding a site touches only the places in its matrix row: ``O(nnz of the row)``;
- closing an existing facility touches only the places in its row whose best facility it was;
  they fall back to their second-best time, ``O(nnz of the row)``; only when several closed
  facilities were a place's best two is that place's column scanned again;
- moving is a close and an add in one pass.

Each answer gives the change in covered population overall and per unit (township), the places
whose nearest-facility time changed with their minutes before and after (what the standards
need to re-check), and the change in population-weighted minutes.

This is the engine of the fast path of the package's one what-if: a
:class:`~covplan.whatif.FacilityChange` is turned into matrix rows (added and moved
facilities routed as point rows, closed ones as existing rows) by
:meth:`covplan.siting.session.SitingSession.apply`, and its answer carries the change and the
same new facility ids (``new-1``, ...) as :func:`covplan.whatif.what_if`.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import scipy.sparse as sp
from covplan.errors import CoverageError
from covplan.siting.problem import SitingProblem, row_slice

if TYPE_CHECKING:
    from covplan.whatif import FacilityChange

__all__ = ["WhatIf", "WhatIfResult"]

Site = int | sp.spmatrix | sp.sparray


@dataclass(frozen=True)
class WhatIfResult:
    """The change one what-if makes against the baseline (the existing facilities).

    Attributes
    ----------
    action
        What was done, for example ``"add 812"`` or ``"move 3 -> 812"``.
    covered_before, covered_after, delta
        Population within its threshold of an open facility, and the difference.
    places
        Places whose nearest-facility minutes changed.
    minutes_before, minutes_after
        Their minutes before and after (``inf``: beyond the routing cutoff of every facility).
    newly_covered, newly_uncovered
        Places that cross their threshold one way or the other.
    weighted_minutes_delta
        Change in population-weighted minutes (beyond-cutoff places count ``unreached_minutes``).
    per_unit
        One row per unit: ``unit_id``, ``population``, ``covered_before``, ``covered_after``,
        ``delta``; None when the problem has no ``unit_ids``.
    seconds
        Time the answer took.
    change
        The :class:`~covplan.whatif.FacilityChange` this answers, when it was asked as one
        (:meth:`covplan.siting.session.SitingSession.apply`); None for matrix rows.
    new_ids
        Facility ids of the added facilities (``new-1``, ... as in :mod:`covplan.whatif`).
    """

    action: str
    covered_before: float
    covered_after: float
    delta: float
    places: np.ndarray
    minutes_before: np.ndarray
    minutes_after: np.ndarray
    newly_covered: np.ndarray
    newly_uncovered: np.ndarray
    weighted_minutes_delta: float
    per_unit: pd.DataFrame | None
    seconds: float
    change: FacilityChange | None = None
    new_ids: tuple[str, ...] = ()


class WhatIf:
    """What-if engine over one :class:`SitingProblem` (its existing facilities are the baseline).

    Parameters
    ----------
    problem
        The precomputed problem; ``unit_ids`` in it enables per-unit results.
    """

    def __init__(self, problem: SitingProblem) -> None:
        self.problem = problem
        self._pop = problem.population
        self._thr = problem.threshold_minutes
        self._cap = problem.unreached_minutes
        if problem.unit_ids is not None:
            codes, labels = problem.unit_codes
            self._codes = codes
            self._labels = labels
            n = labels.size
            self._unit_pop = np.bincount(codes, weights=self._pop, minlength=n)
            self._unit_base = np.bincount(
                codes, weights=np.where(problem.base_covered, self._pop, 0.0), minlength=n
            )
        else:
            self._codes = None

    # -- public actions -----------------------------------------------------------------------

    def add(self, site: Site) -> WhatIfResult:
        """Open one new site: a matrix row (not an existing facility) or a 1 x n_places row.

        Parameters
        ----------
        site
            Row index of the travel-time matrix, or a sparse ``1 x n_places`` row of minutes for
            a point outside the matrix (from the engine's ``reach_matrix``).

        Returns
        -------
        WhatIfResult
        """
        return self.apply(add=[site])

    def close(self, site: int) -> WhatIfResult:
        """Close one existing facility (a matrix row listed as existing)."""
        return self.apply(close=[site])

    def move(self, site: int, to: Site) -> WhatIfResult:
        """Move an existing facility to another site: close ``site`` and open ``to``."""
        return self.apply(add=[to], close=[site])

    def apply(self, *, add: Sequence[Site] = (), close: Sequence[int] = ()) -> WhatIfResult:
        """Open ``add`` and close ``close`` together, against the baseline.

        Parameters
        ----------
        add
            Sites to open (matrix rows that are not existing facilities, or sparse rows).
        close
            Existing facilities (matrix rows) to close.

        Returns
        -------
        WhatIfResult
        """
        start = time.perf_counter()
        p = self.problem
        closed = p.check_rows(list(close), name="close")
        not_existing = closed[~p.is_existing[closed]]
        if not_existing.size:
            raise CoverageError(
                f"close: rows {not_existing[:5].tolist()} are not existing facilities; only "
                "existing facilities can be closed"
            )
        added = [self._row(s) for s in add]

        # places the closures can change: those whose best facility is closed
        parts = []
        is_closed = np.zeros(p.n_sites, dtype=bool)
        is_closed[closed] = True
        for row in closed:
            idx, _ = row_slice(p.times, int(row))
            parts.append(idx[p.best_site[idx] == row])
        lost = np.unique(np.concatenate(parts)) if len(parts) > 1 else (
            parts[0] if parts else np.zeros(0, dtype=np.int64))
        if added:
            touched = np.concatenate([lost] + [idx for idx, _ in added])
            aff = touched if (not lost.size and len(added) == 1) else np.unique(touched)
        else:
            aff = lost
        before = p.best_minutes[aff]
        after = before.copy()
        if lost.size:
            pos = np.searchsorted(aff, lost)
            second = p.second_site[lost]
            ok = (second < 0) | ~is_closed[np.maximum(second, 0)]
            after[pos[ok]] = p.second_minutes[lost[ok]]
            for place, k in zip(lost[~ok], pos[~ok], strict=True):
                after[k] = self._best_open(int(place), is_closed)
        for idx, val in added:
            pos = np.searchsorted(aff, idx)
            np.minimum.at(after, pos, val)

        changed = after != before
        places, before, after = aff[changed], before[changed], after[changed]
        thr = self._thr[places]
        was, now = before <= thr, after <= thr
        gained, lost_cov = places[now & ~was], places[was & ~now]
        pop = self._pop
        delta = float(pop[gained].sum() - pop[lost_cov].sum())
        weighted = float(
            pop[places] @ (np.minimum(after, self._cap) - np.minimum(before, self._cap))
        )
        per_unit = None
        if self._codes is not None:
            n = self._labels.size
            unit_delta = (np.bincount(self._codes[gained], weights=pop[gained], minlength=n)
                          - np.bincount(self._codes[lost_cov], weights=pop[lost_cov], minlength=n))
            per_unit = pd.DataFrame({
                "unit_id": self._labels,
                "population": self._unit_pop,
                "covered_before": self._unit_base,
                "covered_after": self._unit_base + unit_delta,
                "delta": unit_delta,
            })
        return WhatIfResult(
            action=self._describe(add, closed),
            covered_before=p.base_covered_population,
            covered_after=p.base_covered_population + delta,
            delta=delta,
            places=places,
            minutes_before=before,
            minutes_after=after,
            newly_covered=gained,
            newly_uncovered=lost_cov,
            weighted_minutes_delta=weighted,
            per_unit=per_unit,
            seconds=time.perf_counter() - start,
        )

    # -- helpers ------------------------------------------------------------------------------

    def _row(self, site: Site) -> tuple[np.ndarray, np.ndarray]:
        p = self.problem
        if sp.issparse(site):
            row = sp.csr_matrix(site, dtype=np.float64)
            if row.shape != (1, p.n_places):
                raise CoverageError(
                    f"add: a site given as a matrix row must be 1 x {p.n_places}, got {row.shape}"
                )
            row.sum_duplicates()
            row.sort_indices()
            return row.indices.astype(np.int64), row.data
        (r,) = p.check_rows([site], name="add")
        if p.is_existing[r]:
            raise CoverageError(f"add: row {r} is an existing facility (already open)")
        return row_slice(p.times, int(r))

    def _best_open(self, place: int, is_closed: np.ndarray) -> float:
        """Best minutes to ``place`` among existing facilities that stay open (column scan)."""
        p = self.problem
        csc = p.times_csc
        rows = csc.indices[csc.indptr[place]:csc.indptr[place + 1]]
        vals = csc.data[csc.indptr[place]:csc.indptr[place + 1]]
        keep = p.is_existing[rows] & ~is_closed[rows]
        return float(vals[keep].min()) if keep.any() else np.inf

    def _describe(self, add: Sequence[Site], closed: np.ndarray) -> str:
        names = ["<row>" if sp.issparse(s) else str(int(s)) for s in add]
        if len(closed) == 1 and len(names) == 1:
            return f"move {int(closed[0])} -> {names[0]}"
        parts = []
        if names:
            parts.append("add " + ", ".join(names))
        if len(closed):
            parts.append("close " + ", ".join(str(int(c)) for c in closed))
        return "; ".join(parts) or "no change"
