"""Atomic write helpers (covplan.outputs.atomic), the whole-folder switch and the manifest builder.

The switch is checked in-process (both protocols, the states a kill can leave, locked files)
and end to end: ``covplan audit`` on a one-parish Andorra scenario is killed with SIGKILL at 20
seeded random moments and the output folder is checked after each kill.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import multiprocessing
import os
import shutil
import subprocess
import sys
from pathlib import Path

import geopandas as gpd
import pandas as pd
import pyogrio
import pytest
import shapely
from checks import snapshot
from covplan.errors import CoverageError, InputError
from covplan.outputs import atomic
from covplan.outputs.atomic import (
    atomic_path,
    atomic_write_bytes,
    atomic_write_text,
    check_output_dir,
    recover_output_dir,
    staged_directory,
)
from covplan.outputs.manifest import (
    build_manifest,
    file_sha256,
    manifest_digest,
    read_osm_extract_date,
    script_safe_json,
)
from shipped import (
    ANDORRA_FACILITIES,
    ANDORRA_PBF,
    ANDORRA_POPULATION,
    write_small_scenario,
)

ROOT = Path(__file__).resolve().parents[1]


def test_atomic_path_replaces_on_success(tmp_path: Path) -> None:
    target = tmp_path / "units.csv"
    target.write_text("old\n")
    with atomic_path(target) as tmp:
        assert tmp.parent.parent == tmp_path and tmp.name == "units.csv" and not tmp.exists()
        tmp.write_text("new\n")
        assert target.read_text() == "old\n"  # not visible before the block ends
    assert target.read_text() == "new\n"
    assert [p.name for p in tmp_path.iterdir()] == ["units.csv"]


def test_atomic_path_keeps_old_file_when_writer_fails(tmp_path: Path) -> None:
    target = tmp_path / "units.csv"
    target.write_text("old\n")
    with pytest.raises(ValueError, match="half"), atomic_path(target) as tmp:
        tmp.write_text("half a fi")
        raise ValueError("half written")
    assert target.read_text() == "old\n"
    assert [p.name for p in tmp_path.iterdir()] == ["units.csv"]


def test_atomic_path_requires_a_file_and_a_folder(tmp_path: Path) -> None:
    with pytest.raises(CoverageError, match="produced no file"), atomic_path(tmp_path / "a.csv"):
        pass
    with pytest.raises(CoverageError, match="does not exist"), atomic_path(
        tmp_path / "missing" / "a.csv"
    ):
        pass


def test_atomic_path_with_gdal_writer(tmp_path: Path) -> None:
    """GDAL picks the driver from the suffix and leaves no journal files behind."""
    layer = gpd.GeoDataFrame({"name": ["Vaduz"]}, geometry=[shapely.Point(9.5209, 47.1410)],
                             crs="EPSG:4326")
    target = tmp_path / "isochrones.gpkg"
    for _ in range(2):  # the second write replaces the first
        with atomic_path(target) as tmp:
            layer.to_file(tmp, driver="GPKG")
    assert pyogrio.read_info(target)["features"] == 1
    assert [name for name, _ in pyogrio.list_layers(target)] == ["isochrones"]
    assert [p.name for p in tmp_path.iterdir()] == ["isochrones.gpkg"]


def test_atomic_write_text_and_bytes(tmp_path: Path) -> None:
    stale = tmp_path / f".a.txt.tmp-{2**22 + 1}-0f0f"  # a killed writer's leftover
    stale.mkdir()
    (stale / "a.txt").write_text("half")
    atomic_write_text(tmp_path / "a.txt", "覆盖率\n")
    assert not stale.exists()
    assert (tmp_path / "a.txt").read_bytes() == "覆盖率\n".encode()
    atomic_write_bytes(tmp_path / "b.bin", b"\x00\x01")
    assert (tmp_path / "b.bin").read_bytes() == b"\x00\x01"


def test_staged_directory_all_or_nothing(tmp_path: Path) -> None:
    out = tmp_path / "out"
    with staged_directory(out) as staging:
        assert staging.parent == tmp_path and staging.name.startswith(".out.staging-")
        (staging / "a.csv").write_text("1")
        (staging / "b.csv").write_text("2")
    assert {p.name: p.read_text() for p in out.iterdir()} == {"a.csv": "1", "b.csv": "2"}
    (out / "keep.txt").write_text("other file")
    with pytest.raises(RuntimeError), staged_directory(out) as staging:
        (staging / "a.csv").write_text("changed")
        raise RuntimeError("stop")
    assert {p.name: p.read_text() for p in out.iterdir()} == {
        "a.csv": "1", "b.csv": "2", "keep.txt": "other file"}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_staged_directory_rejects_a_file_as_folder(tmp_path: Path) -> None:
    (tmp_path / "out").write_text("not a folder")
    with pytest.raises(CoverageError, match="out"), staged_directory(tmp_path / "out"):
        pass


def test_stale_staging_of_a_dead_process_is_removed(tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    # pid 2**22 + 1 is above Linux' pid_max limit, so no live process has it.
    dead = tmp_path / f".out.staging-{2**22 + 1}-abc"
    dead.mkdir()
    (dead / "units.csv").write_text("half")
    alive = tmp_path / f".out.staging-{os.getpid()}-xyz"
    alive.mkdir()
    with staged_directory(out):
        pass
    assert not dead.exists()
    assert alive.exists()  # a concurrent run of a live process is left alone


def test_build_manifest_hashes_and_extract_date() -> None:
    manifest = build_manifest(
        inputs={"network": ANDORRA_PBF, "population": ANDORRA_POPULATION},
        parameters={"modes": ["walk"], "out": ROOT / "out"},
        timings={"network": 1.23456},
    )
    for role, path in (("network", ANDORRA_PBF), ("population", ANDORRA_POPULATION)):
        assert manifest["inputs"][role]["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
        assert manifest["inputs"][role]["bytes"] == path.stat().st_size
    # The PBF header says 2013-05-28 (replication timestamp) although the name says 05-23.
    assert manifest["osm_extract_date"] == "2013-05-28"
    assert manifest["parameters"] == {"modes": ["walk"], "out": str(ROOT / "out")}
    assert manifest["timings"] == {"network": 1.235}
    assert manifest["packages"]["pandas"] == pd.__version__
    json.dumps(manifest, allow_nan=False)  # plain JSON
    given = build_manifest(inputs={}, parameters={}, timings={}, osm_extract_date="2024-01-01")
    assert given["osm_extract_date"] == "2024-01-01"


def test_osm_extract_date_falls_back_to_file_name(tmp_path: Path) -> None:
    fake = tmp_path / "chongqing-2024-03-01.osm.pbf"
    fake.write_bytes(b"not a pbf")
    assert read_osm_extract_date(fake) == "2024-03-01"
    assert read_osm_extract_date(ANDORRA_POPULATION) is None


def test_manifest_errors_and_digest(tmp_path: Path) -> None:
    with pytest.raises(CoverageError, match="not a file"):
        build_manifest(inputs={"x": tmp_path / "missing.csv"}, parameters={}, timings={})
    expected = hashlib.sha256(ANDORRA_POPULATION.read_bytes()).hexdigest()
    assert file_sha256(ANDORRA_POPULATION) == expected
    a = {"b": 1, "a": [1, 2]}
    assert manifest_digest(a) == manifest_digest({"a": [1, 2], "b": 1})
    assert manifest_digest(a) == hashlib.sha256(b'{"a":[1,2],"b":1}').hexdigest()
    text = script_safe_json({"name": "</script><script>alert(1)</script> & 'x'"})
    assert "<" not in text and ">" not in text and "&" not in text
    assert json.loads(text)["name"] == "</script><script>alert(1)</script> & 'x'"


# --- whole-folder switch (issue 19 item 4) ------------------------------------------------------


def _tree(folder: Path) -> dict[str, str]:
    """SHA-256 of every file below ``folder`` by relative path (empty if it is missing)."""
    if not folder.exists():
        return {}
    return {p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def _write_run(out: Path, files: dict[str, str]) -> None:
    with staged_directory(out, replaces=files) as staging:
        for name, text in files.items():
            (staging / name).write_text(text)


@pytest.mark.parametrize("exchange", [True, False], ids=["renameat2", "two-renames"])
def test_switch_replaces_the_folder_as_a_whole(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                               exchange: bool) -> None:
    if not exchange:  # the protocol of platforms without an atomic exchange
        monkeypatch.setattr(atomic, "_exchange", lambda a, b: False)
    out = tmp_path / "out"
    _write_run(out, {"units.csv": "run 1", "map.html": "run 1"})
    (out / "notes.txt").write_text("the user's notes")
    (out / "sub").mkdir()
    (out / "sub" / "x.txt").write_text("nested")
    old_folder = out.stat().st_ino
    notes_inode = (out / "notes.txt").stat().st_ino
    _write_run(out, {"units.csv": "run 2", "map.html": "run 2"})
    assert _tree(out) == {
        "map.html": _sha("run 2"), "notes.txt": _sha("the user's notes"),
        "sub/x.txt": _sha("nested"), "units.csv": _sha("run 2")}
    assert out.stat().st_ino != old_folder  # a new folder, not files moved one by one
    assert (out / "notes.txt").stat().st_ino == notes_inode  # linked, not rewritten
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]  # no staging, no previous
    assert oct(out.stat().st_mode & 0o777) == oct(0o777 & ~_umask())


def _sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def test_staging_is_a_sibling_on_the_same_file_system(tmp_path: Path) -> None:
    out = tmp_path / "deep" / "out"
    with staged_directory(out) as staging:
        assert staging.parent == out.parent
        assert staging.name.startswith(".out.staging-")
        assert staging.stat().st_dev == out.parent.stat().st_dev
        assert not out.exists()  # nothing appears before the switch
        (staging / "units.csv").write_text("1")
    assert _tree(out) == {"units.csv": _sha("1")}


def test_a_linked_output_folder_replaces_the_folder_it_points_to(tmp_path: Path) -> None:
    real = tmp_path / "real"
    _write_run(real, {"units.csv": "run 1"})
    link = tmp_path / "link"
    link.symlink_to(real, target_is_directory=True)
    _write_run(link, {"units.csv": "run 2"})
    assert link.is_symlink() and link.resolve() == real
    assert _tree(real) == {"units.csv": _sha("run 2")}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["link", "real"]


def test_out_dir_at_a_mount_point_is_staged_inside_it(tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """A mount point is accepted and written in place (tests/test_outputs_mount.py)."""
    out = tmp_path / "mnt"
    out.mkdir()
    real = os.path.ismount
    monkeypatch.setattr(os.path, "ismount", lambda p: Path(p) == out or real(p))
    assert check_output_dir(out, []) == out
    with staged_directory(out) as staging:
        assert staging.parent.parent == out
        (staging / "units.csv").write_text("1")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mnt"]
    assert _tree(out) == {"units.csv": _sha("1")}


def test_kill_between_the_two_renames_is_recovered(tmp_path: Path) -> None:
    """The state a kill leaves between ``out -> .previous`` and ``staging -> out``."""
    out = tmp_path / "out"
    _write_run(out, {"units.csv": "run 1", "report.html": "run 1"})
    before = _tree(out)
    dead = 2**22 + 1  # above Linux' pid_max: no live process has it
    previous = tmp_path / f".out.previous-{dead}-0a0a"
    out.rename(previous)
    staging = tmp_path / f".out.staging-{dead}-0b0b"
    staging.mkdir()
    (staging / "units.csv").write_text("run 2")
    assert recover_output_dir(out) == previous
    assert _tree(out) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]
    # A kill after the second rename: the new run is in place, previous is left over.
    previous.mkdir()
    (previous / "units.csv").write_text("run 1")
    _write_run(out, {"units.csv": "run 3"})  # the next run cleans up first
    assert _tree(out) == {"units.csv": _sha("run 3"), "report.html": _sha("run 1")}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_failed_second_rename_restores_the_previous_run(tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "out"
    _write_run(out, {"units.csv": "run 1"})
    before = _tree(out)
    monkeypatch.setattr(atomic, "_exchange", lambda a, b: False)
    real_rename = os.rename

    def rename(src: object, dst: object) -> None:
        if Path(str(dst)) == out and ".staging-" in str(src):
            raise PermissionError(13, "Permission denied", str(dst))
        real_rename(src, dst)

    monkeypatch.setattr(os, "rename", rename)
    with pytest.raises(CoverageError, match=r"cannot replace the output folder .*out.*unchanged"):
        _write_run(out, {"units.csv": "run 2"})
    assert _tree(out) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def _lock(path: Path) -> None:
    """Make ``path`` unreplaceable for real: immutable as root, read-only otherwise."""
    if os.geteuid() == 0:
        subprocess.run(["chattr", "+i", str(path)], check=True)
    else:
        path.chmod(0o555 if path.is_dir() else 0o444)


def _unlock(path: Path) -> None:
    if os.geteuid() == 0:
        subprocess.run(["chattr", "-i", str(path)], check=True)
    path.chmod(0o755 if path.is_dir() else 0o644)


@pytest.mark.parametrize("when", ["before", "during"])
def test_locked_file_leaves_previous_outputs_intact(tmp_path: Path, when: str) -> None:
    out = tmp_path / "out"
    _write_run(out, {"units.csv": "run 1", "units.xlsx": "run 1", "map.html": "run 1"})
    before = fingerprint(out)
    locked = out / "units.xlsx"
    if when == "before":
        _lock(locked)
    try:
        with pytest.raises(CoverageError, match=r"cannot replace .*units\.xlsx.*close it"), \
                staged_directory(out, replaces=["units.csv", "units.xlsx"]) as staging:
            for name in ("units.csv", "units.xlsx", "map.html"):
                (staging / name).write_text("run 2")
            if when == "during":  # locked while the run computed: caught before the switch
                _lock(locked)
    finally:
        _unlock(locked)
    assert fingerprint(out) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_unwritable_folder_or_failed_swap_leaves_previous_outputs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "out"
    _write_run(out, {"units.csv": "run 1"})
    before = fingerprint(out)
    _lock(out)
    try:
        with pytest.raises(CoverageError, match=r"output folder .*out: it is not writable"):
            _write_run(out, {"units.csv": "run 2"})
    finally:
        _unlock(out)
    assert fingerprint(out) == before

    def refuse(a: Path, b: Path) -> bool:
        raise PermissionError(13, "Permission denied", str(b))

    monkeypatch.setattr(atomic, "_exchange", refuse)
    with pytest.raises(CoverageError, match=r"Permission denied \(.*out\)"):
        _write_run(out, {"units.csv": "run 2"})
    assert fingerprint(out) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def fingerprint(folder: Path) -> dict[str, tuple[str, int]]:
    """Content hash and modification time of every file below ``folder``."""
    return {name: (digest, (folder / name).stat().st_mtime_ns)
            for name, digest in _tree(folder).items()}


def test_check_output_dir_refuses_inputs(tmp_path: Path) -> None:
    project = tmp_path / "project"
    (project / "data").mkdir(parents=True)
    scenario = project / "scenario.toml"
    scenario.write_text("")
    places = project / "data" / "places.csv"
    places.write_text("")
    inputs = {"scenario": scenario, "population": places, "network": "https://example/x.pbf"}
    for out, how in ((project, "contains the scenario"), (project / "data", "contains the pop"),
                     (tmp_path, "contains the scenario"), (places, "is the population")):
        with pytest.raises(InputError, match=how) as info:
            check_output_dir(out, inputs)
        assert "choose an output folder that holds no input" in str(info.value)
    alias = tmp_path / "alias"
    alias.symlink_to(project / "data", target_is_directory=True)
    with pytest.raises(InputError, match="contains the input .*places.csv"):
        check_output_dir(alias, [places])
    assert check_output_dir(project / "data" / "out", inputs) == (project / "data" / "out")
    manifest_inputs = {"population": {"path": str(places), "sha256": "0"}}
    with pytest.raises(InputError, match="population"):
        check_output_dir(project / "data", manifest_inputs)
    assert not (project / "data" / "out").exists()


# --- the CLI on a small real scenario: refusal, a lock, and SIGKILL at random moments -----------


@pytest.fixture(scope="module")
def small_scenario(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Andorra la Vella alone (the smallest parish), one drive standard: a run of seconds."""
    return write_small_scenario(tmp_path_factory.mktemp("small-scenario"))


