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


# --- issue 28: the pace against the wiki's own limits, on an ordinary account -----------------
#
# What is checked is what the wiki recorded: its upload log (whole seconds) and its rate
# limiter's own log of refusals (logs/ratelimit.log, one line per "User tripped rate limit").
# A window is checked soundly on whole seconds: two uploads whose stamps differ by at most
# ``seconds`` may have been less than ``seconds`` apart, so they are counted together.

def _refusals(variant: Any) -> list[float]:
    log = variant.root / "logs" / "ratelimit.log"
    lines = log.read_text(encoding="utf-8").splitlines() if log.exists() else []
    return [datetime.fromisoformat(line[:19] + "+00:00").timestamp() for line in lines
            if "tripped rate limit" in line]


def _most_in_a_window(times: list[float], seconds: float) -> int:
    return max((sum(0 <= t - s <= seconds for t in times) for s in times), default=0)


def _ordinary_import(variant: Any, monkeypatch: pytest.MonkeyPatch) -> Any:
    """The test account as the batch will log in: no ``noratelimit`` (sysops and bots have it)."""
    for name, value in (("MWINGEST_API_URL", variant.api_url),
                        ("MWINGEST_USERNAME", variant.username),
                        ("MWINGEST_PASSWORD", variant.password)):
        monkeypatch.setenv(name, value)
    session = new_session(variant.api_url, variant.username, variant.password)
    session.login()
    rights = session.get({"action": "query", "meta": "userinfo", "uiprop": "rights|groups"})
    info = rights["query"]["userinfo"]
    assert "noratelimit" not in info["rights"] and "sysop" not in info["groups"], info
    return session


def _folder(tmp_path: Path, tag: str, count: int, seed: int) -> tuple[Path, set[str]]:
    folder = tmp_path / tag
    folder.mkdir()
    names = {f"{tag} {n:02d}.png" for n in range(count)}
    for n, name in enumerate(sorted(names)):
        (folder / name).write_bytes(png_bytes(seed=seed + n))
    return folder, names


def _import(folder: Path, variant: Any, ledger_path: Path, concurrency: int = 4) -> list[dict]:
    from flows.ingest import ingest_batch

    return ingest_batch(sources=[str(folder)], wiki=variant.api_url, settings=BatchSettings.from_flat(
        concurrency=concurrency, review_timeout_s=0, ledger_path=str(ledger_path)))


def test_twenty_files_at_ninety_percent_of_the_limit_without_one_refusal(
        wiki_factory, prefect_harness, monkeypatch, tmp_path: Path, unique) -> None:
    """19 uploads per 40 s: the limit lets 20 files through in 40 s (19, then one a window
    later); paced at 90 % they take about 43 s, and the wiki refuses none."""
    hits, seconds, count = 19, 40, 20
    variant = wiki_factory(rate_limits={"upload": {"user": [hits, seconds]}},
                           extra_settings="# issue 28: one limit")
    session = _ordinary_import(variant, monkeypatch)
    folder, names = _folder(tmp_path, f"Pace {unique()}", count, seed=2800)

    outcomes = _import(folder, variant, tmp_path / "ledger.sqlite3")

    assert sorted(o["outcome"] for o in outcomes) == ["uploaded"] * count, outcomes
    times = _upload_times(session, names)
    assert len(times) == count and _refusals(variant) == []
    assert _most_in_a_window(times, seconds) <= hits, times
    allowed = (count - 1) // hits * seconds  # the shortest span the limit permits
    assert times[-1] - times[0] <= 1.15 * allowed, (times[-1] - times[0], allowed)


def test_with_two_limits_the_tighter_one_governs(
        wiki_factory, prefect_harness, monkeypatch, tmp_path: Path, unique) -> None:
    """An account that is not yet autoconfirmed has two limits the wiki counts: ``newbie``
    (6 per 10 s) and ``ip`` (8 per 30 s, the tighter rate). Paced at the looser one, 9 files
    would all land within 30 s; the wiki's log shows neither limit passed, and no refusal."""
    variant = wiki_factory(rate_limits={"upload": {"newbie": [6, 10], "ip": [8, 30]}},
                           extra_settings="$wgAutoConfirmCount = 1000000;  # issue 28: newbie")
    session = _ordinary_import(variant, monkeypatch)
    answer = session.get({"action": "query", "meta": "userinfo", "uiprop": "ratelimits"})
    assert set(answer["query"]["userinfo"]["ratelimits"]["upload"]) == {"newbie", "ip"}
    folder, names = _folder(tmp_path, f"Two limits {unique()}", 9, seed=2900)
    ledger_path = tmp_path / "ledger.sqlite3"

    outcomes = _import(folder, variant, ledger_path)

    assert sorted(o["outcome"] for o in outcomes) == ["uploaded"] * 9, outcomes
    times = _upload_times(session, names)
    assert len(times) == 9 and _refusals(variant) == []
    assert _most_in_a_window(times, 10) <= 6 and _most_in_a_window(times, 30) <= 8, times
    with Ledger(ledger_path) as ledger:
        state = ledger.pace_state(variant.api_url, normalise_account(session.user))
    assert state is not None and set(state.limits) == {Limit(6, 10), Limit(8, 30)}
    assert state.limit == Limit(8, 30)
    assert state.refill_per_s == pytest.approx(0.9 * 8 / 30)


