"""Travel times on arrays: multi-source Dijkstra with scipy.sparse.csgraph.

Sources (facilities) and targets (population places) are :class:`~covplan.engine.attach.Attachment`
positions on road segments, or node indices. Each source becomes a virtual node appended to
the network's CSR matrix, joined to the two ends of its segment with the partial-edge cost plus
its straight-line leg (and, in ambulance mode, the turnout delay), so one Dijkstra call from
all sources with ``min_only=True`` gives the nearest source of every node; a target's value is
then the cheaper of its segment's two ends plus its own partial edge and leg.

``direction="to_facility"`` measures a resident travelling to care (searches run on the
reversed graph); ``"from_facility"`` measures a vehicle driving out (ambulance).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
from covplan.engine.attach import Attachment, attach_nodes
from covplan.engine.network import RoadNetwork
from covplan.errors import CoverageError
from scipy.sparse.csgraph import dijkstra

__all__ = ["NearestResult", "nearest", "reach_matrix", "reach_sets"]

_METRICS = ("time", "length")
_DIRECTIONS = ("to_facility", "from_facility")
_EPS_FRACTION = 1e-9
_BATCH_ENTRIES = 20_000_000  # dense distance entries per bounded-search batch (160 MB)


@dataclass(frozen=True)
class NearestResult:
    """The nearest source of every node and every target.

    Attributes
    ----------
    node_value, node_source
        Per network node: value to/from the nearest source (minutes or km; inf when none is
        reachable) and that source's position in ``sources`` (-1 when none).
    value, source
        The same per target (empty when no targets were given).
    metric, direction
        What the values measure.
    """

    node_value: np.ndarray
    node_source: np.ndarray
    value: np.ndarray
    source: np.ndarray
    metric: str
    direction: str


def _as_attachment(network: RoadNetwork, points: Attachment | np.ndarray | None) -> Attachment:
    if points is None:
        return attach_nodes(network, np.arange(network.n_nodes))
    if isinstance(points, Attachment):
        return points
    return attach_nodes(network, np.asarray(points))


def _check(network: RoadNetwork, metric: str, direction: str | None) -> str:
    if metric not in _METRICS:
        raise CoverageError(f"metric must be one of {', '.join(_METRICS)}, got {metric!r}")
    direction = direction or network.mode.default_direction
    if direction not in _DIRECTIONS:
        raise CoverageError(
            f"direction must be one of {', '.join(_DIRECTIONS)}, got {direction!r}"
        )
    return direction


def _weights(network: RoadNetwork, metric: str) -> np.ndarray:
    return network.time_s if metric == "time" else network.length_m


def _ends(network: RoadNetwork, att: Attachment, metric: str) -> dict[str, np.ndarray]:
    """Costs between each attached point and the two ends of its segment (inf when barred).

    ``out_*``: from the point to the end node; ``in_*``: from the end node to the point.
    """
    w = _weights(network, metric)
    seg = np.where(att.reachable, att.segment, 0)
    fwd, rev = network.seg_fwd[seg], network.seg_rev[seg]
    wf = np.where(fwd >= 0, w[np.maximum(fwd, 0)], np.inf)
    wr = np.where(rev >= 0, w[np.maximum(rev, 0)], np.inf)
    f = att.fraction
    at_start, at_end = f <= _EPS_FRACTION, f >= 1 - _EPS_FRACTION
    with np.errstate(invalid="ignore"):
        out_s = np.where(at_start, 0.0, f * wr)
        out_e = np.where(at_end, 0.0, (1 - f) * wf)
        in_s = np.where(at_start, 0.0, f * wf)
        in_e = np.where(at_end, 0.0, (1 - f) * wr)
    leg = att.leg_s if metric == "time" else np.nan_to_num(att.snap_m)
    bad = ~att.reachable
    for arr in (out_s, out_e, in_s, in_e):
        arr[bad] = np.inf
    return {
        "start": network.seg_start[seg], "end": network.seg_end[seg], "wf": wf, "wr": wr,
        "out_s": out_s, "out_e": out_e, "in_s": in_s, "in_e": in_e, "leg": leg,
    }  # fmt: skip


def _along(f_from: np.ndarray, f_to: np.ndarray, wf: np.ndarray, wr: np.ndarray) -> np.ndarray:
    """Cost of travelling along one segment from fraction ``f_from`` to ``f_to``."""
    d = f_to - f_from
    with np.errstate(invalid="ignore"):
        cost = np.where(d >= 0, d * wf, -d * wr)
    return np.where(np.abs(d) <= _EPS_FRACTION, 0.0, cost)


def _source_offsets(
    network: RoadNetwork, att: Attachment, metric: str, turnout_minutes: object
) -> np.ndarray:
    if metric != "time":
        return np.zeros(len(att))
    if turnout_minutes is None:
        turnout = np.full(len(att), network.mode.turnout_minutes)
    else:
        turnout = np.broadcast_to(np.asarray(turnout_minutes, dtype=float), (len(att),))
        if not np.all(np.isfinite(turnout) & (turnout >= 0)):
            raise CoverageError("turnout_minutes must be finite numbers >= 0, one per source")
    return turnout * 60.0


def _augmented(
    network: RoadNetwork, src: Attachment, metric: str, direction: str, offsets: np.ndarray
) -> tuple[sp.csr_matrix, np.ndarray, dict[str, np.ndarray]]:
    """Return the CSR with one virtual node per source appended, and the virtual node ids."""
    if direction == "from_facility":
        base = network.csr_time if metric == "time" else network.csr_length
    else:
        base = network.csr_time_reversed if metric == "time" else network.csr_length_reversed
    n, k = network.n_nodes, len(src)
    e = _ends(network, src, metric)
    extra = e["leg"] + offsets
    if direction == "from_facility":  # leave the station: point -> segment ends
        cs, ce = e["out_s"] + extra, e["out_e"] + extra
    else:  # reversed graph: from an end node to the station point
        cs, ce = e["in_s"] + extra, e["in_e"] + extra
    cols = np.column_stack([e["start"], e["end"]])
    vals = np.column_stack([cs, ce])
    ok = np.isfinite(vals)
    counts = ok.sum(axis=1)
    indptr = np.concatenate([base.indptr, base.indptr[-1] + np.cumsum(counts)])
    indices = np.concatenate([base.indices, cols[ok].astype(base.indices.dtype)])
    # explicit zeros are edges for csgraph (a station sitting on a node costs nothing)
    data = np.concatenate([base.data, vals[ok]])
    graph = sp.csr_matrix((data, indices, indptr.astype(base.indptr.dtype)), shape=(n + k, n + k))
    return graph, np.arange(n, n + k), e


def _target_costs(e: dict[str, np.ndarray], direction: str) -> tuple[np.ndarray, np.ndarray]:
    """Cost from (to) each target's segment start / end node, plus its leg."""
    if direction == "from_facility":
        return e["in_s"] + e["leg"], e["in_e"] + e["leg"]
    return e["out_s"] + e["leg"], e["out_e"] + e["leg"]


