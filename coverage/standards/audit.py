"""Check standards against a region: one row per unit and rule, a summary, the uncovered places.

``run_audit`` evaluates each rule (:mod:`covplan.standards.rules`) on the same cached layers,
so travel values are measured once per (facility types, mode, metric). Every number in the
result can be traced: unit rows carry the population and covered population they were computed
from, and the place tables carry each place's population, nearest facility and minutes (or km).
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass

import geopandas as gpd
import numpy as np
import pandas as pd
from covplan.errors import CoverageError, Problem
from covplan.standards.access import Access
from covplan.standards.layers import Layers
from covplan.standards.rules import (
    PLACE_COLUMNS,
    REGION,
    RESULT_COLUMNS,
    AttributeRatioRule,
    PopulationBandRule,
    PresenceRule,
    RatioRule,
    Rule,
    ShareRule,
    TierRule,
    _CoverageRule,
)

__all__ = ["ROLLUP_COLUMNS", "SUMMARY_COLUMNS", "AuditResult", "nothing_checked", "roll_up",
           "run_audit", "unchecked_rules"]

#: Columns of :attr:`AuditResult.summary`, in order.
SUMMARY_COLUMNS: tuple[str, ...] = (
    "rule_id", "rule", "title", "levels", "units_checked", "units_pass", "units_fail",
    "units_not_applicable", "units_cannot_check", "population", "covered_population",
    "region_value", "threshold", "value_unit", "region_status", "total_needed", "criterion",
    "source", "quote",
)  # fmt: skip

#: Columns of :attr:`AuditResult.rollup`, in order.
ROLLUP_COLUMNS: tuple[str, ...] = (
    "rule_id", "level", "unit_id", "unit_name", "judged_level", "units_pass", "units_fail",
    "units_not_applicable", "units_cannot_check", "status", "evidence",
)  # fmt: skip


@dataclass
class AuditResult:
    """The result of :func:`run_audit`.

    Attributes
    ----------
    units
        One row per rule and unit: :data:`covplan.standards.rules.RESULT_COLUMNS` plus
        ``title``.
    summary
        One row per rule across the region (:data:`SUMMARY_COLUMNS`). For travel rules the
        region value is the covered share of all residents the rule applies to; for presence
        and band rules the share of checked units that pass (``total_needed`` = facilities
        missing); for ratios the ratio over all checked units.
    places
        Uncovered population places of every travel rule, worst first within a rule:
        :data:`covplan.standards.rules.PLACE_COLUMNS` with the place geometry.
    place_values
        Every place of every travel rule (covered or not), same columns.
    unit_geometry
        Geometry of the units by ``unit_id`` (for :meth:`unit_layer`).
    rollup
        The unit verdicts of every rule rolled up the levels (village -> township -> county):
        :data:`ROLLUP_COLUMNS`, see :func:`roll_up`.
    """

    units: pd.DataFrame
    summary: pd.DataFrame
    places: gpd.GeoDataFrame
    place_values: gpd.GeoDataFrame
    unit_geometry: gpd.GeoSeries | None = None
    rollup: pd.DataFrame | None = None

    @property
    def evidence(self) -> gpd.GeoDataFrame:
        """The uncovered places (same as :attr:`places`)."""
        return self.places

    def unit_layer(self, rule_id: str | None = None) -> gpd.GeoDataFrame:
        """Return :attr:`units` (optionally one rule) as a layer with the unit geometry.

        Raises
        ------
        CoverageError
            If the units had no geometry.
        """
        if self.unit_geometry is None:
            raise CoverageError("the units given to run_audit had no geometry")
        table = self.units if rule_id is None else self.units[self.units["rule_id"] == rule_id]
        geom = table["unit_id"].map(self.unit_geometry)
        return gpd.GeoDataFrame(table.copy(), geometry=list(geom), crs=self.unit_geometry.crs)


def run_audit(
    rules: Sequence[Rule],
    *,
    facilities: gpd.GeoDataFrame,
    units: gpd.GeoDataFrame,
    places: gpd.GeoDataFrame,
    access: Access | None,
    levels: Mapping[str, str] | None = None,
    registered_types: Collection[str] | None = None,
) -> AuditResult:
    """Check every rule for every unit of its level.

    Parameters
    ----------
    rules
        Rules from :func:`covplan.standards.parse_standards` or
        :func:`covplan.standards.load_preset`.
    facilities, units, places
        The canonical layers (docs/ARCHITECTURE.md). ``places`` need ``urban_rural`` for rules
        with urban/rural thresholds (see :func:`covplan.inputs.urban_rural.classify_places`).
    access
        Nearest-facility values (road engine or
        :class:`~covplan.standards.access.StraightLineAccess`); None is allowed when no rule
        measures travel.
    levels
        Map from rule level names (``"county"``, ``"township"``, ``"village"``) to the level
        names of ``units``; by default they are matched automatically.
    registered_types
        Facility types of the facility file, when ``facilities`` is a what-if's changed layer
        (see :class:`~covplan.standards.layers.Layers`); default: the types of ``facilities``.

    Returns
    -------
    AuditResult
    """
    ids = [r.id for r in rules]
    dup = sorted({i for i in ids if ids.count(i) > 1})
    if dup:
        raise CoverageError(f"rule ids must be unique; repeated: {dup}")
    layers = Layers(facilities=facilities, units=units, places=places, access=access,
                    levels=levels, registered_types=registered_types)
    unit_tables: list[pd.DataFrame] = []
    place_tables: list[pd.DataFrame] = []
    summaries: list[dict[str, object]] = []
    for rule in rules:
        table = rule.evaluate_on(layers)
        table.insert(2, "title", rule.title)
        unit_tables.append(table)
        values = (rule.place_values(layers)
                  if isinstance(rule, _CoverageRule) and rule.unavailable(layers) is None
                  else None)
        if values is not None:
            place_tables.append(values)
        summaries.append(_summary(rule, table, values, layers))

    units_out = (pd.concat(unit_tables, ignore_index=True) if unit_tables
                 else pd.DataFrame(columns=["title", *RESULT_COLUMNS]))
    all_places = (pd.concat(place_tables, ignore_index=True) if place_tables
                  else pd.DataFrame(columns=list(PLACE_COLUMNS)))
    geom = layers.places.set_index("place_id").geometry if "geometry" in layers.places else None
    crs = layers.places.crs if isinstance(layers.places, gpd.GeoDataFrame) else None
    place_values = gpd.GeoDataFrame(
        all_places,
        geometry=list(all_places["place_id"].map(geom)) if geom is not None else None,
        crs=crs,
    )
    uncovered = place_values[~place_values["covered"].astype(bool)]
    uncovered = uncovered.sort_values(["rule_id", "value", "population"],
                                      ascending=[True, False, False], kind="stable")
    unit_geometry = None
    if isinstance(units, gpd.GeoDataFrame) and "geometry" in units.columns:
        unit_geometry = gpd.GeoSeries(units.geometry.to_numpy(),
                                      index=units["unit_id"].astype(str), crs=units.crs)
    summary = pd.DataFrame(summaries, columns=list(SUMMARY_COLUMNS))
    return AuditResult(units=units_out, summary=summary,
                       places=uncovered.reset_index(drop=True),
                       place_values=place_values, unit_geometry=unit_geometry,
                       rollup=roll_up(units_out, layers))


def roll_up(units: pd.DataFrame, layers: Layers) -> pd.DataFrame:
    """Count each rule's unit verdicts per unit of every coarser level.

    A rule judged per 村/社区 gives, for every 镇街 and for the 区, how many of its villages
    pass, fail, are not asked or cannot be checked; ``status`` is ``fail`` when one fails,
    else ``pass`` when one passes, else ``not_applicable`` (or ``cannot_check`` when every
    one is). Units without a parent at a level (orphans) are left out of that level.

    Parameters
    ----------
    units
        :attr:`AuditResult.units`.
    layers
        The layers the rules were judged on (for the parent tree).

    Returns
    -------
    pandas.DataFrame
        :data:`ROLLUP_COLUMNS`; empty when there is one level only.
    """
    levels = layers.data_levels()
    names = dict(zip(layers.units["unit_id"], layers.units["name"].astype(str), strict=True))
    rows: list[dict[str, object]] = []
    judged = units[units["unit_id"].notna()]
    for (rule_id, judged_level), group in judged.groupby(["rule_id", "level"], sort=False):
        if str(judged_level) not in levels:
            continue
        above = levels[: levels.index(str(judged_level))]
        for level in above:
            parent = group["unit_id"].map(lambda u, lv=level: layers.ancestor(str(u), lv))
            for pid, part in group.groupby(parent.to_numpy(), sort=True):
                counts = part["status"].value_counts()
                n = {k: int(counts.get(k, 0)) for k in ("pass", "fail", "not_applicable",
                                                        "cannot_check")}
                status = ("fail" if n["fail"] else "pass" if n["pass"] else
                          "cannot_check" if n["cannot_check"] == len(part) else "not_applicable")
                failing = part.loc[part["status"] == "fail", "unit_name"].astype(str).tolist()
                evidence = (f"{n['fail']} of {len(part)} {judged_level} units fail: "
                            + ", ".join(failing[:8]) + (" ..." if len(failing) > 8 else "")
                            if failing else f"{n['pass']} of {len(part)} {judged_level} units "
                            "pass")
                rows.append({"rule_id": rule_id, "level": level, "unit_id": str(pid),
                             "unit_name": names.get(str(pid), str(pid)),
                             "judged_level": judged_level, "units_pass": n["pass"],
                             "units_fail": n["fail"],
                             "units_not_applicable": n["not_applicable"],
                             "units_cannot_check": n["cannot_check"], "status": status,
                             "evidence": evidence})
    return pd.DataFrame(rows, columns=list(ROLLUP_COLUMNS))


def _summary(
    rule: Rule, table: pd.DataFrame, values: pd.DataFrame | None, layers: Layers | None = None
) -> dict[str, object]:
    counts = table["status"].value_counts()
    row: dict[str, object] = {
        "rule_id": rule.id, "rule": rule.kind, "title": rule.title,
        "levels": ", ".join(dict.fromkeys(table["level"].astype(str))),
        "units_checked": int(counts.get("pass", 0) + counts.get("fail", 0)),
        "units_pass": int(counts.get("pass", 0)), "units_fail": int(counts.get("fail", 0)),
        "units_not_applicable": int(counts.get("not_applicable", 0)),
        "units_cannot_check": int(counts.get("cannot_check", 0)),
        "population": np.nan, "covered_population": np.nan, "region_value": np.nan,
        "threshold": np.nan, "value_unit": "", "region_status": "not_applicable",
        "total_needed": np.nan, "criterion": rule.criterion(), "source": rule.source,
        "quote": rule.quote,
    }  # fmt: skip
    if len(table) and (table["status"] == "cannot_check").all():
        # nothing the data can decide (e.g. the rule's level is missing): say so, with why
        row.update(region_status="cannot_check")
        return row
    if isinstance(rule, _CoverageRule) and values is not None:
        pop = float(values["population"].sum())
        cov = float(values.loc[values["covered"], "population"].sum())
        row.update(population=pop, covered_population=cov, threshold=rule.required_share,
                   value_unit="share of residents")
        if pop > 0:
            share = cov / pop
            row.update(region_value=share,
                       region_status="pass" if share >= rule.required_share - 1e-9 else "fail")
        return row
    checked = table[table["status"].isin(["pass", "fail"])]
    if isinstance(rule, (ShareRule, AttributeRatioRule)) and layers is not None:
        lay = layers if rule.level != REGION else None
        totals = [(rule.counts(lay, lv, u) if isinstance(rule, ShareRule)
                   else rule.totals(lay, lv, u)) if lay is not None else None
                  for lv, u in zip(checked["level"], checked["unit_id"], strict=True)]
        if isinstance(rule, ShareRule):
            row.update(threshold=rule.min_share, value_unit="share of facilities")
            if lay is None or len(checked) == 1:
                value = float(checked["value"].iloc[0]) if len(checked) else np.nan
            else:
                n = sum(len(t[0]) for t in totals if t)
                value = sum(len(t[1]) for t in totals if t) / n if n else np.nan
            ok = value >= rule.min_share - 1e-9
        else:
            row.update(threshold=rule.target,
                       value_unit=f"{rule.numerator} per {rule.per:g} {rule.denominator}")
            if lay is None or len(checked) == 1:
                value = float(checked["value"].iloc[0]) if len(checked) else np.nan
            else:
                den = sum(t[1] for t in totals if t)
                value = sum(t[0] for t in totals if t) / den * rule.per if den else np.nan
            margin = value - rule.target if rule.comparison == ">=" else rule.target - value
            ok = margin >= -1e-9
        if value == value:
            row.update(region_value=value, region_status="pass" if ok else "fail",
                       population=float(checked["population"].sum()))
        return row
    if isinstance(rule, RatioRule):
        row.update(threshold=rule.target, value_unit=f"{rule.attribute} per {rule.per:g}")
        ok = checked[checked["value"].notna() & (checked["population"] > 0)]
        if len(ok):
            pop = float(ok["population"].sum())
            value = float((ok["value"] * ok["population"]).sum() / pop)
            margin = value - rule.target if rule.comparison == ">=" else rule.target - value
            row.update(population=pop, region_value=value,
                       region_status="pass" if margin >= -1e-9 else "fail")
        return row
    if isinstance(rule, (PresenceRule, PopulationBandRule, TierRule)):
        row.update(value_unit="share of units passing", threshold=1.0,
                   population=float(checked["population"].sum()))
        if len(checked):
            row.update(region_value=float((checked["status"] == "pass").mean()),
                       region_status="pass" if (checked["status"] == "pass").all() else "fail")
        needed = checked["needed"].fillna(0.0)
        if isinstance(rule, PopulationBandRule):
            needed = (needed - checked["facility_count"].fillna(0.0)).clip(lower=0.0)
        row["total_needed"] = float(needed.sum())
        return row
    return row



def unchecked_rules(
    rules: Sequence[Rule],
    *,
    facilities: gpd.GeoDataFrame,
    units: gpd.GeoDataFrame,
    places: gpd.GeoDataFrame,
    levels: Mapping[str, str] | None = None,
) -> list[Problem]:
    """List the rules these layers cannot decide (they will report ``cannot_check``).

    A rule cannot be checked when its level is not a level of the units, when no facility of
    its types is in the facility file (``no 村卫生室 (village_clinic) in the facility file``), or
    when a column it reads (``attribute``, ``where``, ``service``) is missing or empty. Each
    problem names the rule and its level, says why and how to fix it; ``covplan validate``
    prints them as notes.
    """
    layers = Layers(facilities=facilities, units=units, places=places, levels=levels)
    problems: list[Problem] = []
    for rule in rules:
        why = rule.unavailable(layers)
        if why is None:
            continue
        what, _, fix = why.partition(": add")
        problems.append(Problem(
            f"standards {rule.id} (level {rule.level!r})", f"cannot be checked: {what}",
            ("add" + fix) if fix else "add the missing facilities or column to the facility "
            "file (see the register template: covplan template facilities), or leave the "
            "rule out",
        ))
    return problems


def nothing_checked(units: pd.DataFrame) -> bool:
    """Return True when rules were run and not one unit of any rule passed or failed.

    Such an audit says nothing about the standards (every rule ``not_applicable`` or
    ``cannot_check``); the command line exits with
    :data:`covplan.cli.exit_codes.EXIT_NOTHING_CHECKED` (4).
    """
    from covplan.results import audit_verdict

    return audit_verdict(units["status"]) == "nothing_checked"
