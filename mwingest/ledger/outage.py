"""Riding out a ledger database that goes away for a while: a PostgreSQL restart, a failover, a
dropped connection between a worker and the database (issue 24).

Why whole operations are retried, not statements: every public ledger operation is one short
transaction (or a read), so after a lost connection it is run again from its start on a fresh
connection, within a time budget, as the wiki's requests are (:mod:`mwingest.base.retry`). A
transaction the server never committed left nothing behind, so running it again is safe. The one
case where it is not is a **COMMIT whose answer was lost**: the server may have committed it
(then running it again would, say, append its event twice or take a second pacing token) or not.
So a write transaction notes its transaction id before COMMIT, and when the answer is lost the
ledger asks the server, on a new connection, what became of it (``txid_status``, PostgreSQL's
own answer to this question): committed, and the operation's result stands; aborted, and it is
run again; no answer within the budget, and the operation fails without guessing.

Once one operation spent its whole budget, the next ones are tried once each (no new budget)
until one succeeds again: a batch whose database stays away stops within seconds of the first
file giving up, instead of spending a budget per file. The first connection, when the ledger is
opened, is not retried: a wrong host or a database that is down at the start is said at once.

SQLite ledgers are files on this machine; they need none of this (its lock waits are
``busy_timeout``'s).
"""

from __future__ import annotations

import functools
import logging
import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar

import sqlalchemy as sa

from mwingest.base.errors import BatchStoppedError
from mwingest.base.retry import DEFAULT_BUDGET_S, RetryPolicy
from mwingest.ledger.model import LedgerError
from mwingest.ledger.store import first_line

log = logging.getLogger("mwingest.ledger")
T = TypeVar("T")
F = TypeVar("F", bound=Callable[..., Any])

#: Server errors that end a session or refuse one for a while: admin_shutdown,
#: crash_shutdown, cannot_connect_now (starting up, shutting down, recovering); every SQLSTATE of
#: class 08 (connection exception) counts too. A deadlock or serialization failure aborted the
#: whole transaction, so it is as safe to run again.
_SQLSTATES = frozenset({"57P01", "57P02", "57P03", "40P01", "40001"})
#: libpq failures without a SQLSTATE that no wait can fix (a wrong name, a refused login).
_PERMANENT_WORDS = ("does not exist", "authentication failed", "no password supplied",
                    "no pg_hba.conf entry", "permission denied")


class LedgerUnavailableError(LedgerError, BatchStoppedError):
    """The ledger database did not answer within the retry budget (or cannot say whether a
    write it was committing was saved): nothing more can be recorded, so the batch stops."""

    reason = "ledger-unavailable"


def transient(exc: BaseException) -> bool:
    """Whether ``exc`` is a PostgreSQL connection that was lost or refused for a while, so the
    transaction it was in left nothing behind and may be run again."""
    if not isinstance(exc, sa.exc.DBAPIError):
        return False
    if exc.connection_invalidated:  # SQLAlchemy saw the connection die under a statement
        return True
    orig = exc.orig
    if type(orig).__module__.split(".")[0] != "psycopg":
        return False
    sqlstate = getattr(orig, "sqlstate", None)
    if sqlstate:
        return sqlstate.startswith("08") or sqlstate in _SQLSTATES
    text = str(orig)
    # No SQLSTATE: libpq's own failure to connect or to read (refused, reset, closed, timeout).
    return isinstance(exc, sa.exc.OperationalError) and not any(w in text for w in _PERMANENT_WORDS)


class Outage:
    """The retry budget of one ledger and its memory of an outage that outlasted it."""

    def __init__(self, where: str, budget_s: float | None = None) -> None:
        self.where = where
        self.policy = RetryPolicy(budget_s=DEFAULT_BUDGET_S if budget_s is None else budget_s)
        self.gave_up = False  # the last operation spent its budget: try once until one succeeds
        #: The first time an operation gave up (kept): a batch stops starting files after it.
        self.lost: LedgerUnavailableError | None = None
        self.retries = 0  # how often an operation was run again (the tests report it)
        self._local = threading.local()  # per thread: the deadline of the operation running

    def run(self, fn: Callable[[], T], what: str) -> T:
        """``fn`` (one ledger operation), run again after transient faults until the budget is
        spent; an operation inside another shares the outer one's budget."""
        if getattr(self._local, "deadline", None) is not None:
            return fn()  # the outer operation retries the whole of it
        started = time.monotonic()
        self._local.deadline = started + (0.0 if self.gave_up else self.policy.budget_s)
        attempt = 0
        try:
            while True:
                try:
                    result = fn()
                    self.gave_up = False
                    return result
                except sa.exc.DBAPIError as exc:
                    if not transient(exc):
                        raise
                    attempt += 1
                    left = self._local.deadline - time.monotonic()
                    if left <= 0:
                        raise self._unavailable(exc, time.monotonic() - started) from exc
                    wait = min(self.policy.delay(attempt), left + 0.5)
                    self.retries += 1
                    log.warning("ledger %s: %s: %s; retry %d in %.1f s", self.where, what,
                                first_line(exc), attempt, wait)
                    time.sleep(wait)
        finally:
            self._local.deadline = None

    def committed(self, connect: Callable[[], sa.Connection], xid: int,
                  lost: BaseException) -> bool:
        """Whether the transaction ``xid``, whose COMMIT answer was lost, was committed: asked
        on new connections until the server answers (within the running operation's budget)."""
        deadline = getattr(self._local, "deadline", None) or time.monotonic() + self.policy.budget_s
        attempt = 0
        while True:
            try:
                with connect() as conn:
                    status = conn.execute(sa.text("SELECT txid_status(:xid)"), {"xid": xid}).scalar()
                if status == "committed":
                    log.warning("ledger %s: the answer to a COMMIT was lost (%s); the server "
                                "says it was saved", self.where, first_line(lost))
                    return True
                if status == "aborted":
                    return False
                if status is None:  # too old to know: never guess
                    raise LedgerUnavailableError(f"the ledger database at {self.where} cannot say "
                                                 "whether a write whose answer was lost was saved")
            except sa.exc.DBAPIError as exc:
                if not transient(exc):
                    raise
            attempt += 1  # unreachable still, or "in progress": its backend is still finishing
            if time.monotonic() >= deadline:
                raise self._unavailable(lost, None) from lost
            time.sleep(min(self.policy.delay(attempt), max(0.1, deadline - time.monotonic())))

    def _unavailable(self, exc: BaseException, spent: float | None) -> LedgerUnavailableError:
        self.gave_up = True
        waited = f" for {spent:.0f} s" if spent is not None and spent >= 1 else ""
        lost = LedgerUnavailableError(f"the ledger database at {self.where} did not answer"
                                      f"{waited} ({first_line(exc)})")
        self.lost = self.lost or lost
        return lost


def ridden_out(method: F) -> F:
    """Decorate a ledger operation so that :meth:`Outage.run` rides out a lost database under it."""

    @functools.wraps(method)
    def wrapper(self: Any, *args: Any, **kwargs: Any) -> Any:
        outage: Outage | None = getattr(self, "_outage", None)
        if outage is None:  # SQLite
            return method(self, *args, **kwargs)
        return outage.run(lambda: method(self, *args, **kwargs), method.__name__)

    return wrapper  # type: ignore[return-value]

