"""A write that outlasts the lease keeps it: a second run on the same ledger writes nothing
(issue 24).

Real wiki, real SQLite ledger, the real job (:class:`mwingest.job.machine.Job`) in two threads,
each with its own session, ledger connection and owner, as two processes would have. The first
run's upload request is held by the fault proxy (``hold``: the wiki only acts after the wait)
for several times the lease's lifetime; the second run starts once the lease would have run
out without renewal. No Prefect: the lease is the core's business.
"""

from __future__ import annotations

import threading
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from mwingest.job.context import JobContext
from mwingest.job.machine import Job
from mwingest.job.settings import BatchSettings
from mwingest.ledger.ledger import Ledger
from mwingest.wiki import upload
from mwingest.wiki.connect import open_wiki
from mwingest.wiki.credentials import Credentials
from tests.faultproxy import FaultProxy, file_posts
from tests.integration.clihelpers import sha1_of
from tests.integration.wikihelpers import png_bytes, session_for

pytestmark = pytest.mark.wiki

LEASE = timedelta(seconds=2)
HOLD_S = 8.0  # four lease lifetimes


def _job(api_url: str, wiki: Any, ledger: Ledger, path: Path) -> Job:
    session, rules = open_wiki(Credentials(api_url=api_url, username=wiki.username,
                                           password=wiki.password))
    settings = BatchSettings.from_flat(review_timeout_s=0)
    ctx = JobContext(session, rules, ledger, settings.options(min_chunk_size=rules.min_chunk_size),
                     lease_ttl=LEASE)
    [item] = settings.collect([str(path)])
    return Job(ctx, item)


def test_a_held_upload_keeps_its_lease_and_a_second_run_writes_nothing(
        wiki: Any, tmp_path: Path, unique: Any) -> None:
    path = tmp_path / f"Held {unique()}.png"
    path.write_bytes(png_bytes(size=(10, 10)))
    ledger_file = str(tmp_path / "ledger.sqlite3")
    outcomes: dict[str, Any] = {}
    with FaultProxy(wiki.api_url, stall_seconds=HOLD_S) as proxy, \
            Ledger(ledger_file) as first_ledger, Ledger(ledger_file) as second_ledger:
        proxy.fail_nth(1, "hold", match=file_posts)
        first = _job(proxy.url_for(wiki.api_url), wiki, first_ledger, path)
        thread = threading.Thread(target=lambda: outcomes.update(first=first.run()), daemon=True)
        thread.start()
        deadline = time.monotonic() + 120
        while not proxy.stats.faulted["hold"]:
            assert time.monotonic() < deadline and thread.is_alive(), outcomes
            time.sleep(0.05)
        time.sleep(LEASE.total_seconds() * 1.5)  # without renewal the lease has run out now
        # Through the proxy too (its later requests pass): the ledger keeps rows per wiki URL.
        second = _job(proxy.url_for(wiki.api_url), wiki, second_ledger, path).run()
        thread.join(120)
    assert not thread.is_alive()
    assert (second.outcome, second.reason) == ("failed", "leased"), second
    assert outcomes["first"].outcome == "uploaded", outcomes["first"]
    session = session_for(wiki)
    info = upload.file_info(session, outcomes["first"].filename, history=True)
    assert info is not None and info["sha1"] == sha1_of(path) and len(info["versions"]) == 1
    assert len(upload.find_by_sha1(session, sha1_of(path))) == 1  # one copy, one name
