"""A big batch sends its small files several to a task run (issue 27): each file still lands
once with its own outcome, a refused file does not stop its group, a big file keeps a task run
of its own with its chunks, and each group's state counts its outcomes. Real wiki, real Prefect
(test harness); asserted on what the wiki holds and what Prefect's API says of the task runs."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from flows.files import GROUP_FILES
from mwingest.job.settings import BatchSettings
from mwingest.wiki import upload
from tests.integration.wikihelpers import png_bytes, png_of_size, session_for
from tests.prefect_server import task_runs_of

pytestmark = pytest.mark.wiki


def test_small_files_share_task_runs_and_each_keeps_its_outcome(
        wiki, prefect_harness, monkeypatch, tmp_path, unique):
    from flows.ingest import ingest_batch

    monkeypatch.setenv("MWINGEST_API_URL", wiki.api_url)
    monkeypatch.setenv("MWINGEST_USERNAME", wiki.username)
    monkeypatch.setenv("MWINGEST_PASSWORD", wiki.password)
    monkeypatch.delenv("PREFECT_API_URL", raising=False)
    session = session_for(wiki)
    u = unique()
    folder = tmp_path / "backlog"
    folder.mkdir()
    files = {f"A{n:02d} {u}.png": png_bytes() for n in range(GROUP_FILES + 1)}
    on_wiki = png_bytes()
    upload.upload_bytes(session, on_wiki, f"Already {u}.png")
    files[f"A03 {u}.png"] = on_wiki  # the same bytes are on the wiki: skipped
    files[f"B broken {u}.png"] = b"\x89PNG\r\n\x1a\n truncated"
    files[f"C big {u}.png"] = png_of_size(150_000)  # three chunks of 64 KiB
    for name, data in files.items():
        (folder / name).write_bytes(data)

    state = ingest_batch(sources=[str(folder)], wiki=wiki.api_url, return_state=True,
                         settings=BatchSettings.from_flat(
                             concurrency=1, chunk_size_mb=0.0625, review_timeout_s=0,
                             ledger_path=str(tmp_path / "ledger.sqlite3")))

    assert state.is_completed()
    outcomes = {Path(r["source"]).name: (r["outcome"], r["reason"]) for r in state.result()}
    assert outcomes.pop(f"A03 {u}.png")[0] == "skipped"
    assert outcomes.pop(f"B broken {u}.png")[0] == "rejected"
    assert {o for o, _ in outcomes.values()} == {"uploaded"} and len(outcomes) == len(files) - 2
    for name in outcomes:  # each on the wiki once, with our bytes
        info = upload.file_info(session, name)
        assert info is not None and info["sha1"] == hashlib.sha1(files[name]).hexdigest(), name
        history = session.get({"action": "query", "prop": "imageinfo", "titles": f"File:{name}",
                               "iiprop": "sha1", "iilimit": 10})
        pages = history["query"]["pages"]
        [page] = pages if isinstance(pages, list) else pages.values()
        assert len(page["imageinfo"]) == 1, name

    def file_runs(tasks):  # the file task runs the server holds in a final state
        return {t.name: (t.state.type.value, t.state.name) for t in tasks
                if t.name.startswith(("file · ", "files · ")) and t.state and t.state.is_final()}

    tasks = task_runs_of(state.state_details.flow_run_id, lambda ts: len(file_runs(ts)) >= 3)
    runs = file_runs(tasks)
    assert runs == {
        f"files · A00 {u}.png … (+{GROUP_FILES - 1})": ("COMPLETED",
                                                       f"{GROUP_FILES - 1} uploaded · 1 skipped"),
        f"files · A{GROUP_FILES:02d} {u}.png … (+1)": ("FAILED", "1 uploaded · 1 rejected"),
        f"file · C big {u}.png": ("COMPLETED", "Uploaded"),
    }, runs
    chunks = [t for t in tasks if t.name.startswith("chunk")]
    assert len(chunks) >= 3, sorted(t.name for t in tasks)  # the big file's chunks, a task each
