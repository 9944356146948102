"""Emergency response as it runs: two legs (station -> patient -> hospital) and backup cover.

:func:`two_leg_times` measures, for every population place, the whole response of an
ambulance: leg 1 from the nearest station to the patient (``from_facility``, with the mode's
turnout delay), the on-scene time (the mode's ``on_scene_minutes``), and leg 2 from the patient
to the nearest receiving hospital (``to_facility``). Each leg is one multi-source Dijkstra
(:func:`covplan.engine.routing.nearest`), so the cost is two searches whatever the number of
stations and hospitals.

:func:`nearest_k` gives the ``k`` nearest sources of every place within a cutoff (``k = 2``:
the backup station when the nearest is busy). It runs one bounded Dijkstra per source
(:func:`covplan.engine.routing.reach_matrix`, ``limit`` = the cutoff, so each search stops at
the threshold) and keeps the ``k`` smallest values per place with one sort of the sparse
entries.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from covplan.engine.attach import Attachment
from covplan.engine.modes import Mode
from covplan.engine.network import RoadNetwork
from covplan.engine.routing import nearest, reach_matrix
from covplan.errors import CoverageError

__all__ = ["TWO_LEG_COLUMNS", "nearest_k", "two_leg_times"]

#: Columns of :func:`two_leg_times`, in order.
TWO_LEG_COLUMNS: tuple[str, ...] = (
    "leg1_minutes", "station_id", "on_scene", "leg2_minutes", "hospital_id", "total_minutes",
)  # fmt: skip


def _ids(ids: Sequence[object] | None, n: int, name: str) -> np.ndarray:
    if ids is None:
        return np.arange(n, dtype=object)
    arr = np.asarray(list(ids), dtype=object)
    if arr.size != n:
        raise CoverageError(
            f"{name}: {arr.size} ids for {n} points; give one id per point, in the same order"
        )
    return arr


def _count(points: Attachment | np.ndarray) -> int:
    return len(points) if isinstance(points, Attachment) else int(np.asarray(points).size)


def two_leg_times(
    network: RoadNetwork,
    stations: Attachment | np.ndarray,
    hospitals: Attachment | np.ndarray,
    places: Attachment | np.ndarray,
    mode: Mode | None = None,
    *,
    station_ids: Sequence[object] | None = None,
    hospital_ids: Sequence[object] | None = None,
) -> pd.DataFrame:
    """Station -> patient -> receiving hospital, per place: each leg and the total.

    Parameters
    ----------
    network
        The road network the ambulance drives on (one-way streets apply to both legs).
    stations
        Ambulance stations: an :class:`~covplan.engine.attach.Attachment` or node indices.
    hospitals
        Receiving hospitals (with an emergency department), same forms.
    places
        Population places (patients), same forms.
    mode
        Where ``turnout_minutes`` (added to leg 1) and ``on_scene_minutes`` come from;
        default ``network.mode``.
    station_ids, hospital_ids
        Labels of the stations and hospitals for the ``station_id`` / ``hospital_id``
        columns; default their positions (0, 1, ...).

    Returns
    -------
    pandas.DataFrame
        One row per place, in order, columns :data:`TWO_LEG_COLUMNS`: ``leg1_minutes``
        (turnout + drive from the nearest station), ``station_id``, ``on_scene`` (minutes),
        ``leg2_minutes`` (drive to the nearest hospital), ``hospital_id`` and
        ``total_minutes`` (their sum). A leg that cannot be driven is ``inf`` with id None,
        and so is the total.

    Raises
    ------
    CoverageError
        When there are no stations or no hospitals, or the id lists do not match.
    """
    mode = mode or network.mode
    n_st, n_h = _count(stations), _count(hospitals)
    if n_st == 0:
        raise CoverageError("two_leg_times: no stations given: at least one is needed")
    if n_h == 0:
        raise CoverageError(
            "two_leg_times: no receiving hospitals given: name hospital types, or flag "
            "hospitals with emergency_dept (是否设急诊) in the facility file"
        )
    sids = _ids(station_ids, n_st, "station_ids")
    hids = _ids(hospital_ids, n_h, "hospital_ids")
    leg1 = nearest(network, stations, places, direction="from_facility",
                   turnout_minutes=mode.turnout_minutes)
    leg2 = nearest(network, hospitals, places, direction="to_facility", turnout_minutes=0.0)
    ok1, ok2 = leg1.source >= 0, leg2.source >= 0
    v1 = np.where(ok1, leg1.value, np.inf)
    v2 = np.where(ok2, leg2.value, np.inf)
    on_scene = float(mode.on_scene_minutes)
    return pd.DataFrame({
        "leg1_minutes": v1,
        "station_id": np.where(ok1, sids[np.clip(leg1.source, 0, None)], None),
        "on_scene": np.full(v1.size, on_scene),
        "leg2_minutes": v2,
        "hospital_id": np.where(ok2, hids[np.clip(leg2.source, 0, None)], None),
        "total_minutes": v1 + on_scene + v2,
    }, columns=list(TWO_LEG_COLUMNS))


def nearest_k(
    network: RoadNetwork,
    sources: Attachment | np.ndarray,
    targets: Attachment | np.ndarray,
    *,
    k: int = 2,
    cutoff: float,
    direction: str | None = None,
    turnout_minutes: float | np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Return the ``k`` nearest sources of every target within ``cutoff`` minutes.

    Parameters
    ----------
    network
        The road network.
    sources, targets
        Facilities and places: Attachments or node indices.
    k
        How many nearest sources to keep (2: nearest and backup).
    cutoff
        Largest travel time kept, minutes; a source farther than this does not count.
    direction, turnout_minutes
        As in :func:`covplan.engine.routing.nearest` (default the mode's).

    Returns
    -------
    minutes, source
        Arrays of shape ``(n_targets, k)``: column ``j`` is the ``j+1``-th smallest time and
        that source's position (``inf`` / ``-1`` when fewer than ``j+1`` sources lie within
        the cutoff). Ties go to the lower source position.
    """
    if k < 1:
        raise CoverageError(f"nearest_k: k must be >= 1, got {k}")
    n_t = _count(targets)
    minutes = np.full((n_t, k), np.inf)
    source = np.full((n_t, k), -1, dtype=np.int64)
    if _count(sources) == 0 or n_t == 0:
        return minutes, source
    matrix = reach_matrix(network, sources, targets, cutoff=cutoff, metric="time",
                          direction=direction, turnout_minutes=turnout_minutes).tocoo()
    order = np.lexsort((matrix.row, matrix.data, matrix.col))  # per target: fastest first
    col, row, val = matrix.col[order], matrix.row[order], matrix.data[order]
    if col.size == 0:
        return minutes, source
    first = np.r_[0, np.flatnonzero(col[1:] != col[:-1]) + 1]
    start = np.repeat(first, np.diff(np.r_[first, col.size]))
    rank = np.arange(col.size) - start
    keep = rank < k
    minutes[col[keep], rank[keep]] = val[keep]
    source[col[keep], rank[keep]] = row[keep]
    return minutes, source
