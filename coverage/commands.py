"""What each ``covplan`` command computes and writes, as package functions the CLI calls.

The CLI (:mod:`covplan.cli`) holds options, printing and exit codes only; everything it runs
is here, typed and tested without click. Heavy modules (geopandas, the engine, the outputs)
are imported inside the functions, so that ``covplan presets`` and ``covplan --help`` stay
fast.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from covplan.errors import Problem
from covplan.progress import Steps

if TYPE_CHECKING:
    from covplan.results import RunResult
    from covplan.scenario import Scenario
    from covplan.siting.session import Proposal

__all__ = [
    "CLOSURE_FILES",
    "SPOF_FILE",
    "ScenarioCheck",
    "audit_with_closures",
    "check_output_folder",
    "check_scenario",
    "fetch_district",
    "has_closures",
    "load_job_scenario",
    "preset_rows",
    "propose_sites",
    "write_isochrones",
    "write_map",
    "write_register_template",
    "write_schema",
    "write_single_points_of_failure",
]

#: Files ``covplan site`` writes.
PROPOSAL_FILES = ("proposals.geojson", "proposals.csv")
#: Files ``covplan audit --close`` writes beside the usual outputs.
CLOSURE_FILES = ("closure_loss.csv", "closure_places.csv")
#: The file ``covplan resilience`` writes.
SPOF_FILE = "single_points_of_failure.csv"
#: Files ``covplan isochrones`` writes, with their OGR drivers.
ISOCHRONE_FILES = (("isochrones.gpkg", "GPKG"), ("isochrones.geojson", "GeoJSON"))


def load_job_scenario(
    path: str | Path,
    *,
    assignments: Sequence[str] = (),
    language: str | None = None,
    modes: Sequence[str] = (),
) -> Scenario:
    """Load a scenario with the command line's overrides (see :func:`covplan.batch`)."""
    from covplan.batch import load_job_scenario as _load

    return _load(path, assignments=tuple(assignments), language=language, modes=tuple(modes))


def output_folder(scenario: Scenario, out: str | Path | None) -> Path:
    """Return the folder a command writes to: ``out``, else the scenario's ``outputs.dir``."""
    return Path(out) if out else Path(scenario.outputs["dir"])


def check_output_folder(
    scenario: Scenario, out: str | Path | None, replaces: Sequence[str] | None = None
) -> Path:
    """Refuse, before anything is computed, an output folder that is or holds an input.

    Returns
    -------
    Path
        The output folder.

    Raises
    ------
    InputError
        When the folder is an input's folder (and ``replaces`` would overwrite an input) or
        cannot be written.
    """
    from covplan.outputs import check_output_dir, scenario_input_paths

    folder = output_folder(scenario, out)
    check_output_dir(folder, scenario_input_paths(scenario),
                     replaces=list(replaces) if replaces is not None else None)
    return folder


@dataclass(frozen=True)
class ScenarioCheck:
    """What ``covplan validate`` found: counts of a scenario's inputs and notes on its rules.

    Attributes
    ----------
    name
        The scenario's name.
    language
        Its output language (``"zh"`` or ``"en"``).
    standards, facilities, units, places
        Counts of rules and of loaded features.
    population
        The total population of the places.
    unchecked
        Rules that cannot be checked on these inputs: a unit level, a facility type or a
        column they need is missing (they report ``cannot_check``).
    """

    name: str
    language: str
    standards: int
    facilities: int
    units: int
    places: int
    population: float
    unchecked: list[Problem] = field(default_factory=list)


def check_scenario(scenario: Scenario, *, steps: Steps | None = None) -> ScenarioCheck:
    """Load a scenario's inputs and rules and report what ``covplan validate`` prints.

    Nothing is written. Bad inputs raise :class:`~covplan.errors.InputError` with every
    problem at once.
    """
    from covplan import pipeline

    rules = pipeline.rules_for_scenario(scenario)
    inputs = pipeline.load_inputs(scenario, steps=steps)
    return ScenarioCheck(
        name=scenario.name,
        language=str(scenario.outputs.get("language", scenario.language)),
        standards=len(rules),
        facilities=len(inputs.facilities),
        units=len(inputs.units),
        places=len(inputs.places),
        population=float(inputs.places["population"].sum()),
        unchecked=list(pipeline.check_rule_levels(rules, inputs)),
    )


