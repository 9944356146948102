"""The inputs of an audit, with the look-ups every rule needs (levels, unit of each place...).

Rules do not join layers themselves: they ask a :class:`Layers` object which unit of a level
contains a place or a facility, what a unit's population is, and how far the nearest facility
is. Results of those questions are cached, so an audit of many rules measures each
(facility types, mode, metric) combination once.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Mapping
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
from covplan.errors import CoverageError
from covplan.standards.access import Access

__all__ = ["ABSTRACT_LEVELS", "Layers"]

#: Level names presets use, with the data level names each one matches. When none of them is
#: a level of the data, the rule is not moved to another level: it is reported
#: ``cannot_check`` (:meth:`Layers.missing_level`), and the user maps the level explicitly
#: (``levels={"village": "parish"}``, or ``level = "parish"`` on the rule).
ABSTRACT_LEVELS: dict[str, tuple[str, ...]] = {
    "county": ("county", "district", "区县", "县", "区"),
    "township": ("township", "town", "乡镇", "镇街", "街道", "镇"),
    "village": ("village", "community", "村", "社区", "村（社区）"),
}


class Layers:
    """Facilities, units and places of one region, and cached look-ups between them.

    Parameters
    ----------
    facilities
        Facility layer (``facility_id``, ``name``, ``type``; Point geometry; optional
        ``unit_id`` naming the unit that contains it, used instead of a spatial join).
    units
        Administrative units (``unit_id``, ``name``, ``level``, ``parent_id``, ``population``,
        optional ``urban_rural``; polygon geometry, may be missing when facilities carry
        ``unit_id``).
    places
        Population places (``place_id``, ``unit_id`` of the finest unit, ``population``,
        ``urban_rural``).
    access
        Nearest-facility values (see :class:`covplan.standards.access.Access`); only rules
        that measure travel need it.
    levels
        Map from rule level names (e.g. ``"township"``) to level names in ``units``; overrides
        the automatic matching described in :data:`ABSTRACT_LEVELS`.
    registered_types
        Facility types the facility file holds (default: those of ``facilities``); a what-if
        passes the types before its change.
    """

    def __init__(
        self,
        *,
        facilities: gpd.GeoDataFrame,
        units: gpd.GeoDataFrame,
        places: gpd.GeoDataFrame,
        access: Access | None = None,
        levels: Mapping[str, str] | None = None,
        registered_types: Collection[str] | None = None,
    ) -> None:
        _require(facilities, "facilities", ("facility_id", "type"))
        _require(units, "units", ("unit_id", "name", "level"))
        _require(places, "places", ("place_id", "unit_id", "population"))
        self.facilities = facilities.copy()
        self.facilities["facility_id"] = self.facilities["facility_id"].astype(str)
        self.units = units.copy()
        self.units["unit_id"] = self.units["unit_id"].astype(str)
        if "parent_id" not in self.units.columns:
            self.units["parent_id"] = None
        self.units["parent_id"] = [
            None if _missing(p) else str(p) for p in self.units["parent_id"]
        ]
        self.places = places.copy()
        self.places["place_id"] = self.places["place_id"].astype(str)
        self.places["unit_id"] = self.places["unit_id"].astype(str)
        self.places["population"] = pd.to_numeric(self.places["population"]).astype(float)
        if "urban_rural" not in self.places.columns:
            self.places["urban_rural"] = None
        self.access = access
        self.level_map = dict(levels or {})
        #: Facility types of the facility file: a rule whose types are not among them cannot be
        #: checked. A what-if passes the types before its change, so that closing every
        #: hospital makes a standard fail rather than uncheckable.
        self.registered_types = frozenset(
            map(str, registered_types if registered_types is not None
                else self.facilities["type"].astype(str))
        )
        self._ancestors = self._build_ancestors()
        self._cache: dict[Any, Any] = {}

    # ----------------------------------------------------------------------------- levels
    def data_levels(self) -> list[str]:
        """Return the level names in ``units``, coarsest first (by depth in the parent tree)."""
        depth = {uid: len(anc) - 1 for uid, anc in self._ancestors.items()}
        levels = self.units.assign(_d=self.units["unit_id"].map(depth))
        order = levels.groupby("level")["_d"].min().sort_values(kind="stable")
        return [str(x) for x in order.index]

    def resolve_level(self, level: str | None) -> list[str]:
        """Return the data levels a rule level names (all levels when ``level`` is None).

        An abstract level (:data:`ABSTRACT_LEVELS`) none of whose names is a level of the data
        gives an empty list: the rule cannot be checked (see :meth:`missing_level`), it is never
        moved to another level.

        Raises
        ------
        CoverageError
            If the level is neither a data level, nor mapped, nor one of
            :data:`ABSTRACT_LEVELS`.
        """
        data = self.data_levels()
        if level is None:
            return data
        if level in self.level_map:
            return [self.level_map[level]]
        if level in data:
            return [level]
        if level in ABSTRACT_LEVELS:
            return [alias for alias in ABSTRACT_LEVELS[level] if alias in data][:1]
        raise CoverageError(
            f"level {level!r} is not a level of the units (levels: {data}); name one of them, "
            f"one of {sorted(ABSTRACT_LEVELS)}, or map it with levels={{{level!r}: ...}}"
        )

    def missing_level(self, level: str | None) -> str | None:
        """Return why a rule at ``level`` cannot be checked (None when the data has the level)."""
        if level is None or self.resolve_level(level):
            return None
        return (
            f"no units of level {level!r} in the data (levels: {', '.join(self.data_levels())}): "
            f"add a [[inputs.units]] table with level = {level!r}, or set level = \"<a data "
            "level>\" on the rule if that level is meant"
        )

    def ancestor(self, unit_id: str, level: str) -> str | None:
        """Return the unit of ``level`` above (or equal to) ``unit_id``, None when none is."""
        return self._ancestors.get(str(unit_id), {}).get(level)

    def units_at(self, level: str) -> gpd.GeoDataFrame:
        """Return the units of one data level, with ``population`` and ``urban_rural`` filled.

        ``population`` is the unit's own value when given, else the sum of its places
        (``population_source`` says which). ``urban_rural`` is the unit's own class when given,
        else the class of the majority of its places' residents.
        """
        key = ("units_at", level)
        if key not in self._cache:
            units = self.units[self.units["level"] == level].copy()
            place_unit = self.place_unit(level)
            pop_by_unit = self.places.groupby(place_unit.reindex(self.places["place_id"]).values)[
                "population"
            ].sum()
            own = (
                pd.to_numeric(units["population"], errors="coerce")
                if "population" in units.columns
                else pd.Series(np.nan, index=units.index)
            )
            from_places = units["unit_id"].map(pop_by_unit).fillna(0.0)
            units["population_source"] = np.where(own.notna(), "unit", "places")
            units["population"] = own.where(own.notna(), from_places).astype(float)
            majority = self._majority_classes(place_unit)
            own_ur = (
                units["urban_rural"]
                if "urban_rural" in units.columns
                else pd.Series(None, index=units.index, dtype=object)
            )
            units["urban_rural"] = [
                ur if ur in ("urban", "rural") else majority.get(uid)
                for uid, ur in zip(units["unit_id"], own_ur, strict=True)
            ]
            if "unit_kind" not in units.columns:
                from covplan.inputs.unit_kinds import classify_unit_kinds

                kinds = classify_unit_kinds(units)
                units["unit_kind"] = kinds["unit_kind"]
                units["kind_source"] = kinds["kind_source"]
            self._cache[key] = units
        return self._cache[key]

    def place_unit(self, level: str) -> pd.Series:
        """Return the unit of ``level`` containing each place (index ``place_id``; NaN if none)."""
        key = ("place_unit", level)
        if key not in self._cache:
            up = {uid: anc.get(level) for uid, anc in self._ancestors.items()}
            self._cache[key] = pd.Series(
                self.places["unit_id"].map(up).to_numpy(), index=self.places["place_id"].to_numpy()
            )
        return self._cache[key]

    def facility_unit(self, level: str) -> pd.Series:
        """Return the unit of ``level`` containing each facility (index ``facility_id``).

        Uses the facilities' ``unit_id`` column when present (mapped up the parent tree),
        else a point-in-polygon join with the units of that level.
        """
        key = ("facility_unit", level)
        if key in self._cache:
            return self._cache[key]
        fac = self.facilities
        if fac.empty:
            result = pd.Series([], index=pd.Index([], dtype=object), dtype=object)
        elif "unit_id" in fac.columns and fac["unit_id"].notna().any():
            up = {uid: anc.get(level) for uid, anc in self._ancestors.items()}
            values = fac["unit_id"].map(lambda u: None if _missing(u) else up.get(str(u)))
            result = pd.Series(values.to_numpy(), index=fac["facility_id"].to_numpy())
            # a unit_id of a coarser level (a township code given for a village-level rule):
            # the polygons of the level decide, when there are any
            unknown = result.isna().to_numpy()
            units = self.units[self.units["level"] == level]
            if (unknown.any() and "geometry" in fac.columns and "geometry" in units.columns
                    and not units.geometry.isna().all()):
                joined = gpd.sjoin(
                    fac.loc[unknown, ["facility_id", "geometry"]].to_crs(units.crs),
                    units[["unit_id", "geometry"]], how="left", predicate="intersects",
                ).drop_duplicates("facility_id")
                result = result.copy()
                result.loc[joined["facility_id"].to_numpy()] = joined["unit_id"].to_numpy()
        else:
            units = self.units[self.units["level"] == level]
            if "geometry" not in units.columns or units.geometry.isna().all():
                raise CoverageError(
                    f"units of level {level!r} have no geometry, and facilities have no "
                    "unit_id column: give unit polygons or a unit_id per facility"
                )
            joined = gpd.sjoin(
                fac[["facility_id", "geometry"]].to_crs(units.crs),
                units[["unit_id", "geometry"]],
                how="left",
                predicate="intersects",
            ).drop_duplicates("facility_id")
            result = pd.Series(joined["unit_id"].to_numpy(), index=joined["facility_id"].to_numpy())
        self._cache[key] = result
        return result

    def facilities_in(self, level: str, facility_types: tuple[str, ...]) -> pd.DataFrame:
        """Return facilities of the given types with the unit of ``level`` containing them.

        The column ``in_unit`` holds the unit id (NaN when outside every unit of the level).
        """
        key = ("facilities_in", level, tuple(facility_types))
        if key not in self._cache:
            fac = self.facilities[self.facilities["type"].isin(facility_types)].copy()
            fac["in_unit"] = fac["facility_id"].map(self.facility_unit(level))
            self._cache[key] = fac
        return self._cache[key]

    def facility_root(self) -> pd.Series:
        """Return the facility each facility counts as (index and values ``facility_id``).

        A facility whose ``parent_id`` (上级机构) names another facility of the layer, by id
        or by its unique name -- a second campus (院区) or a branch (分院) -- counts as that
        parent (followed up the chain); every other facility counts as itself.
        """
        key = ("facility_root",)
        if key not in self._cache:
            ids = self.facilities["facility_id"].astype(str)
            parent: dict[str, str] = {}
            if "parent_id" in self.facilities.columns:
                # the parent is named by its facility_id, or else by its (unique) name
                by_name: dict[str, str] = {}
                if "name" in self.facilities.columns:
                    names = self.facilities["name"].astype(str).str.strip()
                    unique = names[~names.duplicated(keep=False)]
                    by_name = dict(zip(unique, ids[unique.index], strict=True))
                known = set(ids)
                for fid, pid in zip(ids, self.facilities["parent_id"], strict=True):
                    if _missing(pid) or not str(pid).strip():
                        continue
                    ref = str(pid).strip()
                    ref = ref if ref in known else by_name.get(ref, "")
                    if ref and ref != fid:
                        parent[fid] = ref
            roots = {}
            for fid in ids:
                cur, seen = fid, {fid}
                while cur in parent and parent[cur] not in seen:
                    cur = parent[cur]
                    seen.add(cur)
                roots[fid] = cur
            self._cache[key] = pd.Series(roots, dtype=object)
        return self._cache[key]

    def unit_row(self, level: str, unit_id: str) -> pd.Series:
        """Return one unit of :meth:`units_at` by id."""
        key = ("units_by_id", level)
        if key not in self._cache:
            self._cache[key] = self.units_at(level).set_index("unit_id")
        return self._cache[key].loc[unit_id]

    # ----------------------------------------------------------------------------- access
    def nearest(self, facility_types: tuple[str, ...], *, mode: str, metric: str) -> pd.DataFrame:
        """Return ``access.nearest`` for the places (cached per types, mode and metric)."""
        if self.access is None:
            raise CoverageError(
                "this rule measures travel but no access was given: pass access=... "
                "(the road engine, or covplan.standards.StraightLineAccess)"
            )
        key = ("nearest", tuple(facility_types), mode, metric)
        if key not in self._cache:
            table = self.access.nearest(tuple(facility_types), mode=mode, metric=metric)
            table = table.reindex(self.places["place_id"].to_numpy())
            table["value"] = table["value"].astype(float).fillna(math.inf)
            self._cache[key] = table
        return self._cache[key]

    def facility_names(self) -> pd.Series:
        """Return facility name by ``facility_id`` (the id when there is no name)."""
        if "name" in self.facilities.columns:
            names = self.facilities["name"].where(self.facilities["name"].notna(),
                                                  self.facilities["facility_id"])
        else:
            names = self.facilities["facility_id"]
        return pd.Series(names.to_numpy(), index=self.facilities["facility_id"].to_numpy())

    # ----------------------------------------------------------------------------- helpers
    def _build_ancestors(self) -> dict[str, dict[str, str]]:
        parent = dict(zip(self.units["unit_id"], self.units["parent_id"], strict=True))
        level = dict(zip(self.units["unit_id"], self.units["level"].astype(str), strict=True))
        out: dict[str, dict[str, str]] = {}
        for uid in parent:
            chain: dict[str, str] = {}
            seen: set[str] = set()
            cur: str | None = uid
            while cur is not None and cur in level and cur not in seen:
                seen.add(cur)
                chain.setdefault(level[cur], cur)
                cur = parent.get(cur)
            out[uid] = chain
        return out

    def _majority_classes(self, place_unit: pd.Series) -> dict[str, str]:
        sub = self.places.assign(_u=place_unit.reindex(self.places["place_id"]).to_numpy())
        sub = sub[sub["urban_rural"].isin(["urban", "rural"]) & sub["_u"].notna()]
        if sub.empty:
            return {}
        table = sub.pivot_table(
            index="_u", columns="urban_rural", values="population", aggfunc="sum", fill_value=0.0
        )
        urban = table["urban"] if "urban" in table.columns else 0.0 * table.iloc[:, 0]
        rural = table["rural"] if "rural" in table.columns else 0.0 * table.iloc[:, 0]
        return {str(u): ("urban" if urban[u] >= rural[u] else "rural") for u in table.index}


def _missing(value: object) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value)) or value is pd.NA


def _require(layer: pd.DataFrame, name: str, columns: tuple[str, ...]) -> None:
    missing = [c for c in columns if c not in layer.columns]
    if missing:
        raise CoverageError(
            f"{name}: missing column(s) {missing}; the canonical columns are listed in "
            "docs/ARCHITECTURE.md"
        )
