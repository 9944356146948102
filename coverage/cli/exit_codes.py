"""Exit codes of the ``covplan`` command, and how a run's results map to one.

========================  =====  ===============================================================
name                      code   meaning
========================  =====  ===============================================================
:data:`EXIT_OK`           0      every standard met
:data:`EXIT_FAILED`       1      some standard not met (the run itself finished)
:data:`EXIT_BAD_INPUT`    2      bad input: the message says what, where and how to fix it
:data:`EXIT_INTERNAL`     3      an unexpected failure (a bug), or a job whose process died twice
:data:`EXIT_INTERRUPTED`  130    stopped by Ctrl-C (SIGINT), as shells report ``128 + 2``
========================  =====  ===============================================================

A batch exits with the worst code of its scenarios (the highest of 0-3).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # covplan.batch is heavy (geopandas): imported when a status is mapped
    from covplan.batch import Outcome

__all__ = [
    "EXIT_BAD_INPUT",
    "EXIT_FAILED",
    "EXIT_INTERNAL",
    "EXIT_INTERRUPTED",
    "EXIT_OK",
    "exit_code_for",
    "exit_code_for_status",
]

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_BAD_INPUT = 2
EXIT_INTERNAL = 3
EXIT_INTERRUPTED = 130



def _by_status() -> dict[str, int]:
    from covplan.batch import BAD_INPUT, CRASHED, FAILED, LOST, PASSED

    return {
        PASSED: EXIT_OK,
        FAILED: EXIT_FAILED,
        BAD_INPUT: EXIT_BAD_INPUT,
        CRASHED: EXIT_INTERNAL,
        LOST: EXIT_INTERNAL,
    }


def exit_code_for_status(status: str) -> int:
    """Return the exit code of one scenario's status (see :data:`covplan.batch.STATUSES`).

    Examples
    --------
    >>> exit_code_for_status("failed"), exit_code_for_status("lost")
    (1, 3)
    """
    by_status = _by_status()
    try:
        return by_status[status]
    except KeyError:
        raise ValueError(
            f"unknown batch status {status!r}; expected one of {', '.join(by_status)}"
        ) from None


def exit_code_for(outcomes: Iterable[Outcome]) -> int:
    """Return the exit code of a batch: the worst of its scenarios' codes (0 when empty).

    Examples
    --------
    >>> exit_code_for([Outcome("a.toml", "failed"), Outcome("b.toml", "bad_input")])
    2
    """
    return max((exit_code_for_status(o.status) for o in outcomes), default=EXIT_OK)
