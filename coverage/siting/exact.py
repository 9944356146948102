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
    "backup_coverage_of",
    "cover_counts",
    "exact_lscp",
    "exact_mclp",
    "exact_mclp_backup",
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
        ``"auto"`` (exact up to ``max_exact_size``), ``"exact"``, ``"greedy"``, or
        ``"mclp_backup"`` (model ``"mclp"`` only: :func:`exact_mclp_backup`, best first cover
        then the most population covered at least twice; no band/capacity).
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
    if method not in ("auto", "exact", "greedy", "mclp_backup"):
        raise CoverageError(f"unknown method {method!r}; use 'auto', 'exact', 'greedy' or "
                            "'mclp_backup'")
    if method == "mclp_backup":
        if model != "mclp" or band is not None or capacity is not None:
            raise CoverageError("method 'mclp_backup' solves model 'mclp' without band or "
                                f"capacity; got model {model!r}: use model='mclp' and drop "
                                "band/capacity")
        return exact_mclp_backup(problem, _need(n_sites, model), candidates=candidates,
                                 time_limit=time_limit)
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


# -- backup cover: MCLP with a second-cover objective (method="mclp_backup") ------------------
# A place has *backup cover* when at least two open sites (existing or new) reach it within its
# threshold: when the nearest ambulance is out on a call, another one still arrives in time.
# exact_mclp_backup is lexicographic by default (first cover kept at the MCLP optimum, then the
# population covered at least twice maximised) or, with backup_weight=w, one weighted model
# (first cover + w x backup cover). Per group of places with the same covering sites:
# y1 <= open (y1 in [0, 1]) and 2 y2 <= open (y2 binary), open = existing coverers + chosen
# candidates covering it.


def cover_counts(problem: SitingProblem, rows: Sequence[int] | np.ndarray) -> np.ndarray:
    """Return, per place, how many open sites (existing plus ``rows``) cover it."""
    open_rows = np.union1d(problem.existing, np.asarray(rows, dtype=np.int64))
    if open_rows.size == 0:
        return np.zeros(problem.n_places, dtype=np.int64)
    sub = _structure(problem.cover)[open_rows]
    return np.asarray(sub.sum(axis=0)).ravel().astype(np.int64)


def backup_coverage_of(problem: SitingProblem, rows: Sequence[int] | np.ndarray) -> float:
    """Return the population covered at least twice (existing sites plus ``rows`` open)."""
    return float(problem.population[cover_counts(problem, rows) >= 2].sum())


def _groups(problem: SitingProblem, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray,
                                                               list[np.ndarray]]:
    """Places with population grouped by (existing coverers, covering candidates)."""
    n_existing = (np.asarray(_structure(problem.cover)[problem.existing].sum(axis=0)).ravel()
                  if problem.existing.size else np.zeros(problem.n_places))
    csc = _structure(problem.cover)[rows].tocsc()
    csc.sort_indices()
    keys: dict[tuple[int, bytes], int] = {}
    weight: list[float] = []
    base: list[int] = []
    members: list[np.ndarray] = []
    for place in np.flatnonzero(problem.population > 0):
        idx = csc.indices[csc.indptr[place]:csc.indptr[place + 1]].astype(np.int64)
        k = int(n_existing[place])
        if k >= 2 or k + idx.size == 0:
            continue  # already covered twice, or never coverable: nothing to decide
        key = (k, idx.tobytes())
        g = keys.get(key)
        if g is None:
            keys[key] = len(weight)
            weight.append(float(problem.population[place]))
            base.append(k)
            members.append(idx)
        else:
            weight[g] += float(problem.population[place])
    return np.asarray(weight), np.asarray(base, dtype=np.int64), members


