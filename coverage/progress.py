"""Step timing and progress display shared by the CLI, the app and batch runs."""

from __future__ import annotations

import sys
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import TextIO, TypeVar

from tqdm import tqdm

__all__ = ["Steps"]

T = TypeVar("T")


class Steps:
    """Times named steps and shows them: one line per step, a bar for long loops.

    Parameters
    ----------
    verbosity
        ``0`` silent (``-q``), ``1`` normal, ``2`` detailed (``-v``).
    stream
        Where progress goes; standard error by default so that standard output stays clean.
    """

    def __init__(self, *, verbosity: int = 1, stream: TextIO | None = None) -> None:
        self.verbosity = verbosity
        self.stream = stream if stream is not None else sys.stderr
        self.timings: dict[str, float] = {}

    @contextmanager
    def step(self, label: str) -> Iterator[None]:
        """Time a step; show a spinner-like line while it runs and its duration when done."""
        start = time.perf_counter()
        if self.verbosity >= 1:
            print(f"{label} ...", file=self.stream, flush=True)
        try:
            yield
        finally:
            elapsed = time.perf_counter() - start
            self.timings[label] = self.timings.get(label, 0.0) + elapsed
            if self.verbosity >= 1:
                print(f"{label}: done in {elapsed:.1f} s", file=self.stream, flush=True)

    def detail(self, message: str) -> None:
        """Show a detail line with ``-v`` only."""
        if self.verbosity >= 2:
            print(f"  {message}", file=self.stream, flush=True)

    def bar(self, items: Iterable[T], label: str, *, total: int | None = None) -> Iterator[T]:
        """Iterate with a progress bar (hidden when quiet)."""
        yield from tqdm(
            items, desc=label, total=total, disable=self.verbosity < 1, file=self.stream,
            leave=False,
        )
