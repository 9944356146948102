"""What a planner's session computes on a region: baseline, siting matrix, plan evaluation.

A :class:`Region` (scenario, checked inputs and the :class:`~covplan.engine.access.RoadAccess`
with its road networks and attachments) is loaded once per scenario file
(:func:`load_region`) and keyed by its *content* (:func:`region_key`: a SHA-256 of the
scenario file's bytes and of every input file it names, so two uploads through the same
folder never share a key, and the same bytes give the same key). The baseline
(:func:`baseline_result`) and the siting matrix (:func:`siting_for`) are computed per region
and standards tables; the app caches them for every session.

Callers only read a region. A plan's own evaluation (:func:`evaluate_plan`) works on new
layers (the plan as a :class:`~covplan.whatif.FacilityChange` applied by
:mod:`covplan.whatif`: candidate stations ``new-1``, ... added, closures removed) and a
:class:`~covplan.engine.access.SharedRoadAccess` that reuses the region's networks and place
attachments read-only and attaches its own facilities, so one plan never reaches the region.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import geopandas as gpd
from covplan import settings
from covplan.errors import CoverageError
from covplan.outputs.html_text import plain_text
from covplan.pipeline import (
    Inputs,
    RoadAccess,
    load_inputs,
    road_access,
    rules_for_scenario,
    run_scenario,
)
from covplan.planning.plans import Plan
from covplan.progress import Steps
from covplan.results import RunResult
from covplan.scenario import Scenario, load_scenario
from covplan.siting.session import SitingSession
from covplan.standards.rules import DistanceRule, Rule, TravelTimeRule
from covplan.whatif import FacilityChange, NewFacility, changed_access

__all__ = [
    "DEFAULT_STATION_TYPE",
    "Region",
    "ThresholdField",
    "baseline_result",
    "display_result",
    "evaluate_change",
    "evaluate_plan",
    "evaluate_session_plan",
    "facility_names",
    "file_digest",
    "load_region",
    "plan_change",
    "plan_rules",
    "plan_scenario",
    "region_centre",
    "region_key",
    "rule_title",
    "scenario_files",
    "siting_for",
    "siting_rules",
    "standards_key",
    "threshold_edits",
    "threshold_fields",
    "travel_rules",
]

#: Facility type of candidate stations when a plan names none.
DEFAULT_STATION_TYPE = "community_health_station"


def scenario_files(folder: str | Path | None = None) -> dict[str, Path]:
    """Return file stem -> path of every ``*.toml`` scenario in ``folder`` (sorted by stem).

    ``folder`` defaults to the shipped scenarios (:func:`covplan.settings.scenarios_dir`).

    Raises
    ------
    CoverageError
        When the folder holds no scenario.
    """
    folder = Path(folder) if folder is not None else settings.scenarios_dir()
    found = {p.stem: p.resolve() for p in sorted(folder.glob("*.toml"))}
    if not found:
        raise CoverageError(
            f"no scenario files (*.toml) in the folder {folder.name or folder!s}; start the "
            "app with `covplan app --scenarios DIR` (or set COVPLAN_SCENARIOS) naming a folder "
            "of scenarios, or upload your own data"
        )
    return found


def scenario_title(path: str | Path, *, max_chars: int = 60) -> str:
    """Return the ``[scenario] name`` of a scenario file, for pickers (plain text, shortened).

    Falls back to the file stem when the file cannot be read or has no name; bidi and control
    characters are removed (see :func:`covplan.outputs.html_text.plain_text`).
    """
    import tomllib

    path = Path(path)
    try:
        with path.open("rb") as handle:
            name = tomllib.load(handle).get("scenario", {}).get("name")
    except (OSError, tomllib.TOMLDecodeError, AttributeError):
        name = None
    text = plain_text(name, max_chars).strip() if isinstance(name, str) else ""
    return text or path.stem.capitalize()


#: (path, size, mtime, inode) of a file -> SHA-256 of its bytes (files are hashed once).
_DIGESTS: dict[tuple[str, int, int, int], str] = {}
#: Input tables of a scenario whose text values may name files.
_INPUT_TABLES = ("facilities", "boundaries", "population", "network")


def file_digest(path: str | Path) -> str:
    """Return the SHA-256 (hex) of a file's bytes, hashed again only when the file changes.

    Raises
    ------
    CoverageError
        When the file cannot be read.
    """
    path = Path(path)
    try:
        info = path.stat()
        stamp = (str(path.resolve()), info.st_size, info.st_mtime_ns, info.st_ino)
        if stamp not in _DIGESTS:
            digest = hashlib.sha256()
            with path.open("rb") as handle:
                for chunk in iter(lambda: handle.read(1 << 20), b""):
                    digest.update(chunk)
            _DIGESTS[stamp] = digest.hexdigest()
    except OSError as exc:
        raise CoverageError(
            f"cannot read {path.name}: {exc.strerror or exc}; check the file exists"
        ) from exc
    return _DIGESTS[stamp]


def region_key(path: str | Path) -> str:
    """Return the content key of a scenario: a SHA-256 of its file and every input it names.

    The scenario's own bytes carry every option that shapes the region (coordinate system,
    columns, level, urban/rural source, standards); each existing file named by its
    ``[inputs.*]`` tables (facilities, boundaries, population, road network, elevation) adds
    its bytes. The same scenario path with other content gets another key.

    Raises
    ------
    CoverageError
        When the scenario is unusable (as :func:`~covplan.scenario.load_scenario`).
    """
    scenario = load_scenario(path)
    digest = hashlib.sha256(b"covplan-region-v1\0")
    digest.update(file_digest(scenario.path).encode("ascii"))
    for table_name in _INPUT_TABLES:
        table = getattr(scenario, table_name)
        for name in sorted(table):
            value = table[name]
            if isinstance(value, (str, Path)) and Path(value).is_absolute() \
                    and Path(value).is_file():
                digest.update(f"\0{table_name}.{name}=".encode())
                digest.update(file_digest(value).encode("ascii"))
    return digest.hexdigest()


@dataclass(frozen=True)
class Region:
    """A region's loaded inputs and road access, shared by every session.

    Attributes
    ----------
    key
        The region's content key (:func:`region_key`), the key of every cache and memo.
    scenario
        The checked scenario as in its file.
    inputs
        Facilities, units and places.
    access
        Road networks, attachments and nearest-facility answers of the existing facilities.
    """

    key: str
    scenario: Scenario
    inputs: Inputs
    access: RoadAccess


def load_region(path: str | Path, *, steps: Steps | None = None) -> Region:
    """Load a scenario's inputs and build the road networks its standards use.

    Raises
    ------
    CoverageError
        When the scenario or an input is unusable.
    """
    steps = steps or Steps(verbosity=0)
    key = region_key(path)
    scenario = load_scenario(path)
    inputs = load_inputs(scenario, steps=steps)
    access = road_access(scenario, inputs, steps=steps)
    for rule in travel_rules(rules_for_scenario(scenario)):
        access.attachment(rule.mode, "facilities")
        access.attachment(rule.mode, "places")
    return Region(key=key, scenario=scenario, inputs=inputs, access=access)


def travel_rules(rules: Sequence[Rule]) -> list[TravelTimeRule | DistanceRule]:
    """Return the rules measured on the road network (travel time or road distance)."""
    return [r for r in rules if isinstance(r, (TravelTimeRule, DistanceRule))]


def standards_key(tables: Sequence[Mapping[str, Any]]) -> str:
    """Return standards tables as canonical JSON text (the cache key of a standards choice)."""
    return json.dumps(list(tables), sort_keys=True, ensure_ascii=False, default=str)


def plan_scenario(region: Region, tables: Sequence[Mapping[str, Any]]) -> Scenario:
    """Return the region's scenario with other standards tables (checked).

    Raises
    ------
    CoverageError
        When the tables do not parse (e.g. a negative threshold); the message lists why.
    """
    scenario = region.scenario.with_overrides(standards=[dict(t) for t in tables])
    rules_for_scenario(scenario)
    return scenario


def baseline_result(region: Region, tables: Sequence[Mapping[str, Any]]) -> RunResult:
    """Run the standards on the existing facilities, with isochrones (the baseline)."""
    scenario = plan_scenario(region, tables)
    return run_scenario(scenario, inputs=region.inputs, access=region.access,
                        steps=Steps(verbosity=0))


def siting_for(region: Region, tables: Sequence[Mapping[str, Any]], rule_id: str
               ) -> SitingSession:
    """Build the siting matrix of one travel-time standard of the region."""
    rules = rules_for_scenario(plan_scenario(region, tables))
    return SitingSession.from_access(region.access, rules, rule_id=rule_id,
                                     steps=Steps(verbosity=0))


def plan_change(
    points: Sequence[tuple[str, float, float]] = (),
    *,
    station_type: str = "community_health_station",
    closed: Sequence[str] = (),
) -> FacilityChange:
    """Return a plan's edits as the package's :class:`~covplan.whatif.FacilityChange`.

    Parameters
    ----------
    points
        (name, lon, lat) of each candidate, in the order placed; the n-th becomes facility
        ``new-<n>`` named ``name`` (the ids of :mod:`covplan.whatif`).
    station_type
        Facility type of the candidates.
    closed
        Facility ids to close (repeats are dropped).
    """
    return FacilityChange(
        add=tuple(NewFacility(float(lon), float(lat), station_type, str(name))
                  for name, lon, lat in points),
        close=tuple(dict.fromkeys(closed)),
    )


def evaluate_change(
    region: Region,
    tables: Sequence[Mapping[str, Any]],
    change: FacilityChange,
    *,
    with_isochrones: bool = False,
    proposals: gpd.GeoDataFrame | None = None,
) -> RunResult:
    """Run every standard with ``change`` applied (:func:`covplan.whatif.changed_access`).

    The region's networks and place attachments are reused read-only; the changed facility
    layer is new, so the region is never modified.

    Raises
    ------
    CoverageError
        For an unknown closed or moved facility id.
    """
    scenario = plan_scenario(region, tables)
    access = changed_access(region.access, change)
    result = run_scenario(scenario, inputs=access.inputs, access=access,
                          with_isochrones=with_isochrones, steps=Steps(verbosity=0))
    if proposals is not None and len(proposals):
        result.proposals = proposals
    return result


def evaluate_plan(
    region: Region,
    tables: Sequence[Mapping[str, Any]],
    *,
    points: Sequence[tuple[str, float, float]] = (),
    station_type: str = "community_health_station",
    closed: Sequence[str] = (),
    with_isochrones: bool = False,
    proposals: gpd.GeoDataFrame | None = None,
) -> RunResult:
    """Run every standard on the plan's facilities (region's networks reused).

    Parameters
    ----------
    region
        The shared region.
    tables
        The plan's standards tables.
    points, station_type, closed
        See :func:`plan_change` (candidates become facilities ``new-1``, ...).
    with_isochrones
        Also compute the isochrones of the plan's facilities (for downloads).
    proposals
        Proposed sites to attach to the result (shown on maps and in the GeoPackage).

    Raises
    ------
    CoverageError
        For an unknown facility id in ``closed``.
    """
    change = plan_change(points, station_type=station_type, closed=closed)
    return evaluate_change(region, tables, change, with_isochrones=with_isochrones,
                           proposals=proposals)


def display_result(result: RunResult, *, tolerance_deg: float = 0.0003) -> RunResult:
    """Return a copy of ``result`` with simplified isochrones, light enough for the browser."""
    iso = result.isochrones
    if iso is not None and not iso.empty:
        iso = iso.copy()
        iso["geometry"] = iso.geometry.simplify(tolerance_deg, preserve_topology=True)
    return replace(result, isochrones=iso)


def evaluate_session_plan(
    region: Region,
    tables: Sequence[Mapping[str, Any]],
    plan: Plan,
    *,
    with_isochrones: bool = False,
    proposals: gpd.GeoDataFrame | None = None,
) -> RunResult:
    """Run every standard on a :class:`~covplan.planning.plans.Plan`'s facilities.

    As :func:`evaluate_plan` with the plan's candidates, station type (default
    :data:`DEFAULT_STATION_TYPE`) and closures.

    Raises
    ------
    CoverageError
        For an unknown facility id in the plan's closures.
    """
    return evaluate_plan(region, tables, points=plan.named_points,
                         station_type=plan.station_type or DEFAULT_STATION_TYPE,
                         closed=plan.closed, with_isochrones=with_isochrones,
                         proposals=proposals)


def plan_rules(region: Region, tables: Sequence[Mapping[str, Any]]) -> list[Rule]:
    """Return the rules of the region's scenario with other standards tables.

    Raises
    ------
    CoverageError
        When the tables do not parse; the message lists why.
    """
    return list(rules_for_scenario(plan_scenario(region, tables)))


@dataclass(frozen=True)
class ThresholdField:
    """One threshold of a network rule that a planner may edit.

    Attributes
    ----------
    rule_id
        The rule's id.
    attr
        ``"minutes"`` (travel time) or ``"km"`` (road distance).
    area
        ``""`` for a single threshold, else the area class it applies to (``"urban"``, ...).
    value
        The rule's own threshold.
    """

    rule_id: str
    attr: str
    area: str
    value: float


def threshold_fields(rule: TravelTimeRule | DistanceRule) -> list[ThresholdField]:
    """Return the editable thresholds of a network rule (one per area class, or one)."""
    attr = "km" if isinstance(rule, DistanceRule) else "minutes"
    value = getattr(rule, attr)
    subs = dict(value) if isinstance(value, Mapping) else {"": float(value)}
    return [ThresholdField(rule.id, attr, str(sub), float(number))
            for sub, number in subs.items()]


def threshold_edits(fields: Sequence[ThresholdField], values: Sequence[float]
                    ) -> dict[str, dict[str, Any]]:
    """Return a plan's threshold edits from fields and the values a planner gave them.

    Parameters
    ----------
    fields
        The fields shown (:func:`threshold_fields` of each rule).
    values
        The value given to each field, in the same order.

    Returns
    -------
    dict
        Rule id -> ``{attr: number}`` or ``{attr: {area: number}}``, only for rules where a
        value differs from the rule's own (the :attr:`Plan.thresholds` form).
    """
    if len(fields) != len(values):
        raise CoverageError(f"{len(values)} threshold values for {len(fields)} fields")
    edits: dict[str, dict[str, Any]] = {}
    by_rule: dict[tuple[str, str], list[tuple[ThresholdField, float]]] = {}
    for spot, value in zip(fields, values, strict=True):
        by_rule.setdefault((spot.rule_id, spot.attr), []).append((spot, float(value)))
    for (rule_id, attr), pairs in by_rule.items():
        if all(spot.value == value for spot, value in pairs):
            continue
        new = {spot.area: value for spot, value in pairs}
        edits[rule_id] = {attr: new[""] if "" in new else new}
    return edits


def siting_rules(rules: Sequence[Rule]) -> list[TravelTimeRule]:
    """Return the travel-time rules (the ones siting and the instant what-if can use)."""
    return [r for r in rules if isinstance(r, TravelTimeRule)]


def rule_title(rule: Rule, language: str) -> str:
    """Return the rule's title in ``language`` (the plan's Chinese wording in ``"zh"``)."""
    title_zh = getattr(rule, "title_zh", None)
    return title_zh if language == "zh" and title_zh else rule.title


def facility_names(region: Region) -> dict[str, str]:
    """Return facility id -> name of the region's existing facilities (the closable ones)."""
    facilities = region.inputs.facilities
    return {str(k): str(v) for k, v in zip(facilities["facility_id"], facilities["name"],
                                           strict=False)}


def region_centre(region: Region) -> tuple[float, float]:
    """Return the (lon, lat) centre of the region's units' bounding box (WGS-84)."""
    bounds = region.inputs.units.to_crs("EPSG:4326").total_bounds
    return float((bounds[0] + bounds[2]) / 2), float((bounds[1] + bounds[3]) / 2)
