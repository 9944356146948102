"""The ``covplan`` command: a thin shell over the package's functions.

Exit codes: 0 every standard met, 1 some standard failed, 2 bad input (the message says what,
where and how to fix it; no traceback; nothing is written), 3 an unexpected failure (a bug:
rerun with ``-v`` for the traceback), 130 stopped by Ctrl-C (the message names what finished);
see :mod:`covplan.cli.exit_codes`. Progress goes to standard error and is silenced by
``-q``, as are warnings; results go to standard output.
"""

from __future__ import annotations

import json
import sys
import traceback
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click
from covplan import commands, settings
from covplan.cli.exit_codes import (
    EXIT_BAD_INPUT,
    EXIT_FAILED,
    EXIT_INTERNAL,
    EXIT_INTERRUPTED,
    EXIT_OK,
    exit_code_for,
)
from covplan.errors import CoverageError
from covplan.labels import LANGUAGES, label, text
from covplan.progress import Steps

if TYPE_CHECKING:
    from covplan.results import RunResult
    from covplan.scenario import Scenario

__all__ = ["EXIT_BAD_INPUT", "EXIT_FAILED", "EXIT_INTERNAL", "EXIT_INTERRUPTED", "EXIT_OK",
           "main"]


class _Group(click.Group):
    """A click group that turns errors into a message and an exit code, never a traceback.

    The package's errors (:class:`~covplan.errors.CoverageError`) and unreadable or
    unwritable files (``OSError``) exit with code 2; anything else is a bug and exits with
    code 3 (the traceback is shown with ``-v``). Warnings are shown as one line each, or not
    at all with ``-q``.
    """

    def invoke(self, ctx: click.Context) -> Any:
        quiet = bool(ctx.params.get("quiet"))
        verbose = int(ctx.params.get("verbose") or 0)
        with warnings.catch_warnings():
            if quiet:
                warnings.simplefilter("ignore")
            else:
                warnings.showwarning = _show_warning
            try:
                return super().invoke(ctx)
            except CoverageError as exc:
                click.echo(f"Error: {exc}", err=True)
                ctx.exit(EXIT_BAD_INPUT)
            except OSError as exc:
                where = f" ({exc.filename})" if getattr(exc, "filename", None) else ""
                click.echo(
                    f"Error: {exc.strerror or exc}{where}; check that the file exists, can be "
                    "read, and that the output folder can be written",
                    err=True,
                )
                ctx.exit(EXIT_BAD_INPUT)
            except (click.exceptions.Exit, click.ClickException, click.Abort):
                raise
            except KeyboardInterrupt as exc:  # Ctrl-C: say what finished, exit 130
                batch = sys.modules.get("covplan.batch")  # only imported by commands using it
                click.echo(
                    exc.describe() if batch and isinstance(exc, batch.BatchInterrupted) else
                    "Interrupted (Ctrl-C) before the command finished; no outputs were written.",
                    err=True,
                )
                ctx.exit(EXIT_INTERRUPTED)
            except Exception as exc:  # noqa: BLE001 - no traceback unless asked for
                if verbose:
                    click.echo(traceback.format_exc(), err=True)
                click.echo(
                    f"Internal error: {type(exc).__name__}: {exc}. This is a bug; rerun with "
                    "-v for the traceback and report it.",
                    err=True,
                )
                ctx.exit(EXIT_INTERNAL)


def _show_warning(
    message: Warning | str,
    category: type[Warning],
    filename: str,
    lineno: int,
    file: Any = None,
    line: str | None = None,
) -> None:
    click.echo(f"Warning: {message}", err=True)


def _steps(ctx: click.Context) -> Steps:
    return Steps(verbosity=ctx.obj["verbosity"])


def _scenario_options(func: Any) -> Any:
    func = click.option(
        "--set", "assignments", multiple=True, metavar="KEY=VALUE",
        help="Override a scenario value by key path or rule id, e.g. --set BZ-12.minutes=20 "
             "or --set inputs.network.buffer_m=3000 (repeatable).",
    )(func)
    func = click.option(
        "--lang", type=click.Choice(list(LANGUAGES)), default=None,
        help="Language of tables, maps and report (overrides the scenario).",
    )(func)
    func = click.option(
        "--mode", "modes", multiple=True, metavar="MODE",
        help="Only check standards for these travel modes (repeatable).",
    )(func)
    return func


