"""Exit codes of the ``covplan`` command, and how a run's results map to one.

========================  =====  ===============================================================
name                      code   meaning
========================  =====  ===============================================================
:data:`EXIT_OK`           0      every standard met
:data:`EXIT_FAILED`       1      some standard not met (the run itself finished)
:data:`EXIT_BAD_INPUT`    2      bad input: the message says what, where and how to fix it
:data:`EXIT_INTERNAL`     3      an unexpected failure (a bug), or a job whose process died twice
:data:`EXIT_NOTHING_CHECKED` 4   the run finished but no rule could be checked: every unit of
                                 every rule is ``not_applicable`` or ``cannot_check``
:data:`EXIT_INTERRUPTED`  130    stopped by Ctrl-C (SIGINT), as shells report ``128 + 2``
========================  =====  ===============================================================

A batch exits with the worst code of its scenarios, worst last in the order
0 < 4 < 1 < 2 < 3 (:data:`SEVERITY`): a batch with one failing scenario and one that checked
nothing exits 1; bad input (2) and a crash (3) stay worse than both.
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
    "EXIT_NOTHING_CHECKED",
    "EXIT_OK",
    "SEVERITY",
    "exit_code_for",
    "exit_code_for_audit",
    "exit_code_for_status",
    "worst_exit_code",
]

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_BAD_INPUT = 2
EXIT_INTERNAL = 3
EXIT_NOTHING_CHECKED = 4
EXIT_INTERRUPTED = 130

#: Exit codes from best to worst (a batch exits with the worst of its scenarios).
SEVERITY: tuple[int, ...] = (EXIT_OK, EXIT_NOTHING_CHECKED, EXIT_FAILED, EXIT_BAD_INPUT,
                             EXIT_INTERNAL)


def worst_exit_code(codes: Iterable[int]) -> int:
    """Return the worst of some exit codes in the order of :data:`SEVERITY` (0 when none).

    Examples
    --------
    >>> worst_exit_code([0, 4]), worst_exit_code([4, 1]), worst_exit_code([4, 2])
    (4, 1, 2)
    """
    rank = {code: i for i, code in enumerate(SEVERITY)}
    return max(codes, key=lambda c: rank.get(c, len(SEVERITY)), default=EXIT_OK)


def exit_code_for_audit(statuses: Iterable[str]) -> int:
    """Return the exit code of one audit from the statuses of its unit rows.

    1 when a unit fails; 4 when rows exist and not one passes or fails (nothing could be
    checked); else 0 (also for an audit without rules).

    Examples
    --------
    >>> exit_code_for_audit(["pass", "cannot_check"]), exit_code_for_audit(["cannot_check"])
    (0, 4)
    >>> exit_code_for_audit(["not_applicable", "fail"])
    1
    """
    from covplan.results import audit_verdict

    return exit_code_for_status(audit_verdict(statuses))



def _by_status() -> dict[str, int]:
    from covplan.batch import BAD_INPUT, CRASHED, FAILED, LOST, NOTHING_CHECKED, PASSED

    return {
        PASSED: EXIT_OK,
        FAILED: EXIT_FAILED,
        BAD_INPUT: EXIT_BAD_INPUT,
        CRASHED: EXIT_INTERNAL,
        LOST: EXIT_INTERNAL,
        NOTHING_CHECKED: EXIT_NOTHING_CHECKED,
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
    return worst_exit_code(exit_code_for_status(o.status) for o in outcomes)
