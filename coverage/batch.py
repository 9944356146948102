"""Audits of many scenarios at once: local processes, or a dask.distributed cluster.

Each scenario is one job that reads its inputs, runs, and writes its own output folder. A job
whose input is broken reports the problem and does not stop the others. Locally every job runs
in a process of its own: a process that dies (killed, out of memory) loses only its own
scenario, which is run once more in a fresh process; on a Dask cluster the scheduler retries a
job whose worker died. Ctrl-C stops the batch and raises :class:`BatchInterrupted`, which says
which scenarios finished.

This module reports what happened to each scenario (:class:`Outcome` and its ``status``); the
command line turns that into an exit code (:mod:`covplan.cli.exit_codes`).
"""

from __future__ import annotations

import multiprocessing
import signal
import threading
import traceback
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from multiprocessing.connection import Connection, wait
from pathlib import Path
from typing import TYPE_CHECKING, Any

from covplan.errors import CoverageError, InputError, Problem
from covplan.progress import Steps
from covplan.scenario import Scenario

if TYPE_CHECKING:
    from multiprocessing.process import BaseProcess

    from covplan.results import RunResult

__all__ = [
    "BAD_INPUT",
    "CRASHED",
    "FAILED",
    "LOST",
    "NOTHING_CHECKED",
    "PASSED",
    "STATUSES",
    "BatchInterrupted",
    "Outcome",
    "audit_job",
    "expand_scenarios",
    "load_job_scenario",
    "run_and_write",
    "run_many",
    "select_modes",
    "summary_line",
]

#: Statuses of a scenario's job: every standard met; some standard not met; the input is
#: broken; an unexpected error (a bug); the job's process or worker died (also on the retry).
PASSED, FAILED, BAD_INPUT, CRASHED, LOST = "passed", "failed", "bad_input", "crashed", "lost"
#: The run finished but not one rule could be checked (every unit not applicable or
#: ``cannot_check``).
NOTHING_CHECKED = "nothing_checked"
STATUSES: tuple[str, ...] = (PASSED, FAILED, NOTHING_CHECKED, BAD_INPUT, CRASHED, LOST)
_FAILED_TO_RUN = {BAD_INPUT: "bad input", CRASHED: "unexpected error", LOST: "job lost"}


@dataclass(frozen=True)
class Outcome:
    """What one scenario's job ended with.

    Attributes
    ----------
    scenario
        The scenario file.
    status
        One of :data:`STATUSES`: ``"passed"`` (every standard met), ``"failed"`` (some not
        met), ``"bad_input"``, ``"crashed"`` (unexpected error) or ``"lost"`` (its process
        died, also when run again).
    out_dir
        Where the outputs went (None when nothing was written).
    summary
        Per-rule rows of ``RunResult.summary`` as dictionaries (rule_id, region_status, ...).
    error
        The message when the job did not finish.
    attempts
        Processes the job ran in: 2 when its first process died and it was run again.
    retry_reason
        Why the first process gave no result (e.g. ``"its process was killed by SIGKILL"``);
        empty when the job was not retried.
    """

    scenario: str
    status: str
    out_dir: str | None = None
    summary: list[dict] = field(default_factory=list)
    error: str = ""
    attempts: int = 1
    retry_reason: str = ""

    @property
    def ran(self) -> bool:
        """True when the run finished and its outputs were written (standards met or not)."""
        return self.status in (PASSED, FAILED, NOTHING_CHECKED)

    @property
    def retried(self) -> bool:
        """True when the job was run again after its first process died."""
        return self.attempts > 1

    def line(self) -> str:
        """One line for the terminal."""
        name = Path(self.scenario).stem
        retry = f" (retried once: {self.retry_reason})" if self.retried else ""
        if not self.ran:
            first = (self.error.strip().splitlines() or [""])[0]
            label = _FAILED_TO_RUN.get(self.status, self.status)
            return f"{name}: FAILED TO RUN ({label}){retry} - {first}"
        status = {PASSED: "all standards met", FAILED: "some standards not met",
                  NOTHING_CHECKED: "no standard could be checked"}[self.status]
        return f"{name}: {status} -> {self.out_dir}{retry}"