def _scale(metric: str) -> float:
    return 60.0 if metric == "time" else 1000.0


def nearest(
    network: RoadNetwork,
    sources: Attachment | np.ndarray,
    targets: Attachment | np.ndarray | None = None,
    *,
    metric: str = "time",
    direction: str | None = None,
    turnout_minutes: float | np.ndarray | None = None,
) -> NearestResult:
    """Nearest source and its travel time (or distance) for every node and target, one pass.

    Parameters
    ----------
    network
        The road network.
    sources
        Facilities: an :class:`~covplan.engine.attach.Attachment` or node indices.
    targets
        Places: an Attachment or node indices; None gives node values only.
    metric
        ``"time"`` (minutes) or ``"length"`` (km).
    direction
        ``"to_facility"`` (resident travels to care) or ``"from_facility"`` (vehicle drives
        out); default the mode's ``default_direction``.
    turnout_minutes
        Delay per source (scalar or one per source) added before travel; default the mode's
        ``turnout_minutes``. Ignored for ``metric="length"``.

    Returns
    -------
    NearestResult
    """
    direction = _check(network, metric, direction)
    src = _as_attachment(network, sources)
    if len(src) == 0:
        raise CoverageError("no sources given: at least one facility is needed")
    offsets = _source_offsets(network, src, metric, turnout_minutes)
    graph, virtual, se = _augmented(network, src, metric, direction, offsets)
    dist, _, origin = dijkstra(
        graph, directed=True, indices=virtual, min_only=True, return_predecessors=True
    )
    n = network.n_nodes
    node_value = dist[:n]
    node_source = np.where(origin[:n] >= n, origin[:n] - n, -1)
    scale = _scale(metric)
    if targets is None:
        empty = np.zeros(0)
        return NearestResult(
            node_value / scale, node_source, empty, empty.astype(np.int64), metric, direction
        )
    tgt = _as_attachment(network, targets)
    te = _ends(network, tgt, metric)
    cs, ce = _target_costs(te, direction)
    via_s = node_value[te["start"]] + cs
    via_e = node_value[te["end"]] + ce
    value = np.minimum(via_s, via_e)
    source = np.where(via_s <= via_e, node_source[te["start"]], node_source[te["end"]])
    # a source on the target's own segment: travel along it without reaching a node
    same = np.flatnonzero(tgt.reachable & np.isin(tgt.segment, src.segment[src.reachable]))
    if same.size:
        src_ok = np.flatnonzero(src.reachable)
        by_seg: dict[int, list[int]] = {}
        for j in src_ok:
            by_seg.setdefault(int(src.segment[j]), []).append(int(j))
        for t in same:
            for j in by_seg[int(tgt.segment[t])]:
                if direction == "from_facility":
                    along = _along(src.fraction[j], tgt.fraction[t], te["wf"][t], te["wr"][t])
                else:
                    along = _along(tgt.fraction[t], src.fraction[j], te["wf"][t], te["wr"][t])
                cand = float(along) + te["leg"][t] + se["leg"][j] + offsets[j]
                if cand < value[t]:
                    value[t], source[t] = cand, j
    source = np.where(np.isfinite(value), source, -1)
    return NearestResult(node_value / scale, node_source, value / scale, source, metric, direction)


