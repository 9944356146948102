"""Audits of many scenarios at once: local processes, or a dask.distributed cluster.

Each scenario is one job that reads its inputs, runs, and writes its own output folder. A job
whose input is broken reports the problem (exit code 2) and does not stop the others; a job
whose process or Dask worker dies is retried (Dask) or reported (exit code 3).
"""

from __future__ import annotations

import traceback
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from covplan.errors import CoverageError, InputError, Problem
from covplan.progress import Steps
from covplan.scenario import Scenario

if TYPE_CHECKING:
    from covplan.results import RunResult

__all__ = [
    "EXIT_BAD_INPUT",
    "EXIT_CRASHED",
    "EXIT_FAIL",
    "EXIT_PASS",
    "Outcome",
    "audit_job",
    "expand_scenarios",
    "load_job_scenario",
    "run_and_write",
    "run_many",
    "select_modes",
]

#: Exit codes: every standard met, some standard not met, bad input, unexpected failure.
EXIT_PASS, EXIT_FAIL, EXIT_BAD_INPUT, EXIT_CRASHED = 0, 1, 2, 3


@dataclass(frozen=True)
class Outcome:
    """What one scenario's job ended with.

    Attributes
    ----------
    scenario
        The scenario file.
    exit_code
        0 all standards met, 1 some failed, 2 bad input, 3 unexpected failure.
    out_dir
        Where the outputs went (None when nothing was written).
    summary
        Per-rule rows of ``RunResult.summary`` as dictionaries (rule_id, region_status, ...).
    error
        The message when the job did not finish.
    """

    scenario: str
    exit_code: int
    out_dir: str | None = None
    summary: list[dict] = field(default_factory=list)
    error: str = ""

    def line(self) -> str:
        """One line for the terminal."""
        name = Path(self.scenario).stem
        if self.error:
            first = self.error.strip().splitlines()[0]
            return f"{name}: FAILED TO RUN (exit {self.exit_code}) - {first}"
        status = "all standards met" if self.exit_code == EXIT_PASS else "some standards not met"
        return f"{name}: {status} -> {self.out_dir}"


def expand_scenarios(items: Sequence[str | Path]) -> list[Path]:
    """Expand files and folders (every ``*.toml`` inside, sorted) into scenario paths.

    Raises
    ------
    InputError
        Listing every argument that is neither a scenario file nor a folder holding some, and
        scenarios that would share an output folder (same file name in different folders).
    """
    paths: list[Path] = []
    problems: list[Problem] = []
    for item in items:
        path = Path(item).expanduser()
        if path.is_dir():
            found = sorted(path.glob("*.toml"))
            if not found:
                problems.append(Problem(str(path), "folder holds no .toml scenario files",
                                        "give a folder of .toml scenario files"))
            paths.extend(found)
        elif path.is_file():
            paths.append(path)
        else:
            problems.append(
                Problem(str(path), "scenario file not found",
                        "give a .toml scenario file or a folder of them")
            )
    resolved: list[Path] = []
    for p in paths:
        if p.resolve() not in resolved:
            resolved.append(p.resolve())
    stems: dict[str, Path] = {}
    for p in resolved:
        if p.stem in stems:
            problems.append(Problem(
                str(p), f"has the same name as {stems[p.stem]}",
                "rename one: each scenario writes into a sub-folder named after its file",
            ))
        stems.setdefault(p.stem, p)
    if problems:
        raise InputError(problems, source="scenario arguments")
    return resolved


def select_modes(scenario: Scenario, modes: Sequence[str]) -> Scenario:
    """Keep only the standards of the given travel modes (and those that use no mode).

    Travel-time and distance standards whose mode is not in ``modes`` are dropped; presence,
    population-band and ratio standards do not depend on a travel mode and are kept. Preset
    references are narrowed with their ``only`` list.

    Parameters
    ----------
    scenario
        A checked scenario.
    modes
        Travel-mode names (``walk``, ``drive``, ``ambulance`` or the scenario's own); empty
        keeps every standard.

    Raises
    ------
    InputError
        For an unknown mode name, or when no standard of those modes remains.
    """
    if not modes:
        return scenario
    from covplan.engine.modes import parse_modes
    from covplan.standards import parse_standards

    known = parse_modes(scenario.modes)
    unknown = [m for m in modes if m not in known]
    if unknown:
        raise InputError(
            [Problem("--mode", f"unknown travel mode {m!r}", f"known modes: {', '.join(known)}")
             for m in unknown],
            source="command-line options",
        )
    wanted = set(modes)

    def keep(rule: Any) -> bool:
        mode = getattr(rule, "mode", None)
        return mode is None or mode in wanted

    tables: list[dict[str, Any]] = []
    for i, table in enumerate(scenario.standards):
        rules = parse_standards([table], where=f"standards[{i}]", modes=list(known))
        kept = [r.id for r in rules if keep(r)]
        if not kept:
            continue
        if "preset" in table and len(kept) < len(rules):
            narrowed = dict(table, only=kept)
            if isinstance(table.get("override"), dict):
                narrowed["override"] = {
                    k: v for k, v in table["override"].items() if k in kept
                }
            tables.append(narrowed)
        else:
            tables.append(dict(table))
    if not tables:
        raise InputError(
            [Problem("--mode", f"no standard of {scenario.path.name} uses mode(s) "
                     f"{', '.join(modes)}", "choose modes its standards use")],
            source="command-line options",
        )
    return scenario.with_overrides(standards=tables)


