"""The ``covplan`` command: a thin shell over the package's functions.

Exit codes: 0 every standard met, 1 some standard failed, 2 bad input (the message says what,
where and how to fix it; no traceback).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import click

from coverage.errors import CoverageError
from coverage.progress import Steps

__all__ = ["main"]

EXIT_PASS, EXIT_FAIL, EXIT_BAD_INPUT = 0, 1, 2


class _Group(click.Group):
    """A click group that turns the package's errors into a message and exit code 2."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except CoverageError as exc:
            click.echo(f"Error: {exc}", err=True)
            ctx.exit(EXIT_BAD_INPUT)


def _steps(ctx: click.Context) -> Steps:
    return Steps(verbosity=ctx.obj["verbosity"])


def _scenario_options(func: Any) -> Any:
    func = click.option(
        "--set", "assignments", multiple=True, metavar="KEY=VALUE",
        help="Override a scenario value, e.g. --set standards[0].minutes=20 (repeatable).",
    )(func)
    func = click.option(
        "--lang", type=click.Choice(["en", "zh"]), default=None,
        help="Language of tables, maps and report (overrides the scenario).",
    )(func)
    func = click.option(
        "--mode", "modes", multiple=True, metavar="MODE",
        help="Only check standards for these travel modes (repeatable).",
    )(func)
    return func


def _load(path: str, assignments: tuple[str, ...], lang: str | None, modes: tuple[str, ...]):
    from coverage.scenario import load_scenario_with_overrides

    extra = list(assignments)
    if lang:
        extra.append(f'outputs.language="{lang}"')
    scenario = load_scenario_with_overrides(path, extra)
    if modes:
        scenario = scenario.with_overrides(
            standards=[s for s in scenario.standards if s.get("mode", "drive") in modes]
        )
    return scenario


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("-v", "--verbose", count=True, help="More detail (repeatable).")
@click.option("-q", "--quiet", is_flag=True, help="No progress output.")
@click.version_option(package_name="coverage-planner", prog_name="covplan")
@click.pass_context
def main(ctx: click.Context, verbose: int, quiet: bool) -> None:
    """Check health-service coverage standards on real road networks and site new stations."""
    ctx.ensure_object(dict)
    ctx.obj["verbosity"] = 0 if quiet else 1 + verbose


@main.command()
@click.argument("scenario", type=click.Path(dir_okay=False))
@_scenario_options
@click.pass_context
def validate(
    ctx: click.Context, scenario: str, assignments: tuple[str, ...], lang: str | None,
    modes: tuple[str, ...],
) -> None:
    """Check a scenario and load its inputs; write nothing."""
    from coverage.pipeline import load_inputs

    loaded = _load(scenario, assignments, lang, modes)
    inputs = load_inputs(loaded, steps=_steps(ctx))
    click.echo(
        f"{loaded.name}: OK - {len(inputs.facilities)} facilities, {len(inputs.units)} units, "
        f"{len(inputs.places)} population places, "
        f"population {inputs.places['population'].sum():,.0f}"
    )


@main.command()
@click.argument("scenarios", nargs=-1, required=True, type=click.Path())
@click.option("--out", "out", type=click.Path(file_okay=False), default=None,
              help="Output folder (with several scenarios: one sub-folder each).")
@click.option("--jobs", type=int, default=1, show_default=True,
              help="Scenarios run at once in local processes.")
@click.option("--scheduler", default=None, metavar="ADDRESS",
              help="Run on a dask.distributed cluster, e.g. tcp://10.0.0.5:8786.")
@click.option("--new", "new_sites", type=int, default=0, help="Also propose N new sites.")
@_scenario_options
@click.pass_context
def audit(
    ctx: click.Context, scenarios: tuple[str, ...], out: str | None, jobs: int,
    scheduler: str | None, new_sites: int, assignments: tuple[str, ...], lang: str | None,
    modes: tuple[str, ...],
) -> None:
    """Run every standard of SCENARIOS (files or folders) and write all outputs."""
    from coverage.batch import expand_scenarios, run_many

    paths = expand_scenarios(scenarios)
    steps = _steps(ctx)
    if len(paths) == 1 and scheduler is None:
        result, folder = _run_one(paths[0], out, assignments, lang, modes, new_sites, steps)
        _print_summary(result, folder, steps)
        ctx.exit(EXIT_PASS if result.all_pass else EXIT_FAIL)
    outcomes = run_many(
        paths, out_root=Path(out) if out else None, jobs=jobs, scheduler=scheduler,
        assignments=list(assignments) + ([f'outputs.language="{lang}"'] if lang else []),
        new_sites=new_sites, steps=steps,
    )
    worst = EXIT_PASS
    for outcome in outcomes:
        click.echo(outcome.line())
        worst = max(worst, outcome.exit_code)
    ctx.exit(worst)


def _run_one(path, out, assignments, lang, modes, new_sites, steps):
    from coverage.outputs import write_outputs
    from coverage.pipeline import run_scenario

    scenario = _load(path, assignments, lang, modes)
    result = run_scenario(scenario, steps=steps, new_sites=new_sites)
    folder = Path(out) if out else Path(scenario.outputs["dir"])
    with steps.step("Writing outputs"):
        write_outputs(result, folder, language=scenario.outputs.get("language", scenario.language))
    return result, folder