def _load(
    path: str, assignments: tuple[str, ...], lang: str | None, modes: tuple[str, ...]
) -> Scenario:
    return commands.load_job_scenario(path, assignments=assignments, language=lang, modes=modes)


def _language(scenario: Scenario) -> str:
    return str(scenario.outputs.get("language", scenario.language))


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
    """Check a scenario, its standards and its inputs; write nothing."""
    check = commands.check_scenario(_load(scenario, assignments, lang, modes), steps=_steps(ctx))
    for problem in check.unchecked:
        click.echo(text("console_note", check.language, problem=problem), err=True)
    click.echo(text(
        "console_validated", check.language, name=check.name, standards=check.standards,
        facilities=check.facilities, units=check.units, places=check.places,
        population=check.population,
    ))


@main.command()
@click.argument("scenarios", nargs=-1, required=True, type=click.Path())
@click.option("--out", "out", type=click.Path(file_okay=False), default=None,
              help="Output folder (with several scenarios: one sub-folder each).")
@click.option("--jobs", type=click.IntRange(min=1), default=1, show_default=True,
              help="Scenarios run at once in local processes.")
@click.option("--scheduler", default=None, metavar="ADDRESS",
              help="Run on a dask.distributed cluster, e.g. tcp://10.0.0.5:8786.")
@click.option("--new", "new_sites", type=click.IntRange(min=0), default=0,
              help="Also propose N new sites.")
@click.option("--close", "close", type=click.Path(dir_okay=False), default=None,
              metavar="FILE",
              help="Hazard polygons (GeoJSON/GPKG/Shapefile): audit with the roads crossing "
                   "them closed and also write closure_loss.csv (one scenario only).")
@_scenario_options
@click.pass_context
def audit(
    ctx: click.Context, scenarios: tuple[str, ...], out: str | None, jobs: int,
    scheduler: str | None, new_sites: int, assignments: tuple[str, ...], lang: str | None,
    modes: tuple[str, ...], close: str | None = None,
) -> None:
    """Run every standard of SCENARIOS (files or folders) and write all outputs.

    With several scenarios each writes into OUT/<scenario file name>; one broken scenario is
    reported and does not stop the others; the exit code is the worst of all.
    """
    from covplan.batch import BatchInterrupted, expand_scenarios, run_many, summary_line

    paths = expand_scenarios(scenarios)
    steps = _steps(ctx)
    if close is not None and (len(paths) != 1 or scheduler is not None):
        raise click.UsageError("--close works with one scenario run here (no --scheduler)")
    if len(paths) == 1 and scheduler is None:
        try:
            result, folder = _run_one(paths[0], out, assignments, lang, modes, new_sites, steps,
                                      close)
        except KeyboardInterrupt:
            raise BatchInterrupted([], [str(paths[0])], []) from None
        _print_summary(result, folder, steps)
        from covplan.cli.exit_codes import EXIT_NOTHING_CHECKED, exit_code_for_audit

        code = exit_code_for_audit(result.unit_results["status"].astype(str))
        if code == EXIT_NOTHING_CHECKED and steps.verbosity:
            click.echo("Warning: no rule could be checked on these inputs (every unit is not "
                       "applicable or cannot be checked; see the notes above): exit code 4",
                       err=True)
        ctx.exit(code)
    outcomes = run_many(
        paths, out_root=Path(out) if out else None, jobs=jobs, scheduler=scheduler,
        assignments=assignments, language=lang, modes=modes, new_sites=new_sites, steps=steps,
    )
    for outcome in outcomes:
        if outcome.error:
            click.echo(f"Error in {outcome.scenario}:\n{outcome.error.rstrip()}", err=True)
        elif steps.verbosity:
            click.echo(outcome.line())
        if outcome.retried and steps.verbosity:
            click.echo(f"Note: {Path(outcome.scenario).name} was run again in a fresh process "
                       f"({outcome.retry_reason}); final status: {outcome.status}", err=True)
    if steps.verbosity:
        click.echo(summary_line(outcomes))
    ctx.exit(exit_code_for(outcomes))


