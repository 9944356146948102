"""Exact location-allocation with PuLP and its bundled CBC: MCLP, LSCP and p-median.

Existing facilities are always open (they enter as constants, not variables). The models are
reduced before they are built: for the covering models, places already covered by an existing
facility or by no candidate drop out and places covered by exactly the same candidates are
merged; for the p-median, only pairs faster than the place's existing facility stay.

Optional constraints (any model):

- ``band=(low, high)``: every NEW site serves between ``low`` and ``high`` people (the planning
  standard of 8,000-20,000 per township health centre);
- ``capacity``: the most people a site (existing or new) serves, one number or one per row.

With a constraint the model gets assignment variables (a place's population may be split
between sites) and ``assigned_population`` reports the people each open site serves.

:func:`solve` picks the method: exact when the model is small enough (``max_exact_size``
non-zeros), otherwise the lazy greedy, and says which in the result.
"""

from __future__ import annotations

import os
import re
import tempfile
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace

import numpy as np
import numpy.typing as npt
import pulp
import scipy.sparse as sp
from covplan.errors import CoverageError
from covplan.siting.greedy import _candidate_rows, greedy_lscp, greedy_mclp, greedy_pmedian
from covplan.siting.problem import SitingProblem, SitingResult, make_result

__all__ = [
    "DEFAULT_BAND",
    "MAX_EXACT_SIZE",
    "exact_lscp",
    "exact_mclp",
    "exact_pmedian",
    "model_size",
    "solve",
]

#: People per township health centre in the plans (a population band for new sites).
DEFAULT_BAND = (8_000.0, 20_000.0)
#: Largest model (non-zeros of the constraint matrix plus variables) solved exactly by `solve`.
MAX_EXACT_SIZE = 200_000

MODELS = ("mclp", "lscp", "pmedian")


# -- model data --------------------------------------------------------------------------------


@dataclass
class _Model:
    """A reduced model, before it is handed to PuLP."""

    rows: np.ndarray  # candidate rows that can matter
    # covering (unconstrained): groups of identical places
    group_weight: np.ndarray = field(default_factory=lambda: np.zeros(0))
    group_rows: list[np.ndarray] = field(default_factory=list)  # local candidate indices
    # assignment models: pairs (place, site row, minutes)
    pair_place: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    pair_site: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    pair_minutes: np.ndarray = field(default_factory=lambda: np.zeros(0))
    places: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    fallback_cost: np.ndarray = field(default_factory=lambda: np.zeros(0))  # per model place

    @property
    def size(self) -> int:
        n_group_nnz = sum(len(g) for g in self.group_rows)
        return int(self.rows.size + self.group_weight.size + n_group_nnz
                   + 3 * self.pair_place.size + 2 * self.places.size)


def _structure(matrix: sp.csr_matrix) -> sp.csr_matrix:
    """Ones at every stored entry (so that stored zeros survive slicing and products)."""
    return sp.csr_matrix(
        (np.ones(matrix.nnz, dtype=np.int8), matrix.indices, matrix.indptr), shape=matrix.shape
    )


def _covering_groups(problem: SitingProblem, rows: np.ndarray) -> _Model:
    """Uncovered places grouped by the exact set of candidates covering them."""
    sub = _structure(problem.cover)[rows]
    relevant = (~problem.base_covered) & (problem.population > 0)
    relevant &= np.asarray(sub.sum(axis=0)).ravel() > 0
    places = np.flatnonzero(relevant)
    csc = sub[:, places].tocsc()
    csc.sort_indices()
    groups: dict[bytes, int] = {}
    weights: list[float] = []
    members: list[np.ndarray] = []
    for k, place in enumerate(places):
        idx = csc.indices[csc.indptr[k]:csc.indptr[k + 1]]
        key = idx.tobytes()
        g = groups.get(key)
        if g is None:
            groups[key] = len(weights)
            weights.append(float(problem.population[place]))
            members.append(idx.astype(np.int64))
        else:
            weights[g] += float(problem.population[place])
    used = np.unique(np.concatenate(members)) if members else np.zeros(0, dtype=np.int64)
    remap = np.full(rows.size, -1, dtype=np.int64)
    remap[used] = np.arange(used.size)
    return _Model(
        rows=rows[used],
        group_weight=np.asarray(weights, dtype=float),
        group_rows=[remap[m] for m in members],
    )