def load_job_scenario(
    path: str | Path,
    *,
    assignments: Sequence[str] = (),
    language: str | None = None,
    modes: Sequence[str] = (),
) -> Scenario:
    """Read a scenario with the command line's overrides applied.

    Parameters
    ----------
    path
        The scenario file.
    assignments
        ``key.path=value`` overrides (``--set``).
    language
        ``"zh"`` or ``"en"`` for the exports (``--lang``); None keeps the scenario's.
    modes
        Only the standards of these travel modes (``--mode``); empty keeps all.

    Raises
    ------
    InputError
        Listing every problem of the file or the overrides.
    """
    from covplan.scenario import load_scenario_with_overrides

    extra = list(assignments)
    if language:
        extra.append(f'outputs.language="{language}"')
    return select_modes(load_scenario_with_overrides(path, extra), modes)


def run_and_write(
    scenario: Scenario, out_dir: str | Path | None, *, steps: Steps, new_sites: int = 0
) -> tuple[RunResult, Path]:
    """Run a checked scenario and write every output; return the result and the folder.

    Parameters
    ----------
    scenario
        A checked scenario.
    out_dir
        Output folder, or None for the scenario's own ``outputs.dir``.
    steps
        Progress display.
    new_sites
        Also propose this many new sites.
    """
    from covplan.outputs import write_outputs
    from covplan.pipeline import run_scenario

    result = run_scenario(scenario, steps=steps, new_sites=new_sites)
    folder = Path(out_dir) if out_dir else Path(scenario.outputs["dir"])
    with steps.step("Writing outputs"):
        write_outputs(
            result, folder, language=scenario.outputs.get("language", scenario.language),
            steps=steps,
        )
    return result, folder


def audit_job(
    scenario_path: str,
    out_dir: str | None,
    assignments: Sequence[str] = (),
    new_sites: int = 0,
    modes: Sequence[str] = (),
    language: str | None = None,
    verbosity: int = 0,
) -> Outcome:
    """Run one scenario end to end and write its outputs; never raises.

    Parameters
    ----------
    scenario_path
        The scenario file.
    out_dir
        Output folder, or None for the scenario's own ``outputs.dir``.
    assignments
        ``key.path=value`` overrides.
    new_sites
        Also propose this many new sites.
    modes
        Only the standards of these travel modes; empty keeps all.
    language
        Language of the exports; None keeps the scenario's.
    verbosity
        Progress shown on standard error (0 none, 1 steps, 2 details).

    Returns
    -------
    Outcome
        Exit code 0 or 1 with the summary when the run finished; 2 with the message for bad
        input; 3 with the traceback for anything unexpected. Nothing is written unless the
        run finished (outputs are written all or nothing).
    """
    steps = Steps(verbosity=verbosity)
    try:
        scenario = load_job_scenario(
            scenario_path, assignments=assignments, language=language, modes=modes
        )
        result, folder = run_and_write(scenario, out_dir, steps=steps, new_sites=new_sites)
    except CoverageError as exc:
        return Outcome(str(scenario_path), EXIT_BAD_INPUT, error=str(exc))
    except OSError as exc:
        return Outcome(str(scenario_path), EXIT_BAD_INPUT, error=f"{type(exc).__name__}: {exc}")
    except Exception:  # noqa: BLE001 - one broken region must not stop the others
        return Outcome(str(scenario_path), EXIT_CRASHED, error=traceback.format_exc())
    return Outcome(
        str(scenario_path),
        EXIT_PASS if result.all_pass else EXIT_FAIL,
        out_dir=str(folder),
        summary=result.summary.to_dict(orient="records"),
    )


