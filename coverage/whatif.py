"""The one what-if: add, move or close facilities and compare every standard.

A :class:`FacilityChange` says what changes: facilities to add (where, what type, a name),
existing facility ids to close and existing facilities to move. It is the input of every
what-if in the package:

- :func:`what_if` (here) re-audits *every* standard, unit by unit, on the changed facility
  layer, reusing the road networks and the places' attachments, so one question costs a few
  Dijkstra passes;
- :meth:`covplan.siting.session.SitingSession.apply` answers one travel-time standard in about
  a millisecond from its precomputed matrix (:mod:`covplan.siting.whatif` is its engine);
- the app (:func:`covplan.app.cache.evaluate_plan`) runs the whole scenario on
  :func:`changed_access` for its maps and downloads.

New facilities get one id everywhere: ``new-1``, ``new-2``, ... in the order of
:attr:`FacilityChange.add` (:func:`new_facility_id`). A moved facility keeps its id.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import geopandas as gpd
import pandas as pd
from covplan.errors import CoverageError
from covplan.facility_types import FACILITY_TYPES
from covplan.standards.rules import Rule
from shapely.geometry import Point

if TYPE_CHECKING:
    from covplan.engine.access import RoadAccess

__all__ = [
    "NEW_ID_PREFIX",
    "FacilityChange",
    "MovedFacility",
    "NewFacility",
    "ScenarioChange",
    "changed_access",
    "compare_audits",
    "new_facility_id",
    "what_if",
]

#: Facility ids of added facilities: ``new-1``, ``new-2``, ... (see :func:`new_facility_id`).
NEW_ID_PREFIX = "new-"
#: The ``source`` column of added facilities in the changed layer.
NEW_SOURCE = "what-if"
_CRS = "EPSG:4326"
_KEY = ["rule_id", "unit_id"]


def new_facility_id(position: int) -> str:
    """Return the facility id of the ``position``-th added facility (1-based): ``new-<n>``.

    Raises
    ------
    CoverageError
        When ``position`` is below 1.
    """
    if position < 1:
        raise CoverageError(f"new facility positions start at 1, got {position}")
    return f"{NEW_ID_PREFIX}{position}"


def _check_lonlat(lon: float, lat: float, where: str) -> None:
    if not (math.isfinite(lon) and math.isfinite(lat) and -180 <= lon <= 180
            and -90 <= lat <= 90):
        raise CoverageError(
            f"{where}: ({lon}, {lat}) is not a WGS-84 longitude/latitude; longitude must be "
            "within -180..180 and latitude within -90..90"
        )


@dataclass(frozen=True)
class NewFacility:
    """A facility to add: where (WGS-84), what type, and a name shown in outputs."""

    lon: float
    lat: float
    type: str
    name: str = "proposed station"


@dataclass(frozen=True)
class MovedFacility:
    """An existing facility (by id) moved to a new WGS-84 position; it keeps its id."""

    facility_id: str
    lon: float
    lat: float


@dataclass(frozen=True)
class FacilityChange:
    """What a what-if changes: facilities added, closed and moved (hashable, comparable).

    Attributes
    ----------
    add
        Facilities to open; the n-th gets the id ``new-<n>`` (:attr:`new_ids`).
    close
        Ids of existing facilities to close.
    move
        Existing facilities to move (each keeps its id). :meth:`of` also takes a mapping
        ``{facility_id: (lon, lat)}``.

    Lists are stored as tuples. Coordinates, facility types, repeated ids and an id both
    closed and moved are checked here; ids against a facility layer by :meth:`check`.

    Raises
    ------
    CoverageError
        For coordinates outside WGS-84, an unknown facility type, an id closed or moved twice,
        or an id both closed and moved.
    """

    add: tuple[NewFacility, ...] = ()
    close: tuple[str, ...] = ()
    move: tuple[MovedFacility, ...] = field(default=())

    def __post_init__(self) -> None:
        object.__setattr__(self, "add", tuple(self.add))
        object.__setattr__(self, "close", tuple(str(f) for f in self.close))
        moves = self.move
        if isinstance(moves, Mapping):
            moves = [MovedFacility(str(k), float(v[0]), float(v[1])) for k, v in moves.items()]
        object.__setattr__(self, "move", tuple(moves))
        for i, new in enumerate(self.add):
            _check_lonlat(new.lon, new.lat, f"FacilityChange.add[{i}] ({new.name})")
        for m in self.move:
            _check_lonlat(m.lon, m.lat, f"FacilityChange.move[{m.facility_id!r}]")
        bad = sorted({f.type for f in self.add} - set(FACILITY_TYPES))
        if bad:
            raise CoverageError(
                f"unknown facility types {bad}; known types: {', '.join(FACILITY_TYPES)}"
            )
        moved = [m.facility_id for m in self.move]
        for name, ids in (("closed", list(self.close)), ("moved", moved)):
            twice = sorted({f for f in ids if ids.count(f) > 1})
            if twice:
                raise CoverageError(f"facilities {twice} are {name} more than once; list each once")
        both = sorted(set(self.close) & set(moved))
        if both:
            raise CoverageError(
                f"facilities {both} are both closed and moved; a facility is either closed or "
                "moved"
            )

    @classmethod
    def of(
        cls,
        *,
        add: Iterable[NewFacility] = (),
        close: Iterable[str] = (),
        move: Mapping[str, tuple[float, float]] | Iterable[MovedFacility] = (),
    ) -> FacilityChange:
        """Build a change from any iterables; ``move`` may map facility id -> (lon, lat)."""
        if isinstance(move, Mapping):
            moves = tuple(MovedFacility(str(k), float(v[0]), float(v[1]))
                          for k, v in move.items())
        else:
            moves = tuple(move)
        return cls(add=tuple(add), close=tuple(close), move=moves)

    @property
    def new_ids(self) -> tuple[str, ...]:
        """Facility ids of the added facilities, in order: ``("new-1", "new-2", ...)``."""
        return tuple(new_facility_id(i + 1) for i in range(len(self.add)))

    @property
    def moved(self) -> dict[str, tuple[float, float]]:
        """Moved facility id -> its new (lon, lat)."""
        return {m.facility_id: (m.lon, m.lat) for m in self.move}

    @property
    def is_empty(self) -> bool:
        """True when nothing is added, closed or moved."""
        return not (self.add or self.close or self.move)

    def describe(self) -> str:
        """Return a one-line text, e.g. ``add new-1 (hospital at 9.52530, 47.23770); close h2``."""
        parts = []
        if self.add:
            parts.append("add " + ", ".join(
                f"{i} ({f.type} at {f.lon:.5f}, {f.lat:.5f})"
                for i, f in zip(self.new_ids, self.add, strict=True)))
        if self.close:
            parts.append("close " + ", ".join(self.close))
        if self.move:
            parts.append("move " + ", ".join(
                f"{m.facility_id} -> ({m.lon:.5f}, {m.lat:.5f})" for m in self.move))
        return "; ".join(parts) or "no change"

    def check(self, facilities: gpd.GeoDataFrame | AbstractSet[str]) -> None:
        """Check that every closed and moved id is a facility of ``facilities``.

        Parameters
        ----------
        facilities
            The facility layer, or the set of its ``facility_id`` values.

        Raises
        ------
        CoverageError
            Naming the unknown ids.
        """
        known = (facilities if isinstance(facilities, AbstractSet)
                 else set(facilities["facility_id"]))
        for verb, ids in (("close", self.close), ("move", [m.facility_id for m in self.move])):
            unknown = sorted(set(ids) - known)
            if unknown:
                raise CoverageError(
                    f"cannot {verb} unknown facilities {unknown}; check the facility_id "
                    "(existing facilities only)"
                )

    def new_facilities(self, crs: object = _CRS) -> gpd.GeoDataFrame:
        """Return the added facilities as a layer: facility_id (``new-<n>``), name, type, source."""
        layer = gpd.GeoDataFrame(
            {
                "facility_id": list(self.new_ids),
                "name": [f.name for f in self.add],
                "type": [f.type for f in self.add],
                "source": NEW_SOURCE,
            },
            geometry=[Point(f.lon, f.lat) for f in self.add],
            crs=_CRS,
        )
        return layer if crs is None or layer.crs == crs else layer.to_crs(crs)

    def apply(self, facilities: gpd.GeoDataFrame) -> gpd.GeoDataFrame:
        """Return a new facility layer: closed removed, moved relocated, added appended.

        ``facilities`` is not changed; the result has its CRS (EPSG:4326 if it has none).

        Raises
        ------
        CoverageError
            For an unknown closed or moved id, or an added id already in the layer.
        """
        self.check(facilities)
        crs = facilities.crs or _CRS
        taken = sorted(set(self.new_ids) & set(facilities["facility_id"]))
        if taken:
            raise CoverageError(
                f"the facility layer already has facilities {taken}; ids {NEW_ID_PREFIX}<n> are "
                "kept for added facilities (apply a change to the original layer, not twice)"
            )
        kept = facilities[~facilities["facility_id"].isin(self.close)].copy()
        if self.move:
            moved = self.moved
            where = kept["facility_id"].isin(list(moved))
            points = gpd.GeoSeries(
                [Point(*moved[f]) for f in kept.loc[where, "facility_id"]], crs=_CRS
            ).to_crs(crs)
            kept.loc[where, kept.geometry.name] = points.to_numpy()
        if self.add:
            new = self.new_facilities(crs)
            if new.geometry.name != kept.geometry.name:
                new = new.rename_geometry(kept.geometry.name)
            both = pd.concat([kept, new], ignore_index=True)
        else:
            both = kept.reset_index(drop=True)
        return gpd.GeoDataFrame(both, geometry=kept.geometry.name, crs=crs)


@dataclass(frozen=True)
class ScenarioChange:
    """Every standard before and after a change.

    Attributes
    ----------
    change
        The change asked.
    facilities
        The changed facility layer (GeoDataFrame, EPSG:4326 like the inputs).
    new_facilities
        The added facilities (ids ``new-<n>``), a GeoDataFrame in the same CRS.
    units
        One row per rule and unit: status_before, status_after, covered_before,
        covered_after, delta (covered population), value_before, value_after, changed.
    summary
        One row per rule: units passing before/after, covered population before/after, delta.
    """

    change: FacilityChange
    facilities: gpd.GeoDataFrame
    new_facilities: gpd.GeoDataFrame
    units: pd.DataFrame
    summary: pd.DataFrame


def changed_access(access: RoadAccess, change: FacilityChange) -> RoadAccess:
    """Return an access whose facilities are ``change`` applied to ``access``'s facilities.

    The road networks and the places' attachments are ``access``'s (shared, never changed);
    only the changed facility layer is attached anew. ``result.inputs`` are the changed
    inputs (run a scenario on them for maps and downloads).
    """
    return access.with_facilities(change.apply(access.inputs.facilities))


def compare_audits(before: pd.DataFrame, after: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Join two per-unit audit tables; return (per unit and rule, per rule) comparisons."""
    cols = ["status", "covered_population", "value"]
    joined = before[[*_KEY, "unit_name", "population", *cols]].merge(
        after[[*_KEY, *cols]], on=_KEY, suffixes=("_before", "_after"), how="outer"
    )
    joined = joined.rename(
        columns={"covered_population_before": "covered_before",
                 "covered_population_after": "covered_after"}
    )
    joined["delta"] = joined["covered_after"] - joined["covered_before"]
    joined["changed"] = (joined["status_before"] != joined["status_after"]) | (
        joined["delta"].fillna(0).abs() > 1e-9
    )
    grouped = joined.groupby("rule_id", sort=False)
    summary = pd.DataFrame(
        {
            "units_pass_before": grouped["status_before"].apply(lambda s: int((s == "pass").sum())),
            "units_pass_after": grouped["status_after"].apply(lambda s: int((s == "pass").sum())),
            "covered_before": grouped["covered_before"].sum(min_count=1),
            "covered_after": grouped["covered_after"].sum(min_count=1),
        }
    ).reset_index()
    summary["delta"] = summary["covered_after"] - summary["covered_before"]
    return joined, summary


