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

from mwingest.job.settings import BatchSettings
from mwingest.wiki import upload
from tests.faultproxy import FaultProxy, chunk_posts, file_posts, publish_posts
from tests.integration.wikihelpers import png_of_size, session_for
from tests.prefect_server import task_runs_of

pytestmark = pytest.mark.wiki
CHUNK_MB = 0.0625  # 64 KiB: a 300 KB file goes in 5 chunks


@pytest.fixture
def creds_env(wiki, monkeypatch):
    monkeypatch.setenv("MWINGEST_USERNAME", wiki.username)
    monkeypatch.setenv("MWINGEST_PASSWORD", wiki.password)
    monkeypatch.delenv("PREFECT_API_URL", raising=False)


def _chunk_task_runs(flow_run_id) -> dict[str, int]:
    runs = task_runs_of(flow_run_id, lambda rs: bool(rs) and all(
        r.state and r.state.is_final() for r in rs))
    return {r.name: r.run_count for r in runs if r.name.startswith("chunk ")}


def test_transient_chunk_faults_are_retried_and_the_file_lands_once(
        wiki, creds_env, prefect_harness, tmp_path, unique):
    from flows.ingest import ingest_batch

    path = tmp_path / f"Faulty {unique()}.png"
    path.write_bytes(png_of_size(300_000))
    with FaultProxy(wiki.api_url) as proxy:
        proxy.fail_nth([2, 4], "drop_after", match=chunk_posts)  # answers lost after the wiki acted
        state = ingest_batch(sources=[str(path)], wiki=proxy.url_for(wiki.api_url), return_state=True,
                    settings=BatchSettings.from_flat(chunk_size_mb=CHUNK_MB, review_timeout_s=0,
                    ledger_path=str(tmp_path / "l.sqlite3")))
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
        state = ingest_batch(sources=[str(path)], wiki=proxy.url_for(wiki.api_url), return_state=True,
                    settings=BatchSettings.from_flat(chunk_size_mb=CHUNK_MB, review_timeout_s=0,
                    ledger_path=str(tmp_path / "l.sqlite3")))
        chunk_requests = sum(1 for x in proxy.stats.exchanges if x.chunk)
    (outcome,) = state.result()
    assert (outcome["outcome"], outcome["reason"]) == ("failed", "permissiondenied")
    assert chunk_requests == 2  # chunk 1, then the refused chunk 2, never sent again
    runs = _chunk_task_runs(state.state_details.flow_run_id)
    assert runs and all(count == 1 for count in runs.values()), runs
    assert upload.file_info(session_for(wiki), Path(path).name) is None


def _is(**params: str):
    return lambda head: all(head.param(k) == v for k, v in params.items())


def _imageinfo_or_publish(head) -> bool:
    return publish_posts(head) or (head.param("prop") == "imageinfo")


#: kind of request → (proxy match, which matching requests fail, policy, file size, a clash)
KINDS = {
    "login": (_is(action="login"), (1,), {}, 20_000, False),
    "token": (_is(action="query", meta="tokens"), (1,), {}, 20_000, False),
    "siteinfo": (_is(action="query", meta="siteinfo"), (1,), {}, 20_000, False),
    "pre-check": (_is(action="query", list="allimages"), (1,), {}, 1_100_000, False),
    "chunk": (chunk_posts, (2,), {}, 1_100_000, False),
    "final chunk": (chunk_posts, (3,), {}, 1_100_000, False),
    "publish": (publish_posts, (1,), {}, 1_100_000, False),
    "direct upload": (file_posts, (1,), {}, 20_000, False),
    "decision": (publish_posts, (1,), {"exists": "publish"}, 20_000, True),
    "verify": (_imageinfo_or_publish, (1, 2), {}, 1_100_000, False),
}


@pytest.mark.parametrize("mode", ["refuse_before", "drop_after"])
@pytest.mark.parametrize("kind", list(KINDS))
def test_a_fault_at_every_kind_of_request_is_ridden_out_in_one_run(
        kind, mode, wiki, creds_env, prefect_harness, tmp_path, unique):
    """Reset before the wiki saw it, or the wiki acted and the answer is lost: the file lands
    exactly once, in this one run."""
    from flows.ingest import ingest_batch

    match, nths, policy, size, clash = KINDS[kind]
    path = tmp_path / f"Fault {kind} {unique()}.png"
    path.write_bytes(png_of_size(size))
    session = session_for(wiki)
    if clash:
        upload.upload_bytes(session, png_of_size(size + 9), path.name, ignorewarnings=True)
    with FaultProxy(wiki.api_url) as proxy:
        proxy.fail_script(dict.fromkeys(nths, mode), match=match)
        state = ingest_batch(sources=[str(path)], wiki=proxy.url_for(wiki.api_url), return_state=True,
                    settings=BatchSettings.from_flat(chunk_size_mb=0.5, review_timeout_s=0,
                    on_warning=policy, ledger_path=str(tmp_path / "l.sqlite3")))
        faulted = sum(proxy.stats.faulted.values())
    assert state.is_completed()
    (outcome,) = state.result()
    assert faulted == len(nths), proxy.stats.exchanges  # the fault did strike
    assert outcome["outcome"] == "uploaded", outcome
    sha1 = hashlib.sha1(path.read_bytes()).hexdigest()  # noqa: S324
    info = upload.file_info(session, outcome["filename"], history=True)
    assert info["sha1"] == sha1 and len(info["versions"]) == (2 if clash else 1)
    assert len(upload.find_by_sha1(session, sha1)) == 1  # one copy, one name
