"""Step timing and progress display shared by the CLI, the app and batch runs.

Step lines are log records of the logger ``covplan.progress`` (a child of ``covplan``): a
library user sees them through their own logging set-up, and a :class:`Steps` that is not
quiet also writes them to its stream. Long loops show a progress bar.
"""

from __future__ import annotations

import logging
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
        # one logger per display (sessions and CLI runs in one process show on their own
        # streams), its records passed on to the package logger as well
        self.log = logging.Logger("covplan.progress", logging.DEBUG)
        self.log.parent = logging.getLogger("covplan")
        if verbosity >= 1:
            handler = logging.StreamHandler(self.stream)
            handler.setLevel(logging.INFO if verbosity == 1 else logging.DEBUG)
            handler.setFormatter(logging.Formatter("%(message)s"))
            self.log.addHandler(handler)

    @contextmanager
    def step(self, label: str) -> Iterator[None]:
        """Time a step; show a spinner-like line while it runs and its duration when done."""
        start = time.perf_counter()
        self.log.info("%s ...", label)
        finished = False
        try:
            yield
            finished = True
        finally:
            elapsed = time.perf_counter() - start
            self.timings[label] = self.timings.get(label, 0.0) + elapsed
            if finished:
                self.log.info("%s: done in %.1f s", label, elapsed)
            else:
                self.log.warning("%s: stopped after %.1f s", label, elapsed)

    def detail(self, message: str) -> None:
        """Show a detail line with ``-v`` only."""
        self.log.debug("  %s", message)

    def say(self, message: str) -> None:
        """Show a line unless quiet (a heading such as the scenario a batch is at)."""
        self.log.info("%s", message)

    def bar(self, items: Iterable[T], label: str, *, total: int | None = None) -> Iterator[T]:
        """Iterate with a progress bar (hidden when quiet)."""
        yield from tqdm(
            items, desc=label, total=total, disable=self.verbosity < 1, file=self.stream,
            leave=False,
        )
