"""The code style of DEVELOPERS.md: ruff clean with the repository's settings."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def test_ruff_is_clean() -> None:
    ruff = shutil.which("ruff")
    if ruff is None:
        pytest.skip("ruff is not installed (it comes with the test extras: pip install -e .[test])")
    done = subprocess.run(
        [ruff, "check", "."], cwd=REPO, capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_nothing_imports_coverage_py() -> None:
    """Our import name is `coverage`; coverage.py or pytest-cov would shadow it."""
    from importlib.metadata import PackageNotFoundError, distribution

    for name in ("coverage", "pytest-cov"):
        with pytest.raises(PackageNotFoundError):
            distribution(name)
    import coverage

    assert Path(coverage.__file__).resolve().parent == REPO / "coverage", sys.path
