"""What a planner's session computes: plans, a region's baseline and plan runs, comparisons.

The package side of the planner app (:mod:`covplan.app` holds only widgets, options and
Streamlit caching over these pure functions):

- :mod:`~covplan.planning.plans`: :class:`Plan`, :class:`Candidate`, :class:`SessionPlans`
  and plan files (:func:`save_plans`, :func:`load_plans`, checked field by field);
- :mod:`~covplan.planning.region`: :class:`Region` (:func:`load_region`, keyed by content
  with :func:`region_key`), the baseline, the siting matrix and plan evaluation;
- :mod:`~covplan.planning.compare`: coverage per rule, units passing, scenarios compared;
- :mod:`~covplan.planning.scenario_edits`: standards tables with a plan's edits, and the
  scenario file of a planner's uploads;
- :mod:`~covplan.planning.messages`: user text as plain Markdown, errors without server paths;
- :mod:`~covplan.planning.maps`: the app's map and the plan's layer on it.

It also re-exports the few package pieces the app needs (:class:`UploadStore`,
:func:`write_outputs`, :func:`list_presets`, :func:`preset_info`, :class:`SitingSession`,
:class:`Proposal`), so that the app imports
public-facing modules only.
"""

from __future__ import annotations

from covplan.inputs.uploads import UploadStore
from covplan.outputs import write_outputs
from covplan.planning.compare import (
    compare_before_after,
    compare_results,
    proposal_table,
    rule_coverage,
    rule_population,
    rules_met,
    standards_table,
    unit_table,
    units_passing,
)
from covplan.planning.maps import app_map, plan_map_layer
from covplan.planning.messages import (
    markdown_label,
    plain_label,
    plain_markdown,
    public_message,
)
from covplan.planning.plans import (
    FILE_FORMAT,
    PLAN_MAX_BYTES,
    PLAN_MAX_DEPTH,
    THRESHOLD_RANGE,
    Candidate,
    Plan,
    SessionPlans,
    load_plans,
    save_plans,
)
from covplan.planning.region import (
    DEFAULT_STATION_TYPE,
    Region,
    ThresholdField,
    baseline_result,
    display_result,
    evaluate_change,
    evaluate_plan,
    evaluate_session_plan,
    facility_names,
    file_digest,
    load_region,
    plan_change,
    plan_rules,
    plan_scenario,
    region_centre,
    region_key,
    rule_title,
    scenario_files,
    scenario_title,
    siting_for,
    siting_rules,
    standards_key,
    threshold_edits,
    threshold_fields,
    travel_rules,
)
from covplan.planning.scenario_edits import (
    UPLOAD_CRS,
    UPLOAD_LIMITS_MB,
    UPLOAD_SUFFIXES,
    check_upload,
    standards_tables,
    upload_names,
    write_upload_scenario,
)
from covplan.siting.session import Proposal, SitingSession
from covplan.standards.presets import list_presets, preset_info

__all__ = [
    "DEFAULT_STATION_TYPE",
    "FILE_FORMAT",
    "PLAN_MAX_BYTES",
    "PLAN_MAX_DEPTH",
    "THRESHOLD_RANGE",
    "UPLOAD_CRS",
    "UPLOAD_LIMITS_MB",
    "UPLOAD_SUFFIXES",
    "Candidate",
    "Plan",
    "Proposal",
    "Region",
    "SessionPlans",
    "SitingSession",
    "ThresholdField",
    "UploadStore",
    "app_map",
    "baseline_result",
    "check_upload",
    "compare_before_after",
    "compare_results",
    "display_result",
    "evaluate_change",
    "evaluate_plan",
    "evaluate_session_plan",
    "facility_names",
    "file_digest",
    "list_presets",
    "load_plans",
    "load_region",
    "markdown_label",
    "plain_label",
    "plain_markdown",
    "plan_change",
    "plan_map_layer",
    "plan_rules",
    "plan_scenario",
    "preset_info",
    "proposal_table",
    "public_message",
    "region_centre",
    "region_key",
    "rule_coverage",
    "rule_population",
    "rule_title",
    "rules_met",
    "standards_table",
    "save_plans",
    "scenario_files",
    "scenario_title",
    "siting_for",
    "siting_rules",
    "standards_key",
    "standards_tables",
    "threshold_edits",
    "threshold_fields",
    "travel_rules",
    "unit_table",
    "units_passing",
    "upload_names",
    "write_outputs",
    "write_upload_scenario",
]
