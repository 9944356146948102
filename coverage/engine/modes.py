"""Travel modes as data: speed tables per OSM road class, maxspeed parsing, Tobler walking.

The shipped modes live in ``coverage/modes/*.toml`` (``walk``, ``drive``, ``ambulance``). A
scenario overrides any key under ``[modes.<name>]``; :func:`parse_modes` merges the overrides
into the shipped tables and reports every problem at once with its key path.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
import tomllib
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from importlib import resources
from typing import Any

import numpy as np
from covplan.errors import InputError, Problem

__all__ = [
    "KNOWN_HIGHWAY_CLASSES",
    "MODE_NAMES",
    "Mode",
    "default_modes",
    "get_mode",
    "parse_maxspeed",
    "parse_modes",
    "tobler_factor",
    "tobler_speed_kmh",
]

#: OSM ``highway`` values a speed table may name (https://wiki.openstreetmap.org/wiki/Key:highway).
KNOWN_HIGHWAY_CLASSES: tuple[str, ...] = (
    "motorway", "motorway_link", "trunk", "trunk_link", "primary", "primary_link",
    "secondary", "secondary_link", "tertiary", "tertiary_link", "unclassified", "residential",
    "living_street", "road", "service", "track", "busway", "bus_guideway", "escape", "raceway",
    "pedestrian", "footway", "path", "steps", "cycleway", "bridleway", "corridor", "elevator",
    "platform", "construction",
)  # fmt: skip

#: The shipped modes, one TOML file each in ``coverage/modes/``.
MODE_NAMES: tuple[str, ...] = ("walk", "drive", "ambulance")

_DIRECTIONS = ("to_facility", "from_facility")
_SLOPES = ("none", "tobler")
_MPH = 1.609344
_KNOTS = 1.852
#: Implicit maxspeed values (``maxspeed=FR:urban`` etc.) that are the same in most of Europe/China.
_ZONE_SPEEDS = {"urban": 50.0, "rural": 90.0, "motorway": 120.0, "trunk": 100.0,
                "living_street": 20.0, "walk": 6.0, "zone30": 30.0, "zone20": 20.0}  # fmt: skip
_NUMBER_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(km/h|kmh|kph|mph|knots)?\s*$")


@dataclass(frozen=True)
class Mode:
    """One travel mode.

    Parameters
    ----------
    name
        ``walk``, ``drive`` or ``ambulance``.
    speeds_kmh
        Speed per OSM ``highway`` class; classes missing from the table are not travelled.
    oneway
        Respect one-way streets (``oneway=yes/true/1/-1``, roundabouts, motorways).
    use_maxspeed
        Use the OSM ``maxspeed`` tag instead of the table when it parses and is plausible.
    maxspeed_plausible_kmh
        ``(low, high)`` bounds outside which a ``maxspeed`` tag is ignored.
    speed_factor
        Multiplies every speed (ambulances drive faster than the car table).
    turnout_minutes
        Delay added at every station before the vehicle moves (ambulance dispatch/turnout).
    on_scene_minutes
        Time spent with the patient before leaving for hospital, in the two-leg response
        (:func:`covplan.engine.response.two_leg_times`).
    access_speed_kmh
        Speed of the straight-line leg between a point and the road it attaches to.
    default_direction
        ``to_facility`` (residents travel to care) or ``from_facility`` (vehicle drives out).
    keep_largest_component
        Keep only the largest strongly connected component of the network.
    slope
        ``tobler`` scales speeds with Tobler's hiking function when an elevation model is
        given; ``none`` ignores slope.
    description
        Free text.
    """

    name: str
    speeds_kmh: Mapping[str, float]
    oneway: bool = True
    use_maxspeed: bool = True
    maxspeed_plausible_kmh: tuple[float, float] = (5.0, 130.0)
    speed_factor: float = 1.0
    turnout_minutes: float = 0.0
    on_scene_minutes: float = 0.0
    access_speed_kmh: float = 5.0
    default_direction: str = "to_facility"
    keep_largest_component: bool = True
    slope: str = "none"
    description: str = field(default="", compare=False)

    def edge_speed_kmh(self, highway: str, maxspeed: object = None) -> float | None:
        """Return the speed on a road of class ``highway`` (None when the mode does not use it).

        Parameters
        ----------
        highway
            OSM ``highway`` value.
        maxspeed
            Raw OSM ``maxspeed`` tag value, used when ``use_maxspeed`` and plausible.
        """
        base = self.speeds_kmh.get(highway)
        if base is None:
            return None
        speed = float(base)
        if self.use_maxspeed and maxspeed is not None:
            parsed = parse_maxspeed(maxspeed)
            low, high = self.maxspeed_plausible_kmh
            if parsed is not None and low <= parsed <= high:
                speed = parsed
        return speed * self.speed_factor

    def settings_key(self) -> str:
        """Return a stable hash of every setting that changes a built network (for caching)."""
        data = asdict(self)
        data.pop("description", None)
        data["speeds_kmh"] = dict(sorted(self.speeds_kmh.items()))
        text = json.dumps(data, sort_keys=True, default=str)
        return hashlib.sha256(text.encode()).hexdigest()[:16]


def parse_maxspeed(value: object) -> float | None:
    """Parse an OSM ``maxspeed`` value to km/h.

    Handles plain numbers, ``mph``/``knots`` units, zone codes such as ``FR:urban`` or
    ``DE:zone30``, and several values separated by ``;`` (the lowest is taken). Returns None
    for ``none``, ``signals``, ``variable`` and anything unparseable.

    Examples
    --------
    >>> parse_maxspeed("50"), parse_maxspeed("30 mph"), parse_maxspeed("FR:urban")
    (50.0, 48.28032, 50.0)
    """
    if value is None:
        return None
    if isinstance(value, int | float) and not isinstance(value, bool):
        v = float(value)
        return v if math.isfinite(v) and v > 0 else None
    if isinstance(value, list | tuple):
        parsed = [p for p in (parse_maxspeed(v) for v in value) if p is not None]
        return min(parsed) if parsed else None
    text = str(value).strip().lower()
    if ";" in text or "|" in text:
        return parse_maxspeed(re.split(r"[;|]", text))
    match = _NUMBER_RE.match(text)
    if match:
        number = float(match.group(1))
        unit = match.group(2)
        if unit == "mph":
            number *= _MPH
        elif unit == "knots":
            number *= _KNOTS
        return number if number > 0 else None
    if ":" in text:
        zone = text.split(":", 1)[1].replace(" ", "")
        return _ZONE_SPEEDS.get(zone)
    return _ZONE_SPEEDS.get(text) if text in ("walk", "living_street") else None


def tobler_speed_kmh(slope: np.ndarray | float) -> np.ndarray:
    """Tobler's hiking function: walking speed in km/h on a slope (rise over run, signed)."""
    return 6.0 * np.exp(-3.5 * np.abs(np.asarray(slope, dtype=float) + 0.05))