def _audit(scenario: Path, out: Path, cache: Path) -> subprocess.Popen[bytes]:
    """Start ``covplan audit`` as a command (its messages on standard error)."""
    return subprocess.Popen(
        [sys.executable, "-c", "from covplan.cli import main; main()", "-q", "audit",
         str(scenario), "--out", str(out)],
        env={**os.environ, "COVPLAN_CACHE_DIR": str(cache)},
        cwd=cache, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )


def _run_audit_here(scenario: str, out: str, cache: str) -> None:
    from covplan.cli import main

    os.chdir(cache)
    os.environ["COVPLAN_CACHE_DIR"] = cache
    main(["-q", "audit", scenario, "--out", out], prog_name="covplan")


class _Audit:
    """``covplan audit`` in a process of its own (so that it can be killed).

    The processes fork from a server that has imported the package once, so a run costs the
    audit, not the imports: 20 kills fit in a short test.
    """

    context = multiprocessing.get_context("forkserver")
    # every module a run imports, so that a forked run costs the audit only
    context.set_forkserver_preload([
        "covplan.cli", "covplan.commands", "covplan.batch", "covplan.pipeline",
        "covplan.outputs", "covplan.outputs.gpkg", "covplan.outputs.tables",
        "covplan.outputs.webmap", "covplan.outputs.staticmap", "covplan.outputs.report",
        "covplan.outputs.manifest", "covplan.standards.audit", "covplan.engine.access",
        "covplan.engine.isochrones", "openpyxl", "pyogrio",
    ])

    def __init__(self, scenario: Path, out: Path, cache: Path) -> None:
        self.process = self.context.Process(
            target=_run_audit_here, args=(str(scenario), str(out), str(cache)), daemon=True
        )
        self.process.start()
        self.pid = self.process.pid

    def wait(self, timeout: float) -> int | None:
        self.process.join(timeout)
        return self.process.exitcode


