"""The code style of DEVELOPERS.md: ruff clean with the repository's settings."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_ruff_is_clean() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "ruff", "check", "."],
        cwd=REPO, capture_output=True, text=True, check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_coverage_py_and_the_product_import_side_by_side(tmp_path: Path) -> None:
    """coverage.py owns the name ``coverage``; the product is ``covplan``, from ``coverage/``.

    Run from another folder, coverage.py measures a real ``covplan`` command.
    """
    import covplan

    import coverage

    assert hasattr(coverage, "Coverage") and coverage.__file__ != covplan.__file__
    assert Path(covplan.__file__).resolve().parent == REPO / "coverage"
    env = {**os.environ, "COVERAGE_FILE": str(tmp_path / ".coverage")}
    run = subprocess.run(
        [sys.executable, "-m", "coverage", "run", "--source=covplan", "-m", "covplan", "presets"],
        cwd=tmp_path, capture_output=True, text=True, check=False, env=env,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    assert "bazhong" in run.stdout
    report = subprocess.run(
        [sys.executable, "-m", "coverage", "report"],
        cwd=tmp_path, capture_output=True, text=True, check=False, env=env,
    )
    assert report.returncode == 0, report.stderr
    assert "cli" in report.stdout and "TOTAL" in report.stdout


def test_coverage_py_is_found_from_the_checkout_root_too() -> None:
    """From the repository root the folder ``coverage/`` would shadow coverage.py; it hands over."""
    code = "import coverage, covplan; coverage.Coverage; print(coverage.__file__, covplan.__file__)"
    run = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=False
    )
    assert run.returncode == 0, run.stderr
    coverage_file, covplan_file = run.stdout.split()
    assert Path(coverage_file).parent != REPO / "coverage"
    assert Path(covplan_file).parent == REPO / "coverage"
