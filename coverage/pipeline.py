"""One scenario end to end: inputs -> road networks -> travel times -> audit -> result.

The CLI, the batch runner, the notebook and the app all call these functions; none of them
holds logic of its own.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import geopandas as gpd
import pandas as pd
from covplan.engine.access import RoadAccess
from covplan.engine.modes import parse_modes
from covplan.errors import InputWarning, Problem
from covplan.facility_types import FACILITY_GROUPS
from covplan.inputs.layers import Inputs
from covplan.progress import Steps
from covplan.results import RunResult
from covplan.scenario import Scenario
from covplan.standards import parse_standards
from covplan.standards.rules import DistanceRule, Rule, TravelTimeRule

__all__ = [
    "Inputs",
    "RoadAccess",
    "isochrones_for_scenario",
    "load_inputs",
    "road_access",
    "rules_for_scenario",
    "run_scenario",
]

#: Facility types whose nearest member is reported per place and mode in ``places.csv``.
PLACE_SUMMARY_TYPES = FACILITY_GROUPS["medical_institutions"]
DEFAULT_ISOCHRONE_MINUTES = (15.0, 30.0)


def load_inputs(scenario: Scenario, *, steps: Steps | None = None) -> Inputs:
    """Load and check the facilities, boundaries and population of a scenario.

    Parameters
    ----------
    scenario
        A checked scenario.
    steps
        Progress display.

    Raises
    ------
    CoverageError
        When an input cannot be used (the message says which file and how to fix it).
    """
    from covplan.inputs.loaders import (
        check_facilities_within,
        load_boundaries,
        load_facilities,
        load_population,
        load_unit_levels,
    )
    from covplan.inputs.urban_rural import classify_places

    steps = steps or Steps(verbosity=0)
    with steps.step("Loading inputs"), warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", InputWarning)
        fac = dict(scenario.facilities)
        facilities = load_facilities(fac.pop("path"), **fac)
        if scenario.inputs.units:
            # several levels: places belong to the finest, rules name the level they judge
            units = load_unit_levels(scenario.unit_levels)
            finest = units[units["level"] == scenario.unit_levels[-1]["level"]]
        else:
            bnd = dict(scenario.boundaries)
            units = load_boundaries(
                bnd.pop("path"),
                id_column=bnd.pop("id_column", "unit_id"),
                name_column=bnd.pop("name_column", "name"),
                level=bnd.pop("level", "unit"),
                **bnd,
            )
            finest = units
        pop = dict(scenario.population)
        density = pop.pop("urban_density_per_km2", None)
        place_area = pop.pop("place_area_km2", None)
        nbs_code_column = pop.pop("nbs_code_column", None)
        places = load_population(pop.pop("path", None), kind=pop.pop("kind"), units=finest,
                                 **pop)
        # urban or rural, in order: the user's column, the NBS urban-rural code, the density
        column = "urban_rural" if places["urban_rural"].notna().any() else None
        places = classify_places(
            places, column=column, nbs_code_column=nbs_code_column, density_per_km2=density,
            area_km2=place_area,
        )
        if len(places) and (places["ur_source"] == "default").all():
            warnings.warn(
                "inputs.population: every place is rural by default (no urban/rural column, NBS "
                "code or density threshold decided), so urban standards (e.g. the 15-minute "
                "urban circle) are not applicable anywhere; set urban_rural_column, "
                "nbs_code_column or urban_density_per_km2 (with place_area_km2 for points)",
                InputWarning, stacklevel=2,
            )
        check_facilities_within(facilities, units)
    notes = [str(w.message) for w in caught if issubclass(w.category, InputWarning)]
    for note in notes:
        warnings.warn(note, InputWarning, stacklevel=2)
    files = {
        "scenario": scenario.path,
        "facilities": Path(scenario.facilities["path"]),
        "boundaries": Path(scenario.boundaries["path"]),
    }
    for level in scenario.unit_levels[:-1]:
        if level.get("path"):
            files[f"units ({level['level']})"] = Path(level["path"])
    if scenario.population.get("path"):
        files["population"] = Path(scenario.population["path"])
    if not scenario.network_is_online:
        files["network"] = Path(scenario.network["source"])
    if scenario.network.get("dem"):
        files["dem"] = Path(scenario.network["dem"])
    steps.detail(
        f"{len(facilities)} facilities, {len(units)} units, {len(places)} places, "
        f"population {places['population'].sum():,.0f}"
    )
    return Inputs(facilities, units, places, files=files, notes=notes)


def rules_for_scenario(scenario: Scenario) -> list[Rule]:
    """Build the standards of a scenario (presets expanded)."""
    modes = parse_modes(scenario.modes)
    return parse_standards(scenario.standards, modes=list(modes))


def road_access(scenario: Scenario, inputs: Inputs, *, steps: Steps | None = None) -> RoadAccess:
    """Return the engine facade for a scenario's roads, modes and loaded layers."""
    return RoadAccess(
        scenario.network_spec(), inputs, modes=parse_modes(scenario.modes), steps=steps
    )


