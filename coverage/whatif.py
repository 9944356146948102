"""What-if on a whole scenario: add, move or close facilities and compare every standard.

The siting layer (:mod:`covplan.siting.whatif`) answers one travel-time standard in well under
a millisecond from a precomputed matrix. This module answers the broader question a planner
asks before a decision: how does *every* standard change, unit by unit, if these stations
open and those close? It re-runs the audit on the changed facility layer, reusing the road
networks and the places' attachments, so that one question costs a few Dijkstra passes.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import geopandas as gpd
import pandas as pd
from covplan.engine.access import RoadAccess
from covplan.errors import CoverageError
from covplan.facility_types import FACILITY_TYPES
from covplan.standards.rules import Rule
from shapely.geometry import Point

__all__ = ["NewFacility", "ScenarioChange", "compare_audits", "what_if"]

_KEY = ["rule_id", "unit_id"]


@dataclass(frozen=True)
class NewFacility:
    """A facility to add: where, what type, and a name shown in outputs."""

    lon: float
    lat: float
    type: str
    name: str = "proposed station"


@dataclass(frozen=True)
class ScenarioChange:
    """Every standard before and after a change.

    Attributes
    ----------
    facilities
        The changed facility layer.
    units
        One row per rule and unit: status_before, status_after, covered_before,
        covered_after, delta (covered population), value_before, value_after.
    summary
        One row per rule: units passing before/after, covered population before/after, delta.
    """

    facilities: gpd.GeoDataFrame
    units: pd.DataFrame
    summary: pd.DataFrame


def changed_facilities(
    facilities: gpd.GeoDataFrame,
    *,
    add: Sequence[NewFacility] = (),
    close: Sequence[str] = (),
) -> gpd.GeoDataFrame:
    """Return the facility layer with ``close`` (facility ids) removed and ``add`` appended.

    Raises
    ------
    CoverageError
        For an unknown facility id or facility type.
    """
    unknown = sorted(set(close) - set(facilities["facility_id"]))
    if unknown:
        raise CoverageError(f"cannot close unknown facilities {unknown}; check the facility_id")
    bad = sorted({f.type for f in add} - set(FACILITY_TYPES))
    if bad:
        raise CoverageError(
            f"unknown facility types {bad}; known types: {', '.join(FACILITY_TYPES)}"
        )
    kept = facilities[~facilities["facility_id"].isin(close)]
    new = gpd.GeoDataFrame(
        {
            "facility_id": [f"whatif-{i + 1}" for i in range(len(add))],
            "name": [f.name for f in add],
            "type": [f.type for f in add],
            "source": "what-if",
        },
        geometry=[Point(f.lon, f.lat) for f in add],
        crs="EPSG:4326",
    )
    both = pd.concat([kept, new], ignore_index=True) if len(add) else kept.reset_index(drop=True)
    return gpd.GeoDataFrame(both, geometry="geometry", crs="EPSG:4326")


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
    *,
    baseline: pd.DataFrame,
    add: Sequence[NewFacility] = (),
    close: Sequence[str] = (),
) -> ScenarioChange:
    """Re-audit every standard with facilities added and closed, against a baseline audit.

    Parameters
    ----------
    access
        The scenario's road access (its networks are reused, not changed).
    rules
        The scenario's rules.
    baseline
        The per-unit table of the baseline audit (``RunResult.unit_results``).
    add, close
        Facilities to open and facility ids to close (a move is a close plus an add).

    Returns
    -------
    ScenarioChange
    """
    from covplan.standards.audit import run_audit

    facilities = changed_facilities(access.inputs.facilities, add=add, close=close)
    changed = access.with_facilities(facilities)
    audit = run_audit(
        rules, facilities=facilities, units=changed.inputs.units, places=changed.inputs.places,
        access=changed,
    )
    units, summary = compare_audits(baseline, audit.units)
    return ScenarioChange(facilities=facilities, units=units, summary=summary)