def _run_one(
    path: str | Path,
    out: str | None,
    assignments: tuple[str, ...],
    lang: str | None,
    modes: tuple[str, ...],
    new_sites: int,
    steps: Steps,
    close: str | None = None,
) -> tuple[RunResult, Path]:
    from covplan.batch import run_and_write

    loaded = _load(path, assignments, lang, modes)
    if close is not None or commands.has_closures(loaded):
        return commands.audit_with_closures(loaded, out, close=close, steps=steps,
                                            new_sites=new_sites)
    commands.check_output_folder(loaded, out)
    return run_and_write(loaded, out, steps=steps, new_sites=new_sites)


def _print_summary(result: RunResult, folder: Path, steps: Steps) -> None:
    if steps.verbosity == 0:
        return
    language = result.language

    def word(key: str) -> str:  # English lines keep the table's keys, for scripts
        return key if language == "en" else label(key, language=language)

    for row in result.summary.itertuples():
        value = row.region_value
        share = str(row.value_unit).startswith("share") and value == value
        shown = "-" if value != value else f"{value:.1%}" if share else f"{value:.4g}"
        click.echo(text(
            "console_rule", language, rule_id=row.rule_id, status=word(str(row.region_status)),
            passed=row.units_pass, checked=row.units_checked, shown=shown,
            value_unit=word(str(row.value_unit)),
            levels=", ".join(word(v.strip()) for v in str(row.levels).split(",")),
        ))
        if row.region_status == "cannot_check":
            rows = result.unit_results[result.unit_results["rule_id"] == row.rule_id]
            if len(rows):
                click.echo(text("console_cannot_check", language, pad=" " * 11,
                                reason=rows["evidence"].iloc[0]))
    click.echo(text("console_written", language, folder=folder))


@main.command()
@click.argument("scenario", type=click.Path(dir_okay=False))
@click.option("--top", type=click.IntRange(min=1), default=20, show_default=True,
              help="Road segments listed.")
@click.option("--rule", "rule_ids", multiple=True, metavar="RULE_ID",
              help="Emergency standards to use (repeatable; default the ambulance ones).")
@click.option("--out", type=click.Path(file_okay=False), default=None)
@_scenario_options
@click.pass_context
def resilience(
    ctx: click.Context, scenario: str, top: int, rule_ids: tuple[str, ...], out: str | None,
    assignments: tuple[str, ...], lang: str | None, modes: tuple[str, ...],
) -> None:
    """List the road segments whose closure alone drops most residents out of the circle.

    Writes single_points_of_failure.csv (OSM way id, residents dropped out of the emergency
    circle) into OUT.
    """
    steps = _steps(ctx)
    table, path = commands.write_single_points_of_failure(
        _load(scenario, assignments, lang, modes), out, top=top, rule_ids=rule_ids, steps=steps
    )
    if steps.verbosity:
        for row in table.head(5).itertuples():
            click.echo(f"{row.rank:>3}. OSM way {row.osm_way_id} ({row.highway}): "
                       f"{row.residents_lost:,.0f} residents out of the circle")
        click.echo(f"Wrote {path}")


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
    loaded = _load(scenario, assignments, lang, modes)
    count, folder = commands.write_isochrones(
        loaded, out, minutes=minutes, modes=modes, steps=_steps(ctx)
    )
    click.echo(text("console_isochrones", _language(loaded), count=count, folder=folder))


@main.command()
@click.argument("scenario", type=click.Path(dir_okay=False))
@click.option("--new", "new_sites", type=click.IntRange(min=1), required=True,
              help="Number of new sites.")
@click.option("--method", type=click.Choice(["mclp", "lscp", "pmedian"]), default="mclp",
              show_default=True)
