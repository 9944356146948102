"""Audits over several regions: sequential, local processes and a Dask cluster, with faults.

The two shipped regions (Andorra, Liechtenstein) and one broken scenario are audited in one
sequential ``covplan audit FOLDER`` run; the two regions then run again through a Dask
``LocalCluster`` (2 worker processes) while the worker that holds the first job is killed
mid-job. The cluster run must retry that job and give the same tables as the sequential run.

Local process pools: a job's process killed (SIGKILL on the pid its job records in a marker
file) loses only that scenario, which runs again once in a fresh process and is reported so.
Ctrl-C (SIGINT to a ``covplan audit`` subprocess) exits 130 naming what finished.
"""

from __future__ import annotations

import functools
import json
import os
import signal
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import covplan.batch
import openpyxl
import pandas as pd
import pytest
from click.testing import CliRunner, Result
from covplan.batch import Outcome, audit_job, expand_scenarios, run_many, summary_line
from covplan.cli import main
from covplan.cli.exit_codes import exit_code_for, exit_code_for_status
from covplan.errors import InputError
from shipped import ANDORRA_SCENARIO, LIECHTENSTEIN_FACILITIES

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "data"
REGIONS = ("andorra", "liechtenstein")
TIME_LIMIT_S = 240  # a hung cluster run fails the test instead of blocking the suite


