"""Reading the ways a travel mode uses from an OpenStreetMap extract (``.osm.pbf`` / ``.osm``).

One pass with pyosmium keeps the ways with a ``highway`` class in the mode's speed table that
the mode may use (``access``, ``foot``, ``motor_vehicle``, ``service`` tags) and the directions
it may travel them in (``oneway``, roundabouts, motorways).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from covplan.engine.modes import Mode
from covplan.errors import CoverageError

__all__ = ["Ways", "read_osm"]

_ONEWAY_YES = ("yes", "true", "1")
_ONEWAY_REV = ("-1", "reverse")
_MOTOR_OK = ("yes", "destination", "designated", "permissive", "delivery")
_FOOT_OK = ("yes", "designated", "permissive", "destination")
_SERVICE_NO_CAR = ("parking_aisle", "parking", "driveway", "private", "emergency_access")


@dataclass
class Ways:
    """The ways a mode travels on: per-way attributes and their node refs concatenated.

    Attributes
    ----------
    ids, highway, maxspeed
        OSM id, ``highway`` class and ``maxspeed`` tag of each way.
    fwd, rev
        Whether the mode may travel each way in its direction and backwards.
    speed
        Speed of each way in km/h (the mode's table and ``maxspeed``).
    refs, lon, lat
        OSM node id and lon/lat of every node of every way, way after way.
    starts
        Where each way's nodes begin in ``refs`` (``len(ids) + 1`` offsets, the last one
        ``len(refs)``).
    """

    ids: list[int] = field(default_factory=list)
    highway: list[str] = field(default_factory=list)
    maxspeed: list[str | None] = field(default_factory=list)
    fwd: list[bool] = field(default_factory=list)
    rev: list[bool] = field(default_factory=list)
    speed: list[float] = field(default_factory=list)
    refs: list[int] = field(default_factory=list)
    lon: list[float] = field(default_factory=list)
    lat: list[float] = field(default_factory=list)
    starts: list[int] = field(default_factory=lambda: [0])


def _way_allowed(mode: Mode, tags: Any, highway: str) -> bool:
    """Return whether the mode may use a way at all (area, access, foot/motor and service tags)."""
    if tags.get("area") == "yes":
        return False
    access = tags.get("access")
    if mode.name == "walk":
        foot = tags.get("foot")
        if foot == "no":
            return False
        return not (access in ("no", "private") and foot not in _FOOT_OK)
    motor = tags.get("motor_vehicle") or tags.get("motorcar")
    if motor == "no":
        return False
    if access in ("no", "private") and motor not in _MOTOR_OK:
        return False
    service = tags.get("service")
    if highway == "service" and service in _SERVICE_NO_CAR:
        return mode.name == "ambulance" and service == "emergency_access"
    return True


def _directions(mode: Mode, tags: Any, highway: str) -> tuple[bool, bool]:
    """Return (forward allowed, backward allowed) of a way for the mode."""
    if not mode.oneway:
        return True, True
    oneway = (tags.get("oneway") or "").lower()
    if oneway in _ONEWAY_YES:
        return True, False
    if oneway in _ONEWAY_REV:
        return False, True
    if oneway == "no":
        return True, True
    if tags.get("junction") in ("roundabout", "circular") or highway == "motorway":
        return True, False
    return True, True


def read_osm(path: Path, mode: Mode) -> Ways:
    """Read the ways of a mode from an ``.osm.pbf`` / ``.osm`` file with pyosmium (one pass).

    Ways whose ``highway`` class has no speed in the mode's table, that the mode may not use
    (:func:`_way_allowed`) or that have fewer than two distinct located nodes are left out.

    Parameters
    ----------
    path
        The OSM extract.
    mode
        The travel mode (speed table, one-way rules).

    Returns
    -------
    Ways
        The kept ways.

    Raises
    ------
    CoverageError
        If the file cannot be read or holds no road of the mode.
    """
    import osmium

    ways = Ways()
    try:
        processor = (
            osmium.FileProcessor(str(path), osmium.osm.NODE | osmium.osm.WAY)
            .with_locations()
            .with_filter(osmium.filter.EntityFilter(osmium.osm.WAY))
            .with_filter(osmium.filter.KeyFilter("highway"))
        )
        for w in processor:
            tags = w.tags
            highway = tags.get("highway")
            speed = mode.edge_speed_kmh(highway, tags.get("maxspeed"))
            if speed is None or not _way_allowed(mode, tags, highway):
                continue
            pts = [(n.ref, n.lon, n.lat) for n in w.nodes if n.location.valid()]
            # drop repeated consecutive refs (zero-length pieces)
            pts = [p for i, p in enumerate(pts) if i == 0 or p[0] != pts[i - 1][0]]
            if len(pts) < 2:
                continue
            fwd, rev = _directions(mode, tags, highway)
            ways.ids.append(w.id)
            ways.highway.append(highway)
            ways.maxspeed.append(tags.get("maxspeed"))
            ways.fwd.append(fwd)
            ways.rev.append(rev)
            ways.speed.append(speed)
            for ref, lon, lat in pts:
                ways.refs.append(ref)
                ways.lon.append(lon)
                ways.lat.append(lat)
            ways.starts.append(len(ways.refs))
    except RuntimeError as exc:  # osmium reports unreadable files as RuntimeError
        raise CoverageError(
            f"cannot read OSM file {path}: {exc}; give an .osm.pbf or .osm XML extract "
            "(for example from download.geofabrik.de)"
        ) from exc
    if not ways.ids:
        raise CoverageError(
            f"no {mode.name} roads in {path}: none of its ways has a highway class in the "
            f"{mode.name} speed table ({', '.join(mode.speeds_kmh)})"
        )
    return ways