@click.option("--spacing", type=float, default=500.0, show_default=True,
              help="Candidate grid spacing in metres.")
@click.option("--rule", "rule_id", default=None, metavar="RULE_ID",
              help="The travel-time standard to site for (default: the first one).")
@click.option("--out", type=click.Path(file_okay=False), default=None)
@_scenario_options
@click.pass_context
def site(
    ctx: click.Context, scenario: str, new_sites: int, method: str, spacing: float,
    rule_id: str | None, out: str | None, assignments: tuple[str, ...], lang: str | None,
    modes: tuple[str, ...],
) -> None:
    """Propose NEW sites for new health stations and write proposals.csv/.geojson.

    The first travel-time standard of the scenario (or --rule) sets the facility types, the
    travel mode and the minutes; existing facilities of those types stay open.
    """
    proposal = commands.propose_sites(
        _load(scenario, assignments, lang, modes), out, new_sites=new_sites, method=method,
        spacing_m=spacing, rule_id=rule_id, steps=_steps(ctx),
    )
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
    loaded = _load(scenario, assignments, lang, modes)
    path, _ = commands.write_map(loaded, out, steps=_steps(ctx))
    click.echo(text("console_map", _language(loaded), path=path))


@main.command()
@click.option("--out", "out", type=click.Path(dir_okay=False), default=None,
              help="Write the schema to this file instead of standard output.")
def schema(out: str | None) -> None:
    """Print the JSON Schema of scenario files (for editor completion, e.g. Taplo)."""
    if out is None:
        click.echo(commands.schema_text())
        return
    commands.write_schema(out)
    click.echo(f"Scenario schema written to {out}", err=True)


@main.command()
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def presets(as_json: bool) -> None:
    """List the standards presets with their sources."""
    rows = commands.preset_rows()
    if as_json:
        click.echo(json.dumps(rows, ensure_ascii=False, indent=2))
        return
    for row in rows:
        click.echo(f"{row['name']}: {row['place']}")
        click.echo(f"  {row['title']}")
        issued = f"{row['issuer']}, {row['date']}" if row["date"] else row["issuer"]
        click.echo(f"  {issued}; source {row['source']}")
        click.echo(f"  {len(row['rules'])} rules: {', '.join(row['rules'])}")


@main.command()
@click.argument("kind", type=click.Choice(["facilities"]))
@click.option("--lang", type=click.Choice(list(LANGUAGES)), default="zh", show_default=True,
              help="Language of the headers and example values.")
@click.option("--out", "out", type=click.Path(dir_okay=False), default=None,
              help="File to write, .csv or .xlsx [default: facilities_register_<lang>.csv].")
@click.option("--force", is_flag=True, help="Replace the file if it exists.")
def template(kind: str, lang: str, out: str | None, force: bool) -> None:
    """Write a template of an input file: KIND facilities is the register (机构名录).

    Delete its example rows (【示例】...) and add one row per facility; see the README section
    "Facility register (机构名录)".
    """
    path = commands.write_register_template(out or f"facilities_register_{lang}.csv", language=lang,
                                   overwrite=force)
    click.echo(f"Facility register template ({lang}) written to {path}", err=True)


@main.group()
def data() -> None:
    """Fetch and prepare data for real districts."""


@data.command()
@click.argument("district", required=False)
@click.option("--out", type=click.Path(file_okay=False), required=True,
              help="Folder for the extract, layers and scenario file.")
@click.option("--pbf", type=click.Path(dir_okay=False), default=None,
              help="Use this local OSM extract instead of downloading one.")
@click.option("--extract-url", "--url", "url", default=None,
              help="Download this OSM extract instead of the district's Geofabrik region.")
@click.option("--relation-id", type=int, default=None,
              help="The OSM boundary relation of the district (when DISTRICT is not given).")
@click.option("--boundary-file", type=click.Path(dir_okay=False), default=None,
              help="A boundary file holding the district outline (with --boundary-name).")
@click.option("--boundary-name", default=None, help="Name or id of the district in it.")
@click.option("--buffer-m", type=float, default=5000.0, show_default=True,
              help="Metres kept around the district.")
