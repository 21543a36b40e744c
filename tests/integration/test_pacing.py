"""Pacing shared by every worker of an account (``mwingest.wiki.pacing``, ``tasks.pacing``).

Against a real wiki with ``$wgRateLimits`` on uploads for the test account, real Prefect (the
harness: the global concurrency limit lives on its server) and a real ledger. What is asserted is
what the wiki logged (the upload log's timestamps against its own limit), what the ledger's pacing
row holds, and what Prefect's concurrency limit is.
"""

from __future__ import annotations

import time
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from mwingest.base.ratelimit import Limit
from mwingest.job.settings import BatchSettings
from mwingest.ledger.ledger import Ledger
from mwingest.ledger.model import normalise_account
from mwingest.wiki.pacing import SharedPace
from mwingest.wiki.upload import upload_bytes
from tests.integration.test_session import landed, new_session
from tests.integration.wikihelpers import png_bytes

pytestmark = pytest.mark.wiki
HITS, WINDOW_S = 6, 12  # the wiki's limit for the test account: 6 uploads per 12 s


def _upload_times(session: Any, names: set[str]) -> list[float]:
    answer = session.get({"action": "query", "list": "logevents", "letype": "upload",
                          "lelimit": 100, "leprop": "title|timestamp"})
    return sorted(datetime.fromisoformat(e["timestamp"].replace("Z", "+00:00")).timestamp()
                  for e in answer["query"]["logevents"]
                  if e["title"].removeprefix("File:").replace("_", " ") in names)


def test_a_batch_keeps_to_the_accounts_upload_limit_without_one_refusal(
        wiki_factory, prefect_harness, postgres, monkeypatch, tmp_path: Path, unique) -> None:
    """On a shared (PostgreSQL) ledger, as workers on many machines run it."""
    from prefect.client.orchestration import get_client

    from flows.ingest import ingest_batch
    from tasks.pacing import limit_name

    variant = wiki_factory(rate_limits={"upload": {"user": [HITS, WINDOW_S]}})
    for name, value in (("MWINGEST_API_URL", variant.api_url),
                        ("MWINGEST_USERNAME", variant.username),
                        ("MWINGEST_PASSWORD", variant.password)):
        monkeypatch.setenv(name, value)
    u = unique()
    folder = tmp_path / "batch"
    folder.mkdir()
    names = {f"Paced {u} {n}.png" for n in range(9)}
    for n, name in enumerate(sorted(names)):
        (folder / name).write_bytes(png_bytes(seed=n + 7))
    ledger_path = postgres.fresh_url()

    outcomes = ingest_batch(sources=[str(folder)], wiki=variant.api_url, settings=BatchSettings.from_flat(
                   concurrency=4, review_timeout_s=0, ledger_path=str(ledger_path)))

    assert sorted(o["outcome"] for o in outcomes) == ["uploaded"] * len(names), outcomes
    session = new_session(variant.api_url, variant.username, variant.password)
    session.login()
    times = _upload_times(session, names)
    assert len(times) == len(names)
    # Within any window of the wiki's length, no more uploads than it allows (its log has whole
    # seconds, so a window is widened by one).
    for start in times:
        assert sum(start <= t < start + WINDOW_S - 1 for t in times) <= HITS, times
    with Ledger(ledger_path) as ledger:
        state = ledger.pace_state(variant.api_url, normalise_account(session.user))
    assert state is not None and state.limit == Limit(HITS, WINDOW_S)
    assert state.pause_reason is None  # the wiki never said ratelimited (nor anything else)
    with get_client(sync_client=True) as client:
        cap = client.read_global_concurrency_limit_by_name(
            limit_name(variant.api_url, normalise_account(session.user)))
    assert cap.limit == 3 and cap.active_slots == 0


def test_a_retry_after_one_worker_sees_holds_every_worker_of_the_account(
        wiki, tmp_path: Path, unique) -> None:
    """Worker A is told ``maxlag`` with ``Retry-After`` (a lag limit below the wiki's makes it
    say so on demand); worker B, another session on the same ledger, waits it out before its upload."""
    ledger_path = tmp_path / "ledger.sqlite3"
    first, second = Ledger(ledger_path), Ledger(ledger_path)  # two workers' connections
    a = new_session(wiki.api_url, wiki.username, wiki.password, maxlag_retries=0)
    b = new_session(wiki.api_url, wiki.username, wiki.password)
    for session in (a, b):
        session.login()
    account = normalise_account(a.user)
    a.pace = SharedPace(first, wiki.api_url, account)
    b.pace = pace_b = SharedPace(second, wiki.api_url, account)
    a.csrf_token()  # cached: the lagged request is the upload itself, a write
    a.maxlag = -2  # SQLite reports a lag of -1, so only a limit below it trips
    name_a, name_b = f"Lagged {unique()}.png", f"Held {unique()}.png"
    with pytest.raises(Exception, match="lag"):
        upload_bytes(a, png_bytes(), name_a)
    state = second.pace_state(wiki.api_url, account)
    assert state is not None and state.pause_reason == "maxlag"
    asked = state.paused_until - time.time()
    assert asked > 2

    started = time.monotonic()
    upload_bytes(b, png_bytes(), name_b)
    took = time.monotonic() - started
    assert pace_b.waited_s >= asked - 1.5 and took >= asked - 1.5, (pace_b.waited_s, took, asked)
    assert landed(b, name_b) and not landed(b, name_a)
    first.close()
    second.close()