def _copy_scenario(name: str, folder: Path, *, rename: str | None = None, **swap: str) -> Path:
    """Copy a shipped scenario into ``folder`` with absolute paths (and some text swapped)."""
    text = (DATA / "scenarios" / f"{name}.toml").read_text(encoding="utf-8")
    text = text.replace('"../', f'"{DATA.as_posix()}/')
    for old, new in swap.items():
        text = text.replace(old, new)
    path = folder / f"{rename or name}.toml"
    path.write_text(text, encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def scenarios(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder with both regions and one scenario whose facilities file is truncated."""
    folder = tmp_path_factory.mktemp("scenarios")
    for name in REGIONS:
        _copy_scenario(name, folder)
    bad = folder / "broken_facilities.geojson"
    bad.write_bytes(LIECHTENSTEIN_FACILITIES.read_bytes()[:400])
    _copy_scenario("liechtenstein", folder, rename="broken",
                   **{f"{DATA.as_posix()}/facilities/liechtenstein.geojson": bad.as_posix()})
    return folder


@pytest.fixture(scope="module")
def sequential(scenarios: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Result, Path]:
    out = tmp_path_factory.mktemp("sequential")
    result = CliRunner().invoke(main, ["audit", str(scenarios), "--out", str(out)])
    return result, out


def _tables(folder: Path) -> dict[str, pd.DataFrame]:
    book = openpyxl.load_workbook(folder / "units.xlsx", read_only=True)
    rows = list(book["summary"].values)
    # a write-only workbook leaves trailing empty cells out of a row
    rows = [tuple(row) + (None,) * (len(rows[0]) - len(row)) for row in rows]
    return {
        "units": pd.read_csv(folder / "units.csv"),
        "places": pd.read_csv(folder / "places.csv"),
        "summary": pd.DataFrame(rows[1:], columns=rows[0]),
    }


def test_folder_with_a_broken_scenario_finishes_the_others(sequential, scenarios):
    result, out = sequential
    assert "Traceback" not in result.output
    assert result.exit_code == 2, result.output  # the worst: bad input
    assert sorted(p.name for p in out.iterdir()) == sorted(REGIONS)  # nothing for "broken"
    for name in REGIONS:
        assert (out / name / "manifest.json").is_file()
        assert f"{name}: some standards not met -> {out / name}" in result.stdout
    assert f"Error in {scenarios / 'broken.toml'}" in result.stderr
    assert "broken_facilities.geojson" in result.stderr
    assert "2 of 3 scenarios ran; failed to run: broken.toml" in result.stdout
    # run in order in this process, each scenario's steps shown as it runs
    err = result.stderr
    heads = [err.index(f"== Scenario {i}/3: {scenarios / n}.toml") for i, n in
             enumerate(("andorra", "broken", "liechtenstein"), start=1)]
    assert heads == sorted(heads)
    assert err.count("Writing outputs: done in") == 2
    assert err[heads[0]:heads[1]].count("Building the drive road network: done in") == 1


def test_sequential_outputs_match_the_region_data(sequential):
    _, out = sequential
    expected = {"andorra": (7, 85015), "liechtenstein": (11, None)}
    for name, (n_units, population) in expected.items():
        units = json.loads(
            (DATA / "boundaries" / {"andorra": "andorra_parishes.geojson",
                                    "liechtenstein": "liechtenstein_municipalities.geojson"}[
                name]).read_text(encoding="utf-8"))["features"]
        places = json.loads((DATA / "population" / f"{name}_places.geojson").read_text(
            encoding="utf-8"))["features"]
        tables = _tables(out / name)
        assert len(units) == n_units
        assert set(tables["units"]["unit_id"]) == {f["properties"]["unit_id"] for f in units}
        total = sum(f["properties"]["population"] for f in places)
        assert tables["places"]["population"].sum() == pytest.approx(total, abs=0.5)
        if population is not None:
            assert round(total) == population


# ------------------------------------------------------------------- local process pool
def _dies(scenario_path: str, *args: object) -> Outcome:
    """A job whose process dies (as if killed) for the scenario named "dies".

    It dies only once the other jobs have finished (each leaves a marker file), so that the
    broken pool cannot take their results with it.
    """
    path = Path(scenario_path)
    if path.stem != "dies":
        outcome = audit_job(scenario_path, *args)
        (path.parent / f"{path.stem}.done").touch()
        return outcome
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not (path.parent / "bad.done").exists():
        time.sleep(0.05)
    os._exit(9)


def test_process_pool_reports_broken_and_lost_jobs(tmp_path):
    (tmp_path / "bad.toml").write_text("[scenario]\nname = 'x'\n[broken\n", encoding="utf-8")
    (tmp_path / "dies.toml").write_text("[scenario]\nname = 'y'\n", encoding="utf-8")
    paths = expand_scenarios([tmp_path])
    assert [p.name for p in paths] == ["bad.toml", "dies.toml"]
    outcomes = run_many(paths, out_root=tmp_path / "out", jobs=2, job=_dies)
    assert [Path(o.scenario).name for o in outcomes] == ["bad.toml", "dies.toml"]
    assert outcomes[0].status == "bad_input" and "not valid TOML" in outcomes[0].error
    assert exit_code_for_status(outcomes[0].status) == 2
    assert outcomes[1].status == "lost" and "job lost" in outcomes[1].error
    assert exit_code_for_status(outcomes[1].status) == 3
    assert exit_code_for(outcomes) == 3
    # the process of "dies" ended with code 9 twice: the job ran again once in a fresh process
    assert outcomes[0].attempts == 1 and outcomes[1].attempts == 2
    assert outcomes[1].retry_reason == "its process exited with code 9 without a result"
    assert "also when run again in a fresh process" in outcomes[1].error
    assert not (tmp_path / "out").exists()


#: The scenario whose first process the kill test kills.
KILLED = "b"


def _small_scenario(folder: Path, name: str) -> Path:
    """Andorra with one population-ratio standard (a run of a few seconds).

    DDK-06 counted on hospitals: Andorra has no 社区卫生服务站, so on its own types the rule
    cannot be checked (and the batch would say nothing was checked).
    """
    path = _copy_scenario("andorra", folder, rename=name)
    text = path.read_text(encoding="utf-8")
    text = (text[:text.index("[[standards]]")] + '[[standards]]\npreset = "dadukou"\n'
            'only = ["DDK-06"]\n'
            'override = { "DDK-06" = { level = "parish", unit_kinds = [], '
            'facility_types = ["hospitals"] } }\n\n'
            + text[text.index("[outputs]"):])
    path.write_text(text, encoding="utf-8")
    return path


def _write_marker(path: Path) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(str(os.getpid()), encoding="utf-8")
    tmp.replace(path)  # the test never reads a half-written pid


def _marked(scenario_path: str, *args: object) -> Outcome:
    """audit_job that records its process id in ``markers/<stem>[.retry].pid`` when it starts.

    The first process of scenario ``KILLED`` then waits to be killed by the test (up to 120 s;
    if it is not killed it reports an error, so the test fails rather than passing by luck).
    """
    path = Path(scenario_path)
    markers = path.parent / "markers"
    first = markers / f"{path.stem}.pid"
    if first.exists():
        _write_marker(markers / f"{path.stem}.retry.pid")
        return audit_job(scenario_path, *args)
    _write_marker(first)
    if path.stem == KILLED:
        time.sleep(120)
        return Outcome(scenario_path, "crashed", error="the test did not kill this job")
    return audit_job(scenario_path, *args)


def _wait_for(path: Path, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert time.monotonic() < deadline, f"{path} never appeared"
        time.sleep(0.02)


def test_killed_local_worker_loses_only_its_scenario_which_is_retried(tmp_path, monkeypatch):
    folder = tmp_path / "scenarios"
    (folder / "markers").mkdir(parents=True)
    names = ("a", "b", "c", "d")
    for name in names:
        _small_scenario(folder, name)
    out = tmp_path / "out"
    killed: dict[str, int] = {}

    def kill_b() -> None:
        marker = folder / "markers" / f"{KILLED}.pid"
        _wait_for(marker)
        killed["pid"] = int(marker.read_text(encoding="utf-8"))
        os.kill(killed["pid"], signal.SIGKILL)

    killer = threading.Thread(target=kill_b, daemon=True)
    killer.start()
    # the command line, its jobs run through the marker-writing job
    monkeypatch.setattr(covplan.batch, "run_many", functools.partial(run_many, job=_marked))
    result = CliRunner().invoke(main, ["audit", str(folder), "--out", str(out), "--jobs", "2"])
    killer.join(timeout=5)
    assert killed, "the kill never happened"
    assert result.exit_code == 1, result.output  # every scenario ran; DDK-06 is not met
    assert "Traceback" not in result.output
    # the others ran once, the killed one twice: in a fresh process the second time
    markers = folder / "markers"
    assert sorted(p.name for p in markers.glob("*.pid")) == sorted(
        [f"{n}.pid" for n in names] + [f"{KILLED}.retry.pid"])
    retry_pid = int((markers / f"{KILLED}.retry.pid").read_text(encoding="utf-8"))
    assert retry_pid != killed["pid"] and retry_pid != os.getpid()
    with pytest.raises(ProcessLookupError):
        os.kill(killed["pid"], 0)
    # every scenario completed, the retried one with the same tables as its identical siblings
    assert sorted(p.name for p in out.iterdir()) == list(names)
    want = _tables(out / "a")
    for name in names:
        assert (out / name / "manifest.json").is_file()
        got = _tables(out / name)
        for table in ("units", "places", "summary"):
            pd.testing.assert_frame_equal(got[table], want[table], obj=f"{name} {table}")
    # the report says which scenario was retried, why, and how it ended
    reason = "its process was killed by SIGKILL"
    assert f"{KILLED}: some standards not met -> {out / KILLED} (retried once: {reason})" in (
        result.stdout)
    for name in set(names) - {KILLED}:
        assert f"{name}: some standards not met -> {out / name}\n" in result.stdout
    assert (f"Note: {KILLED}.toml was run again in a fresh process ({reason}); final status: "
            "failed") in result.stderr
    assert (f"4 of 4 scenarios ran; retried once: {KILLED}.toml ({reason}; then failed)"
            in result.stdout)


def test_summary_line_and_exit_code_of_a_lost_job():
    outcomes = [Outcome("x/a.toml", "passed", "o/a"),
                Outcome("x/b.toml", "lost", error="job lost: killed", attempts=2,
                        retry_reason="its process was killed by SIGKILL")]
    assert summary_line(outcomes) == (
        "1 of 2 scenarios ran; failed to run: b.toml; retried once: b.toml (its process was "
        "killed by SIGKILL; then lost)")
    assert exit_code_for(outcomes) == 3 and exit_code_for(outcomes[:1]) == 0
    assert outcomes[1].line() == (
        "b: FAILED TO RUN (job lost) (retried once: its process was killed by SIGKILL) - "
        "job lost: killed")


# ------------------------------------------------------------------------------ Ctrl-C
def _start_covplan(*args: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-c", "from covplan.cli import main; main()", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True, encoding="utf-8", cwd=ROOT,
    )


class _Lines:
    """Lines of a stream, read by a thread; :meth:`wait_for` waits for one holding a text."""

    def __init__(self, stream) -> None:
        self.lines: list[str] = []
        self.changed = threading.Condition()
        self.thread = threading.Thread(target=self._read, args=(stream,), daemon=True)
        self.thread.start()

    def _read(self, stream) -> None:
        for line in stream:
            with self.changed:
                self.lines.append(line)
                self.changed.notify_all()

    def wait_for(self, text: str, *, after: int = 0, timeout: float = 120.0) -> int:
        """Wait for a line (from line ``after`` on) holding ``text``; return its index."""

        def index() -> int | None:
            return next((i for i, line in enumerate(self.lines) if i >= after and text in line),
                        None)

        with self.changed:
            self.changed.wait_for(
                lambda: index() is not None or not self.thread.is_alive(), timeout=timeout)
            found = index()
            assert found is not None, f"{text!r} never appeared: {''.join(self.lines)}"
            return found

    def text(self) -> str:
        self.thread.join(timeout=TIME_LIMIT_S)
        return "".join(self.lines)


def test_ctrl_c_during_a_batch_exits_130_naming_what_finished(tmp_path):
    folder = tmp_path / "scenarios"
    folder.mkdir()
    for name in ("first", "second", "third"):
        _small_scenario(folder, name)
    out = tmp_path / "out"
    proc = _start_covplan("audit", str(folder), "--out", str(out))
    err = _Lines(proc.stderr)
    try:
        # the first scenario finished once the second one's heading is shown; interrupt the
        # second while it writes its outputs
        head = err.wait_for(f"== Scenario 2/3: {folder / 'second.toml'}")
        assert (out / "first" / "manifest.json").is_file()
        err.wait_for("Writing outputs ...", after=head)
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=TIME_LIMIT_S)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    stdout, stderr = proc.stdout.read(), err.text()
    assert proc.returncode == 130, stderr
    assert "Traceback" not in stderr and "Aborted" not in stderr
    message = stderr[stderr.index("Interrupted (Ctrl-C)"):]
    assert message.splitlines()[:4] == [
        "Interrupted (Ctrl-C): 1 of 3 scenario(s) finished before the interrupt:",
        f"  finished: first: some standards not met -> {out / 'first'}",
        "  stopped: second.toml",
        "  not started: third.toml",
    ]
    assert "done" not in message
    # the second scenario never says it finished writing; no summary, nothing written for it
    after = stderr[stderr.index("== Scenario 2/3"):stderr.index("Interrupted (Ctrl-C)")]
    assert "Writing outputs: done" not in after
    assert "scenarios ran" not in stdout and "Outputs written" not in stdout + stderr
    assert sorted(p.name for p in out.iterdir()) == ["first"]


def test_ctrl_c_during_a_single_audit_exits_130(tmp_path):
    scenario = _small_scenario(tmp_path, "only")
    out = tmp_path / "out"
    proc = _start_covplan("audit", str(scenario), "--out", str(out))
    err = _Lines(proc.stderr)
    try:
        err.wait_for("Writing outputs ...")
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=TIME_LIMIT_S)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    stdout, stderr = proc.stdout.read(), err.text()
    assert proc.returncode == 130, stderr
    message = stderr[stderr.index("Interrupted (Ctrl-C)"):]
    assert message.splitlines()[:2] == [
        "Interrupted (Ctrl-C): 0 of 1 scenario(s) finished before the interrupt.",
        "  stopped: only.toml",
    ]
    assert "done" not in message and "Writing outputs: done" not in stderr
    assert "Outputs written" not in stdout and "Traceback" not in stderr
    assert not out.exists() or not any(out.iterdir())


def test_ctrl_c_during_a_parallel_batch_stops_its_processes(tmp_path):
    folder = tmp_path / "scenarios"
    folder.mkdir()
    names = ("a", "b", "c")
    for name in names:
        _small_scenario(folder, name)
    out = tmp_path / "out"
    proc = _start_covplan("audit", str(folder), "--out", str(out), "--jobs", "2")
    err = _Lines(proc.stderr)
    try:
        err.wait_for("| 1/3 [")  # the bar over the scenarios: one scenario has reported
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=TIME_LIMIT_S)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    stdout, stderr = proc.stdout.read(), err.text()
    assert proc.returncode == 130, stderr
    assert "Traceback" not in stderr
    message = stderr[stderr.index("Interrupted (Ctrl-C)"):]
    assert "done" not in message
    finished = sorted(p.name for p in out.iterdir() if (p / "manifest.json").is_file())
    lines = message.splitlines()
    reported = [name for name in names
                if f"  finished: {name}: some standards not met -> {out / name}" in lines]
    assert lines[0] == (f"Interrupted (Ctrl-C): {len(reported)} of 3 scenario(s) finished "
                        "before the interrupt:")
    # every scenario is accounted for once: the ones reported finished have their outputs; a
    # job stopped just after writing its outputs (before it reported) may have them too
    assert reported and set(reported) <= set(finished)
    for name in set(names) - set(reported):
        assert (f"  stopped: {name}.toml" in lines) != (f"  not started: {name}.toml" in lines)
        if f"  not started: {name}.toml" in lines:
            assert not (out / name).exists()
    assert stdout == ""


def test_expand_scenarios_problems(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    (tmp_path / "empty").mkdir()
    for sub in ("a", "b"):
        (tmp_path / sub / "same.toml").write_text("", encoding="utf-8")
    with pytest.raises(InputError) as info:
        expand_scenarios([tmp_path / "a", tmp_path / "b", tmp_path / "empty",
                          tmp_path / "missing.toml"])
    text = str(info.value)
    assert "3 problem(s)" in text
    assert "same name" in text and "no .toml scenario files" in text
    assert "scenario file not found" in text
    # the same file twice is run once
    assert expand_scenarios([tmp_path / "a", tmp_path / "a" / "same.toml"]) == [
        (tmp_path / "a" / "same.toml").resolve()]


# ------------------------------------------------------------------------- dask cluster
@pytest.fixture(scope="module")
def cluster():
    from distributed import Client, LocalCluster

    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                      dashboard_address=None) as local, Client(local) as client:
        yield local, client


@pytest.fixture(scope="module")
def dask_run(cluster, scenarios: Path, tmp_path_factory: pytest.TempPathFactory):
    """``covplan audit A B --scheduler ADDRESS``; the first worker to start a job is killed.

    A worker plugin writes a marker file when a job starts executing (naming the job and the
    worker's process id); the test waits for that file, then kills that process.
    """
    from distributed import WorkerPlugin

    local, client = cluster
    out = tmp_path_factory.mktemp("dask")
    markers = tmp_path_factory.mktemp("dask-markers")
    killed: dict[str, object] = {}
    stop = threading.Event()

    class MarkStart(WorkerPlugin):
        """In each worker: a job starting writes ``<key>.<pid>.started`` (defined here, so
        that it is sent to the workers by value)."""

        name = "mark-job-start"

        def __init__(self, folder: str) -> None:
            self.folder = folder

        def transition(self, key, start, finish, **kwargs) -> None:
            if finish == "executing" and str(key).startswith("audit-"):
                marker = Path(self.folder) / f"{key}.{os.getpid()}.started"
                tmp = marker.with_suffix(".tmp")
                tmp.write_text(str(os.getpid()), encoding="utf-8")
                tmp.replace(marker)

    client.register_plugin(MarkStart(str(markers)))

    def kill_first_started_worker() -> None:
        while not stop.is_set():
            started = sorted(markers.glob("*.started"), key=lambda m: m.stat().st_mtime_ns)
            if started:  # the job has started on that worker: kill it mid-job
                key, pid = started[0].name.rsplit(".", 2)[:2]
                killed.update(pid=int(pid), keys=[key])
                os.kill(int(pid), signal.SIGKILL)
                return
            time.sleep(0.02)

    killer = threading.Thread(target=kill_first_started_worker, daemon=True)
    killer.start()
    args = ["-q", "audit", *(str(scenarios / f"{n}.toml") for n in REGIONS),
            "--out", str(out), "--scheduler", local.scheduler_address]
    pool = ThreadPoolExecutor(1)
    try:
        result = pool.submit(CliRunner().invoke, main, args).result(timeout=TIME_LIMIT_S)
    finally:
        stop.set()
        pool.shutdown(wait=False)  # on a timeout, fail now rather than wait for the run
    killer.join(timeout=5)
    story = {}
    for key in killed.get("keys", []):
        story[key] = client.run_on_scheduler(
            lambda dask_scheduler, key=key: [
                tuple(str(x) for x in entry[:3]) for entry in dask_scheduler.story(key)
            ]
        )
    return result, out, killed, story


def test_dask_cluster_gives_the_same_results_as_sequential(dask_run, sequential):
    result, out, _, _ = dask_run
    assert result.exit_code == 1, result.output  # both regions ran; some standards not met
    assert result.stdout == "" and "Traceback" not in result.output
    _, seq = sequential
    for name in REGIONS:
        got, want = _tables(out / name), _tables(seq / name)
        for table in ("units", "places", "summary"):
            pd.testing.assert_frame_equal(got[table], want[table], check_exact=False,
                                          rtol=1e-9, obj=f"{name} {table}")
        manifest = json.loads((out / name / "manifest.json").read_text(encoding="utf-8"))
        assert manifest["run"]["all_pass"] is False
        assert manifest["inputs"] == json.loads(
            (seq / name / "manifest.json").read_text(encoding="utf-8"))["inputs"]


def test_dask_worker_killed_mid_job_has_its_job_retried(dask_run, cluster):
    result, out, killed, story = dask_run
    assert killed, "no worker was busy: the kill never happened"
    assert killed["keys"] and all(key.startswith("audit-") for key in killed["keys"])
    # the killed process is gone (whether and when its nanny restarts it is dask's business)
    with pytest.raises(ProcessLookupError):
        os.kill(killed["pid"], 0)
    _, client = cluster
    assert killed["pid"] not in client.run(os.getpid).values()
    for key in killed["keys"]:
        # the scheduler ran the job twice: on the killed worker, then again after the loss
        to_processing = [e for e in story[key] if e[0] == key and e[2] == "processing"]
        assert len(to_processing) >= 2, story[key]
        region = REGIONS[int(key.split("-")[1])]
        assert (out / region / "manifest.json").is_file()


def test_unreachable_scheduler_exit_2(tmp_path):
    import dask

    with dask.config.set({"distributed.comm.timeouts.connect": "2s"}):
        result = CliRunner().invoke(main, [
            "-q", "audit", str(ANDORRA_SCENARIO), "--out", str(tmp_path / "o"),
            "--scheduler", "tcp://127.0.0.1:9"])
    assert result.exit_code == 2, result.output
    assert "cannot reach the Dask scheduler at tcp://127.0.0.1:9" in result.stderr
    assert "Traceback" not in result.output and not (tmp_path / "o").exists()
