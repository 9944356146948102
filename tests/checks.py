"""Checks shared by the bad-input tests: a call fails and leaves a folder untouched."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from covplan.errors import CoverageError


def snapshot(folder: Path) -> dict[str, tuple[int, int]]:
    """Size and modification time of every file below ``folder``."""
    return {str(p.relative_to(folder)): (p.stat().st_size, p.stat().st_mtime_ns)
            for p in folder.rglob("*")}


def fails(folder: Path, call: Callable[[], object], error: type[Exception] = CoverageError,
          ) -> str:
    """Run a call that must fail with ``error``; check nothing in ``folder`` changed.

    Returns the error message.
    """
    before = snapshot(folder)
    with pytest.raises(error) as info:
        call()
    assert snapshot(folder) == before
    return str(info.value)
