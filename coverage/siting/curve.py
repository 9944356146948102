"""The coverage curve: population covered against the number of new sites (0..N).

Planners read it to see where extra stations stop paying off. With the greedy the proposals are
nested (the k-site plan is the (k-1)-site plan plus one site), so the curve is monotone by
construction; with the exact solver each k is solved on its own (plans need not be nested) and the
optimum cannot decrease with k. Both are deterministic: ties go to the lower matrix row.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from covplan.errors import CoverageError
from covplan.siting.exact import exact_mclp
from covplan.siting.greedy import _candidate_rows, greedy_mclp
from covplan.siting.problem import SitingProblem

__all__ = ["coverage_curve"]


def coverage_curve(
    problem: SitingProblem,
    max_sites: int,
    *,
    method: str = "greedy",
    candidates: Sequence[int] | None = None,
    time_limit: float = 60.0,
) -> pd.DataFrame:
    """Covered population for 0, 1, ..., ``max_sites`` new sites.

    Parameters
    ----------
    problem
        The siting problem (existing facilities kept open).
    max_sites
        Largest number of new sites.
    method
        ``"greedy"`` (one lazy-greedy run, nested plans) or ``"exact"`` (one MCLP per k).
    candidates
        Restrict to these rows.
    time_limit
        Per-solve CBC time limit for ``"exact"``.

    Returns
    -------
    pandas.DataFrame
        One row per k: ``n_new_sites``, ``covered_population``, ``covered_share``,
        ``added_population`` (over k-1), ``sites`` (tuple of matrix rows), ``site_ids`` (tuple
        of labels), ``method``. Row 0 is the baseline of the existing facilities.
    """
    if max_sites < 0:
        raise CoverageError(f"max_sites must be >= 0, got {max_sites}")
    if method not in ("greedy", "exact"):
        raise CoverageError(f"unknown curve method {method!r}; use 'greedy' or 'exact'")
    rows = _candidate_rows(problem, candidates)
    plans: list[tuple[int, ...]] = [()]
    if method == "greedy":
        order = greedy_mclp(problem, max_sites, candidates=rows).sites
        for k in range(1, max_sites + 1):
            plans.append(tuple(order[:k]))
    else:
        best_value = problem.base_covered_population
        for k in range(1, max_sites + 1):
            result = exact_mclp(problem, k, candidates=rows, time_limit=time_limit)
            plan = result.sites
            # a time-limited solve may fall short of the (k-1) plan: keep the better one
            if result.covered_population < best_value:
                plan = plans[-1]
            plans.append(plan)
            best_value = max(best_value, result.covered_population)
    covered = np.array([problem.coverage_of(p) for p in plans])
    total = problem.total_population
    return pd.DataFrame(
        {
            "n_new_sites": np.arange(max_sites + 1),
            "covered_population": covered,
            "covered_share": covered / total if total > 0 else np.zeros_like(covered),
            "added_population": np.diff(covered, prepend=covered[0]),
            "sites": plans,
            "site_ids": [tuple(str(problem.site_ids[r]) for r in p) for p in plans],
            "method": method,
        }
    )
