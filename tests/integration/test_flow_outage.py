"""The wiki unreachable in the middle of a batch: one run rides it out.

The batch (chunked and small files) goes through ``tests/faultproxy.py``; once a few chunks have
passed, the proxy closes its listening socket for ``OUTAGE_S`` (20 s here, with a retry budget
that is 40 s longer, so the test loop stays short; ``MWINGEST_TEST_OUTAGE_S=90`` with the
default 150 s budget is the full scenario, see bench/README.md), so every connect is refused, as
during a wiki restart. The run must end with every file uploaded once (SHA-1 and one version on the wiki),
no file sent again from its start, and a completed flow run.
"""

from __future__ import annotations

import hashlib
import os
import threading
import time

import pytest

from mwingest.job.settings import BatchSettings
from mwingest.wiki import upload
from tests.faultproxy import FaultProxy
from tests.integration.wikihelpers import png_of_size, session_for

pytestmark = [pytest.mark.wiki, pytest.mark.slow]
OUTAGE_S = float(os.environ.get("MWINGEST_TEST_OUTAGE_S", "20"))
#: Long enough to ride out the outage, short enough that a real hang fails the test soon.
BUDGET_S = max(OUTAGE_S + 40, 60.0) if OUTAGE_S < 90 else 150.0
CHUNK = 64 * 1024


def test_an_outage_mid_batch_is_ridden_out_in_one_run(
        wiki, prefect_harness, tmp_path, unique, monkeypatch):
    from flows.ingest import ingest_batch

    monkeypatch.setenv("MWINGEST_USERNAME", wiki.username)
    monkeypatch.setenv("MWINGEST_PASSWORD", wiki.password)
    u = unique()
    folder = tmp_path / "batch"
    folder.mkdir()
    files = {folder / f"Outage big {u} {n}.png": png_of_size(12 * CHUNK + 999 * n) for n in range(2)}
    files |= {folder / f"Outage small {u} {n}.png": png_of_size(20_000 + n) for n in range(6)}
    for path, data in files.items():
        path.write_bytes(data)
    outage: dict[str, float] = {}
    with FaultProxy(wiki.api_url) as proxy:
        def cut() -> None:
            deadline = time.monotonic() + 120
            while sum(x.chunk for x in proxy.stats.exchanges) < 4 and time.monotonic() < deadline:
                time.sleep(0.05)
            with proxy.refuse_connections():
                outage["start"] = time.monotonic()
                time.sleep(OUTAGE_S)
            outage["end"] = time.monotonic()

        cutter = threading.Thread(target=cut, daemon=True)
        cutter.start()
        state = ingest_batch(sources=[str(folder)], wiki=proxy.url_for(wiki.api_url), return_state=True,
                    settings=BatchSettings.from_flat(chunk_size_mb=CHUNK / 1024 / 1024, concurrency=4,
                    review_timeout_s=0, ledger_path=str(tmp_path / "l.sqlite3"),
                    retry_budget_s=BUDGET_S))
        cutter.join(timeout=OUTAGE_S + 60)
    assert outage.get("end", 0) - outage.get("start", 0) >= OUTAGE_S  # the outage did happen
    assert state.is_completed()
    outcomes = {o["source"]: o for o in state.result()}
    session = session_for(wiki)
    for path, data in files.items():
        outcome = outcomes[str(path)]
        assert outcome["outcome"] == "uploaded", outcome
        info = upload.file_info(session, outcome["filename"], history=True)
        assert info["sha1"] == hashlib.sha1(data).hexdigest() and len(info["versions"]) == 1  # noqa: S324
        # Never from its start again: at most the chunk in flight when the wiki went away.
        assert outcome["bytes_sent"] <= len(data) + CHUNK, outcome
    print(f"outage {OUTAGE_S} s ridden out; run took {time.monotonic() - outage['start']:.0f} s "
          "from the cut")