def summary_line(outcomes: Sequence[Outcome]) -> str:
    """Return the closing line of a batch: how many ran, which failed to run, which were retried.

    Examples
    --------
    >>> summary_line([Outcome("a.toml", "failed", "out/a"),
    ...               Outcome("b.toml", "passed", "out/b", attempts=2, retry_reason="killed")])
    '2 of 2 scenarios ran; retried once: b.toml (killed; then passed)'
    """
    bad = [o for o in outcomes if not o.ran]
    text = f"{len(outcomes) - len(bad)} of {len(outcomes)} scenarios ran"
    if bad:
        text += f"; failed to run: {', '.join(Path(o.scenario).name for o in bad)}"
    retried = [o for o in outcomes if o.retried]
    if retried:
        text += "; retried once: " + ", ".join(
            f"{Path(o.scenario).name} ({o.retry_reason}; then {o.status})" for o in retried
        )
    return text


class BatchInterrupted(KeyboardInterrupt):
    """Ctrl-C (SIGINT) stopped a batch; says which scenarios finished and which did not.

    Parameters
    ----------
    finished
        Outcomes of the jobs that ended before the interrupt, in the order of the scenarios.
    stopped
        Scenarios whose job was running and was stopped (nothing written for them).
    not_started
        Scenarios whose job had not started.
    """

    def __init__(
        self, finished: Sequence[Outcome], stopped: Sequence[str], not_started: Sequence[str]
    ) -> None:
        super().__init__("interrupted")
        self.finished = list(finished)
        self.stopped = list(stopped)
        self.not_started = list(not_started)

    def describe(self) -> str:
        """Return a message naming what finished, what was stopped and what never started."""
        total = len(self.finished) + len(self.stopped) + len(self.not_started)
        lines = [f"Interrupted (Ctrl-C): {len(self.finished)} of {total} scenario(s) finished "
                 "before the interrupt" + (":" if self.finished else ".")]
        lines += [f"  finished: {o.line()}" for o in self.finished]
        lines += [f"  stopped: {Path(s).name}" for s in self.stopped]
        lines += [f"  not started: {Path(s).name}" for s in self.not_started]
        lines.append("Run the stopped and unstarted scenarios again to get their outputs.")
        return "\n".join(lines)


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
        Status ``"passed"`` or ``"failed"`` with the summary when the run finished;
        ``"bad_input"`` with the message for bad input; ``"crashed"`` with the traceback for
        anything unexpected. Nothing is written unless the run finished (outputs are written
        all or nothing). Ctrl-C (``KeyboardInterrupt``) is not caught.
    """
    steps = Steps(verbosity=verbosity)
    try:
        scenario = load_job_scenario(
            scenario_path, assignments=assignments, language=language, modes=modes
        )
        result, folder = run_and_write(scenario, out_dir, steps=steps, new_sites=new_sites)
    except CoverageError as exc:
        return Outcome(str(scenario_path), BAD_INPUT, error=str(exc))
    except OSError as exc:
        return Outcome(str(scenario_path), BAD_INPUT, error=f"{type(exc).__name__}: {exc}")
    except Exception:  # noqa: BLE001 - one broken region must not stop the others
        return Outcome(str(scenario_path), CRASHED, error=traceback.format_exc())
    return Outcome(
        str(scenario_path),
        result.verdict,  # PASSED, FAILED or NOTHING_CHECKED
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
        Local worker processes (1 runs in this process, in order). With more, every job runs
        in a process of its own, at most ``jobs`` at once: a process that dies without a
        result (killed, out of memory) loses only its own scenario, which is run once more in
        a fresh process (``Outcome.attempts == 2``, ``Outcome.retry_reason`` says why); when
        that one dies too the scenario is reported with status ``"lost"``.
    scheduler
        A dask.distributed scheduler address (``tcp://host:8786``) or a ``Client``. When given,
        the jobs run on that cluster. A job whose worker dies is run again on another worker
        by the scheduler (up to its ``distributed.scheduler.allowed-failures``, 3 by
        default); a job that still cannot finish is reported with status ``"lost"``.
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

    Raises
    ------
    BatchInterrupted
        On Ctrl-C (``KeyboardInterrupt``): the running jobs are stopped (local processes
        terminated, Dask futures cancelled) and the exception names what finished.
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
        outcomes: list[Outcome] = []
        try:
            for i, a in enumerate(args, start=1):
                if steps.verbosity:
                    print(f"== Scenario {i}/{len(args)}: {a[0]}", file=steps.stream, flush=True)
                outcomes.append(job(*a[:-1], steps.verbosity))
        except KeyboardInterrupt:
            n = len(outcomes)
            raise BatchInterrupted(outcomes, [args[n][0]], [a[0] for a in args[n + 1:]]) \
                from None
        return outcomes
    return _LocalPool(job, args, jobs).run(steps)


def _child(conn: Connection, job: Callable[..., Outcome], args: tuple) -> None:
    """Body of a job's process: run it and send its Outcome back (Ctrl-C is the parent's)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if hasattr(signal, "pthread_sigmask"):  # forked while the parent held Ctrl-C back
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})
    try:
        outcome = job(*args)
    except Exception:  # noqa: BLE001 - a job function that raised: report, do not retry
        outcome = Outcome(str(args[0]), CRASHED, error=traceback.format_exc())
    conn.send(outcome)
    conn.close()


