"""Heavy work shared by every session of the app, built once per region and never mutated.

A :class:`Region` (scenario, checked inputs and the :class:`~covplan.engine.access.RoadAccess`
with its road networks and attachments) is built once per scenario file; the baseline
:class:`~covplan.results.RunResult` and the :class:`~covplan.siting.session.SitingSession`
(the candidate-by-place travel-time matrix) once per region and standards. The ``shared_*``
functions wrap them in ``st.cache_resource`` keyed by the region's *content*
(:func:`region_key`: a SHA-256 of the scenario file's bytes and of every input file it names,
so two uploads through the same session folder never share an entry, and the same bytes are
a cache hit) and the standards tables (as JSON text), so every browser session gets the same
objects.

Sessions only read these objects. A plan's own evaluation (:func:`evaluate_plan`) works on
new layers (the plan as a :class:`~covplan.whatif.FacilityChange` applied by
:mod:`covplan.whatif`: candidate stations ``new-1``, ... added, closures removed) and a
:class:`~covplan.engine.access.SharedRoadAccess` that reuses the shared networks and place
attachments read-only and attaches its own facilities, so one session's edits never reach
the shared state.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from importlib import resources
from pathlib import Path
from typing import Any

import folium
import geopandas as gpd
import numpy as np
import pandas as pd
import streamlit as st
from covplan import settings
from covplan.errors import CoverageError
from covplan.outputs.labels_zh import text
from covplan.outputs.webmap import build_map
from covplan.pipeline import (
    Inputs,
    RoadAccess,
    load_inputs,
    road_access,
    rules_for_scenario,
    run_scenario,
)
from covplan.progress import Steps
from covplan.results import RunResult
from covplan.scenario import Scenario, load_scenario
from covplan.siting.session import SitingSession
from covplan.standards.rules import DistanceRule, Rule, TravelTimeRule
from covplan.whatif import FacilityChange, NewFacility, changed_access

__all__ = [
    "app_map",
    "compare_results",
    "Region",
    "display_result",
    "evaluate_change",
    "evaluate_plan",
    "load_region",
    "region_key",
    "plan_change",
    "plan_scenario",
    "rule_coverage",
    "scenario_files",
    "shared_baseline",
    "shared_region",
    "shared_siting",
    "standards_key",
    "travel_rules",
    "units_passing",
]

#: Where the shipped scenarios are (``COVPLAN_SCENARIOS`` overrides; read when the app starts).
SCENARIO_DIR = settings.scenarios_dir()


def scenario_files(folder: str | Path | None = None) -> dict[str, Path]:
    """Return file stem -> path of every ``*.toml`` scenario in ``folder`` (sorted by stem).

    Raises
    ------
    CoverageError
        When the folder holds no scenario.
    """
    folder = Path(folder) if folder is not None else SCENARIO_DIR
    found = {p.stem: p.resolve() for p in sorted(folder.glob("*.toml"))}
    if not found:
        raise CoverageError(
            f"no scenario files (*.toml) in the folder {folder.name or folder!s}; start the "
            "app with `covplan app --scenarios DIR` (or set COVPLAN_SCENARIOS) naming a folder "
            "of scenarios, or upload your own data"
        )
    return found


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
    """Return (units where every applicable standard passes, units with any applicable one)."""
    ur = result.unit_results
    applicable = ur[ur["status"] != "not_applicable"]
    if applicable.empty:
        return 0, 0
    failing = set(applicable.loc[applicable["status"] == "fail", "unit_id"].astype(str))
    units = set(applicable["unit_id"].astype(str))
    return len(units - failing), len(units)


# ------------------------------------------------------------------ Streamlit shared caches
# The cached functions are keyed by the region's content key; the scenario path they load
# from is passed as ``_path`` (a leading underscore: Streamlit does not hash it).
@st.cache_resource(max_entries=8, show_spinner=False)
def _region_by_key(key: str, _path: str) -> Region:
    return load_region(_path)


@st.cache_resource(max_entries=8, show_spinner=False)
def _baseline_by_key(key: str, tables_json: str, _path: str) -> RunResult:
    return baseline_result(_region_by_key(key, _path), json.loads(tables_json))


@st.cache_resource(max_entries=8, show_spinner=False)
def _display_by_key(key: str, tables_json: str, _path: str) -> RunResult:
    return display_result(_baseline_by_key(key, tables_json, _path))


@st.cache_resource(max_entries=8, show_spinner=False)
def _siting_by_key(key: str, tables_json: str, rule_id: str, _path: str) -> SitingSession:
    return siting_for(_region_by_key(key, _path), json.loads(tables_json), rule_id)


@st.cache_resource(max_entries=16, show_spinner=False)
def _map_by_key(key: str, tables_json: str, language: str, _path: str) -> folium.Map:
    return app_map(_display_by_key(key, tables_json, _path), language=language)


def shared_region(path: str) -> Region:
    """Return the region of a scenario file, loaded once per content for every session."""
    return _region_by_key(region_key(path), str(path))


def shared_baseline(path: str, tables_json: str) -> RunResult:
    """Return the baseline run of a region and standards choice (read-only for sessions)."""
    return _baseline_by_key(region_key(path), tables_json, str(path))


def shared_display(path: str, tables_json: str) -> RunResult:
    """Return the baseline with simplified isochrones, for the app's map."""
    return _display_by_key(region_key(path), tables_json, str(path))