def exact_mclp_backup(
    problem: SitingProblem,
    n_sites: int,
    *,
    candidates: Sequence[int] | None = None,
    backup_weight: float | None = None,
    time_limit: float = 60.0,
    gap_rel: float = 1e-9,
) -> SitingResult:
    """At most ``n_sites`` new sites: best first cover, then the most backup (double) cover.

    Parameters
    ----------
    problem
        The siting problem (existing facilities forced open).
    n_sites
        Most new sites.
    candidates
        Restrict to these rows.
    backup_weight
        None (default): lexicographic, first cover kept at the MCLP optimum. A number ``w > 0``:
        one model maximising ``first cover + w * backup cover``.
    time_limit, gap_rel
        CBC time limit (seconds, per solve) and relative gap.

    Returns
    -------
    SitingResult
        ``model="mclp"``, ``method="mclp_backup"``; ``objective`` = population covered at least
        twice; ``covered_population`` the first cover; ``notes`` say which objective was used.

    Raises
    ------
    CoverageError
        If ``n_sites < 0``, ``backup_weight <= 0`` or the solver finds no solution.
    """
    start = time.perf_counter()
    if n_sites is None or n_sites < 0:
        raise CoverageError(f"mclp_backup needs n_sites >= 0, got {n_sites}")
    if backup_weight is not None and not backup_weight > 0:
        raise CoverageError(
            f"backup_weight must be a number > 0 (or None for first cover first), got "
            f"{backup_weight!r}"
        )
    rows = _candidate_rows(problem, candidates)
    notes: list[str] = []
    first_target = None
    if backup_weight is None:
        first = exact_mclp(problem, n_sites, candidates=rows.tolist(), time_limit=time_limit)
        first_target = first.covered_population
        notes.append(f"first cover kept at the MCLP optimum {first_target:,.0f}; then backup "
                     "cover maximised")
    else:
        notes.append(f"weighted objective: first cover + {backup_weight:g} x backup cover")
    weight, base, members = _groups(problem, rows)
    prob = pulp.LpProblem("covplan_mclp_backup", pulp.LpMaximize)
    x = {int(r): prob.add_variable(f"x_{int(r)}", cat=pulp.LpBinary) for r in rows}
    xs = [x[int(r)] for r in rows]
    y1 = [prob.add_variable(f"y1_{g}", lowBound=0, upBound=1) for g in range(weight.size)]
    # y2 binary: with 0 <= y2 <= 1 continuous, 2 y2 <= 1 would count half a backup
    y2 = [prob.add_variable(f"y2_{g}", cat=pulp.LpBinary) for g in range(weight.size)]
    for g, idx in enumerate(members):
        opened = [(xs[m], -1.0) for m in idx]
        if base[g] == 0:  # first cover to decide (a place with one existing coverer has it)
            prob += pulp.LpAffineExpression([(y1[g], 1.0)] + opened) <= 0
        prob += pulp.LpAffineExpression([(y2[g], 2.0)] + opened) <= float(base[g])
    first_expr = pulp.LpAffineExpression(
        [(y1[g], float(w)) for g, w in enumerate(weight) if base[g] == 0])
    second_expr = pulp.LpAffineExpression([(y2[g], float(w)) for g, w in enumerate(weight)])
    prob += pulp.lpSum(xs) <= n_sites
    if backup_weight is None:
        fixed = problem.base_covered_population
        tol = 1e-7 * max(problem.total_population, 1.0)
        prob += first_expr >= float(first_target) - fixed - tol
        prob += second_expr
    else:
        prob += first_expr + float(backup_weight) * second_expr
    status, gap, solver = _run_cbc(prob, time_limit=time_limit, gap_rel=gap_rel)
    if status not in ("optimal", "feasible"):
        raise CoverageError(f"mclp_backup solve ended with status '{status}' ({solver}): "
                            "check the inputs")
    sites = _open_rows(x)
    backup = backup_coverage_of(problem, sites)
    notes.append(f"population covered at least twice: {backup:,.0f}")
    if status == "feasible":
        notes.append(f"time limit of {time_limit:g} s reached: best solution found, not proven "
                     "optimal")
    return make_result(problem, model="mclp", method="mclp_backup", solver=solver,
                       status=status, sites=sites, objective=backup, gap=gap,
                       seconds=time.perf_counter() - start, notes=notes)