def _complete_run(out: Path) -> str:
    """Check ``out`` holds exactly one complete run; return its id (``created`` + digest)."""
    manifest = json.loads((out / "manifest.json").read_text(encoding="utf-8"))
    listed = manifest["outputs"]
    assert sorted(_tree(out)) == sorted([*listed, "manifest.json"])
    for name, entry in listed.items():
        assert file_sha256(out / name) == entry["sha256"], name
        assert (out / name).stat().st_size == entry["bytes"], name
    body = {k: v for k, v in manifest.items() if k not in ("run", "manifest_sha256", "outputs")}
    assert manifest_digest(body) == manifest["manifest_sha256"]
    return f"{manifest['created']} {manifest['manifest_sha256']}"


@pytest.mark.slow
def test_sigkill_at_random_moments_never_leaves_a_mix(small_scenario: Path,
                                                      tmp_path: Path) -> None:
    """Kill ``covplan audit`` at 20 seeded random moments of its run; check the folder each time.

    After every kill the output folder holds exactly the previous complete run (byte for
    byte) or a new complete run (every file hashed as its manifest.json says), never a
    mix; the next run cleans up and a final run succeeds with nothing left over.
    """
    import random
    import signal
    import time

    cache = tmp_path / "cache"
    cache.mkdir()
    runs = tmp_path / "runs"
    runs.mkdir()
    out = runs / "out"
    first = _Audit(small_scenario, out, cache)  # starts the fork server, fills the cache
    assert first.wait(timeout=120) in (0, 1)
    started = time.monotonic()
    second = _Audit(small_scenario, out, cache)
    assert second.wait(timeout=120) in (0, 1)
    duration = time.monotonic() - started
    current_id, current = _complete_run(out), _tree(out)
    rng = random.Random(19)
    outcomes = {"previous": 0, "new": 0, "while writing": 0}
    for _ in range(20):
        proc = _Audit(small_scenario, out, cache)
        time.sleep(rng.uniform(0.0, 1.1 * duration))
        with contextlib.suppress(ProcessLookupError):
            os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=60)
        outcomes["while writing"] += any(runs.glob(f".out.staging-{proc.pid}-*"))
        if not out.exists():  # killed between the two renames of the fallback switch
            assert any(_tree(p) == current for p in runs.glob(".out.previous-*"))
            recover_output_dir(out)
        state = _tree(out)
        if state == current:
            outcomes["previous"] += 1
            continue
        run_id = _complete_run(out)
        assert run_id != current_id
        outcomes["new"] += 1
        current_id, current = run_id, state
    last = _Audit(small_scenario, out, cache)
    assert last.wait(timeout=120) in (0, 1)
    assert _complete_run(out) != current_id
    assert sorted(p.name for p in runs.iterdir()) == ["out"]  # leftovers of the kills removed
    print(f"{duration:.1f} s a run; after the 20 kills: {outcomes}")
    # Some kills hit before the switch, and some while the outputs were being written (about a
    # quarter to a third of a run: the chance that none of 20 uniform moments falls there is
    # below 1 %).
    assert outcomes["previous"] >= 1 and outcomes["while writing"] >= 1, outcomes


