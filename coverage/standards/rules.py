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
from dataclasses import field as _field
from typing import Any, ClassVar

import geopandas as gpd
import numpy as np
import pandas as pd
from covplan.errors import CoverageError
from covplan.facility_types import FACILITY_GROUPS, FACILITY_TYPES, expand_types
from covplan.inputs.unit_kinds import normalise_kinds
from covplan.labels import (
    FACILITY_TYPE_LABELS,
    GROUP_LABELS,
    MODE_LABELS,
    UNIT_KIND_LABELS,
    UNIT_LEVEL_LABELS,
    URBAN_RURAL_LABELS,
    pair_join,
    sentence,
    term_pair,
    unit_kind_label,
)
from covplan.standards.access import Access, StraightLineAccess
from covplan.standards.layers import Layers

__all__ = [
    "CANNOT_CHECK",
    "PLACE_COLUMNS",
    "REGION",
    "RESULT_COLUMNS",
    "RULE_KINDS",
    "AttributeRatioRule",
    "BackupCoverRule",
    "CountRule",
    "DistanceRule",
    "PopulationBandRule",
    "PresenceRule",
    "RatioRule",
    "ResponseTimeRule",
    "Rule",
    "ServiceRule",
    "ShareRule",
    "TierRule",
    "TravelTimeRule",
    "facility_filter",
]

#: Columns of every per-unit result table, in order.
RESULT_COLUMNS: tuple[str, ...] = (
    "rule_id", "rule", "unit_id", "unit_name", "level", "status", "value", "threshold",
    "margin", "value_unit", "population", "covered_population", "facility_count", "needed",
    "criterion", "evidence", "criterion_zh", "evidence_zh",
)  # fmt: skip

#: Columns of the per-place table of travel rules, in order.
PLACE_COLUMNS: tuple[str, ...] = (
    "rule_id", "place_id", "unit_id", "population", "urban_rural", "limit", "value",
    "value_unit", "facility_id", "facility_name", "covered",
)  # fmt: skip

#: Status of a rule (or unit) the data cannot decide (the reason is in ``evidence``).
CANNOT_CHECK = "cannot_check"
#: Rule level meaning the whole study area as one unit (e.g. a 市's count of 次中心, BZ-03).
REGION = "region"
_EPS = 1e-9
Threshold = float | Mapping[str, float]


class Sentence(str):
    """An English sentence of a rule that carries its Chinese form in :attr:`zh`.

    The rules write evidence and criteria as :func:`_say` gives them (one template of
    :data:`covplan.labels.SENTENCES`, both languages from the same fields); the result tables
    hold the English text in ``evidence`` / ``criterion`` and the Chinese in ``evidence_zh``
    / ``criterion_zh`` (:func:`_with_zh`). A plain string has no Chinese form: its
    ``*_zh`` cell repeats it.
    """

    zh: str

    def __new__(cls, en: str, zh: str) -> Sentence:
        """Make the English sentence ``en`` whose Chinese form is ``zh``."""
        obj = super().__new__(cls, en)
        obj.zh = zh
        return obj


def _say(key: str, **fields: object) -> Sentence:
    """Return the sentence ``key`` of :data:`covplan.labels.SENTENCES` in both languages."""
    zh, en = sentence(key, **fields)
    return Sentence(en, zh)


def _pair(text: object) -> tuple[str, str]:
    """``(Chinese, English)`` of a sentence or plain text (plain text is both)."""
    return (getattr(text, "zh", str(text)), str(text))


def _with_zh(table: pd.DataFrame, criterion: object = None) -> pd.DataFrame:
    """Fill ``criterion_zh`` / ``evidence_zh`` from the sentences, leaving plain strings.

    ``criterion`` (the rule's :meth:`~_Rule.criterion`) gives the Chinese of criterion cells
    that lost it (a whole column set to one sentence is stored as plain text).
    """
    known = {str(criterion): criterion.zh} if isinstance(criterion, Sentence) else {}
    for col in ("criterion", "evidence"):
        values = table[col].tolist()
        table[f"{col}_zh"] = [getattr(v, "zh", None) or known.get(v, v) if col == "criterion"
                              else getattr(v, "zh", v) for v in values]
        table[col] = [str(v) if isinstance(v, Sentence) else v for v in values]
    return table


_NO_FACILITY = re.compile(r"^no (?P<types>.+) in the facility file$")


def _reason_zh(reason: object) -> str:
    """Chinese of why a rule cannot be checked (:meth:`_Rule.unavailable`)."""
    if isinstance(reason, Sentence):
        return f"无法核查：{reason.zh}"
    match = _NO_FACILITY.match(str(reason))
    if match:
        types = re.sub(r" \([a-z0-9_]+\)", "", match["types"]).replace(", ", "、")
        return f"无法核查：机构名录中没有{types}"
    return f"无法核查：{reason}"


