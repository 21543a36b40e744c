"""The human review path through a real local Prefect server and the real wiki (issue 4).

The batch flow runs in a subprocess against ``prefect server start`` (fixture ``prefect_server``),
the way a user runs it; this test process plays the reviewer: it finds the paused review run on
the server, reads the form's description, and resumes it with a decision, as the UI's Resume
dialog would. Assertions are on what the wiki holds (SHA-1s, number of versions), on the ledger
file, and on what the flow returned; a timed-out review is then resolved later from its stash key.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from mwingest.ledger.ledger import Ledger, State
from mwingest.wiki import upload
from mwingest.wiki.names import title_key as key
from tests.integration.wikihelpers import png_bytes, session_for

pytestmark = pytest.mark.wiki

REPO = Path(__file__).resolve().parents[2]
#: How long the flow waits for the reviewer in the resume cases (the test resumes within seconds).
REVIEW_WAIT_S = 120
PROCESS_TIMEOUT_S = 180
FIND_PAUSED_TIMEOUT_S = 90
_MARK = "MWINGEST-RESULT "
#: Runs one flow (``module:function``) with JSON keyword arguments; prints its return value as JSON.
_RUNNER = f"""
import importlib, json, sys
module, name = sys.argv[1].split(":")
result = getattr(importlib.import_module(module), name)(**json.loads(sys.argv[2]))
print({_MARK!r} + json.dumps(result), flush=True)
"""


class FlowProcess:
    """A flow running in a child process; its output goes to files (a full pipe would block it)."""

    def __init__(self, target: str, kwargs: dict[str, Any], env: dict[str, str], logs: Path) -> None:
        self.out_path, self.err_path = logs / "stdout.txt", logs / "stderr.txt"
        with open(self.out_path, "wb") as out, open(self.err_path, "wb") as err:
            self.process = subprocess.Popen(
                [sys.executable, "-c", _RUNNER, target, json.dumps(kwargs)], cwd=REPO, env=env,
                stdout=out, stderr=err, stdin=subprocess.DEVNULL, start_new_session=True)

    def output(self) -> str:
        return (f"--- stdout\n{self.out_path.read_text(errors='replace')[-4000:]}\n"
                f"--- stderr\n{self.err_path.read_text(errors='replace')[-6000:]}")

    def running(self) -> bool:
        return self.process.poll() is None

    def result(self) -> Any:
        """Wait for the exit; the flow's return value. A non-zero exit fails with the output."""
        try:
            code = self.process.wait(timeout=PROCESS_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            self.stop()
            pytest.fail(f"the flow process did not finish in {PROCESS_TIMEOUT_S} s\n{self.output()}")
        assert code == 0, f"the flow process exited {code}\n{self.output()}"
        lines = [ln for ln in self.out_path.read_text().splitlines() if ln.startswith(_MARK)]
        assert len(lines) == 1, f"no result line\n{self.output()}"
        return json.loads(lines[0][len(_MARK):])

    def stop(self) -> None:
        if self.running():
            self.process.kill()
            self.process.wait()


@pytest.fixture
def flow_env(prefect_server, wiki) -> dict[str, str]:
    """A client process's env: the server's settings plus the wiki credentials (env, not argv)."""
    base = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "MWINGEST_"))}
    return {**base, **prefect_server.env, "MWINGEST_API_URL": wiki.api_url,
            "MWINGEST_USERNAME": wiki.username, "MWINGEST_PASSWORD": wiki.password}


@pytest.fixture
def run_flow(flow_env, tmp_path):
    """``run_flow("flows.ingest:ingest_batch", **kwargs) -> FlowProcess``; killed at teardown."""
    started: list[FlowProcess] = []

    def _run(target: str, **kwargs: Any) -> FlowProcess:
        logs = tmp_path / f"proc{len(started)}"
        logs.mkdir()
        started.append(FlowProcess(target, kwargs, flow_env, logs))
        return started[-1]

    yield _run
    for proc in started:
        proc.stop()


@contextmanager
def _client(prefect_server) -> Iterator[Any]:  # type: ignore[no-untyped-def]
    """A sync Prefect client for the test server (the test process has no profile of its own)."""
    from prefect.client.orchestration import get_client
    from prefect.settings import PREFECT_API_URL, temporary_settings

    with (temporary_settings(updates={PREFECT_API_URL: prefect_server.api_url}),
          get_client(sync_client=True) as client):
        yield client


def _review_runs(client, target: str, states: list[str] | None = None) -> list:  # type: ignore[no-untyped-def]
    from prefect.client.schemas.filters import (
        FlowRunFilter,
        FlowRunFilterName,
        FlowRunFilterState,
        FlowRunFilterStateType,
    )
    from prefect.client.schemas.objects import StateType

    state = (FlowRunFilterState(type=FlowRunFilterStateType(any_=[StateType(s) for s in states]))
             if states else None)
    return client.read_flow_runs(flow_run_filter=FlowRunFilter(
        name=FlowRunFilterName(any_=[f"review · {target}"]), state=state))