def test_cli_refuses_an_output_folder_holding_an_input(small_scenario: Path,
                                                       tmp_path: Path) -> None:
    from click.testing import CliRunner
    from covplan.cli import main

    project = tmp_path / "project"
    (project / "inputs").mkdir(parents=True)
    text = small_scenario.read_text(encoding="utf-8")
    shutil.copy(ANDORRA_FACILITIES, project / "inputs" / "facilities.geojson")
    text = text.replace(ANDORRA_FACILITIES.as_posix(), "inputs/facilities.geojson")
    scenario = project / "scenario.toml"
    scenario.write_text(text, encoding="utf-8")
    dotted = project / "dotted.toml"  # outputs.dir = "." beside the inputs
    dotted.write_text(text + '\n[outputs]\ndir = "."\n', encoding="utf-8")
    cases = [
        (["audit", scenario, "--out", project], "contains the scenario input"),
        (["audit", scenario, "--out", project / "inputs"], "contains the facilities input"),
        (["audit", scenario, "--out", tmp_path], "contains the scenario input"),
        (["audit", dotted], "contains the scenario input"),
        (["map", scenario, "--out", project], "contains the scenario input"),
        (["site", scenario, "--new", "1", "--out", project / "inputs"], "facilities"),
    ]
    for args, message in cases:
        before = snapshot(tmp_path)
        result = CliRunner().invoke(main, [str(a) for a in args])
        assert result.exit_code == 2, (args, result.output)
        assert message in result.output and "choose an output folder" in result.output
        assert "Traceback" not in result.output
        assert snapshot(tmp_path) == before, args  # nothing written, not even a staging folder


def test_cli_with_a_locked_output_file_fails_before_computing(small_scenario: Path,
                                                              tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    cache.mkdir()
    out = tmp_path / "out"
    proc = _audit(small_scenario, out, cache)
    assert proc.wait(timeout=120) in (0, 1), proc.stderr.read().decode()  # type: ignore[union-attr]
    before = fingerprint(out)
    _lock(out / "units.xlsx")
    try:
        proc = _audit(small_scenario, out, cache)
        assert proc.wait(timeout=120) == 2
        message = proc.stderr.read().decode()  # type: ignore[union-attr]
    finally:
        _unlock(out / "units.xlsx")
    assert f"cannot replace {out / 'units.xlsx'}" in message
    assert "previous outputs were left unchanged" in message
    assert fingerprint(out) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cache", "out"]
