"""Results side by side: coverage per rule, units passing, scenarios compared.

Pure functions of :class:`~covplan.results.RunResult` summaries and unit results; the app
shows their tables as they are.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping

import numpy as np
import pandas as pd
from covplan.results import RunResult

__all__ = [
    "compare_before_after",
    "compare_results",
    "proposal_table",
    "rule_coverage",
    "rule_population",
    "rules_met",
    "unit_table",
    "units_passing",
]


def rule_coverage(result: RunResult) -> pd.DataFrame:
    """Per rule: covered population, population and share (coverage rules), from the summary."""
    cols = ["rule_id", "title", "population", "covered_population", "units_pass",
            "units_checked", "region_status"]
    summary = result.summary[[c for c in cols if c in result.summary.columns]].copy()
    pop = pd.to_numeric(summary.get("population"), errors="coerce")
    cov = pd.to_numeric(summary.get("covered_population"), errors="coerce")
    summary["share"] = np.where(pop > 0, cov / pop, np.nan)
    return summary.set_index("rule_id")


def units_passing(result: RunResult) -> tuple[int, int]:
    """Return (units where every checked standard passes, units with any checked one).

    Units are those of the scenario's unit layers; a standard counts for a unit when it was
    checked there (``pass`` or ``fail``; not ``not_applicable`` or ``cannot_check``), so a rule
    judged for the whole region or one that could not be checked adds no unit.
    """
    ur = result.unit_results
    known = set(result.units["unit_id"].astype(str))
    applicable = ur[ur["status"].isin(["pass", "fail"]) & ur["unit_id"].astype(str).isin(known)]
    if applicable.empty:
        return 0, 0
    failing = set(applicable.loc[applicable["status"] == "fail", "unit_id"].astype(str))
    units = set(applicable["unit_id"].astype(str))
    return len(units - failing), len(units)


def compare_results(
    results: Mapping[str, RunResult], *, language: str = "en"
) -> pd.DataFrame:
    """Side-by-side comparison: one column per scenario, one row per measure.

    Rows are the share of residents covered by every coverage standard (as a percentage)
    and the number of units passing every standard, so scenarios with the same standards
    line up; a standard a scenario does not have is blank.
    """
    passing_row, checked_row = (
        ("达标单元数", "检查单元数") if language == "zh" else ("units passing", "units checked")
    )
    rows: dict[str, dict[str, float]] = {}
    for name, result in results.items():
        coverage = rule_coverage(result)
        for rule_id, row in coverage.iterrows():
            if pd.notna(row["share"]):
                rows.setdefault(f"{rule_id} %", {})[name] = round(100 * float(row["share"]), 2)
        passing, total = units_passing(result)
        rows.setdefault(passing_row, {})[name] = float(passing)
        rows.setdefault(checked_row, {})[name] = float(total)
    return pd.DataFrame.from_dict(rows, orient="index")[list(results)]


def rule_population(result: RunResult, rule_id: str) -> float:
    """Return the population a coverage rule counts, from the run's summary (NaN if none)."""
    row = result.summary.loc[result.summary["rule_id"] == rule_id, "population"]
    return float(row.iloc[0]) if len(row) else math.nan


def rules_met(result: RunResult) -> int:
    """Return how many standards pass region-wide (``region_status`` ``"pass"``)."""
    return int((result.summary["region_status"] == "pass").sum())


def compare_before_after(
    before: RunResult,
    after: RunResult,
    *,
    labels: tuple[str, str, str] = ("before", "after", "change"),
    language: str = "en",
) -> pd.DataFrame:
    """Return :func:`compare_results` of two runs with a third column, after minus before.

    Parameters
    ----------
    before, after
        The runs (e.g. the baseline and the current plan).
    labels
        Headings of the before, after and change columns.
    language
        Language of the row labels (see :func:`compare_results`).
    """
    table = compare_results({labels[0]: before, labels[1]: after}, language=language)
    table[labels[2]] = table[labels[1]] - table[labels[0]]
    return table


def unit_table(
    baseline: RunResult,
    result: RunResult,
    *,
    status_label: Callable[[str], str] = str,
    per_unit: pd.DataFrame | None = None,
    labels: tuple[str, str, str] = ("before", "after", "change"),
) -> pd.DataFrame:
    """Return one row per unit: id, name, population, each rule's status, the plan's change.

    Parameters
    ----------
    baseline
        The baseline run (its units give the rows, ids as text).
    result
        The plan's run (its unit results give the status columns, one per rule id).
    status_label
        How a status (``"pass"``, ``"fail"``, ...) is shown.
    per_unit
        The what-if's per-unit change (columns ``unit_id``, ``covered_before``,
        ``covered_after``, ``delta``), joined as three columns rounded to whole residents.
    labels
        Headings of the covered-before, covered-after and change columns.
    """
    units = baseline.units[["unit_id", "name", "population"]].copy()
    units["unit_id"] = units["unit_id"].astype(str)
    ur = result.unit_results.copy()
    ur["unit_id"] = ur["unit_id"].astype(str)
    status = ur.pivot_table(index="unit_id", columns="rule_id", values="status",
                            aggfunc="first")
    status = status.map(lambda s: status_label(s) if isinstance(s, str) else "")
    table = units.set_index("unit_id").join(status)
    if per_unit is not None:
        per = per_unit.assign(unit_id=per_unit["unit_id"].astype(str)).set_index("unit_id")[
            ["covered_before", "covered_after", "delta"]]
        per.columns = list(labels)
        table = table.join(per.round(0))
    return table.reset_index()


def proposal_table(sites: pd.DataFrame) -> pd.DataFrame:
    """Return proposed sites as rank, site id, lon, lat (5 decimals) and covered population.

    Parameters
    ----------
    sites
        A :class:`~covplan.siting.session.Proposal`'s ``sites`` (points in WGS-84).
    """
    return pd.DataFrame({
        "rank": sites["rank"], "site_id": sites["site_id"],
        "lon": sites.geometry.x.round(5), "lat": sites.geometry.y.round(5),
        "covered_population": sites["covered_population"].round(0),
    })


def standards_table(result: RunResult, *, language: str = "en") -> pd.DataFrame:
    """Return one row per standard: id, title, the level it is judged at, verdict, units passing.

    Headings and values in ``language`` (:func:`covplan.labels.translate_table`); the level
    is the unit level of the rule (e.g. 乡镇/街道), ``cannot_check`` is shown as 无法核查.
    """
    from covplan.labels import label, translate_table

    summary = result.summary
    ur = result.unit_results
    column = "title_zh" if language == "zh" and "title_zh" in ur.columns else "title"
    titles = dict(zip(ur["rule_id"], ur[column], strict=False))
    table = pd.DataFrame({
        "rule_id": summary["rule_id"].astype(str),
        "title": summary["rule_id"].map(titles).fillna(""),
        "level": [", ".join(label(v.strip(), language=language) for v in str(levels).split(","))
                  for levels in summary["levels"]],
        "region_status": summary["region_status"].astype(str),
        "units_pass": summary["units_pass"],
        "units_checked": summary["units_checked"],
    })
    return translate_table(table, language=language)

