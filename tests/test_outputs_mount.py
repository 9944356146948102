"""An output folder at a mount point: staged inside it, files moved in with backups.

A real tmpfs (another device) and a bind mount of a folder of the same file system (same
device number, seen only in the mount table) are created when the test may mount (root in a
container); otherwise the mount is simulated by making :func:`os.path.ismount` report the
folder, which takes the same path through :mod:`covplan.outputs.atomic`. Every failure test
asserts the message and that the previous outputs are byte for byte unchanged.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import multiprocessing
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner
from covplan.cli import main
from covplan.errors import CoverageError
from covplan.outputs import atomic
from covplan.outputs.atomic import check_output_dir, recover_output_dir, staged_directory
from covplan.outputs.manifest import file_sha256
from shipped import write_small_scenario


def _tree(folder: Path) -> dict[str, str]:
    """SHA-256 of every file below ``folder`` (hidden ones too), by relative path."""
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def _fingerprint(folder: Path) -> dict[str, tuple[str, int, int]]:
    """Hash, inode and modification time of every file: a replaced file changes its inode."""
    return {name: (digest, (folder / name).stat().st_ino, (folder / name).stat().st_mtime_ns)
            for name, digest in _tree(folder).items()}


def _sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def _try(*command: str) -> bool:
    return subprocess.run(list(command), capture_output=True).returncode == 0


@contextlib.contextmanager
def _mount(target: Path, kind: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """Make ``target`` a mount point: ``tmpfs`` or a ``bind`` mount; yield how it was made.

    Where mounting is not permitted, :func:`os.path.ismount` is patched to report ``target``
    (yields ``"simulated"``).
    """
    target.mkdir()
    if kind == "tmpfs":
        mounted = _try("mount", "-t", "tmpfs", "-o", "size=64m", "covplan-test", str(target))
    else:
        source = target.with_name(target.name + "-source")
        source.mkdir()
        mounted = _try("mount", "--bind", str(source), str(target))
    if not mounted:
        real = os.path.ismount
        monkeypatch.setattr(os.path, "ismount",
                            lambda p: Path(os.path.realpath(p)) == target.resolve() or real(p))
    try:
        yield kind if mounted else "simulated"
    finally:
        if mounted and not _try("umount", str(target)):
            _try("umount", "-l", str(target))


@pytest.fixture(params=["tmpfs", "bind"])
def mount(request: pytest.FixtureRequest, tmp_path: Path,
          monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Path, str]]:
    """An empty output folder at a mount point and how it was made."""
    with _mount(tmp_path / "mnt", request.param, monkeypatch) as how:
        yield tmp_path / "mnt", how


def _write(out: Path, files: dict[str, str]) -> Path:
    with staged_directory(out, replaces=list(files)) as staging:
        for name, text in files.items():
            (staging / name).write_text(text)
    return out


RUN1 = {"units.csv": "run 1", "units.xlsx": "run 1", "map.html": "run 1",
        "manifest.json": "run 1"}
RUN2 = {"units.csv": "run 2", "units.xlsx": "run 2", "map.html": "run 2",
        "places.csv": "run 2", "manifest.json": "run 2"}


def test_the_mount_is_recognised(mount: tuple[Path, str]) -> None:
    out, how = mount
    assert atomic._is_mount(out) and atomic._stages_in_place(out)
    if how == "tmpfs":
        assert out.stat().st_dev != out.parent.stat().st_dev
    if how == "bind":  # same device and not os.path.ismount: only the mount table tells
        assert not os.path.ismount(out) and out.stat().st_dev == out.parent.stat().st_dev
        assert str(out.resolve()) in atomic._mount_points()
    assert not atomic._is_mount(out.parent)


def test_outputs_at_a_mount_point_are_written_inside_it(mount: tuple[Path, str]) -> None:
    out, _ = mount
    assert check_output_dir(out, [], replaces=list(RUN1)) == out.resolve()
    with staged_directory(out, replaces=list(RUN1)) as staging:
        assert staging.parent.parent == out and staging.parent.name.startswith(
            ".covplan-staging-")
        for name, text in RUN1.items():
            (staging / name).write_text(text)
        assert sorted(p.name for p in out.iterdir() if not p.name.startswith(".")) == []
    assert _tree(out) == {name: _sha(text) for name, text in RUN1.items()}
    (out / "notes.txt").write_text("mine")
    _write(out, RUN2)
    assert _tree(out) == {**{n: _sha(t) for n, t in RUN2.items()}, "notes.txt": _sha("mine")}
    assert sorted(p.name for p in out.parent.iterdir()) in (["mnt"], ["mnt", "mnt-source"])


def test_manifest_is_moved_last(mount: tuple[Path, str], monkeypatch: pytest.MonkeyPatch) -> None:
    out, _ = mount
    moved: list[str] = []
    real = os.replace

    def replace(src: object, dst: object) -> None:
        if Path(str(dst)).parent == out:
            moved.append(Path(str(dst)).name)
        real(src, dst)

    monkeypatch.setattr(os, "replace", replace)
    _write(out, RUN2)
    assert moved[-1] == "manifest.json" and sorted(moved) == sorted(RUN2)


def test_a_locked_file_fails_before_anything_is_replaced(mount: tuple[Path, str]) -> None:
    out, _ = mount
    _write(out, RUN1)
    before = _fingerprint(out)
    locked = out / "units.xlsx"
    if os.geteuid() == 0 and _try("chattr", "+i", str(locked)):
        unlock = ("chattr", "-i", str(locked))
    else:  # tmpfs without chattr support, or not root: read-only is refused the same way
        locked.chmod(0o444)
        unlock = ("chmod", "644", str(locked))
    try:
        with pytest.raises(CoverageError) as info, \
                staged_directory(out, replaces=["units.csv"]) as staging:
            for name, text in RUN2.items():
                (staging / name).write_text(text)
    finally:
        _try(*unlock)
    assert f"cannot replace {locked}" in str(info.value)
    assert "previous outputs were left unchanged" in str(info.value)
    assert _fingerprint(out) == before
    assert sorted(p.name for p in out.iterdir()) == sorted(RUN1)


def test_a_failed_move_rolls_every_file_back(mount: tuple[Path, str],
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    out, _ = mount
    _write(out, RUN1)
    before = _fingerprint(out)
    real = os.replace
    count = {"moves": 0}

    def replace(src: object, dst: object) -> None:
        if Path(str(dst)).parent == out:
            count["moves"] += 1
            if count["moves"] == 3:  # two new files are in, one of them a new name
                raise OSError(5, "Input/output error", str(dst))
        real(src, dst)

    monkeypatch.setattr(os, "replace", replace)
    with pytest.raises(CoverageError) as info:
        _write(out, RUN2)
    message = str(info.value)
    assert f"cannot replace the files of the output folder {out}" in message
    assert "Input/output error" in message and "left unchanged" in message
    assert _fingerprint(out) == before  # restored by rename: the very same files
    assert sorted(p.name for p in out.iterdir()) == sorted(RUN1)  # nothing hidden is left


def _killed_writer(out: str) -> None:
    """Write run 2 and die (``os._exit``) after two files were moved in."""
    real = os.replace
    count = {"moves": 0}

    def replace(src: object, dst: object) -> None:
        if Path(str(dst)).parent == Path(out):
            if count["moves"] == 2:
                os._exit(9)
            count["moves"] += 1
        real(src, dst)

    os.replace = replace  # type: ignore[assignment]
    _write(Path(out), RUN2)


def test_a_kill_during_the_moves_is_rolled_back_by_the_next_run(
        mount: tuple[Path, str]) -> None:
    out, _ = mount
    _write(out, RUN1)
    before = _tree(out)
    process = multiprocessing.get_context("fork").Process(target=_killed_writer,
                                                          args=(str(out),))
    process.start()
    process.join(60)
    assert process.exitcode == 9
    visible = {n: h for n, h in _tree(out).items() if not n.startswith(".")}
    assert visible != before  # the kill left a mix: the weaker guarantee at a mount point
    assert [p.name for p in out.iterdir() if p.name.startswith(".covplan-staging-")]
    recover_output_dir(out)
    assert _tree(out) == before
    _write(out, RUN2)  # and the next run completes
    assert _tree(out) == {n: _sha(t) for n, t in RUN2.items()}


def test_a_kill_after_the_commit_keeps_the_new_run(mount: tuple[Path, str]) -> None:
    out, _ = mount
    _write(out, RUN2)
    dead = out / f".covplan-staging-{2**22 + 1}-0a0a"  # above pid_max: a dead process
    (dead / "new").mkdir(parents=True)
    (dead / "previous").mkdir()
    (dead / "previous" / "units.csv").write_text("run 1")  # no journal: committed
    recover_output_dir(out)
    assert _tree(out) == {n: _sha(t) for n, t in RUN2.items()}


# --- the CLI: `covplan audit --out <mount point>` -------------------------------------------


def test_cli_audit_writes_to_a_mount_point(tmp_path: Path,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    inputs = tmp_path / "inputs"
    inputs.mkdir()
    scenario = write_small_scenario(inputs)
    with _mount(tmp_path / "mnt", "tmpfs", monkeypatch):
        out = tmp_path / "mnt"
        for _ in range(2):  # the second run replaces the first one's files
            result = CliRunner().invoke(main, ["-q", "audit", str(scenario), "--out", str(out)])
            assert result.exit_code in (0, 1), result.output
            assert "cross-device" not in result.output
            manifest = json.loads((out / "manifest.json").read_text(encoding="utf-8"))
            listed = manifest["outputs"]
            assert sorted(p.name for p in out.iterdir()) == sorted([*listed, "manifest.json"])
            for name, entry in listed.items():
                assert file_sha256(out / name) == entry["sha256"], name