@click.option("--lang", type=click.Choice(list(LANGUAGES)), default="zh", show_default=True,
              help="Language of the written scenario.")
@click.option("--timeout", type=float, default=60.0, show_default=True,
              help="Network timeout in seconds.")
@click.option("--deadline", "deadline", type=click.FloatRange(min=0, min_open=True),
              default=3600.0, show_default=True, metavar="SECONDS",
              help="Time the download may take in all, across restarts; a partial file is kept "
                   "to be resumed.")
@click.pass_context
def fetch(
    ctx: click.Context, district: str | None, out: str, pbf: str | None, url: str | None,
    relation_id: int | None, boundary_file: str | None, boundary_name: str | None,
    buffer_m: float, lang: str, timeout: float, deadline: float,
) -> None:
    """Download and cut open data for DISTRICT (NBS code or Chinese name); write a scenario."""
    from tqdm import tqdm

    steps = _steps(ctx)
    bar: dict[str, tqdm] = {}

    def progress(done: int, total: int | None) -> None:
        if "bar" not in bar:
            bar["bar"] = tqdm(total=total, unit="B", unit_scale=True, desc="Downloading",
                              disable=steps.verbosity < 1, file=steps.stream, leave=False)
        bar["bar"].update(done - bar["bar"].n)

    try:
        label = district or (f"OSM relation {relation_id}" if relation_id else boundary_name)
        with steps.step(f"Fetching open data for {label or 'the district'}"):
            result = commands.fetch_district(
                district, out_dir=Path(out), pbf=pbf, url=url, relation_id=relation_id,
                boundary_file=boundary_file, boundary_name=boundary_name, buffer_m=buffer_m,
                language=lang, timeout=timeout, progress=progress, deadline=deadline,
            )
    finally:
        if "bar" in bar:
            bar["bar"].close()
    click.echo(
        f"{len(result.townships)} townships, {len(result.facilities)} facilities, "
        f"{len(result.places)} places; scenario written to {result.scenario}"
    )



@main.command(name="app")
@click.option("--port", type=click.IntRange(1, 65535), default=8501, show_default=True,
              help="Port the app listens on.")
@click.option("--address", default="127.0.0.1", show_default=True,
              help="Address the app listens on (0.0.0.0 serves every network interface).")
@click.option("--scenarios", "scenarios", type=click.Path(file_okay=False), default=None,
              help="Folder of the demo scenarios (*.toml) [default: ./data/scenarios if it "
                   "exists, else COVPLAN_SCENARIOS].")
def app_command(port: int, address: str, scenarios: str | None) -> None:
    """Start the planners' web app (Streamlit) at http://ADDRESS:PORT."""
    import os
    import subprocess
    from importlib import resources

    script = Path(str(resources.files("covplan.app").joinpath("main.py")))
    if not script.is_file():
        raise CoverageError(
            f"the app's page {script.name} is missing from the installed package; reinstall "
            "coverage-planner"
        )
    changes: dict[str, str] = {}
    folder = Path(scenarios) if scenarios else Path.cwd() / "data" / "scenarios"
    if scenarios is not None and not folder.is_dir():
        raise CoverageError(
            f"--scenarios {scenarios}: no such folder; name a folder of scenario files (*.toml)"
        )
    if folder.is_dir():
        changes["COVPLAN_SCENARIOS"] = str(folder.resolve())
    env = settings.child_environment(**changes)
    command = [
        sys.executable, "-m", "streamlit", "run", str(script),
        "--server.headless", "true", "--browser.gatherUsageStats", "false",
        "--server.port", str(port), "--server.address", address,
    ]
    click.echo(f"Starting the app at http://{address}:{port} (Ctrl+C stops it)", err=True)
    if os.name == "posix":  # the server takes this process's place: signals reach it
        sys.stdout.flush()
        sys.stderr.flush()
        os.execve(sys.executable, command, env)
    else:  # pragma: no cover - no exec on Windows
        sys.exit(subprocess.run(command, env=env, check=False).returncode)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
