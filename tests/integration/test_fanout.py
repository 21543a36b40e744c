"""A planned import on two "machines": a process work pool, two workers with homes of their own,
one PostgreSQL ledger, one wiki (``flows/fanout.py``).

Everything as a team runs it: ``prefect deploy --all`` from ``prefect.yaml``, ``prefect worker
start`` twice, the ``planned-import`` deployment triggered through the client (the UI's Run
button). Asserted is what the wiki holds (each file's SHA-1, one version each), what the shared
ledger holds (one row per file), which worker ran which shard (each worker's own log), and the
report run's outcome table.
"""

from __future__ import annotations

import contextlib
import hashlib
import signal
import threading
import time
from collections import Counter
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote

import pytest

from mwingest.ledger.ledger import Ledger
from mwingest.runtime import crashwatch
from mwingest.wiki import upload
from tests.integration.deployhelpers import BIN, REPO, Background, client_of, outcome_rows, trigger
from tests.integration.test_deployments import (  # noqa: F401 - fixtures
    base_env,
    deployed,
    saved_block,
)
from tests.integration.wikihelpers import ensure_tag, png_bytes, png_of_size, session_for

pytestmark = pytest.mark.wiki
PLAN = "plan-import/planned-import"
FANOUT_TAG = "mwingest-fanout-test"
LEASE_S, HEARTBEAT_S = 15, 3


def _sha1(data: bytes) -> str:
    return hashlib.sha1(data).hexdigest()  # noqa: S324


class Machines:
    """``prefect worker start`` processes, each with a home of its own (one per "machine")."""

    def __init__(self, client_env: dict[str, str], tmp_path: Path, ledger_url: str) -> None:
        self.env, self.tmp_path, self.ledger_url = client_env, tmp_path, ledger_url
        self.workers: list[Background] = []

    def start(self, name: str) -> Background:
        home = self.tmp_path / f"machine-{name}"
        home.mkdir()
        env = {**self.env, "PREFECT_WORKER_QUERY_SECONDS": "1", "MWINGEST_CHECKOUT": str(REPO),
               "MWINGEST_HOME": str(home), "MWINGEST_LEDGER_URL": self.ledger_url,
               "MWINGEST_LEASE_S": str(LEASE_S), "MWINGEST_HEARTBEAT_S": str(HEARTBEAT_S)}
        worker = Background([str(BIN / "prefect"), "worker", "start", "--pool", "mwingest",
                             "--name", f"machine-{name}", "--limit", "3"], env,
                            home / "worker.log", cwd=home)
        self.workers.append(worker)
        return worker

    def output(self, chars: int = 4000) -> str:
        return "\n".join(w.output(chars) for w in self.workers)


@contextlib.contextmanager
def machines(client_env: dict[str, str], tmp_path: Path, ledger_url: str) -> Iterator[Machines]:
    """Workers started on demand, all stopped at the end."""
    group = Machines(client_env, tmp_path, ledger_url)
    try:
        yield group
    finally:
        for worker in group.workers:
            worker.stop((signal.SIGINT, signal.SIGINT), grace=5.0)


def _runs_of(prefect_server: Any, flow_name: str, after: float) -> list[Any]:
    from prefect.client.schemas.filters import FlowFilter, FlowFilterName

    with client_of(prefect_server) as client:
        runs = client.read_flow_runs(flow_filter=FlowFilter(name=FlowFilterName(any_=[flow_name])))
    return [r for r in runs if r.created and r.created.timestamp() >= after]


def _wait_report(prefect_server: Any, started: float, group: Machines,
                 timeout: float = 600.0) -> Any:
    """The plan's report run that completed (a report started again after a crash, too)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for report in _runs_of(prefect_server, "report-import", started):
            state = report.state
            if state is not None and state.is_completed():
                return report
            assert state is None or not (state.is_failed() or state.is_cancelled()), (
                state, group.output(3000))
        time.sleep(1)
    pytest.fail("no report run completed in time\n" + group.output())


def _landed_once(session: Any, files: dict[str, bytes]) -> None:
    for name, data in files.items():
        info = upload.file_info(session, name, history=True)
        assert info is not None and info["sha1"] == _sha1(data), name
        assert len(info["versions"]) == 1, (name, info["versions"])


def _one_row_each(ledger_url: str, folder: Path, names: list[str]) -> list[Any]:
    with Ledger(ledger_url) as ledger:
        rows = [r for r in ledger.items() if Path(r.source).parent == folder]
    counts = Counter(Path(r.source).name for r in rows)
    assert sorted(counts) == sorted(names) and set(counts.values()) == {1}, counts
    return rows


def _ran_on(worker: Background, run: Any) -> bool:
    """Whether this worker started the run's process (the others may have tried and lost)."""
    return f"Flow run '{run.name}' submitted to infrastructure" in worker.log.read_text(
        errors="replace")