def _wait_for_form(prefect_server, proc: FlowProcess, target: str):  # type: ignore[no-untyped-def]
    """The paused review run for ``target`` and its form's description, once both are there.

    Prefect sets the run PAUSED *before* it stores the form's schema and description, and the
    server rejects a resume whose schema is missing ("Run input schema not found"), so a reviewer
    (like the UI) must wait for the form, not just for the state. The description is stored last.
    """
    import httpx
    from prefect.input.run_input import keyset_from_paused_state

    deadline = time.monotonic() + FIND_PAUSED_TIMEOUT_S
    with _client(prefect_server) as client:
        while time.monotonic() < deadline:
            for run in _review_runs(client, target, ["PAUSED"]):
                key = keyset_from_paused_state(run.state)["description"]
                try:
                    return run, json.loads(client.read_flow_run_input(run.id, key))
                except httpx.HTTPStatusError as exc:
                    if exc.response.status_code != 404:
                        raise
            if not proc.running():
                pytest.fail(f"the flow ended before pausing for review\n{proc.output()}")
            time.sleep(0.5)
    pytest.fail(f"no review form for {target} within {FIND_PAUSED_TIMEOUT_S} s\n{proc.output()}")


def _resume(prefect_server, run, run_input: dict[str, Any]) -> None:  # type: ignore[no-untyped-def]
    from prefect.flow_runs import resume_flow_run
    from prefect.settings import PREFECT_API_URL, temporary_settings

    with temporary_settings(updates={PREFECT_API_URL: prefect_server.api_url}):
        resume_flow_run(run.id, run_input=run_input)


def _sha1(data: bytes) -> str:
    return hashlib.sha1(data).hexdigest()  # noqa: S324


@pytest.fixture
def conflict(wiki, tmp_path, unique) -> dict[str, Any]:
    """A file on the wiki, and a local file with the same name and other bytes (→ ``exists``)."""
    session = session_for(wiki)
    name = f"Review {unique()}.png"
    theirs, ours = png_bytes(), png_bytes()
    upload.upload_bytes(session, theirs, name)
    folder = tmp_path / "batch"
    folder.mkdir()
    (folder / name).write_bytes(ours)
    return {"session": session, "name": name, "folder": folder, "path": folder / name,
            "theirs": _sha1(theirs), "ours": _sha1(ours), "ledger": tmp_path / "ledger.sqlite3"}


def _ledger_row(path: Path, item_id: int):  # type: ignore[no-untyped-def]
    with Ledger(path) as ledger:
        return ledger.get(item_id)


@pytest.mark.parametrize("action", ["skip", "publish", "rename"])
def test_reviewer_decision_through_the_pause_form_is_carried_out(
        action, wiki, prefect_server, run_flow, conflict):
    name, session = conflict["name"], conflict["session"]
    new_name = name.replace(".png", " renamed.png")
    proc = run_flow("flows.ingest:ingest_batch", sources=[str(conflict["folder"])], wiki=wiki.api_url,
                    settings={"review_timeout_s": REVIEW_WAIT_S, "ledger_path": str(conflict["ledger"])})

    paused, text = _wait_for_form(prefect_server, proc, name)
    assert name in text and "`exists`" in text
    assert conflict["ours"] in text and conflict["theirs"] in text  # both files' facts for the human
    if action == "skip":  # no decision is preselected: a Resume without one is refused
        with pytest.raises(RuntimeError, match="'action' is a required property"):
            _resume(prefect_server, paused, {"note": "pressed Resume without choosing"})
    answer = {"action": action, **({"new_filename": new_name} if action == "rename" else {})}
    _resume(prefect_server, paused, answer)
    [outcome] = proc.result()

    row = _ledger_row(conflict["ledger"], outcome["ledger_id"])
    assert row.decision["action"] == action and row.decision["by"] == "reviewer"
    theirs_now = upload.file_info(session, name, history=True)
    if action == "skip":
        assert (outcome["outcome"], outcome["reason"]) == ("skipped", "exists")
        assert row.state is State.SKIPPED
        assert theirs_now["sha1"] == conflict["theirs"] and len(theirs_now["versions"]) == 1
    elif action == "publish":
        assert (outcome["outcome"], outcome["reason"]) == ("uploaded", "decided-publish")
        assert key(outcome["filename"]) == key(name) and row.state is State.UPLOADED
        assert key(row.final_name) == key(name)
        assert theirs_now["sha1"] == conflict["ours"] and len(theirs_now["versions"]) == 2
        assert theirs_now["versions"][1]["sha1"] == conflict["theirs"]
    else:
        assert (outcome["outcome"], outcome["reason"]) == ("uploaded", "decided-rename")
        assert key(outcome["filename"]) == key(new_name) and row.state is State.UPLOADED
        assert key(row.final_name) == key(new_name) and row.decision["name"] == new_name
        renamed = upload.file_info(session, new_name, history=True)
        assert renamed["sha1"] == conflict["ours"] and len(renamed["versions"]) == 1
        assert theirs_now["sha1"] == conflict["theirs"] and len(theirs_now["versions"]) == 1

    with _client(prefect_server) as client:
        [review] = _review_runs(client, name)
    assert review.state.is_completed()


