"""A file task that Prefect ends before its body runs gives its concurrency slot back (issue 24).

Real wiki, real Prefect (the test harness), real ledger. The one scripted part: Prefect's own task
engine is made to fail the first file tasks when it sets them Running (``begin_run``, the API call
before the body), with the error an unreachable API gives. Why scripted: a real server cannot be
made to refuse exactly that call for exactly those tasks on demand, and this is the point the slot
used to leak at (it was given back only by the body).
"""

from __future__ import annotations

import contextvars
import hashlib
import threading
from pathlib import Path

import httpx
import pytest

from mwingest.job.settings import BatchSettings
from mwingest.wiki import upload
from tests.integration.wikihelpers import png_bytes, session_for

pytestmark = pytest.mark.wiki

#: Generous: the batch of five tiny files takes a few seconds; without the fix it never ends.
BOUND_S = 120


def test_tasks_failed_before_their_body_do_not_leak_slots(
        wiki, prefect_harness, tmp_path, unique, monkeypatch):
    from prefect import task_engine

    from flows.ingest import ingest_batch

    monkeypatch.setenv("MWINGEST_API_URL", wiki.api_url)
    monkeypatch.setenv("MWINGEST_USERNAME", wiki.username)
    monkeypatch.setenv("MWINGEST_PASSWORD", wiki.password)
    session = session_for(wiki)
    u = unique()
    folder = tmp_path / "files"
    folder.mkdir()
    for i in range(5):
        (folder / f"Slot {u} {i}.png").write_bytes(png_bytes())

    broken = {"left": 3}  # more than `concurrency`: a leak of each would stop the batch
    lock = threading.Lock()
    real_begin = task_engine.SyncTaskRunEngine.begin_run

    def begin_run(self) -> None:  # noqa: ANN001 - Prefect's engine
        if self.task.name == "ingest-file":
            with lock:
                fail = broken["left"] > 0
                broken["left"] -= fail
            if fail:
                raise httpx.ConnectError("All connection attempts failed")
        real_begin(self)

    monkeypatch.setattr(task_engine.SyncTaskRunEngine, "begin_run", begin_run)
    result: dict = {}

    def run() -> None:
        try:
            result["rows"] = ingest_batch(
                sources=[str(folder)], wiki=wiki.api_url, settings=BatchSettings.from_flat(
                    concurrency=2, review_timeout_s=0, ledger_path=str(tmp_path / "l.sqlite3")))
        except BaseException as exc:  # noqa: BLE001 - the test reports it
            result["error"] = exc

    # The harness's settings live in this thread's context: the batch's thread gets a copy.
    worker = threading.Thread(target=contextvars.copy_context().run, args=(run,), daemon=True)
    worker.start()
    worker.join(BOUND_S)
    assert not worker.is_alive(), "the batch never ended: a concurrency slot leaked"
    assert "error" not in result, result.get("error")

    rows = {Path(r["source"]).name: r for r in result["rows"]}
    assert len(rows) == 5 and broken["left"] == 0
    failed = [r for r in rows.values() if r["outcome"] == "failed"]
    landed = [r for r in rows.values() if r["outcome"] == "uploaded"]
    assert len(failed) == 3 and len(landed) == 2
    for r in landed:  # what the wiki holds: our bytes, one version
        info = upload.file_info(session, r["filename"], history=True)
        local = hashlib.sha1((folder / Path(r["source"]).name).read_bytes()).hexdigest()  # noqa: S324
        assert info is not None and info["sha1"] == local and len(info["versions"]) == 1
