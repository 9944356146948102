"""Audits over several regions: sequential, local processes and a Dask cluster, with faults.

The two shipped regions (Andorra, Liechtenstein) and one broken scenario are audited in one
sequential ``covplan audit FOLDER`` run; the two regions then run again through a Dask
``LocalCluster`` (2 worker processes) while the worker that holds the first job is killed
mid-job. The cluster run must retry that job and give the same tables as the sequential run.
"""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import openpyxl
import pandas as pd
import pytest
from click.testing import CliRunner, Result
from covplan.batch import Outcome, audit_job, expand_scenarios, run_many
from covplan.cli import main
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
    assert outcomes[0].exit_code == 2 and "not valid TOML" in outcomes[0].error
    assert outcomes[1].exit_code == 3 and "job lost" in outcomes[1].error
    assert not (tmp_path / "out").exists()


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
    """``covplan audit A B --scheduler ADDRESS`` while the first busy worker is killed."""
    local, client = cluster
    out = tmp_path_factory.mktemp("dask")
    pids = client.run(os.getpid)
    killed: dict[str, object] = {}
    stop = threading.Event()

    def kill_first_busy_worker() -> None:
        while not stop.is_set():
            for address, keys in client.processing().items():
                if keys and address in pids:
                    time.sleep(1.0)  # mid-job: inputs loaded, networks being built
                    killed.update(address=address, pid=pids[address], keys=list(keys))
                    os.kill(pids[address], signal.SIGKILL)
                    return
            time.sleep(0.05)

    killer = threading.Thread(target=kill_first_busy_worker, daemon=True)
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