def _travel_rules(rules: Sequence[Rule]) -> list[TravelTimeRule | DistanceRule]:
    return [r for r in rules if isinstance(r, (TravelTimeRule, DistanceRule))]


def _place_minutes(
    places: gpd.GeoDataFrame, access: RoadAccess, modes: list[str]
) -> gpd.GeoDataFrame:
    out = places.copy()
    for mode in modes:
        answer = access.nearest(PLACE_SUMMARY_TYPES, mode=mode, metric="time")
        out[f"minutes_{mode}"] = answer["value"].to_numpy()
        out[f"nearest_{mode}"] = answer["facility_id"].to_numpy()
    return out


def _response_columns(
    places: gpd.GeoDataFrame, values: pd.DataFrame, rules: Sequence[Rule]
) -> gpd.GeoDataFrame:
    """Add the emergency-response values of each rule to the places table.

    Per ``response_time`` rule ``R``: ``R_leg1_minutes``, ``R_leg2_minutes`` and
    ``R_total_minutes``; per ``backup_cover`` rule: ``R_backup_minutes`` (from the second
    nearest station). Places a rule does not apply to are left empty.
    """
    from covplan.standards.rules import BackupCoverRule, ResponseTimeRule

    columns = {"leg1_minutes": "leg1_minutes", "leg2_minutes": "leg2_minutes",
               "value": "total_minutes"}
    ids = places["place_id"].astype(str)
    out = places
    for rule in rules:
        if isinstance(rule, ResponseTimeRule):
            wanted = columns
        elif isinstance(rule, BackupCoverRule):
            wanted = {"value": "backup_minutes"}
        else:
            continue
        sub = values[values["rule_id"] == rule.id]
        if sub.empty:
            continue
        by_place = sub.set_index(sub["place_id"].astype(str))
        out = out.assign(**{f"{rule.id}_{name}": ids.map(by_place[col]).to_numpy()
                            for col, name in wanted.items()})
    return out


def _isochrone_layer(
    access: RoadAccess, rules: Sequence[Rule], minutes: Sequence[float]
) -> gpd.GeoDataFrame:
    from covplan.engine.isochrones import isochrones

    frames = []
    seen: set[tuple[str, tuple[str, ...]]] = set()
    for rule in rules:
        if not isinstance(rule, TravelTimeRule):
            continue
        key = (rule.mode, tuple(rule.facility_types))
        if key in seen:
            continue
        seen.add(key)
        facilities = access.inputs.facilities
        src = access.attachment(rule.mode, "facilities")
        mask = facilities["type"].isin(rule.facility_types).to_numpy() & src.reachable
        if not mask.any():
            continue
        with access.steps.step(f"Isochrones by {rule.mode} for {rule.id}"):
            layer = isochrones(access.network(rule.mode), src.subset(mask), minutes=minutes)
        layer.insert(0, "mode", rule.mode)
        layer.insert(1, "facility_types", ",".join(rule.facility_types))
        layer.insert(2, "rule_id", rule.id)
        frames.append(layer)
    if not frames:
        return gpd.GeoDataFrame(
            {"mode": [], "facility_types": [], "rule_id": [], "minutes": [], "area_km2": []},
            geometry=[], crs="EPSG:4326",
        )
    return gpd.GeoDataFrame(pd.concat(frames, ignore_index=True), crs="EPSG:4326")


def isochrone_minutes(scenario: Scenario) -> list[float]:
    """Return the isochrone minutes: ``outputs.isochrone_minutes``, else 15 and 30."""
    return [float(m) for m in scenario.outputs.get("isochrone_minutes", DEFAULT_ISOCHRONE_MINUTES)]