def _print_summary(result, folder: Path, steps: Steps) -> None:
    if steps.verbosity == 0:
        return
    for row in result.summary.itertuples():
        value = row.region_value
        share = str(row.value_unit).startswith("share") and value == value
        shown = f"{value:.1%}" if share else f"{value:.4g}"
        click.echo(
            f"{row.rule_id:<10} {row.region_status:<15} units passing "
            f"{row.units_pass}/{row.units_checked}  region: {shown} {row.value_unit}"
        )
    click.echo(f"Outputs written to {folder}")


@main.command()
@click.argument("scenario", type=click.Path(dir_okay=False))
@click.option("--out", type=click.Path(file_okay=False), default=None)
@click.option("--minutes", "minutes", multiple=True, type=float,
              help="Isochrone minutes (repeatable; default from the scenario, else 15 and 30).")
@_scenario_options
@click.pass_context
def isochrones(
    ctx: click.Context, scenario: str, out: str | None, minutes: tuple[float, ...],
    assignments: tuple[str, ...], lang: str | None, modes: tuple[str, ...],
) -> None:
    """Write the 15/30-minute areas of every facility as isochrones.gpkg and .geojson."""
    from coverage.outputs.atomic import atomic_path
    from coverage.pipeline import isochrones_for_scenario

    loaded = _load(scenario, assignments, lang, modes)
    steps = _steps(ctx)
    layer = isochrones_for_scenario(
        loaded, steps=steps, minutes=list(minutes) or None, modes=list(modes) or None
    )
    folder = Path(out) if out else Path(loaded.outputs["dir"])
    folder.mkdir(parents=True, exist_ok=True)
    for name, driver in (("isochrones.gpkg", "GPKG"), ("isochrones.geojson", "GeoJSON")):
        with atomic_path(folder / name) as tmp:
            layer.to_file(tmp, driver=driver)
    click.echo(f"{len(layer)} isochrones written to {folder}")


@main.command()
@click.argument("scenario", type=click.Path(dir_okay=False))
@click.option("--new", "new_sites", type=int, required=True, help="Number of new sites.")
@click.option("--method", type=click.Choice(["mclp", "lscp", "pmedian"]), default="mclp",
              show_default=True)
@click.option("--spacing", type=float, default=500.0, show_default=True,
              help="Candidate grid spacing in metres.")
@click.option("--out", type=click.Path(file_okay=False), default=None)
@_scenario_options
@click.pass_context
def site(
    ctx: click.Context, scenario: str, new_sites: int, method: str, spacing: float,
    out: str | None, assignments: tuple[str, ...], lang: str | None, modes: tuple[str, ...],
) -> None:
    """Propose NEW sites for new health stations and write proposals.csv/.geojson."""
    from coverage.outputs.atomic import atomic_path
    from coverage.pipeline import propose_sites_for_scenario

    loaded = _load(scenario, assignments, lang, modes)
    steps = _steps(ctx)
    proposal = propose_sites_for_scenario(
        loaded, new_sites=new_sites, method=method, spacing_m=spacing, steps=steps
    )
    folder = Path(out) if out else Path(loaded.outputs["dir"])
    folder.mkdir(parents=True, exist_ok=True)
    with atomic_path(folder / "proposals.geojson") as tmp:
        proposal.sites.to_file(tmp, driver="GeoJSON")
    with atomic_path(folder / "proposals.csv") as tmp:
        proposal.sites.drop(columns="geometry").assign(
            lon=proposal.sites.geometry.x, lat=proposal.sites.geometry.y
        ).to_csv(tmp, index=False)
    click.echo(proposal.describe())


@main.command(name="map")
@click.argument("scenario", type=click.Path(dir_okay=False))
@click.option("--out", type=click.Path(file_okay=False), default=None)
@_scenario_options
@click.pass_context
def map_(
    ctx: click.Context, scenario: str, out: str | None, assignments: tuple[str, ...],
    lang: str | None, modes: tuple[str, ...],
) -> None:
    """Write the Folium map (map.html) only."""
    from coverage.outputs import write_outputs
    from coverage.pipeline import run_scenario

    loaded = _load(scenario, assignments, lang, modes)
    steps = _steps(ctx)
    result = run_scenario(loaded, steps=steps)
    folder = Path(out) if out else Path(loaded.outputs["dir"])
    written = write_outputs(
        result, folder, language=loaded.outputs.get("language", loaded.language),
        formats=["map.html"],
    )
    click.echo(f"Map written to {written['map.html']}")


@main.command()
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def presets(as_json: bool) -> None:
    """List the standards presets with their sources."""
    from coverage.standards.presets import list_presets

    rows = list_presets()
    if as_json:
        click.echo(json.dumps(rows, ensure_ascii=False, indent=2))
        return
    for row in rows:
        click.echo(f"{row['name']:<10} {row['rules']:>3} rules  {row['title']}  [{row['source']}]")


@main.group()
def data() -> None:
    """Fetch and prepare data for real districts."""


@data.command()
@click.argument("district")
@click.option("--out", type=click.Path(file_okay=False), required=True,
              help="Folder for the extract, layers and scenario file.")
@click.option("--extract-url", default=None,
              help="Use this OSM extract URL instead of the default.")
@click.option("--buffer-m", type=float, default=5000.0, show_default=True)
@click.pass_context
def fetch(
    ctx: click.Context, district: str, out: str, extract_url: str | None, buffer_m: float
) -> None:
    """Download and cut open data for DISTRICT (NBS code or Chinese name); write a scenario."""
    from coverage.china.fetch import fetch_district

    result = fetch_district(
        district, out_dir=Path(out), extract_url=extract_url, buffer_m=buffer_m,
        verbosity=ctx.obj["verbosity"],
    )
    click.echo(f"Scenario written to {result.scenario_path}")


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
