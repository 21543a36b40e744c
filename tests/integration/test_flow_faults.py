"""Chunk tasks under injected faults, through the real flow: transient faults are retried and the
file lands once; a permanent error fails fast, without a retry.

The faults come from ``tests/faultproxy.py`` in front of the real wiki. The permanent error is the
one scripted answer (``permissiondenied`` in the wiki's own JSON shape) because a real wiki cannot
be made to refuse one chunk in the middle of a session on demand.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from mwingest import upload
from tests.faultproxy import FaultProxy, chunk_posts
from tests.integration.wikihelpers import png_of_size, session_for

pytestmark = pytest.mark.wiki
CHUNK_MB = 0.0625  # 64 KiB: a 300 KB file goes in 5 chunks


@pytest.fixture
def creds_env(wiki, monkeypatch):
    monkeypatch.setenv("MWINGEST_USERNAME", wiki.username)
    monkeypatch.setenv("MWINGEST_PASSWORD", wiki.password)
    monkeypatch.delenv("PREFECT_API_URL", raising=False)


def _chunk_task_runs(flow_run_id) -> dict[str, int]:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    with get_client(sync_client=True) as client:
        runs = client.read_task_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(
            any_=[flow_run_id])))
    return {r.name: r.run_count for r in runs if r.name.startswith("chunk ")}


def test_transient_chunk_faults_are_retried_and_the_file_lands_once(
        wiki, creds_env, prefect_harness, tmp_path, unique):
    from flows.ingest import ingest_batch

    path = tmp_path / f"Faulty {unique()}.png"
    path.write_bytes(png_of_size(300_000))
    with FaultProxy(wiki.api_url) as proxy:
        proxy.fail_nth([2, 4], "drop_after", match=chunk_posts)  # answers lost after the wiki acted
        state = ingest_batch(sources=[str(path)], wiki=proxy.url_for(wiki.api_url),
                             chunk_size_mb=CHUNK_MB, review_timeout_s=0,
                             ledger_path=str(tmp_path / "l.sqlite3"), return_state=True)
        assert proxy.stats.faulted["drop_after"] == 2
    (outcome,) = state.result()
    assert outcome["outcome"] == "uploaded", outcome
    info = upload.file_info(session_for(wiki), outcome["filename"], history=True)
    assert info["sha1"] == hashlib.sha1(path.read_bytes()).hexdigest()  # noqa: S324
    assert len(info["versions"]) == 1
    runs = _chunk_task_runs(state.state_details.flow_run_id)
    assert max(runs.values()) >= 2, runs  # the task that lost its answer ran again


def test_a_permanent_chunk_error_fails_fast_without_retry(
        wiki, creds_env, prefect_harness, tmp_path, unique):
    from flows.ingest import ingest_batch

    path = tmp_path / f"Refused {unique()}.png"
    path.write_bytes(png_of_size(300_000))
    with FaultProxy(wiki.api_url) as proxy:
        proxy.fail_nth(2, "permission_denied", match=chunk_posts)
        state = ingest_batch(sources=[str(path)], wiki=proxy.url_for(wiki.api_url),
                             chunk_size_mb=CHUNK_MB, review_timeout_s=0,
                             ledger_path=str(tmp_path / "l.sqlite3"), return_state=True)
        chunk_requests = sum(1 for x in proxy.stats.exchanges if x.chunk)
    (outcome,) = state.result()
    assert (outcome["outcome"], outcome["reason"]) == ("failed", "permissiondenied")
    assert chunk_requests == 2  # chunk 1, then the refused chunk 2, never sent again
    runs = _chunk_task_runs(state.state_details.flow_run_id)
    assert runs and all(count == 1 for count in runs.values()), runs
    assert upload.file_info(session_for(wiki), Path(path).name) is None
