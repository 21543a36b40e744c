"""What the console filter of an ad hoc run lets through (mwingest.runtime.adhoc.ConsoleFilter)."""

from __future__ import annotations

import logging

from mwingest.base.errors import LoginRefusedError
from mwingest.runtime.adhoc import ConsoleFilter


def _record(name: str, level: int, msg: str, exc: BaseException | None = None) -> logging.LogRecord:
    exc_info = (type(exc), exc, None) if exc else None
    return logging.LogRecord(name, level, __file__, 1, msg, None, exc_info)


def test_task_end_lines_are_dropped_when_the_command_prints_outcomes() -> None:
    quiet = ConsoleFilter(drop_outcomes=True)
    # A named outcome (Rejected) has type FAILED: Prefect 3.9 logs both lines at ERROR.
    assert not quiet.filter(_record("prefect.task_runs", logging.ERROR,
                                    "Task run failed with state: Rejected(message='x')"))
    assert not quiet.filter(_record("prefect.task_runs", logging.ERROR,
                                    "Finished in state Rejected('x')"))
    # Other task-run errors still reach the console, once each.
    other = _record("prefect.task_runs", logging.ERROR, "Crash detected! Execution was interrupted")
    assert quiet.filter(other)
    assert not quiet.filter(other)


def test_task_end_lines_stay_when_the_command_does_not_print_outcomes() -> None:
    loud = ConsoleFilter(drop_outcomes=False)
    assert loud.filter(_record("prefect.task_runs", logging.ERROR,
                               "Task run failed with state: Rejected(message='x')"))


def test_a_refused_relogin_has_no_traceback_on_the_console() -> None:
    refused = _record("prefect.flow_runs", logging.ERROR, "Flow run failed",
                      LoginRefusedError("the wiki refused the password"))
    assert not ConsoleFilter(drop_outcomes=False).filter(refused)
