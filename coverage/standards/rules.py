"""The five kinds of planning standard, as dataclasses that evaluate themselves per unit.

Every rule returns one row per administrative unit of its level with the columns in
:data:`RESULT_COLUMNS`: the status (``pass`` / ``fail`` / ``not_applicable`` /
``cannot_check``: the data cannot say, e.g. the rule's level is not in the data), the measured
value, the threshold, the margin (positive = better than the threshold), the unit's population
and, in ``evidence``, a sentence naming what decided the status. Rules that measure travel
(:class:`TravelTimeRule`, :class:`DistanceRule`) also give one row per population place
(:meth:`TravelTimeRule.place_values`), from which the audit lists the uncovered places.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

import geopandas as gpd
import numpy as np
import pandas as pd
from covplan.errors import CoverageError
from covplan.facility_types import FACILITY_GROUPS, FACILITY_TYPES, expand_types
from covplan.inputs.unit_kinds import normalise_kinds
from covplan.labels import unit_kind_label
from covplan.standards.access import Access, StraightLineAccess
from covplan.standards.layers import Layers

__all__ = [
    "CANNOT_CHECK",
    "PLACE_COLUMNS",
    "RESULT_COLUMNS",
    "RULE_KINDS",
    "DistanceRule",
    "PopulationBandRule",
    "PresenceRule",
    "RatioRule",
    "Rule",
    "TravelTimeRule",
]

#: Columns of every per-unit result table, in order.
RESULT_COLUMNS: tuple[str, ...] = (
    "rule_id", "rule", "unit_id", "unit_name", "level", "status", "value", "threshold",
    "margin", "value_unit", "population", "covered_population", "facility_count", "needed",
    "criterion", "evidence",
)  # fmt: skip

#: Columns of the per-place table of travel rules, in order.
PLACE_COLUMNS: tuple[str, ...] = (
    "rule_id", "place_id", "unit_id", "population", "urban_rural", "limit", "value",
    "value_unit", "facility_id", "facility_name", "covered",
)  # fmt: skip

#: Status of a rule (or unit) the data cannot decide (the reason is in ``evidence``).
CANNOT_CHECK = "cannot_check"
_EPS = 1e-9
Threshold = float | Mapping[str, float]


@dataclass(kw_only=True)
class _Rule:
    """Fields every rule has.

    Parameters
    ----------
    id
        Rule id, e.g. ``"BZ-12"`` (unique within an audit).
    level
        Unit level the rule is checked at: a level name in the units, or ``"county"`` /
        ``"township"`` / ``"village"`` (matched as described in
        :data:`covplan.standards.layers.ABSTRACT_LEVELS`); None = every level. A level the
        data lacks gives one ``cannot_check`` row with the reason, never another level.
    title, title_zh
        Short description, in English and in Chinese (the plan's own wording where it has one).
    source, quote
        Seed document and verbatim Chinese quote the rule comes from (presets fill them).
    """

    kind: ClassVar[str] = ""
    id: str
    level: str | None = None
    title: str = ""
    title_zh: str = ""
    source: str = ""
    quote: str = ""

    _type_fields: ClassVar[tuple[str, ...]] = (
        "facility_types", "exempt_if_hosts", "exempt_near_types", "exclude_hosts_of",
    )  # fmt: skip

    def __post_init__(self) -> None:
        """Expand facility groups (``"hospitals"``...) into facility types."""
        for name in self._type_fields:
            if hasattr(self, name):
                value = getattr(self, name)
                value = (value,) if isinstance(value, str) else tuple(value)
                try:
                    setattr(self, name, expand_types(value))
                except KeyError as exc:
                    raise CoverageError(
                        f"rule {self.id}: {name} names an unknown facility type {exc}; known "
                        f"types: {', '.join(FACILITY_TYPES)}; groups: {', '.join(FACILITY_GROUPS)}"
                    ) from None

    def evaluate(
        self,
        *,
        facilities: gpd.GeoDataFrame,
        units: gpd.GeoDataFrame,
        places: gpd.GeoDataFrame,
        access: Access | None = None,
        levels: Mapping[str, str] | None = None,
    ) -> pd.DataFrame:
        """Check the rule for every unit of its level.

        Parameters
        ----------
        facilities, units, places
            The canonical layers (see docs/ARCHITECTURE.md).
        access
            Nearest-facility values for the places (needed by travel rules only).
        levels
            Map from rule level names to level names of ``units``.

        Returns
        -------
        pandas.DataFrame
            One row per unit, columns :data:`RESULT_COLUMNS`.
        """
        layers = Layers(
            facilities=facilities, units=units, places=places, access=access, levels=levels
        )
        return self.evaluate_on(layers)

    def evaluate_on(self, layers: Layers) -> pd.DataFrame:
        """Check the rule on prepared :class:`~covplan.standards.layers.Layers` (cached).

        A rule whose level is not in the data gives one row, status ``cannot_check``, with the
        reason in ``evidence`` (it is never moved to another level).
        """
        missing = layers.missing_level(self.level)
        if missing is not None:
            row: dict[str, Any] = {c: np.nan for c in RESULT_COLUMNS}
            row.update(rule_id=self.id, rule=self.kind, unit_id=None, unit_name=None,
                       level=self.level, status=CANNOT_CHECK, value_unit=None,
                       criterion=self.criterion(), evidence=missing)
            return pd.DataFrame([row], columns=list(RESULT_COLUMNS))
        rows: list[dict[str, Any]] = []
        for level in layers.resolve_level(self.level):
            for _, unit in layers.units_at(level).iterrows():
                row = {c: None for c in RESULT_COLUMNS}
                row.update(
                    rule_id=self.id, rule=self.kind, unit_id=unit["unit_id"],
                    unit_name=unit["name"], level=level, population=unit["population"],
                    covered_population=np.nan, needed=np.nan, facility_count=np.nan,
                    value=np.nan, threshold=np.nan, margin=np.nan,
                )  # fmt: skip
                rows.append(row)
        table = pd.DataFrame(rows, columns=list(RESULT_COLUMNS))
        if table.empty:
            return table
        table = self._fill(layers, table)
        for col in ("value", "threshold", "margin", "population", "covered_population",
                    "facility_count", "needed"):  # fmt: skip
            table[col] = pd.to_numeric(table[col]).astype(float)
        return table[list(RESULT_COLUMNS)].reset_index(drop=True)

    def _fill(self, layers: Layers, table: pd.DataFrame) -> pd.DataFrame:
        raise NotImplementedError

    def criterion(self) -> str:
        """Return the standard in words."""
        raise NotImplementedError


# ------------------------------------------------------------------------- coverage (travel)
@dataclass(kw_only=True)
class _CoverageRule(_Rule):
    facility_types: tuple[str, ...]
    mode: str = "drive"
    required_share: float = 1.0
    metric: ClassVar[str] = "time"
    value_unit: ClassVar[str] = "min"

    def limits(self) -> dict[str, float] | float:
        """Return the threshold: one number, or a number per urban/rural class."""
        raise NotImplementedError

    def limit_per_place(self, places: pd.DataFrame) -> pd.Series:
        """Return each place's threshold (NaN where the rule does not apply to its class)."""
        limit = self.limits()
        if isinstance(limit, Mapping):
            return places["urban_rural"].map(lambda c: limit.get(c, np.nan)).astype(float)
        return pd.Series(float(limit), index=places.index)

    def _measure(self, layers: Layers) -> pd.DataFrame:
        return layers.nearest(self.facility_types, mode=self.mode, metric=self.metric)

    def place_values(self, layers: Layers) -> pd.DataFrame:
        """Return one row per population place this rule applies to (:data:`PLACE_COLUMNS`).

        A place applies when its class has a threshold (all places when the threshold is one
        number); ``covered`` is ``value <= limit``.
        """
        places = layers.places
        near = self._measure(layers)
        names = layers.facility_names()
        out = pd.DataFrame(
            {
                "rule_id": self.id,
                "place_id": places["place_id"].to_numpy(),
                "unit_id": places["unit_id"].to_numpy(),
                "population": places["population"].to_numpy(),
                "urban_rural": places["urban_rural"].to_numpy(),
                "limit": self.limit_per_place(places).to_numpy(),
                "value": near["value"].to_numpy(),
                "value_unit": self.value_unit,
                "facility_id": near["facility_id"].to_numpy(),
            }
        )
        out["facility_name"] = out["facility_id"].map(names)
        out = out[out["limit"].notna()].copy()
        out["covered"] = out["value"] <= out["limit"] + _EPS
        return out[list(PLACE_COLUMNS)].reset_index(drop=True)

    def criterion(self) -> str:
        """Return the standard in words, e.g. ``100% within 15 min (urban) / 30 min (rural)``."""
        limit = self.limits()
        if isinstance(limit, Mapping):
            text = " / ".join(f"{_num(v)} {self.value_unit} ({k})" for k, v in limit.items())
        else:
            text = f"{_num(limit)} {self.value_unit}"
        how = f"by {self.mode}" if self.metric == "time" else "by road"
        return (f"{self.required_share:.0%} of residents within {text} {how} of "
                f"{', '.join(self.facility_types)}")

    def _fill(self, layers: Layers, table: pd.DataFrame) -> pd.DataFrame:
        values = self.place_values(layers)
        table["criterion"] = self.criterion()
        table["threshold"] = self.required_share
        table["value_unit"] = "share of residents"
        for level, idx in table.groupby("level").groups.items():
            v = values.assign(_u=values["place_id"].map(layers.place_unit(str(level))))
            pop = v.groupby("_u")["population"].sum()
            cov = v[v["covered"]].groupby("_u")["population"].sum()
            evidence = {u: _coverage_evidence(g, self.value_unit) for u, g in v.groupby("_u")}
            counts = layers.facilities_in(str(level), self.facility_types)["in_unit"].value_counts()
            uids = table.loc[idx, "unit_id"]
            p = uids.map(pop).fillna(0.0).astype(float)
            c = uids.map(cov).fillna(0.0).astype(float)
            share = (c / p).where(p > 0)
            table.loc[idx, "population"] = p
            table.loc[idx, "facility_count"] = uids.map(counts).fillna(0).astype(float)
            table.loc[idx, "covered_population"] = c.where(p > 0)
            table.loc[idx, "value"] = share
            table.loc[idx, "margin"] = share - self.required_share
            status = np.where(p <= 0, "not_applicable",
                              np.where(share >= self.required_share - _EPS, "pass", "fail"))
            table.loc[idx, "status"] = status
            table.loc[idx, "evidence"] = [
                evidence.get(u, "no residents in places this threshold applies to")
                if pp > 0 else "no residents in places this threshold applies to"
                for u, pp in zip(uids, p, strict=True)
            ]
        return table


def _coverage_evidence(sub: pd.DataFrame, unit: str) -> str:
    unc = sub[~sub["covered"]]
    if unc.empty:
        worst = sub.loc[sub["value"].idxmax()] if len(sub) else None
        tail = (f"; farthest place {worst['place_id']} at {worst['value']:.1f} {unit}"
                if worst is not None else "")
        return f"all {len(sub)} places covered{tail}"
    worst = unc.loc[unc["value"].idxmax()]
    far = ("no reachable facility" if not math.isfinite(worst["value"])
           else f"{worst['value']:.1f} {unit} to {worst['facility_name']}")
    return (f"{len(unc)} of {len(sub)} places uncovered, {unc['population'].sum():,.0f} "
            f"residents; worst {worst['place_id']}: {far} (limit {_num(worst['limit'])} {unit})")


@dataclass(kw_only=True)
class TravelTimeRule(_CoverageRule):
    """Share of residents within T minutes of the nearest facility of some types.

    Parameters
    ----------
    id, level, title, source, quote
        See the common fields (``level`` None = every level).
    facility_types
        Facility types counted as destinations (groups already expanded).
    minutes
        One number for every place, or a number per urban/rural class, e.g.
        ``{"urban": 15, "rural": 30}`` (BZ-12/BZ-13). Places whose class has no number are left
        out (so ``{"urban": 15}`` checks urban residents only).
    mode
        Travel mode passed to the access (default ``"drive"``).
    required_share
        Share of the unit's residents that must be covered to pass (default 1.0 = all).

    Examples
    --------
    >>> TravelTimeRule(id="BZ-12", facility_types=("emergency_station",),
    ...                minutes={"urban": 15, "rural": 30}).criterion()
    '100% of residents within 15 min (urban) / 30 min (rural) by drive of emergency_station'
    """

    kind: ClassVar[str] = "travel_time"
    minutes: Threshold

    def limits(self) -> dict[str, float] | float:
        """Return ``minutes``."""
        return dict(self.minutes) if isinstance(self.minutes, Mapping) else float(self.minutes)


@dataclass(kw_only=True)
class DistanceRule(_CoverageRule):
    """Share of residents within D km of the nearest facility of some types (e.g. SPB-02).

    Parameters
    ----------
    id, level, title, source, quote
        See the common fields.
    facility_types
        Facility types counted as destinations.
    km
        One number, or a number per urban/rural class (as for :class:`TravelTimeRule`).
    mode
        Mode whose network the road distance is measured on (default ``"drive"``).
    distance
        ``"road"`` (the access's shortest road length, default) or ``"straight_line"``
        (geodesic distance, measured here with
        :class:`~covplan.standards.access.StraightLineAccess`).
    required_share
        Share of residents that must be covered (default 1.0).
    """

    kind: ClassVar[str] = "distance"
    metric: ClassVar[str] = "length"
    value_unit: ClassVar[str] = "km"
    km: Threshold
    distance: str = "road"

    def limits(self) -> dict[str, float] | float:
        """Return ``km``."""
        return dict(self.km) if isinstance(self.km, Mapping) else float(self.km)

    def _measure(self, layers: Layers) -> pd.DataFrame:
        if self.distance == "road":
            return super()._measure(layers)
        if self.distance != "straight_line":
            raise CoverageError(
                f"rule {self.id}: distance must be 'road' or 'straight_line', got {self.distance!r}"
            )
        key = ("straight_line", self.facility_types)
        if key not in layers._cache:
            line = StraightLineAccess(layers.facilities, layers.places, speeds_kmh={})
            layers._cache[key] = line.nearest(self.facility_types, mode=self.mode, metric="length")
        return layers._cache[key]

    def criterion(self) -> str:
        """Return the standard in words."""
        text = super().criterion()
        return text.replace("by road", "in a straight line") if self.distance != "road" else text


# ------------------------------------------------------------------------------- presence
@dataclass(kw_only=True)
class PresenceRule(_Rule):
    """Each unit of a level has at least (or exactly) N facilities of some types inside it.

    Parameters
    ----------
    id, title, source, quote
        See the common fields.
    level
        Unit level checked (default ``"village"``).
    facility_types
        Facility types counted.
    min_count
        Fewest facilities a unit must have (default 1).
    max_count
        Most facilities allowed (None = no upper limit; ``max_count == min_count`` = exactly).
    unit_class
        ``"urban"`` or ``"rural"`` to check only units of that class; None = every unit. To
        select 街道, 镇 or 行政村 use ``unit_kinds`` (a 镇 may be 100 % urban).
    unit_name_pattern
        Regular expression a unit's name must contain to be checked (e.g. ``"村"`` for
        administrative villages, ``"街道$"`` for sub-districts); None = every unit.
    unit_kinds
        Kinds of unit checked (:mod:`covplan.inputs.unit_kinds`: ``"行政村"``/``"village"``,
        ``"街道"``/``"subdistrict"``, ...; Chinese names or keys); other kinds are
        ``not_applicable``, units of unknown kind ``cannot_check``; empty = every unit.
    exempt_if_hosts
        Facility types whose presence in a unit exempts it (BZ-09: where a township health
        centre or its branch sits, no village clinic is needed).
    exempt_below_population
        Units with fewer residents are exempt (DDK-01: villages under 800, served by the
        township health centre's outreach); None = no such exemption.
    exempt_near
        Units whose residents are on average within this many minutes (``exempt_near_metric
        = "time"``) or km (``"length"``) of a facility of ``exempt_near_types`` are exempt
        (DDK-01 "临近乡镇卫生院", which the text does not quantify); None = off.
    exempt_near_types, exempt_near_mode, exempt_near_metric
        The facilities, mode and metric of the ``exempt_near`` test.

    Notes
    -----
    An exempt unit that lacks the facility is reported ``not_applicable`` with the reason in
    ``evidence``; an exempt unit that has it passes as usual. A facility with a parent facility
    (``parent_id``, 上级机构: a second campus 院区 or a branch 分院) counts once with its parent
    (:meth:`~covplan.standards.layers.Layers.facility_root`), so ``exactly = 1`` does not fail
    a unit whose centre has a second campus.
    """

    kind: ClassVar[str] = "presence"
    facility_types: tuple[str, ...]
    level: str | None = "village"
    min_count: int = 1
    max_count: int | None = None
    unit_class: str | None = None
    unit_name_pattern: str | None = None
    unit_kinds: tuple[str, ...] = ()
    exempt_if_hosts: tuple[str, ...] = ()
    exempt_below_population: float | None = None
    exempt_near: float | None = None
    exempt_near_types: tuple[str, ...] = ("township_health_centre",)
    exempt_near_mode: str = "drive"
    exempt_near_metric: str = "time"

    def criterion(self) -> str:
        """Return the standard in words."""
        if self.max_count == self.min_count:
            count = f"exactly {self.min_count}"
        elif self.max_count is None:
            count = f"at least {self.min_count}"
        else:
            count = f"{self.min_count}-{self.max_count}"
        return (f"{count} of {', '.join(self.facility_types)} in each "
                f"{_kinds_text(self.unit_kinds) or self.level or 'unit'}")

    def __post_init__(self) -> None:
        """Expand facility groups and read ``unit_kinds`` as kind keys."""
        super().__post_init__()
        self.unit_kinds = _kind_keys(self.id, self.unit_kinds)

    def _fill(self, layers: Layers, table: pd.DataFrame) -> pd.DataFrame:
        crit = self.criterion()
        names = layers.facility_names()
        roots = layers.facility_root()
        for i, row in table.iterrows():
            level, uid = row["level"], row["unit_id"]
            unit = layers.unit_row(level, uid)
            fac = layers.facilities_in(level, self.facility_types)
            inside = fac[fac["in_unit"] == uid]
            counted: dict[str, list[str]] = {}
            for fid in inside["facility_id"]:
                counted.setdefault(str(roots.get(fid, fid)), []).append(str(fid))
            n = len(counted)
            table.at[i, "criterion"] = crit
            table.at[i, "value_unit"] = "facilities"
            table.at[i, "value"] = n
            table.at[i, "facility_count"] = n
            table.at[i, "threshold"] = self.min_count
            listed = ", ".join(_listed(root, members, names)
                               for root, members in counted.items()) or "none"
            status, why = _scope(unit, self.unit_class, self.unit_name_pattern, self.unit_kinds)
            if status:
                table.at[i, "status"] = status
                table.at[i, "evidence"] = why
                continue
            if self.max_count is not None and n > self.max_count:
                table.at[i, "status"] = "fail"
                table.at[i, "threshold"] = self.max_count
                table.at[i, "margin"] = self.max_count - n
                table.at[i, "evidence"] = f"{n} facilities, more than {self.max_count}: {listed}"
                continue
            table.at[i, "margin"] = n - self.min_count
            table.at[i, "needed"] = max(0, self.min_count - n)
            if n >= self.min_count:
                table.at[i, "status"] = "pass"
                table.at[i, "evidence"] = f"{n} inside: {listed}"
                continue
            reason = self._exemption(layers, level, uid, float(unit["population"]))
            table.at[i, "status"] = "not_applicable" if reason else "fail"
            table.at[i, "evidence"] = (
                f"exempt: {reason}" if reason else f"{n} inside, {self.min_count - n} missing"
            )
        return table

    def _exemption(self, layers: Layers, level: str, uid: str, population: float) -> str:
        reasons: list[str] = []
        if self.exempt_if_hosts:
            host = layers.facilities_in(level, self.exempt_if_hosts)
            hosted = host[host["in_unit"] == uid]
            if len(hosted):
                names = layers.facility_names()
                reasons.append(
                    "hosts " + ", ".join(str(names.get(f, f)) for f in hosted["facility_id"])
                )
        if (self.exempt_below_population is not None and math.isfinite(population)
                and population < self.exempt_below_population):
            reasons.append(
                f"population {population:,.0f} < {_num(self.exempt_below_population)} "
                "(served by outreach)"
            )
        if self.exempt_near is not None:
            near = layers.nearest(self.exempt_near_types, mode=self.exempt_near_mode,
                                  metric=self.exempt_near_metric)
            in_unit = layers.place_unit(level)
            ids = in_unit.index[in_unit.to_numpy() == uid]
            pop = layers.places.set_index("place_id").loc[ids, "population"]
            vals = near["value"].reindex(ids)
            if pop.sum() > 0 and np.isfinite(vals).all():
                mean = float((vals * pop).sum() / pop.sum())
                unit = "min" if self.exempt_near_metric == "time" else "km"
                if mean <= self.exempt_near + _EPS:
                    reasons.append(
                        f"near {', '.join(self.exempt_near_types)} "
                        f"({mean:.1f} {unit} <= {_num(self.exempt_near)} {unit})"
                    )
        return "; ".join(reasons)


# ---------------------------------------------------------------------- population band
@dataclass(kw_only=True)
class PopulationBandRule(_Rule):
    """Residents per facility within a band, per unit (DDK-06, BZ-02).

    A unit with population P and n facilities passes when ``lower <= P / n <= upper``. The unit
    needs at least ``ceil(P / upper)`` facilities (reported in ``needed``) and at most
    ``floor(P / lower)``; when no whole number fits (P below ``lower``) the rule is
    ``not_applicable`` for that unit with the reason.

    Parameters
    ----------
    id, title, source, quote
        See the common fields.
    level
        Unit level checked (default ``"village"``).
    facility_types
        Facility types counted.
    lower, upper
        The band, residents per facility.
    unit_class
        Check only ``"urban"`` or ``"rural"`` units (None = all).
    unit_name_pattern
        Regular expression a unit's name must contain to be checked (None = all).
    exclude_hosts_of
        Units hosting a facility of these types are not checked (DDK-06: 除社区卫生服务中心所在
        社区外, the community hosting the CHSC).
    unit_kinds
        Kinds of unit checked (as for :class:`PresenceRule`); empty = every unit.
    """

    kind: ClassVar[str] = "population_band"
    facility_types: tuple[str, ...]
    lower: float
    upper: float
    level: str | None = "village"
    unit_class: str | None = None
    unit_name_pattern: str | None = None
    exclude_hosts_of: tuple[str, ...] = ()
    unit_kinds: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        """Expand facility groups and read ``unit_kinds`` as kind keys."""
        super().__post_init__()
        self.unit_kinds = _kind_keys(self.id, self.unit_kinds)

    def criterion(self) -> str:
        """Return the standard in words."""
        return (f"{_num(self.lower)}-{_num(self.upper)} residents per "
                f"{', '.join(self.facility_types)} in each "
                f"{_kinds_text(self.unit_kinds) or self.level or 'unit'}")

    def _fill(self, layers: Layers, table: pd.DataFrame) -> pd.DataFrame:
        crit = self.criterion()
        for i, row in table.iterrows():
            level, uid = row["level"], row["unit_id"]
            unit = layers.unit_row(level, uid)
            fac = layers.facilities_in(level, self.facility_types)
            n = int((fac["in_unit"] == uid).sum())
            pop = float(unit["population"])
            table.at[i, "criterion"] = crit
            table.at[i, "value_unit"] = "residents per facility"
            table.at[i, "facility_count"] = n
            status, why = _scope(unit, self.unit_class, self.unit_name_pattern, self.unit_kinds)
            if status:
                table.at[i, "status"] = status
                table.at[i, "evidence"] = why
                continue
            if self.exclude_hosts_of:
                host = layers.facilities_in(level, self.exclude_hosts_of)
                if (host["in_unit"] == uid).any():
                    table.at[i, "status"] = "not_applicable"
                    table.at[i, "evidence"] = (
                        f"excluded: hosts a {', '.join(self.exclude_hosts_of)}")
                    continue
            if not math.isfinite(pop) or pop <= 0:
                table.at[i, "status"] = "not_applicable"
                table.at[i, "evidence"] = "no population"
                continue
            n_min = math.ceil(pop / self.upper - _EPS)
            n_max = math.floor(pop / self.lower + _EPS)
            table.at[i, "needed"] = n_min
            per = pop / n if n else math.inf
            table.at[i, "value"] = per
            if n_min > n_max:
                table.at[i, "status"] = "not_applicable"
                table.at[i, "threshold"] = self.lower
                table.at[i, "evidence"] = (
                    f"{pop:,.0f} residents: no whole number of facilities puts them inside "
                    f"{_num(self.lower)}-{_num(self.upper)} (one facility would serve fewer "
                    f"than {_num(self.lower)}); {n} present")
                continue
            if per > self.upper:
                table.at[i, "threshold"] = self.upper
                table.at[i, "margin"] = self.upper - per
                table.at[i, "status"] = "fail"
                table.at[i, "evidence"] = (f"under-provided: {n} for {pop:,.0f} residents; "
                                           f"needs {n_min} ({n_min - n} more)")
            elif per < self.lower:
                table.at[i, "threshold"] = self.lower
                table.at[i, "margin"] = per - self.lower
                table.at[i, "status"] = "fail"
                table.at[i, "evidence"] = (f"over-provided: {n} for {pop:,.0f} residents; "
                                           f"at most {n_max} fit the band")
            else:
                lo, hi = per - self.lower, self.upper - per
                table.at[i, "threshold"] = self.lower if lo <= hi else self.upper
                table.at[i, "margin"] = min(lo, hi)
                table.at[i, "status"] = "pass"
                table.at[i, "evidence"] = f"{n} for {pop:,.0f} residents ({per:,.0f} each)"
        return table


# ------------------------------------------------------------------------------ ratio
@dataclass(kw_only=True)
class RatioRule(_Rule):
    """Beds, doctors or nurses per 1,000 residents against a target (DDK-10, DDK-20, ...).

    ``value = sum(attribute of facilities in the unit) / population * per``. The rule is
    ``not_applicable`` (with the reason) when the facilities have no such column or no value in
    it; facilities with a missing value are counted as 0 and named in ``evidence``.

    Parameters
    ----------
    id, title, source, quote
        See the common fields.
    level
        Unit level checked (default ``"county"``, the coarsest level).
    attribute
        Facility column summed: ``"beds"``, ``"doctors"``, ``"nurses"`` or any numeric column.
    target
        Target value per ``per`` residents.
    per
        Residents the ratio is expressed per (default 1,000).
    comparison
        ``">="`` (default: at least the target) or ``"<="``.
    facility_types
        Facility types summed (empty = all facilities).
    """

    kind: ClassVar[str] = "ratio"
    attribute: str
    target: float
    per: float = 1000.0
    comparison: str = ">="
    facility_types: tuple[str, ...] = ()
    level: str | None = "county"

    def criterion(self) -> str:
        """Return the standard in words."""
        per = _num(self.per)
        return f"{self.attribute} per {per} residents {self.comparison} {_num(self.target)}"

    def _fill(self, layers: Layers, table: pd.DataFrame) -> pd.DataFrame:
        crit = self.criterion()
        table["criterion"] = crit
        table["threshold"] = float(self.target)
        table["value_unit"] = f"{self.attribute} per {_num(self.per)}"
        fac = layers.facilities
        if self.facility_types:
            fac = fac[fac["type"].isin(self.facility_types)]
        if self.attribute not in fac.columns or pd.to_numeric(
            fac[self.attribute], errors="coerce"
        ).notna().sum() == 0:
            table["status"] = "not_applicable"
            table["evidence"] = (f"facilities have no {self.attribute!r} values: add a "
                                 f"{self.attribute} column to the facility layer")
            return table
        names = layers.facility_names()
        for i, row in table.iterrows():
            level, uid = row["level"], row["unit_id"]
            in_unit = fac["facility_id"].map(layers.facility_unit(level)) == uid
            sub = fac[in_unit]
            vals = pd.to_numeric(sub[self.attribute], errors="coerce")
            total = float(vals.fillna(0).sum())
            table.at[i, "facility_count"] = len(sub)
            table.at[i, "covered_population"] = np.nan
            pop = float(row["population"])
            if not math.isfinite(pop) or pop <= 0:
                table.at[i, "status"] = "not_applicable"
                table.at[i, "evidence"] = "no population"
                continue
            value = total / pop * self.per
            table.at[i, "value"] = value
            margin = value - self.target if self.comparison == ">=" else self.target - value
            table.at[i, "margin"] = margin
            table.at[i, "status"] = "pass" if margin >= -_EPS else "fail"
            lacking = sub.loc[vals.isna().to_numpy(), "facility_id"]
            note = (f"; {len(lacking)} without a value, counted as 0: "
                    + ", ".join(str(names.get(f, f)) for f in lacking)) if len(lacking) else ""
            table.at[i, "evidence"] = (f"{total:,.0f} {self.attribute} in {len(sub)} facilities "
                                       f"for {pop:,.0f} residents{note}")
        return table


Rule = TravelTimeRule | DistanceRule | PresenceRule | PopulationBandRule | RatioRule

#: Rule name (the ``rule`` key of a standards table) -> class.
RULE_KINDS: dict[str, type] = {
    cls.kind: cls
    for cls in (TravelTimeRule, DistanceRule, PresenceRule, PopulationBandRule, RatioRule)
}


def _scope(
    unit: pd.Series, unit_class: str | None, pattern: str | None, kinds: tuple[str, ...] = ()
) -> tuple[str, str]:
    """Return ``(status, why)`` for a unit outside a rule's scope, ``("", "")`` when inside.

    A unit of another kind is ``not_applicable``; a unit whose kind is unknown, when the rule
    selects kinds, ``cannot_check``.
    """
    if kinds:
        kind = unit.get("unit_kind")
        wanted = _kinds_text(kinds)
        if kind is None or (isinstance(kind, float) and math.isnan(kind)):
            return (CANNOT_CHECK, f"rule applies to {wanted} only and the kind of this unit is "
                    "unknown (no NBS code, no name ending 街道/镇/乡/社区/村): give the units a "
                    "kind_column or their 12-digit codes")
        if kind not in kinds:
            source = unit.get("kind_source") or "data"
            return ("not_applicable", f"rule applies to {wanted} only; this unit is a "
                    f"{unit_kind_label(str(kind), language='zh')} ({kind}, from its {source})")
    if unit_class is not None and unit["urban_rural"] != unit_class:
        return ("not_applicable", f"rule applies to {unit_class} units; this unit is "
                f"{unit['urban_rural'] or 'unclassified'}")
    if pattern is not None and not re.search(pattern, str(unit["name"])):
        return ("not_applicable", f"rule applies to units whose name matches {pattern!r}")
    return ("", "")


def _kind_keys(rule_id: str, kinds: object) -> tuple[str, ...]:
    values = (kinds,) if isinstance(kinds, str) else tuple(kinds or ())  # type: ignore[arg-type]
    try:
        return normalise_kinds(values)
    except CoverageError as exc:
        raise CoverageError(f"rule {rule_id}: unit_kinds: {exc}") from None


def _kinds_text(kinds: tuple[str, ...]) -> str:
    return " / ".join(f"{unit_kind_label(k, language='zh')} ({k})" for k in kinds)


def _listed(root: str, members: list[str], names: pd.Series) -> str:
    """Name a counted facility, with the campuses or branches counted with it."""
    head = str(names.get(root, root))
    others = [str(names.get(m, m)) for m in members if m != root]
    if not others:
        return head
    return f"{head} (with {', '.join(others)}, counted once)"


def _num(x: float) -> str:
    return f"{x:g}" if abs(x) < 1e6 else f"{x:,.0f}"