def _types_pair(types: tuple[str, ...]) -> tuple[str, str]:
    """Return facility types as Chinese names joined by 、 and English keys by commas."""
    zh = "、".join(term_pair(FACILITY_TYPE_LABELS, t)[0] if t in FACILITY_TYPE_LABELS
                  else term_pair(GROUP_LABELS, t)[0] for t in types)
    return zh, ", ".join(types)


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
        # a changed threshold shows in the titles: 城区20分钟急救圈（原标准15分钟）
        from covplan.standards.plans import current_titles

        self.title, self.title_zh = current_titles(self)

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
        reason in ``evidence`` (it is never moved to another level). A rule whose facility
        types, attribute or filter column the data lacks (:meth:`unavailable`) gives every unit
        ``cannot_check`` with that reason, never a fail. ``level = "region"`` judges the whole
        study area as one unit.
        """
        if self.level == REGION:
            layers = _region_layers(layers)
        missing = layers.missing_level(self.level)
        if missing is not None:
            row: dict[str, Any] = {c: np.nan for c in RESULT_COLUMNS}
            row.update(rule_id=self.id, rule=self.kind, unit_id=None, unit_name=None,
                       level=self.level, status=CANNOT_CHECK, value_unit=None,
                       criterion=str(self.criterion()), evidence=missing,
                       criterion_zh=_pair(self.criterion())[0],
                       evidence_zh=sentence("level_missing", detail=missing,
                                            level=term_pair(UNIT_LEVEL_LABELS, self.level))[0])
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
        reason = self.unavailable(layers)
        if reason is not None:
            table["status"] = CANNOT_CHECK
            table["evidence"] = f"cannot be checked: {reason}"
            table["criterion"] = self.criterion()
            table = _with_zh(table, self.criterion())
            table["evidence_zh"] = _reason_zh(reason)
            return table[list(RESULT_COLUMNS)].reset_index(drop=True)
        table = self._fill(layers, table)
        for col in ("value", "threshold", "margin", "population", "covered_population",
                    "facility_count", "needed"):  # fmt: skip
            table[col] = pd.to_numeric(table[col]).astype(float)
        return _with_zh(table, self.criterion())[list(RESULT_COLUMNS)].reset_index(drop=True)

    def _fill(self, layers: Layers, table: pd.DataFrame) -> pd.DataFrame:
        raise NotImplementedError

    def criterion(self) -> str:
        """Return the standard in words."""
        raise NotImplementedError

    def unavailable(self, layers: Layers) -> str | None:
        """Return why the data cannot decide this rule, or None when it can.

        The data cannot decide when no facility of the rule's types is in the facility file
        (e.g. ``no 村卫生室 (village_clinic) in the facility file``), or when a column the rule
        reads (``attribute``, a ``where`` filter, a ``service`` flag) is missing or empty.
        """
        if self.level is not None and self.level != REGION and layers.missing_level(self.level):
            return layers.missing_level(self.level)
        types = tuple(getattr(self, "facility_types", ()) or ())
        if types and layers.registered_types.isdisjoint(types):
            return f"no {_types_text(types)} in the facility file"
        where = dict(getattr(self, "where", {}) or {})
        if where:
            fac = layers.facilities
            if types:
                fac = fac[fac["type"].isin(types)]
            for column in where:
                why = _column_missing(fac, column, types)
                if why:
                    return why
        return None

    def quoted_values(self) -> list[float]:
        """Return the numbers of the rule that its quote must contain (for the quote test)."""
        return []


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
        unit = _unit_pair(self.value_unit)
        if isinstance(limit, Mapping):
            text = pair_join([_pair(_say("cov_limit_class", value=_num(v), unit=unit,
                                         cls=term_pair(URBAN_RURAL_LABELS, k)))
                              for k, v in limit.items()], sep="limit_sep")
            text = (text[0], " / ".join(f"{_num(v)} {self.value_unit} ({k})"
                                        for k, v in limit.items()))
        else:
            text = _pair(_say("cov_limit", value=_num(limit), unit=unit))
        how = (_say("cov_how_time", mode=term_pair(MODE_LABELS, self.mode))
               if self.metric == "time" else _say(self._how_key()))
        return _say("cov_criterion", share=f"{self.required_share:.0%}", limits=text,
                    how=_pair(how), types=_types_pair(self.facility_types))

    def _how_key(self) -> str:
        return "cov_how_road"

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
            table.loc[idx, "evidence"] = pd.Series([
                evidence.get(u, _say("cov_no_residents"))
                if pp > 0 else _say("cov_no_residents")
                for u, pp in zip(uids, p, strict=True)
            ], index=idx, dtype=object)
        return table


def _unit_pair(unit: str) -> tuple[str, str]:
    """``(Chinese, English)`` of a value unit (``min`` -> 分钟)."""
    from covplan.labels import VALUE_UNIT_LABELS

    return term_pair(VALUE_UNIT_LABELS, unit)


def _coverage_evidence(sub: pd.DataFrame, unit: str) -> Sentence:
    unc = sub[~sub["covered"]]
    units = _unit_pair(unit)
    if unc.empty:
        if not len(sub):
            return _say("cov_all", n=0)
        worst = sub.loc[sub["value"].idxmax()]
        return _say("cov_all_far", n=len(sub), place=worst["place_id"],
                    value=f"{worst['value']:.1f}", unit=units)
    worst = unc.loc[unc["value"].idxmax()]
    far = (_say("cov_unreachable") if not math.isfinite(worst["value"])
           else _say("cov_far", value=f"{worst['value']:.1f}", unit=units,
                     facility=str(worst["facility_name"])))
    return _say("cov_some", k=len(unc), n=len(sub), pop=f"{unc['population'].sum():,.0f}",
                place=worst["place_id"], far=_pair(far), limit=_num(worst["limit"]), unit=units)


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

    def _how_key(self) -> str:
        return "cov_how_road" if self.distance == "road" else "cov_how_line"


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
    where
        Facility attribute filters, all of which a facility must meet to be counted (see
        :func:`facility_filter`): ``{"grade": "三级"}`` (三级甲等 too), ``{"standardised":
        True}``; empty = every facility of the types.

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
    where: Mapping[str, Any] = _field(default_factory=dict)

    def quoted_values(self) -> list[float]:
        """Return min_count, max_count and the population exemption (those that are set)."""
        values = [float(self.min_count)]
        if self.max_count is not None:
            values.append(float(self.max_count))
        if self.exempt_below_population is not None:
            values.append(float(self.exempt_below_population))
        return values

    def _counted(self, layers: Layers, level: str) -> pd.DataFrame:
        fac = layers.facilities_in(level, self.facility_types)
        return fac[facility_filter(fac, self.where)] if self.where else fac

    def criterion(self) -> str:
        """Return the standard in words."""
        if self.max_count == self.min_count:
            count = _say("pres_exactly", n=self.min_count)
        elif self.max_count is None:
            count = _say("pres_at_least", n=self.min_count)
        else:
            count = _say("pres_between", lo=self.min_count, hi=self.max_count)
        zh, en = _types_pair(self.facility_types)
        where = _where_text(self.where)
        return _say("pres_criterion", count=_pair(count), types=(zh + where, en + where),
                    scope=_scope_pair(self.unit_kinds, self.level))

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
            fac = self._counted(layers, level)
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
            listed = (pair_join([_pair(_listed(root, members, names))
                                 for root, members in counted.items()])
                      if counted else _pair(_say("none")))
            status, why = _scope(unit, self.unit_class, self.unit_name_pattern, self.unit_kinds)
            if status:
                table.at[i, "status"] = status
                table.at[i, "evidence"] = why
                continue
            if self.max_count is not None and n > self.max_count:
                table.at[i, "status"] = "fail"
                table.at[i, "threshold"] = self.max_count
                table.at[i, "margin"] = self.max_count - n
                table.at[i, "evidence"] = _say("pres_too_many", n=n, max=self.max_count,
                                               listed=listed)
                continue
            table.at[i, "margin"] = n - self.min_count
            table.at[i, "needed"] = max(0, self.min_count - n)
            if n >= self.min_count:
                table.at[i, "status"] = "pass"
                table.at[i, "evidence"] = _say("pres_inside", n=n, listed=listed)
                continue
            reason = self._exemption(layers, level, uid, float(unit["population"]))
            table.at[i, "status"] = "not_applicable" if reason else "fail"
            table.at[i, "evidence"] = (
                _say("pres_exempt", reason=_pair(reason)) if reason
                else _say("pres_missing", n=n, k=self.min_count - n)
            )
        return table

    def _exemption(self, layers: Layers, level: str, uid: str, population: float) -> str:
        reasons: list[Sentence] = []
        if self.exempt_if_hosts:
            host = layers.facilities_in(level, self.exempt_if_hosts)
            hosted = host[host["in_unit"] == uid]
            if len(hosted):
                names = layers.facility_names()
                listed = [str(names.get(f, f)) for f in hosted["facility_id"]]
                reasons.append(_say("exempt_hosts", names=("、".join(listed), ", ".join(listed))))
        if (self.exempt_below_population is not None and math.isfinite(population)
                and population < self.exempt_below_population):
            reasons.append(_say("exempt_small", pop=f"{population:,.0f}",
                                limit=_num(self.exempt_below_population)))
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
                    reasons.append(_say(
                        "exempt_near", types=_types_pair(self.exempt_near_types),
                        mean=f"{mean:.1f}", limit=_num(self.exempt_near), unit=_unit_pair(unit)))
        if not reasons:
            return ""
        zh, en = pair_join([_pair(r) for r in reasons], sep="reason_sep")
        return Sentence(en, zh)


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
        return _say("band_criterion", lo=_num(self.lower), hi=_num(self.upper),
                    types=_types_pair(self.facility_types),
                    scope=_scope_pair(self.unit_kinds, self.level))

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
                    table.at[i, "evidence"] = _say(
                        "band_excluded", types=_types_pair(self.exclude_hosts_of))
                    continue
            if not math.isfinite(pop) or pop <= 0:
                table.at[i, "status"] = "not_applicable"
                table.at[i, "evidence"] = _say("no_population")
                continue
            n_min = math.ceil(pop / self.upper - _EPS)
            n_max = math.floor(pop / self.lower + _EPS)
            table.at[i, "needed"] = n_min
            per = pop / n if n else math.inf
            table.at[i, "value"] = per
            if n_min > n_max:
                table.at[i, "status"] = "not_applicable"
                table.at[i, "threshold"] = self.lower
                table.at[i, "evidence"] = _say("band_no_fit", pop=f"{pop:,.0f}",
                                               lo=_num(self.lower), hi=_num(self.upper), n=n)
                continue
            if per > self.upper:
                table.at[i, "threshold"] = self.upper
                table.at[i, "margin"] = self.upper - per
                table.at[i, "status"] = "fail"
                table.at[i, "evidence"] = _say("band_under", n=n, pop=f"{pop:,.0f}",
                                               need=n_min, more=n_min - n)
            elif per < self.lower:
                table.at[i, "threshold"] = self.lower
                table.at[i, "margin"] = per - self.lower
                table.at[i, "status"] = "fail"
                table.at[i, "evidence"] = _say("band_over", n=n, pop=f"{pop:,.0f}", most=n_max)
            else:
                lo, hi = per - self.lower, self.upper - per
                table.at[i, "threshold"] = self.lower if lo <= hi else self.upper
                table.at[i, "margin"] = min(lo, hi)
                table.at[i, "status"] = "pass"
                table.at[i, "evidence"] = _say("band_pass", n=n, pop=f"{pop:,.0f}",
                                               per=f"{per:,.0f}")
        return table


# ------------------------------------------------------------------------------ ratio
@dataclass(kw_only=True)
class RatioRule(_Rule):
    """Beds, doctors or nurses per 1,000 residents against a target (DDK-10, DDK-20, ...).

    ``value = sum(attribute of facilities in the unit) / population * per``. The rule is
    ``cannot_check`` (with the reason) when the facilities have no such column or no value in
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
    where
        Facility attribute filters (:func:`facility_filter`), e.g. ``{"social_run": True}``
        for the beds of 社会办医院 (DZ-14).
    """

    kind: ClassVar[str] = "ratio"
    attribute: str
    target: float
    per: float = 1000.0
    comparison: str = ">="
    facility_types: tuple[str, ...] = ()
    level: str | None = "county"
    where: Mapping[str, Any] = _field(default_factory=dict)

    def quoted_values(self) -> list[float]:
        """Return the target."""
        return [float(self.target)]

    def unavailable(self, layers: Layers) -> str | None:
        """Say why the data cannot decide the rule (also: no values of ``attribute``)."""
        why = super().unavailable(layers)
        if why is not None:
            return why
        fac = layers.facilities
        if self.facility_types:
            fac = fac[fac["type"].isin(self.facility_types)]
        return _column_missing(fac, self.attribute, self.facility_types)

    def criterion(self) -> str:
        """Return the standard in words."""
        from covplan.labels import ATTRIBUTE_LABELS, COMPARISON_LABELS

        where = _where_text(self.where)
        zh, en = term_pair(ATTRIBUTE_LABELS, self.attribute)
        return _say("ratio_criterion", attr=(zh + where, self.attribute + where),
                    per=_num(self.per), cmp=term_pair(COMPARISON_LABELS, self.comparison),
                    target=_num(self.target))

    def _fill(self, layers: Layers, table: pd.DataFrame) -> pd.DataFrame:
        crit = self.criterion()
        table["criterion"] = crit
        table["threshold"] = float(self.target)
        table["value_unit"] = f"{self.attribute} per {_num(self.per)}"
        fac = layers.facilities
        if self.facility_types:
            fac = fac[fac["type"].isin(self.facility_types)]
        if self.where:
            fac = fac[facility_filter(fac, self.where)]
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
                table.at[i, "evidence"] = _say("no_population")
                continue
            value = total / pop * self.per
            table.at[i, "value"] = value
            margin = value - self.target if self.comparison == ">=" else self.target - value
            table.at[i, "margin"] = margin
            table.at[i, "status"] = "pass" if margin >= -_EPS else "fail"
            lacking = sub.loc[vals.isna().to_numpy(), "facility_id"]
            listed = [str(names.get(f, f)) for f in lacking]
            note = (_pair(_say("ratio_lacking", k=len(lacking),
                               names=("、".join(listed), ", ".join(listed))))
                    if len(lacking) else ("", ""))
            table.at[i, "evidence"] = _say(
                "ratio_evidence", total=f"{total:,.0f}", n=len(sub), pop=f"{pop:,.0f}",
                attr=_ratio_attr(self.attribute), note=note)
        return table


# ------------------------------------------------------------------- counts at a level
@dataclass(kw_only=True)
class CountRule(PresenceRule):
    """So many facilities (of some types, meeting attribute filters) in a whole unit.

    The plans' counts -- 4 三级医院 in the district (DDK-09), 22 次中心 in the city (BZ-03) --
    are checked at a coarse level: ``level = "county"`` (default) counts per 区县,
    ``level = "region"`` counts the whole study area as one unit. A second campus (院区) or a
    branch (分院) counts once with its parent; ``where`` filters by attribute (``{"grade":
    "甲级"}``). Everything else is as for :class:`PresenceRule`.

    Examples
    --------
    >>> CountRule(id="DDK-09", facility_types=("hospital_grade_3",), min_count=4).criterion()
    'at least 4 of hospital_grade_3 in each county'
    """

    kind: ClassVar[str] = "count"
    level: str | None = "county"


@dataclass(kw_only=True)
class ServiceRule(PresenceRule):
    """Each unit has a facility offering a service: a yes/no column of the facility file.

    DZ-08 「在27个镇街新建发热门诊」: every 镇街 has at least one facility whose
    ``fever_clinic`` (是否设发热门诊) is yes. A facility file without the column makes the rule
    ``cannot_check``, never a fail of every unit.

    Parameters
    ----------
    service
        The yes/no column (``fever_clinic``, ``emergency_dept``, ``standardised`` or any other;
        values 是/否, yes/no, true/false, 1/0).
    facility_types
        Facilities that may offer it (default: every medical institution).
    level
        Unit level checked (default ``"township"``).
    """

    kind: ClassVar[str] = "service"
    service: str
    facility_types: tuple[str, ...] = FACILITY_GROUPS["medical_institutions"]
    level: str | None = "township"

    def __post_init__(self) -> None:
        """Add the service flag to the filters."""
        super().__post_init__()
        self.where = {**dict(self.where), self.service: True}

    def criterion(self) -> str:
        """Return the standard in words."""
        return (f"at least {self.min_count} facility with {self.service} in each "
                f"{_kinds_text(self.unit_kinds) or self.level or 'unit'}")


# ------------------------------------------------------------------- attribute share
@dataclass(kw_only=True)
class ShareRule(_Rule):
    """The share of a unit's facilities of some types that meet a filter (DDK-03).

    「建成甲级乡镇卫生院的比例不低于60%」: of the 乡镇卫生院 of the district, at least 60 % have
    等级 甲级. Campuses and branches (``parent_id``) are counted with their parent (the parent's
    value decides). A facility without a value of the filter column counts as not meeting it
    (named in ``evidence``); a facility file without the column, or without a single value in
    it, makes the rule ``cannot_check``.

    Parameters
    ----------
    facility_types
        The facilities the share is of.
    where
        The filter (:func:`facility_filter`), e.g. ``{"grade": "甲级"}``.
    min_share
        Smallest share that passes, in (0, 1] (0.6 for 60 %).
    level
        Unit level (default ``"county"``; ``"region"`` = the whole study area).

    Examples
    --------
    >>> ShareRule(id="DDK-03", facility_types=("township_health_centre",),
    ...           where={"grade": "甲级"}, min_share=0.6).criterion()
    'at least 60% of township_health_centre with grade = 甲级, in each county'
    """

    kind: ClassVar[str] = "share"
    facility_types: tuple[str, ...]
    where: Mapping[str, Any]
    min_share: float
    level: str | None = "county"

    def criterion(self) -> str:
        """Return the standard in words."""
        return (f"at least {self.min_share:.0%} of {', '.join(self.facility_types)} with "
                f"{_where_text(self.where).strip(' ()')}, in each {self.level or 'unit'}")

    def quoted_values(self) -> list[float]:
        """Return the share in per cent (as the plans write it)."""
        return [round(self.min_share * 100, 9)]

    def counts(self, layers: Layers, level: str, unit_id: str) -> tuple[list[str], list[str],
                                                                         list[str]]:
        """Return the facilities (counted once) of a unit: all, meeting the filter, lacking it."""
        fac = layers.facilities_in(level, self.facility_types)
        roots = layers.facility_root()
        fac = fac[(fac["in_unit"] == unit_id)
                  & (fac["facility_id"].map(roots).fillna(fac["facility_id"])
                     == fac["facility_id"])]
        ok = facility_filter(fac, self.where)
        lacking = pd.Series(False, index=fac.index)
        for column in self.where:
            if column in fac.columns:
                lacking |= fac[column].map(_blank)
        return (fac["facility_id"].tolist(), fac.loc[ok, "facility_id"].tolist(),
                fac.loc[lacking & ~ok, "facility_id"].tolist())

    def _fill(self, layers: Layers, table: pd.DataFrame) -> pd.DataFrame:
        names = layers.facility_names()
        table["criterion"] = self.criterion()
        table["threshold"] = self.min_share
        table["value_unit"] = "share of facilities"
        for i, row in table.iterrows():
            every, meet, lacking = self.counts(layers, row["level"], row["unit_id"])
            n, k = len(every), len(meet)
            table.at[i, "facility_count"] = n
            if n == 0:
                table.at[i, "status"] = "not_applicable"
                table.at[i, "evidence"] = f"no {_types_text(self.facility_types)} in this unit"
                continue
            share = k / n
            need = max(0, math.ceil(self.min_share * n - _EPS) - k)
            table.at[i, "value"] = share
            table.at[i, "margin"] = share - self.min_share
            table.at[i, "needed"] = need
            table.at[i, "status"] = "pass" if share >= self.min_share - _EPS else "fail"
            listed = ", ".join(str(names.get(f, f)) for f in meet) or "none"
            note = (f"; {len(lacking)} without a value, counted as not meeting it: "
                    + ", ".join(str(names.get(f, f)) for f in lacking)) if lacking else ""
            more = f"; {need} more needed" if need else ""
            table.at[i, "evidence"] = (f"{k} of {n} meet {_where_text(self.where).strip(' ()')}"
                                       f" ({share:.0%}): {listed}{more}{note}")
        return table


# ------------------------------------------------------------ attribute-per-attribute ratio
@dataclass(kw_only=True)
class AttributeRatioRule(_Rule):
    """One facility attribute per so many of another, summed over a unit (DDK-22, DZ-17).

    ``value = sum(numerator) / sum(denominator) * per`` over the unit's facilities of the
    types, e.g. 临床药师 per 100 beds: ``numerator = "clinical_pharmacists"``,
    ``denominator = "beds"``, ``per = 100``. Facilities lacking a numerator value count as 0
    (named in ``evidence``); a unit whose facilities have no denominator is
    ``not_applicable``; a facility file without either column (or without a value in it) makes
    the rule ``cannot_check``.

    Parameters
    ----------
    numerator, denominator
        Facility columns (``clinical_pharmacists``, ``pharmacists``, ``beds``, ...).
    target
        Target value per ``per`` of the denominator.
    per
        Amount of the denominator the ratio is per (default 100).
    comparison
        ``">="`` (default) or ``"<="``.
    facility_types
        Facility types summed (empty = every facility).
    where
        Facility attribute filters (:func:`facility_filter`).
    level
        Unit level (default ``"county"``; ``"region"`` = the whole study area).

    Examples
    --------
    >>> AttributeRatioRule(id="DDK-22", numerator="clinical_pharmacists", denominator="beds",
    ...                    target=1).criterion()
    'clinical_pharmacists per 100 beds >= 1'
    """

    kind: ClassVar[str] = "attribute_ratio"
    numerator: str
    denominator: str
    target: float
    per: float = 100.0
    comparison: str = ">="
    facility_types: tuple[str, ...] = ()
    where: Mapping[str, Any] = _field(default_factory=dict)
    level: str | None = "county"

    def criterion(self) -> str:
        """Return the standard in words."""
        return (f"{self.numerator} per {_num(self.per)} {self.denominator}"
                f"{_where_text(self.where)} {self.comparison} {_num(self.target)}")

    def quoted_values(self) -> list[float]:
        """Return the target."""
        return [float(self.target)]

    def unavailable(self, layers: Layers) -> str | None:
        """Say why the data cannot decide the rule (also: no numerator or denominator)."""
        why = super().unavailable(layers)
        if why is not None:
            return why
        fac = self._facilities(layers.facilities)
        for column in (self.numerator, self.denominator):
            why = _column_missing(fac, column, self.facility_types)
            if why:
                return why
        return None

    def _facilities(self, fac: pd.DataFrame) -> pd.DataFrame:
        if self.facility_types:
            fac = fac[fac["type"].isin(self.facility_types)]
        return fac[facility_filter(fac, self.where)] if self.where else fac

    def totals(self, layers: Layers, level: str, unit_id: str) -> tuple[float, float, list[str],
                                                                         int]:
        """Return (numerator sum, denominator sum, ids lacking a numerator, facilities)."""
        fac = self._facilities(layers.facilities)
        sub = fac[fac["facility_id"].map(layers.facility_unit(level)) == unit_id]
        num = pd.to_numeric(sub[self.numerator], errors="coerce")
        den = pd.to_numeric(sub[self.denominator], errors="coerce")
        lacking = sub.loc[num.isna().to_numpy() & (den.fillna(0) > 0).to_numpy(), "facility_id"]
        return (float(num.fillna(0).sum()), float(den.fillna(0).sum()),
                [str(f) for f in lacking], len(sub))

    def _fill(self, layers: Layers, table: pd.DataFrame) -> pd.DataFrame:
        names = layers.facility_names()
        table["criterion"] = self.criterion()
        table["threshold"] = float(self.target)
        table["value_unit"] = f"{self.numerator} per {_num(self.per)} {self.denominator}"
        for i, row in table.iterrows():
            num, den, lacking, n = self.totals(layers, row["level"], row["unit_id"])
            table.at[i, "facility_count"] = n
            if den <= 0:
                table.at[i, "status"] = "not_applicable"
                table.at[i, "evidence"] = f"no {self.denominator} in this unit's facilities"
                continue
            value = num / den * self.per
            margin = value - self.target if self.comparison == ">=" else self.target - value
            table.at[i, "value"] = value
            table.at[i, "margin"] = margin
            table.at[i, "status"] = "pass" if margin >= -_EPS else "fail"
            note = (f"; {len(lacking)} without a {self.numerator} value, counted as 0: "
                    + ", ".join(str(names.get(f, f)) for f in lacking)) if lacking else ""
            table.at[i, "evidence"] = (f"{num:,.4g} {self.numerator} for {den:,.0f} "
                                       f"{self.denominator} in {n} facilities{note}")
        return table


# ------------------------------------------------------------------- three tiers
@dataclass(kw_only=True)
class TierRule(_Rule):
    """Care at each tier: a facility of the tier's types in every unit of the tier's level.

    YC-22 「大病重病不出区、常见病多发病不出乡镇、头疼脑热不出村」 is three presence checks at
    three levels. Each tier is a table with ``level`` (required), ``facility_types``
    (required), and optional ``unit_kinds``, ``where`` and ``name``; the rows of every tier
    are reported (``level`` says which), and a tier whose level the data lacks is
    ``cannot_check`` on its own.

    Examples
    --------
    >>> rule = TierRule(id="T", tiers=({"level": "county", "facility_types": ["hospital"]},))
    >>> rule.criterion()
    'county: at least 1 of hospital in each county'
    """

    kind: ClassVar[str] = "tiers"
    tiers: tuple[Mapping[str, Any], ...]
    level: str | None = None

    def __post_init__(self) -> None:
        """Build one :class:`PresenceRule` per tier."""
        super().__post_init__()
        self.tiers = tuple(dict(t) for t in self.tiers)
        self._checks = [
            PresenceRule(id=self.id, level=str(t["level"]),
                         facility_types=tuple(t["facility_types"]),
                         unit_kinds=tuple(t.get("unit_kinds", ())),
                         where=dict(t.get("where", {})), title=self.title, source=self.source,
                         quote=self.quote)
            for t in self.tiers
        ]

    def _tier_name(self, j: int) -> str:
        return str(self.tiers[j].get("name") or self.tiers[j]["level"])

    def criterion(self) -> str:
        """Return the standard in words."""
        return "; ".join(f"{self._tier_name(j)}: {c.criterion()}"
                         for j, c in enumerate(self._checks))

    def unavailable(self, layers: Layers) -> str | None:
        """Return why no tier can be checked (None when one can)."""
        reasons = [c.unavailable(layers) for c in self._checks]
        if all(r is not None for r in reasons):
            return "; ".join(f"{self._tier_name(j)}: {r}" for j, r in enumerate(reasons))
        return None

    def evaluate_on(self, layers: Layers) -> pd.DataFrame:
        """Check every tier; the rows of all tiers, each with its tier in ``criterion``."""
        tables = []
        for j, check in enumerate(self._checks):
            table = check.evaluate_on(layers)
            table["rule"] = self.kind
            table["criterion"] = f"{self._tier_name(j)}: {check.criterion()}"
            tables.append(table)
        return pd.concat(tables, ignore_index=True)[list(RESULT_COLUMNS)]


Rule = (TravelTimeRule | DistanceRule | PresenceRule | PopulationBandRule | RatioRule
        | CountRule | ServiceRule | ShareRule | AttributeRatioRule | TierRule)

#: Rule name (the ``rule`` key of a standards table) -> class.
RULE_KINDS: dict[str, type] = {
    cls.kind: cls
    for cls in (TravelTimeRule, DistanceRule, PresenceRule, PopulationBandRule, RatioRule,
                CountRule, ServiceRule, ShareRule, AttributeRatioRule, TierRule)
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
        wanted = _scope_pair(kinds, None)
        if kind is None or (isinstance(kind, float) and math.isnan(kind)):
            return (CANNOT_CHECK, _say("scope_kind_unknown", wanted=wanted))
        if kind not in kinds:
            from covplan.labels import KIND_SOURCE_LABELS

            source = unit.get("kind_source") or "data"
            zh_kind = unit_kind_label(str(kind), language="zh")
            return ("not_applicable", _say(
                "scope_kind_other", wanted=wanted, kind=(zh_kind, str(kind)), kind_zh=zh_kind,
                source=term_pair(KIND_SOURCE_LABELS, source)))
    if unit_class is not None and unit["urban_rural"] != unit_class:
        this = (term_pair(URBAN_RURAL_LABELS, unit["urban_rural"]) if unit["urban_rural"]
                else _pair(_say("unclassified")))
        return ("not_applicable", _say("scope_class", cls=term_pair(URBAN_RURAL_LABELS,
                                                                    unit_class), this=this))
    if pattern is not None and not re.search(pattern, str(unit["name"])):
        return ("not_applicable", _say("scope_name", pattern=repr(pattern)))
    return ("", "")


def _kind_keys(rule_id: str, kinds: object) -> tuple[str, ...]:
    values = (kinds,) if isinstance(kinds, str) else tuple(kinds or ())  # type: ignore[arg-type]
    try:
        return normalise_kinds(values)
    except CoverageError as exc:
        raise CoverageError(f"rule {rule_id}: unit_kinds: {exc}") from None


def _kinds_text(kinds: tuple[str, ...]) -> str:
    return " / ".join(f"{unit_kind_label(k, language='zh')} ({k})" for k in kinds)


def _ratio_attr(attribute: str) -> tuple[str, str]:
    from covplan.labels import ATTRIBUTE_LABELS

    return term_pair(ATTRIBUTE_LABELS, attribute)


def _scope_pair(kinds: tuple[str, ...], level: str | None) -> tuple[str, str]:
    """Return what a rule checks, ``(Chinese, English)``: its unit kinds, else its level."""
    if kinds:
        return "、".join(term_pair(UNIT_KIND_LABELS, k)[0] for k in kinds), _kinds_text(kinds)
    if level:
        return term_pair(UNIT_LEVEL_LABELS, level)[0], level
    return "单元", "unit"


def _listed(root: str, members: list[str], names: pd.Series) -> str:
    """Name a counted facility, with the campuses or branches counted with it."""
    head = str(names.get(root, root))
    others = [str(names.get(m, m)) for m in members if m != root]
    if not others:
        return head
    return _say("pres_counted_once", head=head, others=("、".join(others), ", ".join(others)))


def _num(x: float) -> str:
    return f"{x:g}" if abs(x) < 1e6 else f"{x:,.0f}"



# ------------------------------------------------------------------- facility filters
def facility_filter(facilities: pd.DataFrame, where: Mapping[str, Any]) -> pd.Series:
    """Return which facilities meet every filter of ``where`` (a boolean Series).

    Parameters
    ----------
    facilities
        A facility table.
    where
        Column -> wanted value. ``True``/``False`` compare a yes/no column (是/否, yes/no,
        true/false, 1/0); a number compares equal; a string matches the value itself or a
        value starting with it (``"三级"`` matches 三级甲等, ``"甲级"`` matches 甲级); a list
        matches any of its items. A missing column or a blank value never matches.

    Examples
    --------
    >>> fac = pd.DataFrame({"grade": ["三级甲等", "二级", None], "fever_clinic": ["是", "否", 1]})
    >>> facility_filter(fac, {"grade": "三级"}).tolist()
    [True, False, False]
    >>> facility_filter(fac, {"fever_clinic": True}).tolist()
    [True, False, True]
    """
    from covplan.inputs.register import parse_flag

    ok = pd.Series(True, index=facilities.index)
    for column, wanted in where.items():
        if column not in facilities.columns:
            return pd.Series(False, index=facilities.index)
        values = facilities[column]
        options = list(wanted) if isinstance(wanted, (list, tuple)) else [wanted]

        def match(value: object, options: list[Any] = options) -> bool:
            if _blank(value):
                return False
            for want in options:
                if isinstance(want, bool):
                    try:
                        flag = value if isinstance(value, bool) else parse_flag(value)
                    except Exception:  # an unreadable flag meets no filter
                        flag = None
                    if flag is want:
                        return True
                elif isinstance(want, (int, float)):
                    number = pd.to_numeric(pd.Series([value]), errors="coerce").iloc[0]
                    if number == number and abs(float(number) - float(want)) < _EPS:
                        return True
                elif str(value).strip().startswith(str(want).strip()):
                    return True
            return False

        ok &= values.map(match).astype(bool)
    return ok


def _blank(value: object) -> bool:
    return (value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value))
            or (isinstance(value, str) and not value.strip()))


def _column_missing(fac: pd.DataFrame, column: str, types: tuple[str, ...]) -> str | None:
    """Say that a column is missing from (or empty in) the facility file, else None."""
    from covplan.inputs.register import REGISTER_COLUMNS

    header = next((c.zh for c in REGISTER_COLUMNS if c.key == column), "")
    named = f"{column!r} column" + (f" ({header})" if header else "")
    if column not in fac.columns:
        return f"no {named} in the facility file"
    if fac[column].map(_blank).all():
        whose = f" of {_types_text(types)}" if types else ""
        return f"the {named} of the facility file has no value for any facility{whose}"
    return None


def _types_text(types: tuple[str, ...]) -> str:
    """Name facility types in Chinese with their keys: ``村卫生室 (village_clinic)``."""
    return " / ".join(f"{FACILITY_TYPES[t][0]} ({t})" if t in FACILITY_TYPES else t
                      for t in types)


def _where_text(where: Mapping[str, Any]) -> str:
    if not where:
        return ""
    parts = [f"{k} = {'/'.join(map(str, v)) if isinstance(v, (list, tuple)) else v}"
             for k, v in where.items()]
    return f" ({', '.join(parts)})"


def _region_layers(layers: Layers) -> Layers:
    """Return layers with one unit, the whole study area (level ``"region"``), cached."""
    key = ("region_layers",)
    if key in layers._cache:
        return layers._cache[key]
    data = layers.data_levels()
    top = data[0] if data else None
    fac = layers.facilities.copy()
    inside = fac["facility_id"].map(layers.facility_unit(top)).notna() if top else False
    fac["unit_id"] = np.where(inside, REGION, None)
    units = gpd.GeoDataFrame(
        {"unit_id": [REGION], "name": ["study area (全域)"], "level": [REGION],
         "parent_id": [None], "population": [float(layers.places["population"].sum())]},
        geometry=[None], crs=getattr(layers.units, "crs", None),
    )
    places = layers.places.assign(unit_id=REGION)
    region = Layers(facilities=fac, units=units, places=places, access=layers.access,
                    registered_types=layers.registered_types)
    layers._cache[key] = region
    return region


# ------------------------------------------------------------ emergency response (issue 18)
def _response_access(layers: Layers, method: str) -> str | None:
    """Say why the access cannot answer ``method`` (``two_leg``/``nearest_two``), else None."""
    if layers.access is None:
        return "no access was given (pass the road engine's RoadAccess)"
    if not callable(getattr(layers.access, method, None)):
        return (f"the access ({type(layers.access).__name__}) has no {method}(): "
                "emergency response is measured on the road network (RoadAccess)")
    return None


@dataclass(kw_only=True)
class ResponseTimeRule(_CoverageRule):
    """Share of residents whose whole emergency response fits in T minutes.

    The response is two legs (:meth:`covplan.standards.access.ResponseAccess.two_leg`): the
    nearest station of ``facility_types`` drives out to the patient (with the mode's
    ``turnout_minutes``), stays ``on_scene_minutes``, and drives the patient to the nearest
    receiving hospital. The total is judged against ``minutes``; the per-place table also
    carries each leg (``leg1_minutes``, ``station_id``, ``on_scene_minutes``,
    ``leg2_minutes``, ``hospital_id``).

    Parameters
    ----------
    id, level, title, source, quote
        See the common fields.
    facility_types
        Station types the ambulance leaves from, e.g. ``("emergency_station",)``.
    minutes
        One number, or a number per urban/rural class (as for :class:`TravelTimeRule`).
    hospital_types
        Facility types that receive patients. Empty (default): the facilities whose
        ``emergency_dept`` (是否设急诊) is yes, of any type.
    mode
        Travel mode (default ``"ambulance"``).
    required_share
        Share of residents that must be covered (default 1.0).
    """

    kind: ClassVar[str] = "response_time"
    _type_fields: ClassVar[tuple[str, ...]] = (*_Rule._type_fields, "hospital_types")
    minutes: Threshold
    hospital_types: tuple[str, ...] = ()
    mode: str = "ambulance"

    def limits(self) -> dict[str, float] | float:
        """Return ``minutes``."""
        return dict(self.minutes) if isinstance(self.minutes, Mapping) else float(self.minutes)

    def receiving(self, layers: Layers) -> tuple[str, ...]:
        """Return the ``facility_id`` of every receiving hospital."""
        fac = layers.facilities
        if self.hospital_types:
            ok = fac["type"].isin(self.hospital_types)
        else:
            ok = facility_filter(fac, {"emergency_dept": True})
        return tuple(fac.loc[ok, "facility_id"].astype(str))

    def unavailable(self, layers: Layers) -> str | None:
        """Also: no receiving hospital, or an access without two-leg answers."""
        reason = super().unavailable(layers)
        if reason is not None:
            return reason
        if not self.receiving(layers):
            if self.hospital_types:
                return f"no {_types_text(self.hospital_types)} in the facility file"
            return (_column_missing(layers.facilities, "emergency_dept", ())
                    or "no facility has emergency_dept (是否设急诊) = yes: flag the receiving "
                    "hospitals, or name hospital_types on the rule")
        return _response_access(layers, "two_leg")

    def _measure(self, layers: Layers) -> pd.DataFrame:
        key = ("two_leg", self.facility_types, self.receiving(layers), self.mode)
        if key not in layers._cache:
            table = layers.access.two_leg(  # type: ignore[union-attr]
                self.facility_types, self.receiving(layers), mode=self.mode)
            table = table.reindex(layers.places["place_id"].to_numpy())
            table["value"] = table["value"].astype(float).fillna(math.inf)
            layers._cache[key] = table
        return layers._cache[key]

    def place_values(self, layers: Layers) -> pd.DataFrame:
        """Return :data:`PLACE_COLUMNS` (``value`` = the total) and each leg per place."""
        out = super().place_values(layers)
        legs = self._measure(layers)
        names = layers.facility_names()
        for col, src in (("leg1_minutes", "leg1_minutes"), ("station_id", "station_id"),
                         ("on_scene_minutes", "on_scene"), ("leg2_minutes", "leg2_minutes"),
                         ("hospital_id", "hospital_id")):
            out[col] = out["place_id"].map(legs[src]).to_numpy()
        out["hospital_name"] = out["hospital_id"].map(names)
        return out

    def criterion(self) -> str:
        """Return the standard in words, naming the two legs."""
        base = _CoverageRule.criterion(self)
        hosp = (_types_pair(self.hospital_types) if self.hospital_types
                else ("设急诊的医院", "hospitals with an emergency department"))
        return Sentence(f"{base} (whole response: station -> patient -> {hosp[1]}, turnout "
                        "and on-scene time included)",
                        f"{getattr(base, 'zh', base)}（全程急救响应：急救站→患者→{hosp[0]}，"
                        "含出车准备与现场处置时间）")


@dataclass(kw_only=True)
class BackupCoverRule(_CoverageRule):
    """Share of residents with backup cover: a SECOND facility within T minutes.

    When the nearest station is busy, the second-nearest one must still arrive in time
    (:meth:`covplan.standards.access.ResponseAccess.nearest_two`). ``value`` in the per-place
    table is the time from the second-nearest facility (``inf`` when fewer than two lie within
    the limit); ``nearest_minutes`` / ``nearest_facility_id`` give the first.

    Parameters
    ----------
    id, level, title, source, quote
        See the common fields.
    facility_types
        Facility types counted (stations), e.g. ``("emergency_station",)``.
    minutes
        One number, or a number per urban/rural class.
    mode
        Travel mode (default ``"ambulance"``).
    required_share
        Share of residents that must have backup cover (default 1.0).
    """

    kind: ClassVar[str] = "backup_cover"
    minutes: Threshold
    mode: str = "ambulance"

    def limits(self) -> dict[str, float] | float:
        """Return ``minutes``."""
        return dict(self.minutes) if isinstance(self.minutes, Mapping) else float(self.minutes)

    def _cutoff(self) -> float:
        limit = self.limits()
        return float(max(limit.values())) if isinstance(limit, Mapping) else float(limit)

    def unavailable(self, layers: Layers) -> str | None:
        """Also: an access without nearest-two answers."""
        return super().unavailable(layers) or _response_access(layers, "nearest_two")

    def _two(self, layers: Layers) -> pd.DataFrame:
        key = ("nearest_two", self.facility_types, self.mode, self._cutoff())
        if key not in layers._cache:
            table = layers.access.nearest_two(  # type: ignore[union-attr]
                self.facility_types, mode=self.mode, cutoff=self._cutoff())
            table = table.reindex(layers.places["place_id"].to_numpy())
            for col in ("value", "second_value"):
                table[col] = table[col].astype(float).fillna(math.inf)
            layers._cache[key] = table
        return layers._cache[key]

    def _measure(self, layers: Layers) -> pd.DataFrame:
        two = self._two(layers)
        return pd.DataFrame({"value": two["second_value"],
                             "facility_id": two["second_facility_id"]}, index=two.index)

    def place_values(self, layers: Layers) -> pd.DataFrame:
        """Return :data:`PLACE_COLUMNS` (``value`` = backup time) and the nearest facility."""
        out = super().place_values(layers)
        two = self._two(layers)
        out["nearest_minutes"] = out["place_id"].map(two["value"]).to_numpy()
        out["nearest_facility_id"] = out["place_id"].map(two["facility_id"]).to_numpy()
        return out

    def criterion(self) -> str:
        """Return the standard in words, saying it is the second facility."""
        base = _CoverageRule.criterion(self)
        return Sentence(f"{base}, from a second facility (backup cover when the nearest is "
                        "busy)",
                        f"{getattr(base, 'zh', base)}，由第二近机构覆盖（最近者出车时的备份覆盖）")


RULE_KINDS.update({ResponseTimeRule.kind: ResponseTimeRule, BackupCoverRule.kind: BackupCoverRule})