def what_if(
    access: RoadAccess,
    rules: Sequence[Rule],
    change: FacilityChange,
    *,
    base_audit: pd.DataFrame | None = None,
) -> ScenarioChange:
    """Re-audit every standard with ``change`` applied, against the baseline audit.

    Parameters
    ----------
    access
        The scenario's road access (its networks are reused, not changed).
    rules
        The scenario's rules.
    change
        Facilities to add, close and move.
    base_audit
        The per-unit table of the baseline audit (``RunResult.unit_results`` of a run on
        ``access``); None audits ``access``'s own facilities first.

    Returns
    -------
    ScenarioChange

    Raises
    ------
    CoverageError
        For an unknown closed or moved facility id.
    """
    from covplan.standards.audit import run_audit

    registered = set(access.inputs.facilities["type"].astype(str))

    def audit(acc: RoadAccess) -> pd.DataFrame:
        inputs = acc.inputs
        return run_audit(rules, facilities=inputs.facilities, units=inputs.units,
                         places=inputs.places, access=acc,
                         registered_types=registered | set(inputs.facilities["type"])).units

    changed = changed_access(access, change)
    before = audit(access) if base_audit is None else base_audit
    units, summary = compare_audits(before, audit(changed))
    facilities = changed.inputs.facilities
    return ScenarioChange(
        change=change, facilities=facilities,
        new_facilities=facilities[facilities["facility_id"].isin(change.new_ids)]
        .reset_index(drop=True),
        units=units, summary=summary,
    )