def isochrones_for_scenario(
    scenario: Scenario,
    *,
    steps: Steps | None = None,
    minutes: Sequence[float] | None = None,
    modes: Sequence[str] | None = None,
) -> gpd.GeoDataFrame:
    """Isochrone polygons of the facilities each travel-time standard of the scenario uses.

    Parameters
    ----------
    scenario
        A checked scenario.
    steps
        Progress display.
    minutes
        Thresholds; default :func:`isochrone_minutes`.
    modes
        Only rules of these modes; default all.
    """
    inputs = load_inputs(scenario, steps=steps)
    rules = [
        r for r in rules_for_scenario(scenario) if not modes or getattr(r, "mode", None) in modes
    ]
    access = road_access(scenario, inputs, steps=steps)
    return _isochrone_layer(access, rules, minutes or isochrone_minutes(scenario))


def run_scenario(
    scenario: Scenario,
    *,
    steps: Steps | None = None,
    new_sites: int = 0,
    with_isochrones: bool = True,
    inputs: Inputs | None = None,
    access: RoadAccess | None = None,
) -> RunResult:
    """Run every standard of a scenario and gather the layers and tables of the result.

    Parameters
    ----------
    scenario
        A checked scenario.
    steps
        Progress display (also collects the step timings for the manifest).
    new_sites
        When positive, also propose this many new sites (maximal covering on the first
        travel-time standard).
    with_isochrones
        Compute the isochrone polygons (display only; statistics never use them).
    inputs, access
        Already loaded inputs and road access to reuse (the app keeps them between runs).

    Returns
    -------
    RunResult
    """
    from covplan.outputs.manifest import build_manifest
    from covplan.standards.audit import run_audit
    from covplan.standards.plans import rule_overrides

    steps = steps or Steps(verbosity=0)
    started = time.perf_counter()
    inputs = inputs or load_inputs(scenario, steps=steps)
    rules = rules_for_scenario(scenario)
    access = access or road_access(scenario, inputs, steps=steps)
    for rule in _travel_rules(rules):
        access.mode(rule.mode)
    with steps.step("Auditing standards"):
        audit = run_audit(
            rules, facilities=inputs.facilities, units=inputs.units, places=inputs.places,
            access=access,
        )
    unit_results = _with_rule_texts(audit.units, rules)
    travel_modes = sorted({r.mode for r in _travel_rules(rules)}) or ["drive"]
    places = _place_minutes(inputs.places, access, travel_modes)
    places = _response_columns(places, audit.place_values, rules)
    iso = (
        _isochrone_layer(access, rules, isochrone_minutes(scenario))
        if with_isochrones
        else _isochrone_layer(access, [], [])
    )
    proposals = None
    if new_sites > 0:
        from covplan.siting.session import SitingSession

        session = SitingSession.from_access(access, rules, steps=steps)
        proposals = session.propose(new_sites).sites
    steps.timings["total"] = time.perf_counter() - started
    manifest = build_manifest(
        inputs=inputs.files,
        parameters=_parameters(scenario, rules, new_sites),
        timings=dict(steps.timings),
        overrides=rule_overrides(rules),
    )
    return RunResult(
        name=scenario.name,
        language=scenario.outputs.get("language", scenario.language),
        facilities=inputs.facilities,
        units=inputs.units,
        places=places,
        unit_results=unit_results,
        summary=audit.summary,
        evidence=audit.places,
        isochrones=iso,
        proposals=proposals,
        manifest=manifest,
    )


def _with_rule_texts(table: pd.DataFrame, rules: Sequence[Rule]) -> pd.DataFrame:
    """Add each rule's Chinese title, source document and verbatim quote to a results table."""
    texts = pd.DataFrame(
        {
            "rule_id": [r.id for r in rules],
            "title_zh": [r.title_zh or r.title for r in rules],
            "source": [r.source for r in rules],
            "quote": [r.quote for r in rules],
        }
    )
    return table.merge(texts, on="rule_id", how="left")


def _parameters(scenario: Scenario, rules: Sequence[Rule], new_sites: int) -> dict[str, Any]:
    return {
        "scenario": str(scenario.path),
        "name": scenario.name,
        "network": {k: str(v) for k, v in scenario.network.items()},
        "modes": scenario.modes,
        "standards": [r.id for r in rules],
        "new_sites": new_sites,
        "isochrone_minutes": isochrone_minutes(scenario),
    }


def check_rule_levels(rules: Sequence[Rule], inputs: Inputs) -> list[Problem]:
    """List the rules whose level is not a level of the units (they report ``cannot_check``).

    Each problem names the rule, the level it is judged at, the levels the data has and how to
    add the missing one; nothing is moved to another level.
    """
    from covplan.standards.audit import unchecked_rules

    # also the rules whose facility types or columns the data lacks
    return unchecked_rules(rules, facilities=inputs.facilities, units=inputs.units,
                           places=inputs.places)
