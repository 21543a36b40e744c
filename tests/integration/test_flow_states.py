"""What the Prefect UI shows of a batch, read back through the API (issue 29): each file's task
ends in a state named for its outcome, the batch's state counts them, and the run has one table
and one summary (updated in place, not copied). Real wiki, real Prefect (test harness)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mwingest.job.settings import BatchSettings
from mwingest.wiki import upload
from tests.integration.wikihelpers import png_bytes, session_for
from tests.prefect_server import task_runs_of

pytestmark = pytest.mark.wiki


@pytest.fixture
def creds_env(wiki, monkeypatch):
    monkeypatch.setenv("MWINGEST_API_URL", wiki.api_url)
    monkeypatch.setenv("MWINGEST_USERNAME", wiki.username)
    monkeypatch.setenv("MWINGEST_PASSWORD", wiki.password)
    monkeypatch.delenv("PREFECT_API_URL", raising=False)


def test_file_tasks_end_in_states_named_for_their_outcomes(
        wiki, creds_env, prefect_harness, tmp_path, unique):
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import (
        ArtifactFilter,
        ArtifactFilterFlowRunId,
    )

    from flows.ingest import ingest_batch

    session = session_for(wiki)
    u = unique()
    folder = tmp_path / "scans"
    folder.mkdir()
    dup = png_bytes()
    upload.upload_bytes(session, dup, f"Original {u}.png")
    upload.upload_bytes(session, png_bytes(), f"Taken {u}.png")
    files = {f"New {u}.png": png_bytes(), f"Copy {u}.png": dup, f"Taken {u}.png": png_bytes(),
             f"Notes {u}.jpg": b"<!DOCTYPE html><html><body><script>x</script></body></html>"}
    for name, data in files.items():
        (folder / name).write_bytes(data)

    state = ingest_batch(sources=[str(folder)], wiki=wiki.api_url, return_state=True,
                         settings=BatchSettings.from_flat(
                             review_timeout_s=0, ledger_path=str(tmp_path / "ledger.sqlite3")))
    # A rejected file's task is Failed; the batch is not.
    assert state.is_completed()
    assert state.message == "4 files: 1 uploaded, 1 skipped, 1 rejected, 1 needs-review"
    rows = state.result()
    assert {Path(r["source"]).name: r["outcome"] for r in rows} == {
        f"New {u}.png": "uploaded", f"Copy {u}.png": "skipped", f"Taken {u}.png": "needs-review",
        f"Notes {u}.jpg": "rejected"}

    run_id = state.state_details.flow_run_id
    def file_runs(tasks):  # the file task runs the server holds in a final state
        return {t.name: (t.state.type.value, t.state.name) for t in tasks
                if t.name.startswith("file · ") and t.state and t.state.is_final()}

    states = file_runs(task_runs_of(run_id, lambda ts: len(file_runs(ts)) >= 4))
    with get_client(sync_client=True) as client:
        artifacts = client.read_artifacts(artifact_filter=ArtifactFilter(
            flow_run_id=ArtifactFilterFlowRunId(any_=[run_id])))
        run = client.read_flow_run(run_id)
    assert run.name == "import · scans/ · 4 files"  # the run list says what was imported
    assert states == {
        f"file · New {u}.png": ("COMPLETED", "Uploaded"),
        f"file · Copy {u}.png": ("COMPLETED", "Skipped"),
        f"file · Taken {u}.png": ("COMPLETED", "Needs review"),
        f"file · Notes {u}.jpg": ("FAILED", "Rejected"),
    }, states
    # One table, one summary (no before/after copies), with the final rows.
    keys = sorted(a.key for a in artifacts if a.key)
    assert keys == ["ingest-details", "ingest-outcomes", "ingest-progress", "ingest-summary"], keys
    [table] = [a for a in artifacts if a.key == "ingest-outcomes"]
    shown = json.loads(table.data) if isinstance(table.data, str) else table.data
    assert sorted(r["outcome"] for r in shown) == ["needs-review", "rejected", "skipped", "uploaded"]
