"""Check standards against a region: one row per unit and rule, a summary, the uncovered places.

``run_audit`` evaluates each rule (:mod:`covplan.standards.rules`) on the same cached layers,
so travel values are measured once per (facility types, mode, metric). Every number in the
result can be traced: unit rows carry the population and covered population they were computed
from, and the place tables carry each place's population, nearest facility and minutes (or km).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import geopandas as gpd
import numpy as np
import pandas as pd
from covplan.errors import CoverageError
from covplan.standards.access import Access
from covplan.standards.layers import Layers
from covplan.standards.rules import (
    PLACE_COLUMNS,
    RESULT_COLUMNS,
    PopulationBandRule,
    PresenceRule,
    RatioRule,
    Rule,
    _CoverageRule,
)

__all__ = ["SUMMARY_COLUMNS", "AuditResult", "run_audit"]

#: Columns of :attr:`AuditResult.summary`, in order.
SUMMARY_COLUMNS: tuple[str, ...] = (
    "rule_id", "rule", "title", "levels", "units_checked", "units_pass", "units_fail",
    "units_not_applicable", "population", "covered_population", "region_value", "threshold",
    "value_unit", "region_status", "total_needed", "criterion", "source", "quote",
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
    """

    units: pd.DataFrame
    summary: pd.DataFrame
    places: gpd.GeoDataFrame
    place_values: gpd.GeoDataFrame
    unit_geometry: gpd.GeoSeries | None = None

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

    Returns
    -------
    AuditResult
    """
    ids = [r.id for r in rules]
    dup = sorted({i for i in ids if ids.count(i) > 1})
    if dup:
        raise CoverageError(f"rule ids must be unique; repeated: {dup}")
    layers = Layers(facilities=facilities, units=units, places=places, access=access,
                    levels=levels)
    unit_tables: list[pd.DataFrame] = []
    place_tables: list[pd.DataFrame] = []
    summaries: list[dict[str, object]] = []
    for rule in rules:
        table = rule.evaluate_on(layers)
        table.insert(2, "title", rule.title)
        unit_tables.append(table)
        values = rule.place_values(layers) if isinstance(rule, _CoverageRule) else None
        if values is not None:
            place_tables.append(values)
        summaries.append(_summary(rule, table, values))

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
                       place_values=place_values, unit_geometry=unit_geometry)


def _summary(rule: Rule, table: pd.DataFrame, values: pd.DataFrame | None) -> dict[str, object]:
    counts = table["status"].value_counts()
    row: dict[str, object] = {
        "rule_id": rule.id, "rule": rule.kind, "title": rule.title,
        "levels": ", ".join(dict.fromkeys(table["level"].astype(str))),
        "units_checked": int(counts.get("pass", 0) + counts.get("fail", 0)),
        "units_pass": int(counts.get("pass", 0)), "units_fail": int(counts.get("fail", 0)),
        "units_not_applicable": int(counts.get("not_applicable", 0)),
        "population": np.nan, "covered_population": np.nan, "region_value": np.nan,
        "threshold": np.nan, "value_unit": "", "region_status": "not_applicable",
        "total_needed": np.nan, "criterion": rule.criterion(), "source": rule.source,
        "quote": rule.quote,
    }  # fmt: skip
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
    if isinstance(rule, (PresenceRule, PopulationBandRule)):
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

