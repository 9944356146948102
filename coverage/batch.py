"""Audits of many scenarios at once: local processes, or a dask.distributed cluster.

Each scenario is one job that reads its inputs, runs, and writes its own output folder. A job
whose input is broken reports the problem and does not stop the others.
"""

from __future__ import annotations

import traceback
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from coverage.errors import CoverageError, InputError, Problem
from coverage.progress import Steps

__all__ = ["Outcome", "audit_job", "expand_scenarios", "run_many"]


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
        Per-rule rows as dictionaries (rule_id, status, share, ...).
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
        status = "all standards met" if self.exit_code == 0 else "some standards not met"
        return f"{name}: {status} -> {self.out_dir}"


def expand_scenarios(items: Sequence[str | Path]) -> list[Path]:
    """Expand files and folders (every ``*.toml`` inside, sorted) into scenario paths.

    Raises
    ------
    InputError
        Listing every argument that is neither a scenario file nor a folder holding some.
    """
    paths: list[Path] = []
    problems: list[Problem] = []
    for item in items:
        path = Path(item).expanduser()
        if path.is_dir():
            found = sorted(path.glob("*.toml"))
            if not found:
                problems.append(Problem(str(path), "folder holds no .toml scenario files"))
            paths.extend(found)
        elif path.is_file():
            paths.append(path)
        else:
            problems.append(
                Problem(str(path), "scenario file not found",
                        "give a .toml scenario file or a folder of them")
            )
    if problems:
        raise InputError(problems, source="scenario arguments")
    return [p.resolve() for p in paths]


def audit_job(
    scenario_path: str,
    out_dir: str | None,
    assignments: list[str],
    new_sites: int = 0,
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
    """
    from coverage.outputs import write_outputs
    from coverage.pipeline import run_scenario
    from coverage.scenario import load_scenario_with_overrides

    try:
        scenario = load_scenario_with_overrides(scenario_path, assignments)
        result = run_scenario(scenario, steps=Steps(verbosity=0), new_sites=new_sites)
        folder = Path(out_dir) if out_dir else Path(scenario.outputs["dir"])
        write_outputs(
            result, folder, language=scenario.outputs.get("language", scenario.language)
        )
    except CoverageError as exc:
        return Outcome(str(scenario_path), 2, error=str(exc))
    except Exception:  # noqa: BLE001 - one broken region must not stop the others
        return Outcome(str(scenario_path), 3, error=traceback.format_exc())
    return Outcome(
        str(scenario_path),
        0 if result.all_pass else 1,
        out_dir=str(folder),
        summary=result.summary.to_dict(orient="records"),
    )


def run_many(
    paths: Sequence[Path],
    *,
    out_root: Path | None = None,
    jobs: int = 1,
    scheduler: str | object | None = None,
    assignments: list[str] | None = None,
    new_sites: int = 0,
    steps: Steps | None = None,
    retries: int = 2,
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
        A dask.distributed scheduler address (``tcp://host:8786``) or a ``Client``; when given,
        jobs run on that cluster and a job whose worker dies is retried ``retries`` times.
    assignments
        ``key.path=value`` overrides applied to every scenario.
    new_sites
        Also propose this many new sites per scenario.
    steps
        Progress display.
    retries
        Retries of a job lost with its worker (dask only).

    Returns
    -------
    list of Outcome
        In the order of ``paths``.
    """
    steps = steps or Steps(verbosity=0)
    assignments = assignments or []
    args = [
        (str(p), str(out_root / p.stem) if out_root else None, assignments, new_sites)
        for p in paths
    ]
    if scheduler is not None:
        return _run_dask(args, scheduler, retries, steps)
    if jobs <= 1:
        return [audit_job(*a) for a in steps.bar(args, "Scenarios", total=len(args))]
    with ProcessPoolExecutor(max_workers=jobs) as pool:
        futures = [pool.submit(audit_job, *a) for a in args]
        return [f.result() for f in steps.bar(futures, "Scenarios", total=len(futures))]


def _run_dask(
    args: list[tuple], scheduler: str | object, retries: int, steps: Steps
) -> list[Outcome]:
    from distributed import Client

    own = isinstance(scheduler, str)
    client = Client(scheduler) if own else scheduler
    try:
        futures = [
            client.submit(
                audit_job, *a, retries=retries, pure=False, key=f"audit-{i}-{Path(a[0]).stem}"
            )
            for i, a in enumerate(args)
        ]
        return [f.result() for f in steps.bar(futures, "Scenarios", total=len(futures))]
    finally:
        if own:
            client.close()