@contextmanager
def _ctrl_c_held() -> Iterator[None]:
    """Hold Ctrl-C (SIGINT) back while the pool's books change; it arrives right after.

    So an interrupt never falls between starting a process and recording it, or between
    receiving a job's outcome and keeping it.
    """
    if threading.current_thread() is not threading.main_thread() or not hasattr(
        signal, "pthread_sigmask"
    ):
        yield
        return
    old = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old)


def _death(process: BaseProcess) -> str:
    code = process.exitcode
    if code is not None and code < 0:
        try:
            return f"its process was killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"its process was killed by signal {-code}"
    return f"its process exited with code {code} without a result"


class _LocalPool:
    """Every job in a process of its own, ``jobs`` at once; a dead process is retried once."""

    def __init__(self, job: Callable[..., Outcome], args: list[tuple], jobs: int) -> None:
        self.job = job
        self.args = args
        self.jobs = max(1, min(jobs, len(args)))
        self.context = multiprocessing.get_context()
        self.outcomes: list[Outcome | None] = [None] * len(args)
        self.attempts = [0] * len(args)
        self.reasons = [""] * len(args)
        self.queue: deque[int] = deque(range(len(args)))
        self.running: dict[int, tuple[BaseProcess, Connection]] = {}

    def run(self, steps: Steps) -> list[Outcome]:
        try:
            for _ in steps.bar(self._completions(), "Scenarios", total=len(self.args)):
                pass
        except KeyboardInterrupt:
            self._collect_sent()
            stopped = sorted(self.running)
            self._stop_all()  # terminate the running jobs' processes (SIGTERM, then SIGKILL)
            raise BatchInterrupted(
                [o for o in self.outcomes if o is not None],
                [self.args[i][0] for i in stopped],
                [self.args[i][0] for i in sorted(self.queue)],
            ) from None
        finally:
            self._stop_all()
        return [o for o in self.outcomes if o is not None]

    def _start(self, i: int) -> None:
        reader, writer = self.context.Pipe(duplex=False)
        process = self.context.Process(
            target=_child, args=(writer, self.job, self.args[i]),
            name=f"covplan-audit-{Path(self.args[i][0]).stem}", daemon=True,
        )
        process.start()
        writer.close()  # the child holds the other end: its death ends the pipe
        self.attempts[i] += 1
        self.running[i] = (process, reader)

    def _completions(self) -> Iterator[int]:
        while self.queue or self.running:
            with _ctrl_c_held():
                while self.queue and len(self.running) < self.jobs:
                    self._start(self.queue.popleft())
            waitables: list[Any] = []
            for process, reader in self.running.values():
                waitables += [reader, process.sentinel]
            wait(waitables)
            with _ctrl_c_held():
                ended = self._collect()
            yield from ended

    def _collect(self) -> list[int]:
        """Take the outcomes of the jobs that ended; queue a dead one again (once)."""
        ended: list[int] = []
        for i, (process, reader) in list(self.running.items()):
            outcome = None
            if reader.poll():
                try:
                    outcome = reader.recv()
                except (EOFError, OSError):
                    outcome = None
                else:
                    process.join()
            elif process.is_alive():
                continue
            else:
                process.join()
                if reader.poll():  # sent just before it ended
                    try:
                        outcome = reader.recv()
                    except (EOFError, OSError):
                        outcome = None
            process.join(timeout=5)
            reader.close()
            del self.running[i]
            if outcome is None:
                outcome = self._lost(i, _death(process))
                if outcome is None:
                    continue
            elif self.attempts[i] > 1:
                outcome = _with_retry(outcome, self.attempts[i], self.reasons[i])
            self.outcomes[i] = outcome
            ended.append(i)
        return ended

    def _lost(self, i: int, reason: str) -> Outcome | None:
        """Queue a dead job again (first time) or give its final Outcome."""
        if self.attempts[i] < 2:
            self.reasons[i] = reason
            self.queue.appendleft(i)
            return None
        return Outcome(
            self.args[i][0], LOST,
            error=f"job lost: {reason}, also when run again in a fresh process "
                  f"(first time: {self.reasons[i]})",
            attempts=self.attempts[i], retry_reason=self.reasons[i],
        )

    def _collect_sent(self) -> None:
        """Keep the outcomes that running jobs already sent (on Ctrl-C)."""
        for i, (process, reader) in list(self.running.items()):
            try:
                if not reader.poll():
                    continue
                outcome = reader.recv()
            except (EOFError, OSError):
                continue
            if self.attempts[i] > 1:
                outcome = _with_retry(outcome, self.attempts[i], self.reasons[i])
            self.outcomes[i] = outcome
            process.join(timeout=5)
            reader.close()
            del self.running[i]

    def _stop_all(self) -> None:
        for process, _reader in self.running.values():
            if process.is_alive():
                process.terminate()
        for process, reader in self.running.values():
            process.join(timeout=5)
            if process.is_alive():
                process.kill()
                process.join(timeout=5)
            reader.close()
        self.running.clear()


