"""Calls to the Prefect API that only *report* (artifacts, progress, the run's name): bounded and
best-effort, so a Prefect server that dies or stumbles never holds up a file (issue 24).

Why: Prefect 3.9's client retries a failed request 5 times with 2, 4, 8, 16, 32 s between
(``PREFECT_CLIENT_MAX_RETRIES``, ``client/base.py``), about 62 s per call once the server is gone.
A progress update after each file, under the progress bar's lock, then cost every file a minute:
a kill -9 of the local server turned a 2-minute import into one that ran for ever (measured:
still running 200 s after the kill, 9 of 21 files landed). The ledger is the record of what
happened; these calls are its picture in the UI. So: one retry per call, and after a failure no
further reporting call for :data:`QUIET_S` (one warning says so), then one try again.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")
log = logging.getLogger("mwingest.reporting")

#: After a failed reporting call, how long the others are skipped before one tries again.
QUIET_S = 30.0
#: Retries of one reporting call (Prefect's client default is 5, about 62 s against a dead server).
REPORT_RETRIES = 1


class Breaker:
    """Open after a failed call; a call after :data:`QUIET_S` tries again (and closes it)."""

    def __init__(self, quiet_s: float = QUIET_S) -> None:
        self.quiet_s = quiet_s
        self._lock = threading.Lock()
        self._open_until = 0.0
        self.failures = 0
        self.skipped = 0

    def allows(self) -> bool:
        with self._lock:
            if time.monotonic() < self._open_until:
                self.skipped += 1
                return False
            return True

    def failed(self, what: str, exc: BaseException) -> None:
        with self._lock:
            first = self._open_until == 0.0 or time.monotonic() >= self._open_until
            self._open_until = time.monotonic() + self.quiet_s
            self.failures += 1
        if first:
            why = " ".join(str(exc).split())[:200] or type(exc).__name__
            log.warning("Prefect API not answering (%s: %s); the UI's report waits, the files go "
                        "on and the ledger keeps their record", what, why)

    def succeeded(self) -> None:
        with self._lock:
            self._open_until = 0.0


#: One per process: every run of the process talks to the same API.
BREAKER = Breaker()


def best_effort(what: str, call: Callable[[], T], default: T | None = None) -> T | None:
    """``call()`` with at most :data:`REPORT_RETRIES` retries; ``default`` when it fails or the
    breaker is open. Never raises (but a KeyboardInterrupt)."""
    if not BREAKER.allows():
        return default
    import prefect.context

    context = prefect.context.get_settings_context()
    try:
        with prefect.context.SettingsContext(profile=context.profile,
                                             settings=_few_retries(context.settings)):
            result = call()
    except Exception as exc:  # noqa: BLE001 - a report is never worth a file
        BREAKER.failed(what, exc)
        return default
    BREAKER.succeeded()
    return result


#: The current settings with :data:`REPORT_RETRIES` client retries, per settings object. Why
#: kept: Prefect's ``temporary_settings`` builds a new settings model on every call, ~0.1 s of
#: CPU here, and a batch reports a few times a minute (issue 27's client CPU per file).
_FEW_RETRIES: dict[int, tuple[Any, Any]] = {}
_FEW_RETRIES_LOCK = threading.Lock()


def _few_retries(settings: Any) -> Any:
    from prefect.settings import PREFECT_CLIENT_MAX_RETRIES

    with _FEW_RETRIES_LOCK:
        kept = _FEW_RETRIES.get(id(settings))
        if kept is None or kept[0] is not settings:  # the original is kept: its id stays its own
            if len(_FEW_RETRIES) >= 8:
                _FEW_RETRIES.clear()
            kept = (settings, settings.copy_with_update(
                updates={PREFECT_CLIENT_MAX_RETRIES: REPORT_RETRIES}))
            _FEW_RETRIES[id(settings)] = kept
        return kept[1]
