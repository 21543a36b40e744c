"""Writes kept to what the account may do, across every worker: the shared token bucket in the
ledger database, and a Prefect global concurrency limit as the hard cap of writes in flight.

Why both: the bucket (:mod:`mwingest.wiki.pacing`) paces *uploads the wiki counts* over minutes, the
concurrency limit caps *requests in flight* at any instant (Wikimedia asks for at most 3 per
account), and only Prefect's server sees every worker's requests at once. The core never imports
Prefect: this module hands the session a ``write_slot`` and a ``pace`` and takes them back.
"""

from __future__ import annotations

import contextlib
import os
import re
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import urlsplit

import httpx
from prefect.client.orchestration import get_client
from prefect.logging import get_run_logger

from mwingest.base.errors import WriteCapUnavailableError
from mwingest.base.ratelimit import duration, pace_for
from mwingest.base.retry import parse_retry_after
from mwingest.ledger.ledger import Ledger
from mwingest.wiki.pacing import PaceNote, SharedPace, fetch_limits
from mwingest.wiki.session import WikiSession

#: Wikimedia's API etiquette: at most this many write requests in flight per account.
DEFAULT_WRITES_IN_FLIGHT = 3
#: A killed worker's slot comes back after this long (Prefect renews it while the write runs).
SLOT_LEASE_S = 60.0
#: How long the run's writes wait through the Prefect server's own troubles (503s under load, a
#: restart) before they fail with ``write-cap-unavailable``: counted from the first failed call
#: since the last good one, for the whole run, so a dead server stops the batch within about
#: this long instead of once per file (issue 24 asks for an end within 60 s).
SLOT_BUDGET_S = 60.0


def writes_in_flight() -> int:
    """``MWINGEST_WRITES_IN_FLIGHT`` (default 3; 0: no cap)."""
    value = os.environ.get("MWINGEST_WRITES_IN_FLIGHT")
    return max(0, int(value)) if value else DEFAULT_WRITES_IN_FLIGHT


def limit_name(wiki: str, account: str) -> str:
    """One limit per (wiki, account): ``mwingest-writes commons.wikimedia.org Archivist``."""
    host = urlsplit(wiki).netloc or wiki
    return re.sub(r"[^\w.:@ -]", "_", f"mwingest-writes {host} {account or 'anonymous'}")[:120]


@contextlib.contextmanager
def paced_writes(session: WikiSession, ledger: Ledger, account: str, *,
                 remaining: Callable[[], int] | None = None,
                 on_wait: Callable[[PaceNote], None] | None = None) -> Iterator[SharedPace]:
    """For one run: read the account's limits from the wiki, share their bucket through ``ledger``,
    and hold every write request to the cap of writes in flight: in this process always, and
    across machines through Prefect's global concurrency limit when the ledger is shared
    (PostgreSQL). On one machine the process's own cap is the same cap without the two API calls
    per write, which a SQLite-backed Prefect server answers slowly under load (503, then a retry
    after ~2 s: measured 46 s instead of 7 s for 60 small files).

    The run's log says the pace once, and each time a file waits a second or more for the limit
    (or for a pause), with how long the rest of the batch takes at that pace (``remaining``:
    uploads still to make); ``on_wait`` is told the same (the progress display)."""
    log = get_run_logger()
    limits = fetch_limits(session)
    ledger.set_limit(session.api_url, account, limits)
    paced = pace_for(limits)

    def told(note: PaceNote) -> None:
        log.info("%s", note.message())
        if on_wait is not None:
            on_wait(note)

    name = limit_name(session.api_url, account)
    cap = writes_in_flight()
    log.info("writes as %s: %s; at most %s in flight%s", account or "anonymous",
             f"uploads paced at {paced.describe()}, shared by every worker" if paced
             else "no upload limit", cap or "any number",
             f" on every machine (concurrency limit {name!r})" if cap and ledger.dialect != "sqlite"
             else "")
    if paced is not None and remaining is not None:
        log.info("at that pace the batch's %d uploads take about %s", remaining(),
                 duration(paced.seconds_for(remaining(), paced.capacity)))
    pace = SharedPace(ledger, session.api_url, account, refresh=lambda: fetch_limits(session),
                      on_wait=told, remaining=remaining)
    session.pace = pace
    local = threading.BoundedSemaphore(cap) if cap else None
    with contextlib.ExitStack() as stack:
        shared = None
        if cap and ledger.dialect != "sqlite":  # a shared ledger: other machines write too
            client = stack.enter_context(get_client(sync_client=True))
            client.upsert_global_concurrency_limit_by_name(name, cap)
            shared = WriteSlots(client, name)
        session.write_slot = lambda: _slot(local, shared)
        try:
            yield pace
        finally:
            session.pace = None
            session.write_slot = contextlib.nullcontext


