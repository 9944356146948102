"""The public functions: thin shells over the layers, in the order of the data flow.

scenario -> :func:`load_scenario` -> :func:`run_scenario` -> :func:`write_outputs`, or piece by
piece: :func:`build_network` (a file or an osmnx graph), :func:`travel_times`, :func:`audit`,
:func:`what_if`, :func:`propose`. Layers go in and come out as GeoDataFrames in EPSG:4326.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import geopandas as gpd
import networkx as nx
import numpy as np
from covplan.engine.access import (
    DEFAULT_BUFFER_M,
    DEFAULT_MAX_SNAP_M,
    RoadAccess,
    access_for_networks,
)
from covplan.engine.attach import attach
from covplan.engine.modes import Mode
from covplan.engine.network import RoadNetwork, network_from_graph
from covplan.engine.network import build_network as _build_from_file
from covplan.engine.routing import nearest
from covplan.errors import InputError, Problem
from covplan.inputs.layers import Inputs
from covplan.outputs import write_outputs
from covplan.pipeline import run_scenario
from covplan.scenario import load_scenario
from covplan.siting.session import Proposal, SitingSession
from covplan.standards.audit import AuditResult, run_audit
from covplan.standards.rules import Rule
from covplan.whatif import what_if

__all__ = [
    "audit",
    "build_network",
    "load_scenario",
    "propose",
    "run_scenario",
    "travel_times",
    "what_if",
    "write_outputs",
]

_METRIC_COLUMN = {"time": "minutes", "length": "km"}


def build_network(
    source: str | Path | nx.MultiDiGraph,
    *,
    mode: str | Mode = "drive",
    study_area: Any = None,
    buffer_m: float = DEFAULT_BUFFER_M,
    dem: str | Path | None = None,
) -> RoadNetwork:
    """Return the road network of a travel mode, from a file or an osmnx graph in memory.

    Parameters
    ----------
    source
        A ``.osm.pbf``/``.osm``/``.graphml`` file, or an osmnx-style ``MultiDiGraph`` (for
        example from ``osmnx.graph_from_place``).
    mode
        ``"walk"``, ``"drive"``, ``"ambulance"`` or a :class:`~covplan.engine.modes.Mode`.
    study_area, buffer_m
        Keep the roads within this lon/lat polygon grown by ``buffer_m`` metres.
    dem
        An elevation model for slope-aware walking (files only).
    """
    if isinstance(source, nx.MultiDiGraph):
        return network_from_graph(source, mode=mode, study_area=study_area, buffer_m=buffer_m)
    return _build_from_file(source, mode=mode, study_area=study_area, buffer_m=buffer_m, dem=dem)


def travel_times(
    network: RoadNetwork,
    facilities: gpd.GeoDataFrame,
    places: gpd.GeoDataFrame,
    *,
    metric: str = "time",
    max_snap_m: float = DEFAULT_MAX_SNAP_M,
) -> gpd.GeoDataFrame:
    """Return every place with its nearest facility by road and the minutes (or km) to it.

    Parameters
    ----------
    network
        From :func:`build_network`.
    facilities, places
        Point layers; ``facilities`` needs ``facility_id``.
    metric
        ``"time"`` (column ``minutes``) or ``"length"`` (column ``km``).
    max_snap_m
        Points farther than this from a road are unreachable (``inf``, no facility).

    Returns
    -------
    GeoDataFrame
        The places' columns plus ``facility_id`` and ``minutes`` or ``km``, EPSG:4326.

    Raises
    ------
    InputError
        For an unknown metric or a facilities layer without ``facility_id`` (also a
        ValueError).
    """
    problems = []
    if metric not in _METRIC_COLUMN:
        problems.append(Problem("metric", f"unknown metric {metric!r}", "use 'time' or 'length'"))
    if "facility_id" not in facilities.columns:
        problems.append(Problem("facilities", "no facility_id column",
                                "load them with covplan.inputs.loaders.load_facilities"))
    if problems:
        raise InputError(problems, source="travel_times")
    sources = attach(network, facilities, max_snap_m=max_snap_m)
    targets = attach(network, places, max_snap_m=max_snap_m)
    out = places.to_crs(4326).copy()
    value = np.full(len(out), np.inf)
    nearest_id = np.full(len(out), None, dtype=object)
    if sources.reachable.any():
        result = nearest(network, sources.subset(sources.reachable), targets, metric=metric)
        ids = facilities["facility_id"].to_numpy()[sources.reachable]
        found = result.source >= 0
        value = np.where(found, result.value, np.inf)
        nearest_id = np.where(found, ids[np.clip(result.source, 0, None)], None)
    out["facility_id"] = nearest_id
    out[_METRIC_COLUMN[metric]] = value
    return out


def audit(
    rules: Sequence[Rule],
    *,
    facilities: gpd.GeoDataFrame,
    units: gpd.GeoDataFrame,
    places: gpd.GeoDataFrame,
    networks: Mapping[str, RoadNetwork] | RoadNetwork | None = None,
    max_snap_m: float = DEFAULT_MAX_SNAP_M,
) -> AuditResult:
    """Check standards unit by unit on road networks already built.

    Parameters
    ----------
    rules
        From :func:`covplan.standards.load_preset` or :func:`covplan.standards.parse_standards`.
    facilities, units, places
        The canonical layers (as :mod:`covplan.inputs.loaders` returns them).
    networks
        Mode name -> network, or one network (used for its own mode); None when no rule
        measures travel.
    max_snap_m
        Points farther than this from a road are unreachable.
    """
    access: RoadAccess | None = None
    if networks is not None:
        by_mode = {networks.mode.name: networks} if isinstance(networks, RoadNetwork) else networks
        access = access_for_networks(by_mode, Inputs(facilities, units, places),
                                     max_snap_m=max_snap_m)
    return run_audit(rules, facilities=facilities, units=units, places=places, access=access)


def propose(
    access: RoadAccess,
    rules: Sequence[Rule],
    n_sites: int,
    *,
    method: str = "mclp",
    rule_id: str | None = None,
    spacing_m: float = 500.0,
) -> Proposal:
    """Propose ``n_sites`` new sites for a travel-time standard (MCLP, LSCP or p-median).

    Parameters
    ----------
    access
        The road access of a scenario (:func:`covplan.pipeline.road_access`).
    rules
        The scenario's rules.
    n_sites
        How many new sites.
    method
        ``"mclp"``, ``"lscp"`` or ``"pmedian"``.
    rule_id
        The travel-time standard to site for (default the first).
    spacing_m
        Candidate grid spacing in metres.

    Returns
    -------
    Proposal
        ``sites`` is a GeoDataFrame (EPSG:4326) of the proposed sites, ranked.
    """
    session = SitingSession.from_access(access, rules, rule_id=rule_id, spacing_m=spacing_m)
    return session.propose(n_sites, method=method)