def _pairs(
    matrix: sp.csr_matrix, rows: np.ndarray, keep_fn: Callable[[np.ndarray, np.ndarray], np.ndarray]
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(place, row, minutes) of the stored entries of ``rows`` where ``keep_fn`` is True."""
    sub = matrix[rows].tocoo()  # row fancy-indexing keeps explicitly stored zeros
    site = rows[sub.row]
    keep = keep_fn(sub.col, sub.data)
    return sub.col[keep].astype(np.int64), site[keep].astype(np.int64), sub.data[keep]


def _assignment_pairs(
    problem: SitingProblem, rows: np.ndarray, *, model: str
) -> _Model:
    """Collect assignment pairs for the constrained covering models or for the p-median."""
    open_rows = np.concatenate([problem.existing, rows])
    pop = problem.population
    if model == "pmedian":
        cap_cost = problem.unreached_minutes
        place, site, minutes = _pairs(
            problem.times, open_rows, lambda c, t: (t < cap_cost) & (pop[c] > 0)
        )
    else:
        place, site, minutes = _pairs(problem.cover, open_rows, lambda c, t: pop[c] > 0)
    places = np.unique(place)
    used_rows = rows[np.isin(rows, site)]
    return _Model(
        rows=used_rows, pair_place=place, pair_site=site, pair_minutes=minutes, places=places,
        fallback_cost=np.full(places.size, problem.unreached_minutes),
    )


def _pmedian_pairs(problem: SitingProblem, rows: np.ndarray) -> _Model:
    """Uncapacitated p-median: pairs faster than the place's existing facility (or cutoff)."""
    base = problem.base_cost_minutes()
    pop = problem.population
    place, site, minutes = _pairs(
        problem.times, rows, lambda c, t: (t < base[c]) & (pop[c] > 0)
    )
    places = np.unique(place)
    return _Model(
        rows=rows[np.isin(rows, site)], pair_place=place, pair_site=site, pair_minutes=minutes,
        places=places, fallback_cost=base[places],
    )


def _build(problem: SitingProblem, model: str, rows: np.ndarray, constrained: bool) -> _Model:
    if model == "pmedian":
        return _assignment_pairs(problem, rows, model=model) if constrained else _pmedian_pairs(
            problem, rows)
    if constrained:
        return _assignment_pairs(problem, rows, model=model)
    return _covering_groups(problem, rows)


def model_size(
    problem: SitingProblem,
    model: str,
    *,
    candidates: Sequence[int] | None = None,
    constrained: bool = False,
) -> int:
    """Size (variables plus constraint non-zeros, after reduction) of the exact model."""
    _check_model(model)
    return _build(problem, model, _candidate_rows(problem, candidates), constrained).size


# -- solving -----------------------------------------------------------------------------------


def _check_model(model: str) -> None:
    if model not in MODELS:
        raise CoverageError(f"unknown siting model {model!r}; use one of {', '.join(MODELS)}")


def _capacity_array(problem: SitingProblem, capacity: float | npt.ArrayLike | None) -> np.ndarray:
    if capacity is None:
        return np.full(problem.n_sites, np.inf)
    cap = np.asarray(capacity, dtype=float)
    cap = np.full(problem.n_sites, float(cap)) if cap.ndim == 0 else cap.ravel()
    if cap.shape != (problem.n_sites,) or np.isnan(cap).any() or (cap < 0).any():
        raise CoverageError(
            f"capacity must be one number >= 0 or one per matrix row ({problem.n_sites}); "
            f"got shape {cap.shape}"
        )
    return cap


def _check_band(band: tuple[float, float] | None) -> None:
    if band is not None and not (0 <= band[0] <= band[1]):
        raise CoverageError(f"band must be (low, high) with 0 <= low <= high, got {band}")


def _cbc_version(log: str) -> str:
    match = re.search(r"Version:\s*([0-9.]+)", log)
    return match.group(1) if match else "?"


def _run_cbc(
    prob: pulp.LpProblem, *, time_limit: float, gap_rel: float
) -> tuple[str, float | None, str]:
    """Solve with CBC; return (status, relative gap, solver name)."""
    with tempfile.TemporaryDirectory(prefix="covplan-cbc-") as tmp:
        log_path = os.path.join(tmp, "cbc.log")
        with warnings.catch_warnings():
            # PuLP 3.x announces that the bundled CBC moves to an extra in 4.0; it is what we use
            warnings.simplefilter("ignore", DeprecationWarning)
            solver = pulp.PULP_CBC_CMD(
                msg=False, timeLimit=time_limit, gapRel=gap_rel, threads=1, logPath=log_path
            )
        prob.solve(solver)
        log = open(log_path, encoding="utf-8", errors="replace").read() if os.path.exists(
            log_path) else ""
    name = f"CBC {_cbc_version(log)} via PuLP {pulp.__version__}"
    if prob.sol_status == pulp.LpSolutionOptimal:
        status = "optimal"
    elif prob.sol_status == pulp.LpSolutionIntegerFeasible:
        status = "feasible"
    elif prob.status == pulp.LpStatusInfeasible:
        status = "infeasible"
    else:
        status = pulp.LpStatus.get(prob.status, "unknown").lower()
    gap: float | None = None
    if status in ("optimal", "feasible"):
        obj = pulp.value(prob.objective) or 0.0
        match = re.search(r"(?:Upper|Lower) bound:\s*(-?[0-9.eE+-]+)", log)
        if match:
            bound = float(match.group(1))
            gap = abs(bound - obj) / max(abs(obj), 1e-9)
            if status == "optimal":
                gap = min(gap, gap_rel)
        elif status == "optimal":
            gap = 0.0
    return status, gap, name


def _open_rows(x: dict[int, pulp.LpVariable]) -> list[int]:
    return sorted(r for r, v in x.items() if (v.value() or 0.0) > 0.5)


def _exact(
    problem: SitingProblem,
    model: str,
    *,
    n_sites: int | None,
    target_share: float | None,
    candidates: Sequence[int] | None,
    band: tuple[float, float] | None,
    capacity: float | npt.ArrayLike | None,
    time_limit: float,
    gap_rel: float,
) -> SitingResult:
    start = time.perf_counter()
    _check_band(band)
    rows = _candidate_rows(problem, candidates)
    constrained = band is not None or capacity is not None
    cap = _capacity_array(problem, capacity)
    data = _build(problem, model, rows, constrained)
    pop = problem.population
    sense = pulp.LpMinimize if model in ("lscp", "pmedian") else pulp.LpMaximize
    prob = pulp.LpProblem(f"covplan_{model}", sense)
    x = {int(r): prob.add_variable(f"x_{int(r)}", cat=pulp.LpBinary) for r in data.rows}
    notes: list[str] = [f"model size {data.size} after reduction"]
    target = None
    if model == "lscp":
        if target_share is None or not 0.0 <= target_share <= 1.0:
            raise CoverageError(f"LSCP needs target_share between 0 and 1, got {target_share}")
        target = target_share * problem.total_population
        tol = 1e-9 * max(problem.total_population, 1.0)
        if not constrained and problem.base_covered_population + tol >= target:
            return make_result(problem, model=model, method="exact", solver="none needed",
                               status="optimal", sites=[], gap=0.0,
                               seconds=time.perf_counter() - start,
                               notes=["the existing facilities already meet the target"])
    elif n_sites is None or n_sites < 0:
        raise CoverageError(f"{model} needs n_sites >= 0, got {n_sites}")

    assigned_expr: dict[int, list[tuple[pulp.LpVariable, float]]] = {}
    if not constrained and model != "pmedian":
        y = [prob.add_variable(f"y_{g}", lowBound=0, upBound=1)
             for g in range(data.group_weight.size)]
        xs = [x[int(r)] for r in data.rows]
        for g, members in enumerate(data.group_rows):
            prob += pulp.LpAffineExpression([(y[g], 1.0)] + [(xs[m], -1.0) for m in members]) <= 0
        covered = pulp.LpAffineExpression(
            [(y[g], float(w)) for g, w in enumerate(data.group_weight)])
        if model == "mclp":
            prob += covered + problem.base_covered_population
            prob += pulp.lpSum(xs) <= n_sites
        else:
            prob += pulp.lpSum(xs)
            prob += covered >= target - problem.base_covered_population
    else:
        a = [prob.add_variable(f"a_{k}", lowBound=0, upBound=1)
             for k in range(data.pair_place.size)]
        place_pos = {int(p): i for i, p in enumerate(data.places)}
        by_place: list[list[tuple[pulp.LpVariable, float]]] = [[] for _ in data.places]
        for k in range(data.pair_place.size):
            p, s = int(data.pair_place[k]), int(data.pair_site[k])
            by_place[place_pos[p]].append((a[k], 1.0))
            assigned_expr.setdefault(s, []).append((a[k], float(pop[p])))
            if s in x:
                prob += a[k] <= x[s]
        served_terms: list[tuple[pulp.LpVariable, float]] = []
        if model == "pmedian":
            d = [prob.add_variable(f"d_{i}", lowBound=0, upBound=1)
                 for i in range(data.places.size)]
            for i, terms in enumerate(by_place):
                prob += pulp.LpAffineExpression(terms + [(d[i], 1.0)]) == 1
            fixed = float(pop @ problem.base_cost_minutes()) - float(
                pop[data.places] @ problem.base_cost_minutes()[data.places])
            if constrained:
                fixed = float(pop @ np.full(problem.n_places, problem.unreached_minutes)) - float(
                    pop[data.places].sum() * problem.unreached_minutes)
            prob += pulp.LpAffineExpression(
                [(a[k], float(pop[data.pair_place[k]] * data.pair_minutes[k]))
                 for k in range(len(a))]
                + [(d[i], float(pop[p] * data.fallback_cost[i]))
                   for i, p in enumerate(data.places)]
            ) + fixed
            prob += pulp.lpSum(x.values()) <= n_sites
        else:
            for terms in by_place:
                prob += pulp.LpAffineExpression(terms) <= 1
            served_terms = [(a[k], float(pop[data.pair_place[k]])) for k in range(len(a))]
            served = pulp.LpAffineExpression(served_terms)
            if model == "mclp":
                prob += served
                prob += pulp.lpSum(x.values()) <= n_sites
            else:
                prob += pulp.lpSum(x.values())
                prob += served >= target
        for s, terms in assigned_expr.items():
            load = pulp.LpAffineExpression(terms)
            is_new = s in x
            if np.isfinite(cap[s]):
                prob += load <= (cap[s] * x[s] if is_new else cap[s])
            if band is not None and is_new:
                prob += load >= band[0] * x[s]
                prob += load <= band[1] * x[s]
        if band is not None:
            notes.append(f"new sites serve {band[0]:,.0f}-{band[1]:,.0f} people each")
        if capacity is not None:
            notes.append("site capacities applied (existing and new)")
        if constrained:
            notes.append("population may be split between sites (fractional assignment)")

    status, gap, solver = _run_cbc(prob, time_limit=time_limit, gap_rel=gap_rel)
    if status not in ("optimal", "feasible"):
        hint = ("lower the target share, relax the band/capacity or add candidates"
                if model == "lscp" or constrained else "check the inputs")
        raise CoverageError(f"exact {model} solve ended with status '{status}' ({solver}): {hint}")
    sites = _open_rows(x)
    if not constrained and model != "lscp":
        sites, pruned = _prune(problem, model, sites)
        if pruned:
            notes.append(f"dropped {pruned} chosen site(s) that improved nothing")
    assigned = None
    objective = float(pulp.value(prob.objective) or 0.0)
    if constrained:
        assigned = {
            s: float(sum(v.value() * w for v, w in terms))
            for s, terms in assigned_expr.items()
            if s not in x or s in sites
        }
    else:
        objective = None  # recomputed from the sites by make_result (exactly, no LP round-off)
    if status == "feasible":
        notes.append(f"time limit of {time_limit:g} s reached: best solution found, not proven "
                     "optimal")
    return make_result(
        problem, model=model, method="exact", solver=solver, status=status, sites=sites,
        objective=objective, gap=gap, seconds=time.perf_counter() - start, notes=notes,
        assigned_population=assigned,
    )


def _prune(problem: SitingProblem, model: str, sites: list[int]) -> tuple[list[int], int]:
    """Drop chosen sites that do not improve the objective (highest row first)."""
    def value(rows: list[int]) -> float:
        if model == "mclp":
            return problem.coverage_of(rows)
        return -problem.weighted_minutes_of(rows)

    best = value(sites)
    tol = 1e-9 * max(abs(best), 1.0)
    kept = list(sites)
    for s in sorted(sites, reverse=True):
        trial = [r for r in kept if r != s]
        if value(trial) >= best - tol:
            kept = trial
    return kept, len(sites) - len(kept)


def exact_mclp(
    problem: SitingProblem,
    n_sites: int,
    *,
    candidates: Sequence[int] | None = None,
    band: tuple[float, float] | None = None,
    capacity: float | npt.ArrayLike | None = None,
    time_limit: float = 60.0,
    gap_rel: float = 1e-6,
) -> SitingResult:
    """Maximal covering: at most ``n_sites`` new sites maximising covered population.

    Parameters
    ----------
    problem
        The siting problem (existing facilities forced open).
    n_sites
        Number of new sites.
    candidates
        Restrict to these rows.
    band
        ``(low, high)`` people served per new site, for example :data:`DEFAULT_BAND`.
    capacity
        Most people served per site: a number or one per matrix row.
    time_limit
        CBC time limit in seconds; when reached the result has status ``"feasible"``.
    gap_rel
        Relative optimality gap at which CBC may stop.

    Returns
    -------
    SitingResult
        ``objective`` = covered population (with a constraint: population assigned within
        threshold).
    """
    return _exact(problem, "mclp", n_sites=n_sites, target_share=None, candidates=candidates,
                  band=band, capacity=capacity, time_limit=time_limit, gap_rel=gap_rel)


def exact_lscp(
    problem: SitingProblem,
    target_share: float,
    *,
    candidates: Sequence[int] | None = None,
    band: tuple[float, float] | None = None,
    capacity: float | npt.ArrayLike | None = None,
    time_limit: float = 60.0,
    gap_rel: float = 1e-6,
) -> SitingResult:
    """Set covering: the fewest new sites covering ``target_share`` of the population.

    Parameters are those of :func:`exact_mclp` with ``target_share`` (0..1, existing coverage
    included) instead of ``n_sites``. ``objective`` is the number of new sites.

    Returns
    -------
    SitingResult
    """
    return _exact(problem, "lscp", n_sites=None, target_share=target_share,
                  candidates=candidates, band=band, capacity=capacity, time_limit=time_limit,
                  gap_rel=gap_rel)


def exact_pmedian(
    problem: SitingProblem,
    n_sites: int,
    *,
    candidates: Sequence[int] | None = None,
    band: tuple[float, float] | None = None,
    capacity: float | npt.ArrayLike | None = None,
    time_limit: float = 60.0,
    gap_rel: float = 1e-6,
) -> SitingResult:
    """P-median: ``n_sites`` new sites minimising population-weighted minutes.

    Places beyond the cutoff of every open site count ``problem.unreached_minutes``. Parameters
    are those of :func:`exact_mclp`.

    Returns
    -------
    SitingResult
        ``objective`` = population-weighted minutes (person-minutes).
    """
    return _exact(problem, "pmedian", n_sites=n_sites, target_share=None, candidates=candidates,
                  band=band, capacity=capacity, time_limit=time_limit, gap_rel=gap_rel)


def solve(
    problem: SitingProblem,
    model: str,
    *,
    n_sites: int | None = None,
    target_share: float | None = None,
    method: str = "auto",
    candidates: Sequence[int] | None = None,
    band: tuple[float, float] | None = None,
    capacity: float | npt.ArrayLike | None = None,
    max_exact_size: int = MAX_EXACT_SIZE,
    time_limit: float = 60.0,
    gap_rel: float = 1e-6,
) -> SitingResult:
    """Solve a siting model exactly when small enough, else by the lazy greedy.

    Parameters
    ----------
    problem
        The siting problem.
    model
        ``"mclp"``, ``"lscp"`` or ``"pmedian"``.
    n_sites
        New sites for MCLP and p-median.
    target_share
        Share to cover for LSCP.
    method
        ``"auto"`` (exact up to ``max_exact_size``), ``"exact"`` or ``"greedy"``.
    candidates, band, capacity, time_limit, gap_rel
        As in :func:`exact_mclp`.
    max_exact_size
        Model size (variables plus constraint non-zeros after reduction) above which ``"auto"``
        uses the greedy.

    Returns
    -------
    SitingResult
        ``method`` says which was used and ``notes`` why.
    """
    _check_model(model)
    if method not in ("auto", "exact", "greedy"):
        raise CoverageError(f"unknown method {method!r}; use 'auto', 'exact' or 'greedy'")
    constrained = band is not None or capacity is not None
    notes: list[str] = []
    if method == "auto":
        size = model_size(problem, model, candidates=candidates, constrained=constrained)
        if size <= max_exact_size:
            method = "exact"
        else:
            method = "greedy"
            notes.append(f"exact model too large ({size:,} > max_exact_size {max_exact_size:,}):"
                         " solved by lazy greedy instead")
    if method == "exact":
        kwargs = dict(candidates=candidates, band=band, capacity=capacity,
                      time_limit=time_limit, gap_rel=gap_rel)
        if model == "mclp":
            return exact_mclp(problem, _need(n_sites, model), **kwargs)
        if model == "lscp":
            return exact_lscp(problem, _need_share(target_share), **kwargs)
        return exact_pmedian(problem, _need(n_sites, model), **kwargs)
    if constrained:
        notes.append("the greedy does NOT apply the band/capacity constraints: check the people "
                     "each proposed site serves before adopting it")
    if model == "mclp":
        result = greedy_mclp(problem, _need(n_sites, model), candidates=candidates)
    elif model == "lscp":
        result = greedy_lscp(problem, _need_share(target_share), candidates=candidates)
    else:
        result = greedy_pmedian(problem, _need(n_sites, model), candidates=candidates)
    return _with_notes(result, notes)


def _need(n_sites: int | None, model: str) -> int:
    if n_sites is None:
        raise CoverageError(f"{model} needs n_sites (the number of new sites to propose)")
    return n_sites


def _need_share(target_share: float | None) -> float:
    if target_share is None:
        raise CoverageError("lscp needs target_share (the share of population to cover, 0..1)")
    return target_share


def _with_notes(result: SitingResult, notes: list[str]) -> SitingResult:
    return replace(result, notes=tuple(notes) + result.notes)