def reach_matrix(
    network: RoadNetwork,
    sources: Attachment | np.ndarray,
    targets: Attachment | np.ndarray | None = None,
    *,
    cutoff: float,
    metric: str = "time",
    direction: str | None = None,
    turnout_minutes: float | np.ndarray | None = None,
) -> sp.csr_matrix:
    """Sparse source-by-target matrix of values within ``cutoff`` (bounded searches).

    Parameters
    ----------
    network, sources, targets, metric, direction, turnout_minutes
        As in :func:`nearest`; ``targets=None`` means every network node.
    cutoff
        Largest value kept, in minutes (``metric="time"``) or km (``"length"``).

    Returns
    -------
    scipy.sparse.csr_matrix
        ``(n_sources, n_targets)``; entry ``[i, j]`` is the value between source ``i`` and
        target ``j`` when ``<= cutoff``; stored explicitly, so a 0 is a real value.
    """
    direction = _check(network, metric, direction)
    if not (np.isfinite(cutoff) and cutoff >= 0):
        raise CoverageError(f"cutoff must be a finite number >= 0, got {cutoff}")
    src = _as_attachment(network, sources)
    scale = _scale(metric)
    limit = float(cutoff) * scale
    offsets = _source_offsets(network, src, metric, turnout_minutes)
    graph, virtual, se = _augmented(network, src, metric, direction, offsets)
    n, k = network.n_nodes, len(src)
    node_targets = targets is None
    if not node_targets:
        tgt = _as_attachment(network, targets)
        te = _ends(network, tgt, metric)
        cs, ce = _target_costs(te, direction)
        n_t = len(tgt)
    else:
        n_t = n
    batch = max(1, _BATCH_ENTRIES // max(n + k, n_t, 1))
    rows_idx: list[np.ndarray] = []
    rows_val: list[np.ndarray] = []
    counts = np.zeros(k, dtype=np.int64)
    for b0 in range(0, k, batch):
        b1 = min(k, b0 + batch)
        dist = dijkstra(graph, directed=True, indices=virtual[b0:b1], limit=limit)
        if node_targets:
            vals = dist[:, :n]
        else:
            vals = np.minimum(dist[:, te["start"]] + cs, dist[:, te["end"]] + ce)
        for r in range(b1 - b0):
            row = vals[r]
            hit = np.flatnonzero(row <= limit)
            rows_idx.append(hit)
            rows_val.append(row[hit])
            counts[b0 + r] = hit.size
    matrix = _assemble(rows_idx, rows_val, counts, (k, n_t), scale)
    if not node_targets:
        matrix = _same_segment(matrix, src, tgt, se, te, offsets, direction, limit, scale)
    return matrix


def _assemble(
    idx: list[np.ndarray], val: list[np.ndarray], counts: np.ndarray, shape: tuple, scale: float
) -> sp.csr_matrix:
    indptr = np.concatenate([[0], np.cumsum(counts)])
    indices = np.concatenate(idx) if idx else np.zeros(0, dtype=np.int64)
    data = (np.concatenate(val) if val else np.zeros(0)) / scale
    return sp.csr_matrix((data, indices, indptr), shape=shape)


def _same_segment(
    matrix: sp.csr_matrix,
    src: Attachment,
    tgt: Attachment,
    se: dict[str, np.ndarray],
    te: dict[str, np.ndarray],
    offsets: np.ndarray,
    direction: str,
    limit: float,
    scale: float,
) -> sp.csr_matrix:
    """Lower entries where a source and a target share a segment (travel along it)."""
    s_ok = np.flatnonzero(src.reachable)
    t_ok = np.flatnonzero(tgt.reachable)
    common = np.intersect1d(src.segment[s_ok], tgt.segment[t_ok])
    if common.size == 0:
        return matrix
    updates: dict[tuple[int, int], float] = {}
    for seg in common.tolist():
        for i in s_ok[src.segment[s_ok] == seg]:
            for t in t_ok[tgt.segment[t_ok] == seg]:
                if direction == "from_facility":
                    along = _along(src.fraction[i], tgt.fraction[t], te["wf"][t], te["wr"][t])
                else:
                    along = _along(tgt.fraction[t], src.fraction[i], te["wf"][t], te["wr"][t])
                cand = float(along) + te["leg"][t] + se["leg"][i] + offsets[i]
                if cand <= limit:
                    updates[(int(i), int(t))] = cand / scale
    if not updates:
        return matrix
    coo = matrix.tocoo()
    keys = np.array(list(updates), dtype=np.int64).reshape(-1, 2)
    rows = np.concatenate([coo.row, keys[:, 0]])
    cols = np.concatenate([coo.col, keys[:, 1]])
    data = np.concatenate([coo.data, np.fromiter(updates.values(), float, len(updates))])
    order = np.lexsort((data, cols, rows))  # per (row, col): smallest value first
    rows, cols, data = rows[order], cols[order], data[order]
    first = np.ones(rows.size, dtype=bool)
    first[1:] = (rows[1:] != rows[:-1]) | (cols[1:] != cols[:-1])
    rows, cols, data = rows[first], cols[first], data[first]
    indptr = np.concatenate([[0], np.cumsum(np.bincount(rows, minlength=matrix.shape[0]))])
    return sp.csr_matrix((data, cols, indptr), shape=matrix.shape)


def reach_sets(matrix: sp.csr_matrix) -> list[np.ndarray]:
    """Return, per source (row), the indices of the targets it reaches within the cutoff."""
    return [matrix.indices[matrix.indptr[i] : matrix.indptr[i + 1]] for i in range(matrix.shape[0])]