def tobler_factor(slope: np.ndarray | float) -> np.ndarray:
    """Tobler speed on ``slope`` divided by the flat-ground speed (1.0 on the flat)."""
    return tobler_speed_kmh(slope) / tobler_speed_kmh(0.0)


def _shipped_tables() -> dict[str, dict[str, Any]]:
    tables = {}
    base = resources.files("covplan.engine") / "modes"
    for name in MODE_NAMES:
        tables[name] = tomllib.loads((base / f"{name}.toml").read_text(encoding="utf-8"))
    return tables


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _validate(name: str, table: Mapping[str, Any], where: str, problems: list[Problem]) -> None:
    """Check one (possibly partial) mode table, appending problems with key paths."""
    known_keys = set(Mode.__dataclass_fields__) - {"name"}

    def bad(path: str, what: str, fix: str = "") -> None:
        problems.append(Problem(path, what, fix))

    for key, value in table.items():
        path = f"{where}.{name}.{key}"
        if key not in known_keys:
            bad(path, "unknown setting", f"known: {', '.join(sorted(known_keys))}")
        elif key == "speeds_kmh":
            if not isinstance(value, Mapping):
                bad(path, f"must be a table of road class = km/h, got {value!r}")
                continue
            for cls, speed in value.items():
                cpath = f"{path}.{cls}"
                if cls not in KNOWN_HIGHWAY_CLASSES:
                    known = ", ".join(KNOWN_HIGHWAY_CLASSES)
                    bad(cpath, f"unknown road class {cls!r}", f"known OSM highway classes: {known}")
                if not _is_number(speed) or speed <= 0:
                    bad(cpath, f"must be a positive number, got {speed!r}")
        elif key in ("speed_factor", "access_speed_kmh"):
            if not _is_number(value) or value <= 0:
                bad(path, f"must be a positive number, got {value!r}")
        elif key in ("turnout_minutes", "on_scene_minutes"):
            if not _is_number(value) or value < 0:
                bad(path, f"must be a number >= 0, got {value!r}")
        elif key in ("oneway", "use_maxspeed", "keep_largest_component"):
            if not isinstance(value, bool):
                bad(path, f"must be true or false, got {value!r}")
        elif key == "maxspeed_plausible_kmh":
            ok = (
                isinstance(value, list | tuple)
                and len(value) == 2
                and all(_is_number(v) and v > 0 for v in value)
                and value[0] < value[1]
            )
            if not ok:
                bad(path, f"must be [low, high] km/h with 0 < low < high, got {value!r}")
        elif key == "default_direction":
            if value not in _DIRECTIONS:
                bad(path, f"must be one of {', '.join(_DIRECTIONS)}, got {value!r}")
        elif key == "slope":
            if value not in _SLOPES:
                bad(path, f"must be one of {', '.join(_SLOPES)}, got {value!r}")
        elif key == "description" and not isinstance(value, str):
            bad(path, f"must be text, got {value!r}")


