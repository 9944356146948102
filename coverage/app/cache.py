"""Streamlit's shared caches over :mod:`covplan.planning`, one entry per region content.

The region (:func:`covplan.planning.load_region`), its baseline, the baseline's light copy
for the map, the siting matrix and the map itself are built once and shared by every browser
session: ``st.cache_resource`` keyed by the region's content key
(:func:`covplan.planning.region_key`, a SHA-256 of the scenario file and every input it
names, so two uploads through one session folder never share an entry and the same bytes
are a cache hit) and the standards tables as JSON text
(:func:`covplan.planning.standards_key`). Sessions only read these objects; a plan's own
evaluation (:func:`covplan.planning.evaluate_plan`) works on new layers.
"""

from __future__ import annotations

import json
from pathlib import Path

import folium
import streamlit as st
from covplan import planning, settings
from covplan.planning import (
    Region,
    SitingSession,
    app_map,
    baseline_result,
    display_result,
    load_region,
    region_key,
    siting_for,
)
from covplan.results import RunResult

__all__ = [
    "SCENARIO_DIR",
    "scenario_files",
    "shared_baseline",
    "shared_display",
    "shared_map",
    "shared_region",
    "shared_siting",
]

#: Where the shipped scenarios are (``COVPLAN_SCENARIOS`` overrides; read when the app starts).
SCENARIO_DIR = settings.scenarios_dir()


def scenario_files() -> dict[str, Path]:
    """Return file stem -> path of the scenarios in :data:`SCENARIO_DIR`.

    Raises
    ------
    CoverageError
        When the folder holds no scenario.
    """
    return planning.scenario_files(SCENARIO_DIR)


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


def shared_map(path: str, tables_json: str, language: str) -> folium.Map:
    """Return the baseline's app map, never rendered: give ``st_folium`` a deep copy.

    Rendering a Folium map adds elements to it, so a rendered map differs the next time and
    ``st_folium`` would reload it (losing the view and the last click); copies of this
    pristine map render to the same page every time.
    """
    return _map_by_key(region_key(path), tables_json, language, str(path))