def _with_retry(outcome: Outcome, attempts: int, reason: str) -> Outcome:
    return replace(outcome, attempts=attempts, retry_reason=reason)


def _crashed(scenario: str, exc: BaseException) -> Outcome:
    return Outcome(scenario, LOST, error=f"job lost: {type(exc).__name__}: {exc}")


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
        try:
            for fut in steps.bar(dask_completed(futures), "Scenarios", total=len(futures)):
                i = futures[fut]
                try:
                    outcomes[i] = fut.result()
                except Exception as exc:  # noqa: BLE001 - e.g. KilledWorker after retries
                    outcomes[i] = _crashed(args[i][0], exc)
        except KeyboardInterrupt:
            pending = {f: i for f, i in futures.items() if outcomes[i] is None}
            try:  # the jobs the scheduler has given to a worker
                busy = {k for keys in client.processing().values() for k in keys}
            except Exception:  # noqa: BLE001 - the scheduler may be gone: call none started
                busy = set()
            client.cancel(list(pending))
            raise BatchInterrupted(
                [o for o in outcomes if o is not None],
                [args[i][0] for f, i in pending.items() if f.key in busy],
                [args[i][0] for f, i in pending.items() if f.key not in busy],
            ) from None
        return [o for o in outcomes if o is not None]
    finally:
        if own:
            client.close()