def _shards_by_worker(prefect_server: Any, started: float, workers: list[Background]) -> list[int]:
    shards = _runs_of(prefect_server, "ingest-shard", started)
    return [sum(_ran_on(w, run) for run in shards) for w in workers]


@contextlib.contextmanager
def served(files: dict[str, bytes]) -> Iterator[str]:
    """A plain HTTP server on loopback serving ``files`` by name; its base URL."""
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - http.server's naming
            body = files.get(unquote(self.path.lstrip("/")))
            self.send_response(200 if body is not None else 404)
            self.send_header("Content-Type", "image/png")
            self.send_header("Content-Length", str(len(body or b"")))
            self.end_headers()
            self.wfile.write(body or b"")

        def log_message(self, *args: object) -> None:
            """Quiet."""

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05},
                     daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def _revision(session: Any, name: str) -> tuple[str, list[str]]:
    """The file page's current text and the tags of its first revision (the upload's)."""
    answer = session.get({"action": "query", "titles": f"File:{name}", "prop": "revisions",
                          "rvprop": "content|tags", "rvslots": "main", "rvdir": "newer",
                          "rvlimit": 1})
    [page] = answer["query"]["pages"]  # formatversion=2: a list
    [rev] = page["revisions"]
    return rev["slots"]["main"]["content"], rev["tags"]


def test_a_planned_import_runs_on_both_workers_and_lands_every_file_once(
        deployed, base_env, prefect_server, postgres, wiki, tmp_path, unique):  # noqa: F811
    """24 files of a folder and 3 URLs in one plan (shards of 6, the URLs the fifth): the
    plan's rows in the ledger, both workers run shards, every file lands once with one ledger
    row; and every shard ran with the batch's settings (a warning policy, a page text and
    change tags), not the defaults. (bench/ runs plans of thousands of files.)"""
    ledger_url = postgres.fresh_url()
    u = unique()
    folder = tmp_path / "backlog"
    folder.mkdir()
    files = {f"Backlog {u} {n:03d}.png": png_bytes() for n in range(24)}
    for name, data in files.items():
        (folder / name).write_bytes(data)
    remote = {f"Remote {u} {n}.png": png_bytes() for n in range(3)}
    session = session_for(wiki)
    ensure_tag(wiki, FANOUT_TAG)
    taken = f"Backlog {u} 021.png"  # in shard 4: the name is someone else's file on the wiki
    upload.upload_bytes(session, png_bytes(), taken)

    with served(remote) as base, machines(base_env, tmp_path, ledger_url) as group:
        workers = [group.start("a"), group.start("b")]
        started = time.time() - 1
        urls = [f"{base}/{quote(name)}" for name in remote]
        trigger(prefect_server, PLAN, sources=[str(folder), *urls], shard_files=6,
                 settings={"ledger_path": ledger_url, "sending": {"concurrency": 3, "url_mode": "local"},
                           "safety": {"allow_hosts": [base.removeprefix("http://")]},
                           "on_warning": {"exists": "rename"},
                           "describing": {"text": f"Planned batch {u}", "tags": [FANOUT_TAG]}})
        report = _wait_report(prefect_server, started, group)
        per_worker = _shards_by_worker(prefect_server, started, workers)

    shards = _runs_of(prefect_server, "ingest-shard", started)
    assert len(shards) == 5, [(r.name, r.state_name, str(r.id)) for r in shards]
    assert sum(per_worker) == 5 and all(per_worker), per_worker  # both machines did shards
    rows = outcome_rows(prefect_server, report.id)
    assert len(rows) == 27 and {r["outcome"] for r in rows.values()} == {"uploaded"}, [
        r for r in rows.values() if r["outcome"] != "uploaded"][:5]
    renamed = rows[taken]["target"]
    assert renamed and renamed.replace("_", " ") != taken, rows[taken]  # exists=rename reached it
    _landed_once(session, {**{n: d for n, d in files.items() if n != taken}, **remote,
                           renamed: files[taken]})
    _one_row_each(ledger_url, folder, list(files))
    for shard_first in (f"Backlog {u} {n:03d}.png" for n in (0, 6, 12, 18)):
        landed = rows[shard_first]["target"]
        assert _revision(session, landed) == (f"Planned batch {u}", [FANOUT_TAG]), shard_first
    assert _revision(session, next(iter(remote)))[1] == [FANOUT_TAG]  # shard 5: the URLs
    with Ledger(ledger_url) as ledger:  # the plan the shards read their items from
        [plan_id] = ledger.plan_ids()
        plan = ledger.plan(plan_id)
        assert (plan.files, plan.shards) == (27, 5)
        assert [s.files for s in ledger.shards_of(plan_id)] == [6, 6, 6, 6, 3]
        assert all(s.attempts == 1 and s.run_id for s in ledger.shards_of(plan_id))
        assert [i.source for i in ledger.plan_items(plan_id, 4)] == urls