def run_many(
    paths: Sequence[Path],
    *,
    out_root: Path | None = None,
    jobs: int = 1,
    scheduler: str | object | None = None,
    assignments: Sequence[str] = (),
    new_sites: int = 0,
    modes: Sequence[str] = (),
    language: str | None = None,
    steps: Steps | None = None,
    retries: int = 2,
    job: Callable[..., Outcome] = audit_job,
) -> list[Outcome]:
    """Run several scenarios, each into ``out_root/<scenario stem>`` (or its own outputs.dir).

    Parameters
    ----------
    paths
        Scenario files.
    out_root
        Parent folder of the per-scenario output folders.
    jobs
        Local worker processes (1 runs in this process, in order).
    scheduler
        A dask.distributed scheduler address (``tcp://host:8786``) or a ``Client``. When given,
        the jobs run on that cluster. A job whose worker dies is run again on another worker
        by the scheduler (up to its ``distributed.scheduler.allowed-failures``, 3 by
        default); a job that still cannot finish is reported with exit code 3.
    assignments
        ``key.path=value`` overrides applied to every scenario.
    new_sites
        Also propose this many new sites per scenario.
    modes
        Only the standards of these travel modes.
    language
        Language of the exports; None keeps each scenario's.
    steps
        Progress display: in this process (``jobs=1``) each scenario's steps, one after the
        other; with processes or Dask one bar over the scenarios.
    retries
        Dask only: times a job that raised is submitted again (:func:`audit_job` itself
        never raises; this covers a job lost in transfer or deserialisation).
    job
        The function run per scenario, called as ``job(scenario_path, out_dir, assignments,
        new_sites, modes, language, verbosity)``; default :func:`audit_job`.

    Returns
    -------
    list of Outcome
        In the order of ``paths``; one per scenario whatever happened to it.
    """
    steps = steps or Steps(verbosity=0)
    args = [
        (str(p), str(out_root / p.stem) if out_root else None, list(assignments), new_sites,
         list(modes), language, 0)
        for p in paths
    ]
    if scheduler is not None:
        return _run_dask(job, args, scheduler, retries, steps)
    if jobs <= 1 or len(args) <= 1:
        outcomes = []
        for i, a in enumerate(args, start=1):
            if steps.verbosity:
                print(f"== Scenario {i}/{len(args)}: {a[0]}", file=steps.stream, flush=True)
            outcomes.append(job(*a[:-1], steps.verbosity))
        return outcomes
    with ProcessPoolExecutor(max_workers=min(jobs, len(args))) as pool:
        futures = {pool.submit(job, *a): i for i, a in enumerate(args)}
        outcomes: list[Outcome | None] = [None] * len(args)
        for fut in steps.bar(as_completed(futures), "Scenarios", total=len(futures)):
            i = futures[fut]
            try:
                outcomes[i] = fut.result()
            except Exception as exc:  # noqa: BLE001 - e.g. a worker process killed
                outcomes[i] = _crashed(args[i][0], exc)
        return [o for o in outcomes if o is not None]


def _crashed(scenario: str, exc: BaseException) -> Outcome:
    return Outcome(scenario, EXIT_CRASHED, error=f"job lost: {type(exc).__name__}: {exc}")


def _run_dask(
    job: Callable[..., Outcome], args: list[tuple], scheduler: str | object, retries: int,
    steps: Steps,
) -> list[Outcome]:
    from distributed import Client
    from distributed import as_completed as dask_completed

    own = isinstance(scheduler, str)
    try:
        client = Client(scheduler) if own else scheduler
    except OSError as exc:
        raise CoverageError(
            f"cannot reach the Dask scheduler at {scheduler}: {exc}; start one with "
            "`dask scheduler` and workers with `dask worker ADDRESS`, or drop --scheduler"
        ) from None
    try:
        futures = {
            client.submit(
                job, *a, retries=retries, pure=False, key=f"audit-{i}-{Path(a[0]).stem}"
            ): i
            for i, a in enumerate(args)
        }
        outcomes: list[Outcome | None] = [None] * len(args)
        for fut in steps.bar(dask_completed(futures), "Scenarios", total=len(futures)):
            i = futures[fut]
            try:
                outcomes[i] = fut.result()
            except Exception as exc:  # noqa: BLE001 - e.g. KilledWorker after retries
                outcomes[i] = _crashed(args[i][0], exc)
        return [o for o in outcomes if o is not None]
    finally:
        if own:
            client.close()