def _build(name: str, table: Mapping[str, Any]) -> Mode:
    data = dict(table)
    data["speeds_kmh"] = {str(k): float(v) for k, v in data["speeds_kmh"].items()}
    data["maxspeed_plausible_kmh"] = tuple(float(v) for v in data["maxspeed_plausible_kmh"])
    data.setdefault("on_scene_minutes", 0.0)
    for key in ("speed_factor", "turnout_minutes", "on_scene_minutes", "access_speed_kmh"):
        data[key] = float(data[key])
    return Mode(name=name, **data)


def parse_modes(table: Mapping[str, Any] | None, *, where: str = "modes") -> dict[str, Mode]:
    """Merge scenario overrides into the shipped modes and validate them.

    Parameters
    ----------
    table
        The scenario's ``[modes]`` table, e.g. ``{"drive": {"speeds_kmh": {"primary": 70}},
        "ambulance": {"turnout_minutes": 3}}``. ``speeds_kmh`` entries are merged into the
        shipped table (other classes keep their speeds); other keys replace the shipped value.
        None or ``{}`` gives the shipped modes.
    where
        Key path prefix used in error messages.

    Returns
    -------
    dict[str, Mode]
        Every shipped mode, by name, with the overrides applied.

    Raises
    ------
    InputError
        Listing every problem with its key path, e.g.
        ``modes.drive.speeds_kmh.primary: must be a positive number, got -5``; unknown mode
        names and unknown road classes are listed with the known ones.
    """
    shipped = _shipped_tables()
    problems: list[Problem] = []
    table = table or {}
    if not isinstance(table, Mapping):
        raise InputError([Problem(where, f"must be a table of modes, got {table!r}")], source=where)
    for name, override in table.items():
        if name not in shipped:
            problems.append(Problem(f"{where}.{name}", f"unknown mode {name!r}",
                                    f"known modes: {', '.join(MODE_NAMES)}"))  # fmt: skip
        elif not isinstance(override, Mapping):
            what = f"must be a table of settings, got {override!r}"
            problems.append(Problem(f"{where}.{name}", what))
        else:
            _validate(name, override, where, problems)
    if problems:
        raise InputError(problems, source=where)
    modes = {}
    for name, base in shipped.items():
        merged = dict(base)
        override = dict(table.get(name, {}))
        if "speeds_kmh" in override:
            merged["speeds_kmh"] = {**base["speeds_kmh"], **override.pop("speeds_kmh")}
        merged.update(override)
        modes[name] = _build(name, merged)
    return modes


def default_modes() -> dict[str, Mode]:
    """Return the shipped modes (``walk``, ``drive``, ``ambulance``) without overrides."""
    return parse_modes({})


def get_mode(mode: str | Mode, overrides: Mapping[str, Any] | None = None) -> Mode:
    """Return a mode by name (with optional scenario overrides for it), or ``mode`` itself.

    Raises
    ------
    InputError
        If the name is not a shipped mode or an override is invalid.
    """
    if isinstance(mode, Mode):
        return mode
    table = {mode: dict(overrides or {})}
    return parse_modes(table)[mode]