def test_unanswered_review_stays_needs_review_and_is_resolved_later_from_the_stash(
        wiki, prefect_server, run_flow, conflict):
    name, session = conflict["name"], conflict["session"]
    new_name = name.replace(".png", " later.png")
    proc = run_flow("flows.ingest:ingest_batch", sources=[str(conflict["folder"])], wiki=wiki.api_url,
                    settings={"review_timeout_s": 3, "ledger_path": str(conflict["ledger"])})
    [outcome] = proc.result()

    assert (outcome["outcome"], outcome["reason"]) == ("needs-review", "exists")
    assert outcome["filekey"]
    row = _ledger_row(conflict["ledger"], outcome["ledger_id"])
    assert row.state is State.NEEDS_REVIEW and row.filekey == outcome["filekey"]
    with _client(prefect_server) as client:
        [review] = _review_runs(client, name)
    assert review.state.is_failed()  # the pause timed out; the batch carried on
    assert upload.file_info(session, new_name) is None

    # Resolving must publish from the stash key: with the local file gone, re-sending is impossible.
    conflict["path"].unlink()
    resolved = run_flow("flows.resolve:resolve_review", item_id=outcome["ledger_id"],
                        decision="rename", new_filename=new_name, wiki=wiki.api_url,
                        ledger_path=str(conflict["ledger"])).result()

    assert (resolved["outcome"], resolved["reason"]) == ("uploaded", "decided-rename")
    assert key(resolved["filename"]) == key(new_name) and resolved["bytes_sent"] == 0
    renamed = upload.file_info(session, new_name, history=True)
    assert renamed["sha1"] == conflict["ours"] and len(renamed["versions"]) == 1
    theirs_now = upload.file_info(session, name, history=True)
    assert theirs_now["sha1"] == conflict["theirs"] and len(theirs_now["versions"]) == 1
    row = _ledger_row(conflict["ledger"], outcome["ledger_id"])
    assert row.state is State.UPLOADED and key(row.final_name) == key(new_name)
    assert row.decision["action"] == "rename" and row.decision["by"] == "resolve-review"


def test_ten_conflicts_are_asked_at_once_and_answered_in_any_order(
        prefect_server, wiki, run_flow, tmp_path, unique):
    """Every file that needs a person has its form open at the same time (not one after another,
    each waiting up to the timeout); answering them in a shuffled order finishes the run."""
    import random

    session = session_for(wiki)
    folder = tmp_path / "ten"
    folder.mkdir()
    names = [f"Ten {unique()} {n}.png" for n in range(10)]
    ours = {}
    for name in names:
        upload.upload_bytes(session, png_bytes(), name)
        data = png_bytes()
        (folder / name).write_bytes(data)
        ours[name] = _sha1(data)
    proc = run_flow("flows.ingest:ingest_batch", sources=[str(folder)],
                    settings={"concurrency": 4, "review_timeout_s": REVIEW_WAIT_S,
                              "ledger_path": str(tmp_path / "l.sqlite3")})
    forms = {name: _wait_for_form(prefect_server, proc, name)[0] for name in names}
    with _client(prefect_server) as client:  # all ten are paused together, before any answer
        paused = [r for name in names for r in _review_runs(client, name, ["PAUSED"])]
    assert len(paused) == 10, [r.name for r in paused]
    order = names[:]
    random.Random(7).shuffle(order)
    for n, name in enumerate(order):
        decision = {"action": "rename", "new_filename": f"{name[:-4]} renamed.png", "note": ""} \
            if n % 2 else {"action": "skip", "new_filename": "", "note": ""}
        _resume(prefect_server, forms[name], decision)
    result = {Path(o["source"]).name: o for o in proc.result()}
    for n, name in enumerate(order):
        outcome = result[name]
        if n % 2:
            assert (outcome["outcome"], outcome["reason"]) == ("uploaded", "decided-rename")
            info = upload.file_info(session, f"{name[:-4]} renamed.png")
            assert info is not None and info["sha1"] == ours[name]
        else:
            assert (outcome["outcome"], outcome["reason"]) == ("skipped", "exists")
