"""Writes kept to what the account may do, across every worker: the shared token bucket in the
ledger database, and a Prefect global concurrency limit as the hard cap of writes in flight.

Why both: the bucket (:mod:`mwingest.pacing`) paces *uploads the wiki counts* over minutes, the
concurrency limit caps *requests in flight* at any instant (Wikimedia asks for at most 3 per
account), and only Prefect's server sees every worker's requests at once. The core never imports
Prefect: this module hands the session a ``write_slot`` and a ``pace`` and takes them back.
"""

from __future__ import annotations

import contextlib
import os
import re
from collections.abc import Iterator
from urllib.parse import urlsplit

from prefect.client.orchestration import get_client
from prefect.concurrency.sync import concurrency
from prefect.logging import get_run_logger

from mwingest.ledger import Ledger
from mwingest.pacing import SharedPace, fetch_limit
from mwingest.session import WikiSession

#: Wikimedia's API etiquette: at most this many write requests in flight per account.
DEFAULT_WRITES_IN_FLIGHT = 3
#: A killed worker's slot comes back after this long (Prefect renews it while the write runs).
SLOT_LEASE_S = 60.0


def writes_in_flight() -> int:
    return max(1, int(os.environ.get("MWINGEST_WRITES_IN_FLIGHT") or DEFAULT_WRITES_IN_FLIGHT))


def limit_name(wiki: str, account: str) -> str:
    """One limit per (wiki, account): ``mwingest-writes commons.wikimedia.org Archivist``."""
    host = urlsplit(wiki).netloc or wiki
    return re.sub(r"[^\w.:@ -]", "_", f"mwingest-writes {host} {account or 'anonymous'}")[:120]


@contextlib.contextmanager
def paced_writes(session: WikiSession, ledger: Ledger, account: str) -> Iterator[SharedPace]:
    """For one run: read the account's limit from the wiki, share its bucket through ``ledger``,
    and hold every write request to the global concurrency limit."""
    log = get_run_logger()
    limit = fetch_limit(session)
    ledger.set_limit(session.api_url, account, limit)
    name = limit_name(session.api_url, account)
    cap = writes_in_flight()
    with get_client(sync_client=True) as client:
        client.upsert_global_concurrency_limit_by_name(name, cap)
    log.info("writes as %s: %s; at most %d in flight (concurrency limit %r)", account or "anonymous",
             f"{limit.hits} uploads per {limit.seconds:g} s, shared by every worker" if limit
             else "no upload limit", cap, name)
    pace = SharedPace(ledger, session.api_url, account)
    session.pace = pace
    session.write_slot = lambda: concurrency(name, occupy=1, lease_duration=SLOT_LEASE_S)
    try:
        yield pace
    finally:
        session.pace = None
        session.write_slot = contextlib.nullcontext
