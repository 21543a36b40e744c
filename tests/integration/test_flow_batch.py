"""The batch flow end to end: real wiki, real Prefect (test harness), real ledger.

Assertions are on what the wiki holds (SHA-1 of the current version, number of versions) and on
what Prefect recorded (artifacts read back through the client), not on our own log lines.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from mwingest.job.settings import BatchSettings
from mwingest.wiki import upload
from tests.integration.wikihelpers import png_bytes, png_of_size, session_for

pytestmark = pytest.mark.wiki


def _sha1(path: Path) -> str:
    return hashlib.sha1(path.read_bytes()).hexdigest()  # noqa: S324


@pytest.fixture
def creds_env(wiki, monkeypatch):
    monkeypatch.setenv("MWINGEST_API_URL", wiki.api_url)
    monkeypatch.setenv("MWINGEST_USERNAME", wiki.username)
    monkeypatch.setenv("MWINGEST_PASSWORD", wiki.password)
    monkeypatch.delenv("PREFECT_API_URL", raising=False)


def _artifact_rows(flow_run_id) -> list[dict]:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId

    with get_client(sync_client=True) as client:
        arts = client.read_artifacts(artifact_filter=ArtifactFilter(
            flow_run_id=ArtifactFilterFlowRunId(any_=[flow_run_id])))
    by_key = {a.key: a for a in arts if a.key}
    data = by_key["ingest-details"].data
    return json.loads(data) if isinstance(data, str) else data, by_key


def test_mixed_batch_lands_exactly_the_good_ones_and_a_rerun_sends_nothing(
        wiki, creds_env, prefect_harness, tmp_path, unique):
    from flows.ingest import ingest_batch

    session = session_for(wiki)
    u = unique()
    folder = tmp_path / "batch"
    folder.mkdir()
    good = folder / f"Good {u}.png"
    good.write_bytes(png_bytes())
    big = folder / f"Big {u}.png"
    big.write_bytes(png_of_size(300_000))
    bad = folder / f"Bad {u}.jpg"
    bad.write_bytes(b"<!DOCTYPE html><html><body><script>alert(1)</script></body></html>")
    dup_bytes = png_bytes()
    upload.upload_bytes(session, dup_bytes, f"Dup original {u}.png")
    dup = folder / f"Dup copy {u}.png"
    dup.write_bytes(dup_bytes)
    upload.upload_bytes(session, png_bytes(), f"Conflict {u}.png")
    conflict = folder / f"Conflict {u}.png"
    conflict.write_bytes(png_bytes())
    conflict_before = upload.file_info(session, f"Conflict {u}.png")
    ledger = tmp_path / "ledger.sqlite3"

    state = ingest_batch(sources=[str(folder)], wiki=wiki.api_url, return_state=True,
                settings=BatchSettings.from_flat(chunk_size_mb=0.1, review_timeout_s=0,
                ledger_path=str(ledger)))
    outcomes = {Path(o["source"]).name: o for o in state.result()}

    assert {n: o["outcome"] for n, o in outcomes.items()} == {
        good.name: "uploaded", big.name: "uploaded", bad.name: "rejected",
        dup.name: "skipped", conflict.name: "needs-review"}
    for path in (good, big):
        info = upload.file_info(session, outcomes[path.name]["filename"], history=True)
        assert info is not None and info["sha1"] == _sha1(path)
        assert len(info["versions"]) == 1
    assert outcomes[big.name]["bytes_sent"] >= big.stat().st_size  # it went in chunks
    assert outcomes[bad.name]["reason"] == "script-content"
    assert upload.file_info(session, bad.name) is None
    assert outcomes[dup.name]["reason"] == "duplicate"
    assert outcomes[conflict.name]["reason"] == "exists"
    assert outcomes[conflict.name]["filekey"]
    after = upload.file_info(session, f"Conflict {u}.png", history=True)
    assert after["sha1"] == conflict_before["sha1"] and len(after["versions"]) == 1

    rows, arts = _artifact_rows(state.state_details.flow_run_id)
    assert {Path(r["source"]).name: r["outcome"] for r in rows} == {
        n: o["outcome"] for n, o in outcomes.items()}
    assert "ingest-summary" in arts and "ingest-progress" in arts
    assert "Needs review" in arts["ingest-summary"].data

    again = ingest_batch(sources=[str(folder)], wiki=wiki.api_url, settings=BatchSettings.from_flat(
                chunk_size_mb=0.1, review_timeout_s=0, ledger_path=str(ledger)))
    second = {Path(o["source"]).name: o for o in again}
    assert all(o["bytes_sent"] == 0 for o in second.values())
    assert {n: o["outcome"] for n, o in second.items()} == {
        good.name: "skipped", big.name: "skipped", bad.name: "rejected",
        dup.name: "skipped", conflict.name: "needs-review"}
    info = upload.file_info(session, outcomes[big.name]["filename"], history=True)
    assert len(info["versions"]) == 1


def test_duplicates_are_skipped_big_ones_without_sending_their_bytes(
        wiki, creds_env, prefect_harness, tmp_path, unique):
    """Files of at least ``precheck_min_bytes`` (1 MiB) are looked up by SHA-1 first: a duplicate
    is skipped with no byte sent. A smaller duplicate is sent once (that costs about what the
    query would) and the wiki's ``duplicate`` warning stops it: nothing is published either way."""
    from flows.ingest import ingest_batch

    session = session_for(wiki)
    u = unique()
    big, small = png_of_size(1_300_000), png_bytes()
    upload.upload_bytes(session, big, f"Big original {u}.png")
    upload.upload_bytes(session, small, f"Small original {u}.png")
    folder = tmp_path / "dupes"
    folder.mkdir()
    (folder / f"Big copy {u}.png").write_bytes(big)
    (folder / f"Small copy {u}.png").write_bytes(small)

    rows = ingest_batch(sources=[str(folder)], wiki=wiki.api_url, settings=BatchSettings.from_flat(
               review_timeout_s=0, ledger_path=str(tmp_path / "ledger.sqlite3")))
    out = {Path(o["source"]).name: o for o in rows}
    assert [(o["outcome"], o["reason"]) for o in out.values()] == [("skipped", "duplicate")] * 2
    assert out[f"Big copy {u}.png"]["bytes_sent"] == 0
    assert out[f"Small copy {u}.png"]["bytes_sent"] == len(small)
    for name in out:
        assert upload.file_info(session, name) is None