def test_two_imports_on_one_account_keep_to_its_limit_together(
        wiki_factory, prefect_harness, monkeypatch, tmp_path: Path, unique) -> None:
    """Two batches at once, as two people start them, on one ledger: one bucket between them."""
    import threading

    hits, seconds = 8, 20
    variant = wiki_factory(rate_limits={"upload": {"user": [hits, seconds]}},
                           extra_settings="# issue 28: two imports")
    session = _ordinary_import(variant, monkeypatch)
    u = unique()
    batches = [_folder(tmp_path, f"Import {side} {u}", 6, seed=3000 + 10 * n)
               for n, side in enumerate(("A", "B"))]
    ledger_path = tmp_path / "ledger.sqlite3"
    results: dict[int, list[dict]] = {}
    threads = [threading.Thread(target=lambda n=n, f=f: results.__setitem__(
        n, _import(f, variant, ledger_path, concurrency=2))) for n, (f, _) in enumerate(batches)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    for n in (0, 1):
        assert sorted(o["outcome"] for o in results[n]) == ["uploaded"] * 6, results
    times = _upload_times(session, batches[0][1] | batches[1][1])
    assert len(times) == 12 and _refusals(variant) == []
    assert _most_in_a_window(times, seconds) <= hits, times


def test_a_limit_lowered_mid_run_pauses_every_worker_and_the_batch_finishes(
        wiki_factory, prefect_harness, monkeypatch, tmp_path: Path, unique) -> None:
    """The wiki's limit drops from 8 to 2 per 10 s while 4 workers upload: the wiki refuses
    (``ratelimited``) the uploads in flight, every worker pauses, the limits are read again and
    the rest goes at the new pace. Every file lands once; no refusal after the pause."""
    import threading

    variant = wiki_factory(rate_limits={"upload": {"user": [8, 10]}},
                           extra_settings=f"# issue 28: lowered {unique()}")
    session = _ordinary_import(variant, monkeypatch)
    folder, names = _folder(tmp_path, f"Lowered {unique()}", 6, seed=3100)
    ledger_path = tmp_path / "ledger.sqlite3"
    results: list[list[dict]] = []
    run = threading.Thread(target=lambda: results.append(_import(folder, variant, ledger_path)))
    run.start()
    deadline = time.monotonic() + 120
    while len(_upload_times(session, names)) < 3 and time.monotonic() < deadline:
        time.sleep(0.2)
    variant.set_setting("$wgRateLimits['upload']['user'] = [2, 10];")
    lowered_at = time.time()
    run.join()

    assert sorted(o["outcome"] for o in results[0]) == ["uploaded"] * 6, results
    answer = session.get({"action": "query", "list": "logevents", "letype": "upload",
                          "lelimit": 100, "leprop": "title"})
    titles = [e["title"] for e in answer["query"]["logevents"]
              if e["title"].removeprefix("File:").replace("_", " ") in names]
    assert sorted(titles) == sorted(set(titles)) and len(titles) == 6  # each file once
    refusals = _refusals(variant)
    assert refusals, "the wiki never refused: the limit was not lowered in time"
    assert max(refusals) - min(refusals) <= 3, refusals  # the uploads in flight, then nothing
    times = _upload_times(session, names)
    after = [t for t in times if t >= int(lowered_at) + 1]
    assert _most_in_a_window(after, 10) <= 2, (after, refusals)
    with Ledger(ledger_path) as ledger:
        state = ledger.pace_state(variant.api_url, normalise_account(session.user))
    assert state is not None and state.limits == (Limit(2, 10),)
    assert state.pause_reason == "ratelimited"