def shared_siting(path: str, tables_json: str, rule_id: str) -> SitingSession:
    """Return the siting matrix of one standard (read-only for what-if and proposals)."""
    return _siting_by_key(region_key(path), tables_json, rule_id, str(path))


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


@functools.cache
def _data_uri(name: str, mime: str) -> str:
    """Return a vendored Leaflet file (``coverage/outputs/vendor``) as a base64 data URI."""
    try:
        raw = resources.files("covplan.outputs").joinpath("vendor", name).read_bytes()
    except (FileNotFoundError, OSError) as exc:
        raise CoverageError(
            f"coverage/outputs/vendor/{name} is missing; reinstall coverage-planner with its "
            "package data (the app's map needs the vendored Leaflet)"
        ) from exc
    return f"data:{mime};base64,{base64.b64encode(raw).decode('ascii')}"


def app_map(result: RunResult, *, language: str) -> folium.Map:
    """Return :func:`~covplan.outputs.webmap.build_map` ready for ``st_folium``.

    ``st_folium`` loads scripts only from the map's ``default_js`` links (it inserts the page
    header with ``innerHTML``, where inline scripts do not run), so the vendored Leaflet that
    ``build_map`` inlines is given as ``data:`` links instead: the app's map needs no CDN.
    The layer control starts collapsed and the unit polygons keep their tooltip but lose
    their popup, so that a click on the map adds a station (the unit numbers are in the
    results table); facilities and places keep their popups.
    """
    fmap = build_map(result, language=language, legend_open=False)
    fmap.default_js = [("leaflet", _data_uri("leaflet.js", "text/javascript"))]
    fmap.default_css = [("leaflet_css", _data_uri("leaflet.css", "text/css"))]
    header = fmap.get_root().header
    header._children.pop("leaflet_inline", None)
    units_layer = text("units", language)
    for child in fmap._children.values():
        if isinstance(child, folium.LayerControl):
            child.options["collapsed"] = True
        if isinstance(child, folium.GeoJson) and child.layer_name == units_layer:
            for name in [n for n, c in child._children.items()
                         if isinstance(c, folium.GeoJsonPopup)]:
                del child._children[name]
    return fmap


def shared_map(path: str, tables_json: str, language: str) -> folium.Map:
    """Return the baseline's app map, never rendered: give ``st_folium`` a deep copy.

    Rendering a Folium map adds elements to it, so a rendered map differs the next time and
    ``st_folium`` would reload it (losing the view and the last click); copies of this
    pristine map render to the same page every time.
    """
    return _map_by_key(region_key(path), tables_json, language, str(path))