def write_isochrones(
    scenario: Scenario,
    out: str | Path | None,
    *,
    minutes: Sequence[float] = (),
    modes: Sequence[str] = (),
    steps: Steps | None = None,
) -> tuple[int, Path]:
    """Compute the isochrones of a scenario and write isochrones.gpkg and .geojson.

    Returns
    -------
    tuple of (int, Path)
        The number of isochrones and the folder written to.
    """
    from covplan.outputs.atomic import atomic_path
    from covplan.pipeline import isochrones_for_scenario

    layer = isochrones_for_scenario(
        scenario, steps=steps, minutes=list(minutes) or None, modes=list(modes) or None
    )
    folder = output_folder(scenario, out)
    folder.mkdir(parents=True, exist_ok=True)
    for name, driver in ISOCHRONE_FILES:
        with atomic_path(folder / name) as tmp:
            layer.to_file(tmp, driver=driver)
    return len(layer), folder


def propose_sites(
    scenario: Scenario,
    out: str | Path | None,
    *,
    new_sites: int,
    method: str = "mclp",
    spacing_m: float = 500.0,
    rule_id: str | None = None,
    steps: Steps | None = None,
) -> Proposal:
    """Propose new sites for one travel-time standard and write proposals.geojson/.csv.

    The first travel-time standard of the scenario (or ``rule_id``) sets the facility types,
    the travel mode and the minutes; existing facilities of those types stay open.
    """
    from covplan.outputs.atomic import atomic_path
    from covplan.pipeline import load_inputs, road_access, rules_for_scenario
    from covplan.siting.session import SitingSession

    folder = check_output_folder(scenario, out, PROPOSAL_FILES)
    steps = steps or Steps(verbosity=0)
    rules = rules_for_scenario(scenario)
    access = road_access(scenario, load_inputs(scenario, steps=steps), steps=steps)
    session = SitingSession.from_access(
        access, rules, rule_id=rule_id, spacing_m=spacing_m, steps=steps
    )
    with steps.step(f"Optimising {new_sites} new site(s) ({method})"):
        proposal = session.propose(new_sites, method=method)
    folder.mkdir(parents=True, exist_ok=True)
    with atomic_path(folder / "proposals.geojson") as tmp:
        proposal.sites.to_file(tmp, driver="GeoJSON")
    with atomic_path(folder / "proposals.csv") as tmp:
        proposal.sites.drop(columns="geometry").assign(
            lon=proposal.sites.geometry.x, lat=proposal.sites.geometry.y
        ).to_csv(tmp, index=False)
    return proposal


def write_map(
    scenario: Scenario, out: str | Path | None, *, steps: Steps | None = None
) -> tuple[Path, RunResult]:
    """Run a scenario and write its map.html only; return the file and the run."""
    from covplan.outputs import write_outputs
    from covplan.pipeline import run_scenario

    folder = check_output_folder(scenario, out, ["map.html"])
    steps = steps or Steps(verbosity=0)
    result = run_scenario(scenario, steps=steps)
    with steps.step("Writing the map"):
        written = write_outputs(
            result, folder, language=scenario.outputs.get("language", scenario.language),
            formats=["map.html"],
        )
    return Path(written["map.html"]), result


def schema_text() -> str:
    """Return the JSON Schema of scenario files as indented JSON text."""
    import json

    from covplan.scenario import scenario_json_schema

    return json.dumps(scenario_json_schema(), ensure_ascii=False, indent=2)


def write_schema(out: str | Path) -> Path:
    """Write the JSON Schema of scenario files to ``out`` (atomically); return the path."""
    from covplan.outputs.atomic import atomic_path

    path = Path(out)
    with atomic_path(path) as tmp:
        Path(tmp).write_text(schema_text() + "\n", encoding="utf-8")
    return path