def test_a_killed_worker_s_report_and_shards_are_taken_over_from_the_wiki_s_offset(
        deployed, base_env, prefect_server, postgres, wiki, tmp_path, unique):  # noqa: F811
    """Machine A runs the report and two shards and is killed in the middle of a big file's
    chunks; machine B finishes everything: the server starts the report again, the new report
    starts A's shards again once their leases ran out, and the taken-over file continues from
    the wiki's offset."""
    crashwatch.install_crash_automation(prefect_server.api_url, heartbeat_s=HEARTBEAT_S)
    ledger_url = postgres.fresh_url()
    u = unique()
    folder = tmp_path / "backlog"
    folder.mkdir()
    files: dict[str, bytes] = {}
    for shard in range(4):  # each shard: one 12 MiB file in 1 MiB chunks, then five small ones
        files[f"S{shard} 0 big {u}.png"] = png_of_size(12 * 1024 * 1024)
        for n in range(1, 6):
            files[f"S{shard} {n} small {u}.png"] = png_bytes()
    for name, data in files.items():
        (folder / name).write_bytes(data)
    big = {name for name in files if " big " in name}

    try:
        with machines(base_env, tmp_path, ledger_url) as group:
            a = group.start("a")  # alone at first: it takes the plan, the report and two shards
            started = time.time() - 1
            trigger(prefect_server, PLAN, sources=[str(folder)], shard_files=6,
                     settings={"ledger_path": ledger_url,
                               "sending": {"chunk_size_mb": 1, "concurrency": 2}})
            row = _mid_chunks_with_the_report(prefect_server, started, a, ledger_url, big)
            offset_at_kill = row.offset
            group.start("b")
            a.stop((signal.SIGKILL,), grace=5.0)
            report = _wait_report(prefect_server, started, group)
    finally:
        crashwatch.install_crash_automation(prefect_server.api_url)  # the session's default again

    reports = _runs_of(prefect_server, "report-import", started)
    assert len(reports) == 2 and any(r.state is not None and r.state.is_crashed()
                                     for r in reports), [(r.name, r.state_name) for r in reports]
    rows = outcome_rows(prefect_server, report.id)
    assert len(rows) == len(files) and {r["outcome"] for r in rows.values()} == {"uploaded"}, rows
    _landed_once(session_for(wiki), files)
    ledger_rows = {Path(r.source).name: r for r in _one_row_each(ledger_url, folder, list(files))}
    taken = ledger_rows[Path(row.source).name]
    assert taken.attempts >= 2  # picked up again after the kill, the same row
    shards = _runs_of(prefect_server, "ingest-shard", started)
    assert any(r.state is not None and r.state.is_crashed() for r in shards), [
        (r.name, r.state_name) for r in shards]
    assert any(r.name.endswith("· again") and r.state is not None and r.state.is_completed()
               for r in shards), [(r.name, r.state_name) for r in shards]
    # The file was continued where the wiki's chunk session stood, not sent again from its first
    # byte: the run that took it over sent less than the file, and the wiki assembled the bytes
    # of both workers into the file's SHA-1 (checked above).
    name = Path(row.source).name
    again = [r for r in shards if r.name.endswith("· again") and r.state is not None
             and r.state.is_completed() and name in outcome_rows(prefect_server, r.id)]
    assert again, [(r.name, r.state_name) for r in shards]
    sent = outcome_rows(prefect_server, again[0].id)[name]["sent"]
    print(f"killed at offset {offset_at_kill}; the takeover sent {sent} of {len(files[name])} bytes")
    assert offset_at_kill > 0 and 0 < sent <= len(files[name]) - offset_at_kill
    assert rows[name]["sent"] == sent  # the report's table says what the last run sent


def _mid_chunks_with_the_report(prefect_server: Any, started: float, worker: Background,
                                ledger_url: str, big: set[str]) -> Any:
    """Wait until ``worker`` runs the report and is in the middle of a big file's chunks; that
    file's ledger row."""
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline:
        reports = _runs_of(prefect_server, "report-import", started)
        shards = {str(r.id): r for r in _runs_of(prefect_server, "ingest-shard", started)}
        if any(_ran_on(worker, report) for report in reports):
            with Ledger(ledger_url) as ledger:
                rows = [r for r in ledger.items() if Path(r.source).name in big
                        and r.offset > 0 and r.state.value == "stashing"]
            for row in rows:
                shard = shards.get(row.flow_run_id or "")
                if shard is not None and _ran_on(worker, shard):
                    return row
        time.sleep(0.2)
    pytest.fail("the worker was not seen running the report and a big file's chunks\n"
                + worker.output(3000))
