"""The result of one scenario run: every layer and table the exports and the app show."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import geopandas as gpd
import pandas as pd

__all__ = ["RunResult"]



def audit_verdict(statuses: Iterable[object]) -> str:
    """Return the verdict of an audit from the statuses of its unit rows.

    ``"failed"`` when a unit fails; ``"nothing_checked"`` when there are rows and not one
    passes or fails (every one ``not_applicable`` or ``cannot_check``); else ``"passed"``
    (also for an audit without rules). The batch statuses and exit codes follow it.

    Examples
    --------
    >>> audit_verdict(["pass", "cannot_check"]), audit_verdict(["cannot_check"])
    ('passed', 'nothing_checked')
    >>> audit_verdict(["not_applicable", "fail"]), audit_verdict([])
    ('failed', 'passed')
    """
    seen = {str(s) for s in statuses}
    if "fail" in seen:
        return "failed"
    if seen and "pass" not in seen:
        return "nothing_checked"
    return "passed"

@dataclass
class RunResult:
    """Everything one run produced, in the canonical schemas of docs/ARCHITECTURE.md.

    Attributes
    ----------
    name
        The scenario's name.
    language
        ``"en"`` or ``"zh"``: the language of column headings and labels in exports.
    facilities
        Facilities layer (facility_id, name, type, ...), EPSG:4326.
    units
        Administrative units with population and, per rule, columns added by the audit.
    places
        Population places with, per mode ``m``, ``minutes_<m>`` (nearest facility of any type
        checked, ``inf`` when unreachable) and ``nearest_<m>`` (its facility_id).
    unit_results
        One row per unit and rule (:data:`covplan.standards.rules.RESULT_COLUMNS` plus
        ``title``, ``title_zh``, ``source`` and ``quote``): rule_id, unit_id, unit_name, level,
        status (pass / fail / not_applicable), value, threshold, margin, value_unit,
        population, covered_population, facility_count, needed, criterion, evidence.
    summary
        One row per rule across the region (:data:`covplan.standards.audit.SUMMARY_COLUMNS`): units
        checked / passing / failing, population and covered population, region_value,
        region_status, total_needed, source and quote.
    evidence
        The uncovered places of every travel rule, worst first
        (:data:`covplan.standards.rules.PLACE_COLUMNS`): rule_id, place_id, unit_id,
        population, limit, value, nearest facility_id and name.
    isochrones
        Polygons with columns mode, minutes, facility_types, geometry.
    proposals
        Proposed new sites (site_id, rank, gain, geometry) or None.
    manifest
        Provenance: input file hashes, OSM extract date, package versions, parameters,
        timings. Embedded in every export.
    """

    name: str
    language: str
    facilities: gpd.GeoDataFrame
    units: gpd.GeoDataFrame
    places: gpd.GeoDataFrame
    unit_results: pd.DataFrame
    summary: pd.DataFrame
    evidence: pd.DataFrame
    isochrones: gpd.GeoDataFrame
    proposals: gpd.GeoDataFrame | None = None
    manifest: dict[str, Any] = field(default_factory=dict)

    @property
    def all_pass(self) -> bool:
        """True when every applicable rule passed in every unit."""
        if self.unit_results.empty:
            return True
        return not (self.unit_results["status"] == "fail").any()

    @property
    def verdict(self) -> str:
        """``"passed"``, ``"failed"`` or ``"nothing_checked"`` (see :func:`audit_verdict`)."""
        statuses = self.unit_results["status"] if not self.unit_results.empty else []
        return audit_verdict(statuses)

    @property
    def nothing_checked(self) -> bool:
        """True when the audit has rows but not one passed or failed (exit code 4).

        Every unit was then ``not_applicable`` or ``cannot_check``: the run says nothing of
        the standards, and must not read as "every standard met".
        """
        return self.verdict == "nothing_checked"
