"""How an ad hoc run (CLI, Python API) talks to Prefect: which server, and what its console says.

Kept apart from :mod:`mwingest.api` so the API reads as the calls a notebook makes; this is the
Prefect plumbing under them. Prefect is imported only inside the functions.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from mwingest.base.errors import BatchStoppedError

#: Seconds to wait for the ephemeral Prefect server. Prefect's default (20 s) is too short for a
#: first run (database migrations) on a busy machine; measured 23 s under load.
EPHEMERAL_STARTUP_TIMEOUT = 120
#: Retries of the Prefect client's calls in an ad hoc run (Prefect's default: 5, about 62 s).
CLIENT_RETRIES = 3
#: Where the ephemeral server's port is picked. Prefect uses 8000–8999, the range of local dev
#: servers (``php -S :8080``, ``http.server``); it checks ``bind()`` first, so clashes are races.
EPHEMERAL_PORT_RANGE = range(20000, 61000)

_TASK_END_LINES = ("Finished in state", "Task run failed with state")


def _api_lost(exc: BaseException | None) -> bool:
    """Prefect's HTTP client gave up on its API (the wiki's client is not httpx)."""
    import httpx

    return isinstance(exc, httpx.TransportError) or (
        isinstance(exc, httpx.HTTPStatusError) and exc.response.status_code >= 500)


class ConsoleFilter(logging.Filter):
    """What Prefect's console handler may print during a command: no outcome lines when the
    command shows outcomes itself (``drop_outcomes``), each warning or error once, and no
    traceback of a batch stopped by a refused re-login, a full ledger disk or a ledger database
    gone for longer than the retry budget (the command's own line says it)."""

    def __init__(self, drop_outcomes: bool) -> None:
        super().__init__("mwingest-console")
        self.drop_outcomes = drop_outcomes
        self._seen: set[tuple[int, str]] = set()

    def filter(self, record: logging.LogRecord) -> bool:
        if record.exc_info and isinstance(record.exc_info[1], BatchStoppedError):
            return False  # the batch stopped: the command says why in one line, no traceback
        if record.exc_info and record.name.startswith("prefect") and _api_lost(record.exc_info[1]):
            return False  # Prefect's engine lost its API: the command's own line says so
        if self.drop_outcomes and (
                getattr(record, "mwingest_outcome", False)
                # A task run's end state (a named outcome such as Rejected is of type FAILED, so
                # Prefect also logs "Task run failed with state"): the outcome line says it.
                or (record.name == "prefect.task_runs"
                    and str(record.msg).startswith(_TASK_END_LINES))):
            return False
        if record.levelno >= logging.WARNING:
            key = (record.levelno, record.getMessage())
            if key in self._seen:
                return False
            self._seen.add(key)
        return True


@contextmanager
def prefect_settings(quiet: bool, *, verbose: bool = False,
                      shows_outcomes: bool = False) -> Iterator[str | None]:
    """Prefect settings for one ad hoc run; a configured server (or test harness) is left alone.

    Which server: the one configured (``PREFECT_API_URL``, a harness), else the mwingest local
    server (started when none runs, :mod:`mwingest.runtime.prefectenv`), else with
    ``MWINGEST_PREFECT=ephemeral`` Prefect's ephemeral one (a start-up timeout that survives a
    first run, a port outside 8000–8999). Prefect's own heartbeats are off: the flows send theirs
    (``flows.heartbeat``), which do not hold the run's end for a second. ``quiet`` keeps
    Prefect's console lines to warnings (``verbose`` brings the INFO lines back; the run's full
    log still goes to the Prefect API); ``shows_outcomes``: the caller prints each outcome, so
    the console leaves out the flow's outcome lines. Each warning is printed once. Yields the
    API URL the run reports to (None: ephemeral).
    """
    from prefect.settings import (
        PREFECT_API_AUTH_STRING,
        PREFECT_API_URL,
        PREFECT_CLIENT_MAX_RETRIES,
        PREFECT_FLOWS_HEARTBEAT_FREQUENCY,
        PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS,
        temporary_settings,
    )

    from mwingest.runtime.prefectenv import choose

    updates: dict[Any, Any] = {PREFECT_FLOWS_HEARTBEAT_FREQUENCY: None}
    if "PREFECT_CLIENT_MAX_RETRIES" not in os.environ:
        # Prefect's 5 retries wait 2+4+8+16+32 s for each call to a server that is gone, so a
        # run whose server died needed minutes per call to find out; 3 ride out a busy server's
        # 503s and a restart of a few seconds, and bound the end of a run that lost its server.
        updates[PREFECT_CLIENT_MAX_RETRIES] = CLIENT_RETRIES
    if not PREFECT_API_URL.value():
        choice = choose(lambda line: print(line, file=sys.stderr, flush=True))
        if choice.api_url:
            updates[PREFECT_API_URL] = choice.api_url
            secret = os.environ.get("PREFECT_API_AUTH_STRING")  # set by choose() for the local server
            if secret and PREFECT_API_AUTH_STRING.value() is None:
                updates[PREFECT_API_AUTH_STRING] = secret
        else:
            if ("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS" not in os.environ
                    and PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS.value()
                    < EPHEMERAL_STARTUP_TIMEOUT):
                updates[PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS] = EPHEMERAL_STARTUP_TIMEOUT
            move_ephemeral_port()
    consoles = [h for h in logging.getLogger().handlers
                if type(h).__name__ == "PrefectConsoleHandler"]
    levels = [h.level for h in consoles]
    console_filter = ConsoleFilter(drop_outcomes=shows_outcomes)
    for handler in consoles:
        if quiet and not verbose:
            handler.setLevel(logging.WARNING)
        handler.addFilter(console_filter)
    try:
        with temporary_settings(updates=updates):
            yield PREFECT_API_URL.value() or None
    finally:
        for handler, level in zip(consoles, levels, strict=True):
            handler.setLevel(level)
            handler.removeFilter(console_filter)


def move_ephemeral_port() -> None:
    """Point Prefect's ephemeral port choice at :data:`EPHEMERAL_PORT_RANGE`.

    A private class attribute (Prefect 3.9 ``SubprocessASGIServer._port_range``); if a newer
    Prefect drops it, nothing happens and Prefect's own range is used.
    """
    from prefect.server.api.server import SubprocessASGIServer

    if isinstance(getattr(SubprocessASGIServer, "_port_range", None), range):
        SubprocessASGIServer._port_range = EPHEMERAL_PORT_RANGE