@contextlib.contextmanager
def _slot(local: threading.BoundedSemaphore | None, shared: WriteSlots | None) -> Iterator[None]:
    """This process's own cap first (free), then the one every machine shares (two API calls)."""
    with local or contextlib.nullcontext(), shared() if shared else contextlib.nullcontext():
        yield


class WriteSlots:
    """One slot of the account's global concurrency limit around each write request.

    Why not Prefect's ``concurrency()`` helper: it starts a lease-renewal service per call and
    cost 0.65 s per write here (60 small files: 46 s instead of 7 s). This asks Prefect's API
    directly, two requests per write: take a slot with a lease, give it back. The lease is
    renewed only for a write that outlasts half of it (a slow chunk), and a killed worker's slot
    comes back when its lease runs out."""

    def __init__(self, client: Any, name: str, lease_s: float = SLOT_LEASE_S,
                 budget_s: float = SLOT_BUDGET_S) -> None:
        self.client, self.name, self.lease_s, self.budget_s = client, name, lease_s, budget_s
        #: When the server's trouble began (monotonic), shared by every write of the run: one
        #: file's wait counts for the next, so a dead server costs one budget, not one per file.
        self._troubled_since: float | None = None
        self._trouble_lock = threading.Lock()

    @contextlib.contextmanager
    def __call__(self) -> Iterator[None]:
        lease_id = self._acquire()
        done = threading.Event()
        renewer = threading.Thread(target=self._renew, args=(lease_id, done), daemon=True,
                                   name="mwingest-slot-lease")
        renewer.start()
        try:
            yield
        finally:
            done.set()
            with contextlib.suppress(Exception):  # the lease runs out by itself
                self.client.release_concurrency_slots_with_lease(lease_id)

    def _acquire(self) -> Any:
        """A slot's lease id. Every slot taken (423) means wait; so does a server in trouble
        (5xx, 429, no connection: a SQLite-backed server answers 503 under load, measured), until
        the run's trouble has lasted ``budget_s``, honouring its ``Retry-After``. Anything else
        is our bug: raised."""
        wait = 0.05
        while True:
            try:
                answer = self.client.increment_concurrency_slots_with_lease(
                    [self.name], 1, "concurrency", self.lease_s)
                lease_id = answer.json()["lease_id"]
                self._trouble(None)
                return lease_id
            except httpx.HTTPStatusError as exc:
                status = exc.response.status_code
                if status == 423:  # Locked: every slot is taken (the server answers: no trouble)
                    self._trouble(None)
                    pause = wait
                elif status >= 500 or status == 429:
                    asked = parse_retry_after(exc.response.headers.get("Retry-After"))
                    pause = self._trouble(f"HTTP {status}", asked or max(wait, 0.5))
                else:
                    raise
            except httpx.TransportError as exc:
                pause = self._trouble(type(exc).__name__, max(wait, 0.5))
            time.sleep(min(pause, 10.0))
            wait = min(wait * 2, 1.0)

    def _trouble(self, problem: str | None, pause: float = 0.0) -> float:
        """Note a good answer (``problem`` None) or a failed call; past the budget, raise."""
        with self._trouble_lock:
            if problem is None:
                self._troubled_since = None
                return pause
            now = time.monotonic()
            self._troubled_since = self._troubled_since or now
            if now - self._troubled_since >= self.budget_s:
                raise WriteCapUnavailableError(
                    f"the Prefect server did not hand out a write slot of {self.name!r} for "
                    f"{now - self._troubled_since:.0f} s ({problem})")
            return min(pause, self._troubled_since + self.budget_s - now + 0.01)

    def _renew(self, lease_id: Any, done: threading.Event) -> None:
        while not done.wait(self.lease_s / 2):
            with contextlib.suppress(Exception):
                self.client.renew_concurrency_lease(lease_id, self.lease_s)
