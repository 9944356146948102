"""A symbolic link loop among the inputs is bad input (exit 2, a clear message), not a bug (3).

Python before 3.13 raises ``RuntimeError("Symlink loop ...")`` from ``Path.resolve``, which the
CLI used to report as an internal error. Each case runs ``covplan validate`` and
``covplan audit`` with click's CliRunner and checks the exit code, the message (the key path,
the looping path, how to fix it) and that nothing was written.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from click.testing import CliRunner
from covplan.cli import main
from covplan.errors import InputError
from covplan.inputs._io import require_file, resolve_path
from shipped import ANDORRA_SCENARIO, DATA

LOOP = "is a symbolic link loop"
FIX = "replace the link"


def snapshot(folder: Path) -> dict[str, tuple[int, int]]:
    """Size and modification time of every entry below ``folder`` (links not followed)."""
    return {str(p.relative_to(folder)): (p.lstat().st_size, p.lstat().st_mtime_ns)
            for p in folder.rglob("*")}


def _scenario(folder: Path, facilities: str) -> Path:
    """The Andorra scenario with absolute paths and ``facilities`` as the facilities path."""
    toml = ANDORRA_SCENARIO.read_text(encoding="utf-8").replace('"../', f'"{DATA.as_posix()}/')
    shipped = f'"{(DATA / "facilities" / "andorra.geojson").as_posix()}"'
    assert shipped in toml
    path = folder / "scenario.toml"
    path.write_text(toml.replace(shipped, f'"{facilities}"'), encoding="utf-8")
    return path


def _invoke(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, list(args))
    assert result.exception is None or isinstance(result.exception, SystemExit), result.output
    return result.exit_code, result.output


@pytest.mark.parametrize("links", [{"facilities.csv": "facilities.csv"},
                                   {"a.csv": "b.csv", "b.csv": "a.csv"}],
                         ids=["self", "two-links"])
@pytest.mark.parametrize("command", ["validate", "audit"])
def test_a_looping_input_file_exits_2_naming_the_key_and_the_path(
        tmp_path: Path, links: dict[str, str], command: str) -> None:
    for name, target in links.items():
        (tmp_path / name).symlink_to(target)
    first = next(iter(links))
    scenario = _scenario(tmp_path, first)  # relative to the scenario's folder
    before = snapshot(tmp_path)
    args = [command, str(scenario)] + (["--out", str(tmp_path / "out")] if command == "audit"
                                        else [])
    code, output = _invoke(*args)
    assert code == 2, output
    assert "Internal error" not in output and "RuntimeError" not in output
    assert f"inputs.facilities.path: {tmp_path / first} {LOOP}" in output
    assert FIX in output
    assert snapshot(tmp_path) == before and not (tmp_path / "out").exists()


def test_a_looping_scenario_file_exits_2(tmp_path: Path) -> None:
    link = tmp_path / "plan.toml"
    link.symlink_to("plan.toml")
    before = snapshot(tmp_path)
    code, output = _invoke("validate", str(link))
    assert code == 2, output
    assert f"{link}: {link} {LOOP}" in output and FIX in output
    code, output = _invoke("audit", str(link), "--out", str(tmp_path / "out"))
    assert code == 2, output
    assert "Internal error" not in output and str(link) in output
    assert snapshot(tmp_path) == before


def test_a_looping_output_folder_exits_2(tmp_path: Path) -> None:
    scenario = _scenario(tmp_path, (DATA / "facilities" / "andorra.geojson").as_posix())
    out = tmp_path / "out"
    out.symlink_to("out")
    before = snapshot(tmp_path)
    code, output = _invoke("audit", str(scenario), "--out", str(out))
    assert code == 2, output
    assert f"output folder {out}: {LOOP}" in output and FIX in output
    assert snapshot(tmp_path) == before


def test_the_helpers_name_the_loop(tmp_path: Path) -> None:
    link = tmp_path / "x.geojson"
    link.symlink_to("x.geojson")
    with pytest.raises(InputError, match=LOOP) as info:
        resolve_path(link, role="facilities")
    assert info.value.problems[0].where == str(link)
    with pytest.raises(InputError, match=LOOP):
        require_file(link, role="facilities")
    assert resolve_path(tmp_path, role="x") == Path(os.path.realpath(tmp_path))
