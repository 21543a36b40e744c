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
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from mwingest import crashwatch, upload
from mwingest.ledger import Ledger
from tests.integration.test_deployments import (  # noqa: F401 - base_env, deployed, saved_block: fixtures
    BIN,
    REPO,
    Background,
    _client,
    _outcome_rows,
    _trigger,
    base_env,
    deployed,
    saved_block,
)
from tests.integration.wikihelpers import png_bytes, png_of_size, session_for

pytestmark = pytest.mark.wiki
PLAN = "plan-import/planned-import"
LEASE_S, HEARTBEAT_S = 15, 3


def _sha1(data: bytes) -> str:
    return hashlib.sha1(data).hexdigest()  # noqa: S324


@contextlib.contextmanager
def two_workers(client_env: dict[str, str], tmp_path: Path, ledger_url: str
                ) -> Iterator[list[Background]]:
    """Two ``prefect worker start`` processes, each with a home of its own (two machines)."""
    workers = []
    try:
        for name in ("a", "b"):
            home = tmp_path / f"machine-{name}"
            home.mkdir()
            env = {**client_env, "PREFECT_WORKER_QUERY_SECONDS": "1", "MWINGEST_CHECKOUT": str(REPO),
                   "MWINGEST_HOME": str(home), "MWINGEST_LEDGER_URL": ledger_url,
                   "MWINGEST_LEASE_S": str(LEASE_S), "MWINGEST_HEARTBEAT_S": str(HEARTBEAT_S)}
            workers.append(Background([str(BIN / "prefect"), "worker", "start", "--pool", "mwingest",
                                       "--name", f"machine-{name}", "--limit", "3"], env,
                                      home / "worker.log",
                                      cwd=home))
        yield workers
    finally:
        for worker in workers:
            worker.stop((signal.SIGINT, signal.SIGINT), grace=5.0)


def _runs_of(prefect_server: Any, flow_name: str, after: float) -> list[Any]:
    from prefect.client.schemas.filters import FlowFilter, FlowFilterName

    with _client(prefect_server) as client:
        runs = client.read_flow_runs(flow_filter=FlowFilter(name=FlowFilterName(any_=[flow_name])))
    return [r for r in runs if r.created and r.created.timestamp() >= after]


def _wait_report(prefect_server: Any, started: float, workers: list[Background],
                 timeout: float = 420.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        reports = _runs_of(prefect_server, "report-import", started)
        if reports and reports[0].state is not None and reports[0].state.is_final():
            assert reports[0].state.is_completed(), (reports[0].state, workers[0].output(3000),
                                                     workers[1].output(3000))
            return reports[0]
        time.sleep(1)
    pytest.fail("the report run did not end in time\n" + "\n".join(w.output(4000) for w in workers))


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


def test_a_planned_import_runs_on_both_workers_and_lands_every_file_once(
        deployed, base_env, prefect_server, postgres, wiki, tmp_path, unique):  # noqa: F811
    ledger_url = postgres.fresh_url()
    u = unique()
    folder = tmp_path / "backlog"
    folder.mkdir()
    files = {f"Backlog {u} {n:03d}.png": png_bytes() for n in range(200)}
    for name, data in files.items():
        (folder / name).write_bytes(data)

    with two_workers(base_env, tmp_path, ledger_url) as workers:
        started = time.time() - 1
        _trigger(prefect_server, PLAN, sources=[str(folder)], shard_files=50, ledger=ledger_url,
                 concurrency=3)
        report = _wait_report(prefect_server, started, workers)
        per_worker = _shards_by_worker(prefect_server, started, workers)

    shards = _runs_of(prefect_server, "ingest-shard", started)
    assert len(shards) == 4, [(r.name, r.state_name, str(r.id)) for r in shards]
    assert sum(per_worker) == 4 and all(per_worker), per_worker  # both machines did shards
    rows = _outcome_rows(prefect_server, report.id)
    assert len(rows) == 200 and {r["outcome"] for r in rows.values()} == {"uploaded"}
    _landed_once(session_for(wiki), files)
    _one_row_each(ledger_url, folder, list(files))


def test_a_killed_worker_s_shards_are_finished_by_the_other_from_the_wiki_s_offset(
        deployed, base_env, prefect_server, postgres, wiki, tmp_path, unique):  # noqa: F811
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
        with two_workers(base_env, tmp_path, ledger_url) as workers:
            started = time.time() - 1
            _trigger(prefect_server, PLAN, sources=[str(folder)], shard_files=6,
                     ledger=ledger_url, chunk_size_mb=1, concurrency=2)
            victim, row = _a_worker_mid_chunks(prefect_server, started, workers, ledger_url, big)
            offset_at_kill = row.offset
            workers[victim].stop((signal.SIGKILL,), grace=5.0)
            report = _wait_report(prefect_server, started, workers)
    finally:
        crashwatch.install_crash_automation(prefect_server.api_url)  # the session's default again

    rows = _outcome_rows(prefect_server, report.id)
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
             and r.state.is_completed() and name in _outcome_rows(prefect_server, r.id)]
    assert again, [(r.name, r.state_name) for r in shards]
    sent = _outcome_rows(prefect_server, again[0].id)[name]["sent"]
    print(f"killed at offset {offset_at_kill}; the takeover sent {sent} of {len(files[name])} bytes")
    assert offset_at_kill > 0 and 0 < sent <= len(files[name]) - offset_at_kill


def _a_worker_mid_chunks(prefect_server: Any, started: float, workers: list[Background],
                         ledger_url: str, big: set[str]) -> tuple[int, Any]:
    """A worker (not the one running the report) in the middle of a big file's chunks, and
    that file's ledger row."""
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline:
        reports = _runs_of(prefect_server, "report-import", started)
        shards = {str(r.id): r for r in _runs_of(prefect_server, "ingest-shard", started)}
        with Ledger(ledger_url) as ledger:
            rows = [r for r in ledger.items() if Path(r.source).name in big
                    and r.offset > 0 and r.state.value == "stashing"]
        for row in rows:
            for n, worker in enumerate(workers):
                shard = shards.get(row.flow_run_id or "")
                if shard is not None and _ran_on(worker, shard) and not any(
                        _ran_on(worker, report) for report in reports):
                    return n, row
        time.sleep(0.2)
    pytest.fail("no worker was seen in the middle of a big file's chunks\n"
                + "\n".join(w.output(3000) for w in workers))

