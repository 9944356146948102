"""The package's errors: one base class, and variants that are also the built-in errors.

Catch :class:`CoverageError` for anything the package raises on purpose, or the built-in
error a variant also is (``except ValueError`` catches an :class:`InputError`).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass


class CoverageError(Exception):
    """Base class of every error this package raises on purpose.

    The message says what is wrong, where, and how to fix it. The CLI prints it without a
    traceback and exits with code 2.
    """


@dataclass(frozen=True)
class Problem:
    """One thing wrong with an input.

    Parameters
    ----------
    where
        Key path or file location, for example ``standards[2].minutes`` or ``facilities.csv row 7``.
    what
        What is wrong, including the offending value.
    fix
        How to fix it; empty when the message already says.
    """

    where: str
    what: str
    fix: str = ""

    def __str__(self) -> str:
        text = f"{self.where}: {self.what}"
        return f"{text} ({self.fix})" if self.fix else text


class InputError(CoverageError, ValueError):
    """Every problem found in one validation step, reported at once (also a ValueError)."""

    def __init__(self, problems: Iterable[Problem | str], *, source: str = "") -> None:
        self.problems: list[Problem] = [
            p if isinstance(p, Problem) else Problem(source or "input", p) for p in problems
        ]
        self.source = source
        head = f"{len(self.problems)} problem(s) in {source}" if source else "invalid input"
        lines = "\n".join(f"  - {p}" for p in self.problems)
        super().__init__(f"{head}:\n{lines}")


class InputWarning(UserWarning):
    """Something odd in an input that was kept or repaired (the message says which)."""