def preset_rows() -> list[dict[str, Any]]:
    """Return one row per standards preset: name, place, title, issuer, date, source, rules."""
    from covplan.standards.presets import list_presets, preset_info, preset_tables

    rows = []
    for name in list_presets():
        info = preset_info(name)
        rows.append({
            "name": name,
            "place": str(info.get("place", "")),
            "title": str(info.get("title", "")),
            "issuer": str(info.get("issuer", "")),
            "date": str(info.get("date", "")),
            "horizon": info.get("horizon"),
            "source": str(info.get("seed", "")),
            "rules": [str(t.get("id")) for t in preset_tables(name)],
        })
    return rows


def write_register_template(path: str | Path, *, language: str, overwrite: bool = False) -> Path:
    """Write the facility register template (机构名录), CSV or XLSX by the suffix."""
    from covplan.inputs.register import write_register_template as _write

    return Path(_write(path, language=language, overwrite=overwrite))


def fetch_district(district: str | None, **options: Any) -> Any:
    """Download and cut open data for a district; see :func:`covplan.china.fetch.fetch_district`."""
    from covplan.china.fetch import fetch_district as _fetch

    return _fetch(district, **options)


def has_closures(scenario: Scenario) -> bool:
    """Return True when the scenario closes roads (an ``[inputs.closures]`` table)."""
    return getattr(scenario.inputs, "closures", None) is not None


def audit_with_closures(
    scenario: Scenario,
    out: str | Path | None,
    *,
    close: str | Path | None = None,
    steps: Steps | None = None,
    new_sites: int = 0,
) -> tuple[RunResult, Path]:
    """Audit a scenario on the roads left by a closure; write the outputs and the loss.

    The closure is ``[inputs.closures]`` with its polygons replaced by the file ``close``
    (GeoJSON, GeoPackage or Shapefile) when given. The usual outputs describe the closed
    roads; ``closure_loss.csv`` (per unit and standard: residents covered before, after,
    lost; places cut off) and ``closure_places.csv`` (per place: the facility it depended on
    and the one it depends on now) are written in the same all-or-nothing step.

    Returns
    -------
    tuple of (RunResult, Path)
        The run on the closed roads and the folder written to.
    """
    from covplan.outputs import OUTPUT_NAMES, write_outputs
    from covplan.outputs.tables import write_csv
    from covplan.resilience import closure_for_scenario, run_with_closures

    folder = check_output_folder(scenario, out, [*OUTPUT_NAMES, *CLOSURE_FILES])
    steps = steps or Steps(verbosity=0)
    closure = closure_for_scenario(scenario, close)
    if closure is None:
        from covplan.errors import CoverageError

        raise CoverageError("no road closure given: pass --close FILE (hazard polygons) or "
                            "add an [inputs.closures] table to the scenario")
    run = run_with_closures(scenario, closure, steps=steps, new_sites=new_sites)
    language = str(scenario.outputs.get("language", scenario.language))
    extra = {
        "closure_loss.csv": lambda path: write_csv(run.loss, path, language=language),
        "closure_places.csv": lambda path: write_csv(run.places, path, language=language),
    }
    with steps.step("Writing outputs"):
        write_outputs(run.after, folder, language=language, steps=steps, extra=extra)
    return run.after, folder


def write_single_points_of_failure(
    scenario: Scenario,
    out: str | Path | None,
    *,
    top: int = 20,
    rule_ids: Sequence[str] = (),
    steps: Steps | None = None,
) -> tuple[Any, Path]:
    """Rank the road segments the emergency circle hangs on; write single_points_of_failure.csv.

    Returns
    -------
    tuple of (pandas.DataFrame, Path)
        The table (:data:`covplan.resilience.SPOF_FILE_COLUMNS`) and the file written.
    """
    from covplan.outputs.atomic import atomic_path
    from covplan.outputs.tables import write_csv
    from covplan.resilience import spof_for_scenario

    folder = check_output_folder(scenario, out, [SPOF_FILE])
    table = spof_for_scenario(scenario, top=top, rule_ids=rule_ids, steps=steps)
    folder.mkdir(parents=True, exist_ok=True)
    with atomic_path(folder / SPOF_FILE) as tmp:
        write_csv(table, tmp, language=str(scenario.outputs.get("language", scenario.language)))
    return table, folder / SPOF_FILE
