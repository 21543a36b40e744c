"""One pipeline phase: ``flows.ingest.ingest_batch`` on a folder, with Prefect's start-up kept apart.

Prefect comes up one of three ways: ``harness`` (``prefect_test_harness``, as ``tests/conftest.py``'s
``prefect_harness`` does), ``ephemeral`` (no API URL: Prefect starts its own server subprocess at the
first flow run, as a plain CLI run without a server would) or ``server`` (a ``prefect server start``
of our own, reached through ``PREFECT_API_URL``, as in production). The first two import the server
app into this process (~80 MiB); the third does not. Heartbeats are off in every mode (findings §1:
each sync flow would otherwise take ≥ 1 s).

Three batches run in the process: an empty one first (it takes the one-off costs of a process's
first flow run, reported as ``first_batch_s``), the measured one, and another empty one (the fixed
cost of any batch: flow run, login, artifacts). The pipeline's own code is wrapped with timers
(wiki requests by kind, local validation, ledger, Prefect artifacts) so the report can say where the
time goes; the wrappers add microseconds per call.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections import defaultdict
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager, suppress
from pathlib import Path
from typing import Any

from measure import RequestLog, request_kind, status_kib, transfer_window


def instrument(log: RequestLog) -> None:
    """Time every wiki request, the local validation, the ledger and the Prefect artifact calls."""
    import flows.ingest
    from mwingest.checks import validate
    from mwingest.ledger import ledger
    from mwingest.wiki import session
    from tasks import report

    original = session.WikiSession._request

    def timed_request(self: Any, method: str, params: Any, files: Any = None, **kw: Any) -> Any:
        return log.timed(request_kind(dict(params), files),
                         lambda: original(self, method, params, files, **kw))

    session.WikiSession._request = timed_request  # type: ignore[method-assign]
    _wrap(log, validate, "validate_file", "local:validate_file (sha1, sniff)")
    _wrap(log, flows.ingest, "publish_report", "prefect:report artifacts")
    for name in ("begin", "transition", "record_chunk", "get"):
        _wrap(log, ledger.Ledger, name, f"local:ledger.{name}")
    _wrap(log, report.Progress, "__init__", "prefect:progress artifact create")
    _wrap(log, report.Progress, "advance", "prefect:progress artifact update")


def _wrap(log: RequestLog, owner: Any, name: str, kind: str) -> None:
    """Replace ``owner.name`` with a timed pass-through (functions and methods alike)."""
    original = getattr(owner, name)

    def timed(*args: Any, **kwargs: Any) -> Any:
        return log.timed(kind, lambda: original(*args, **kwargs))

    setattr(owner, name, timed)


def _prefect_up(stack: ExitStack, spec: dict[str, Any]) -> None:
    """Enter the harness or start a server (nothing for ephemeral), then the shared settings."""
    from prefect.settings import (
        PREFECT_API_URL,
        PREFECT_FLOWS_HEARTBEAT_FREQUENCY,
        PREFECT_LOCAL_STORAGE_PATH,
        PREFECT_LOGGING_TO_API_WHEN_MISSING_FLOW,
        temporary_settings,
    )

    updates: dict[Any, Any] = {
        PREFECT_FLOWS_HEARTBEAT_FREQUENCY: None,
        PREFECT_LOCAL_STORAGE_PATH: spec["work"] + "/prefect-results",
        PREFECT_LOGGING_TO_API_WHEN_MISSING_FLOW: "ignore"}
    if spec["prefect"] == "harness":
        from prefect.testing.utilities import prefect_test_harness

        stack.enter_context(prefect_test_harness(server_startup_timeout=90))
    elif spec["prefect"] == "server":
        updates[PREFECT_API_URL] = stack.enter_context(prefect_server(Path(spec["work"])))
    stack.enter_context(temporary_settings(updates=updates))


@contextmanager
def prefect_server(work: Path, timeout: float = 90.0) -> Iterator[str]:
    """``prefect server start`` on a free loopback port (never 8000–8999); yields its API URL.

    Its memory is its own: this is how a production client runs, with the server elsewhere.
    """
    from mwingest.dev.devwiki import free_port

    port = free_port()
    cmd = [str(Path(sys.executable).parent / "prefect"), "server", "start", "--host", "127.0.0.1",
           "--port", str(port), "--no-ui"]
    with (work / "prefect-server.log").open("wb") as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}/api"
    try:
        deadline = time.monotonic() + timeout
        while not _healthy(url):
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"prefect server did not start; see {work / 'prefect-server.log'}")
            time.sleep(0.2)
        yield url
    finally:
        with suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def _healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(url + "/health", timeout=2) as resp:  # noqa: S310 - loopback
            return resp.status == 200
    except OSError:
        return False


def run_pipeline(spec: dict[str, Any], out: dict[str, Any], log: RequestLog) -> int:
    """Import, start Prefect, run the three batches; returns how many files ended ``uploaded``."""
    started = time.perf_counter()
    from flows.ingest import ingest_batch

    out["rss_after_flow_import_kib"] = status_kib("VmRSS")
    instrument(log)
    out["import_s"] = time.perf_counter() - started
    params = {"wiki": spec["api"], "settings": {
        "chunk_size_mb": spec["chunk_mib"], "review_timeout_s": 0,
        "concurrency": spec["concurrency"], "ledger_path": spec["work"] + "/ledger.sqlite3"}}
    empty = Path(spec["work"]) / "empty"
    empty.mkdir()
    with ExitStack() as stack:
        started = time.perf_counter()
        _prefect_up(stack, spec)
        out["harness_start_s"] = time.perf_counter() - started
        out["rss_after_harness_kib"] = status_kib("VmRSS")
        started = time.perf_counter()
        ingest_batch(sources=[str(empty)], **params)
        out["first_batch_s"] = time.perf_counter() - started
        log.reset()
        with transfer_window(out, spec["wiki_pgid"]):
            state = ingest_batch(sources=[spec["folder"]], **params, return_state=True)
        out["requests"] = log.as_dict()
        results = state.result()
        timed_before, started = log.total(), time.perf_counter()
        ingest_batch(sources=[str(empty)], **params)
        out["empty_batch_s"] = time.perf_counter() - started
        out["empty_batch_untimed_s"] = out["empty_batch_s"] - (log.total() - timed_before)
        out["task_runs"] = count_task_runs(state.state_details.flow_run_id)
        started = time.perf_counter()
    out["harness_stop_s"] = time.perf_counter() - started
    counts: dict[str, int] = defaultdict(int)
    for result in results:
        counts[f"{result['outcome']}:{result['reason']}"] += 1
    out["outcomes"] = dict(counts)
    return sum(1 for r in results if r["outcome"] == "uploaded")


def count_task_runs(flow_run_id: Any, *, settle_s: float = 0.5, tries: int = 20) -> dict[str, int]:
    """The flow run's task runs by kind (the first word of the run name: file, validate, chunk…).

    The server records task runs from events, a little after they happen: read until two reads
    in a row agree.
    """
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    flt = FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id]))
    previous: dict[str, int] | None = None
    with get_client(sync_client=True) as client:
        for _ in range(tries):
            counts: dict[str, int] = defaultdict(int)
            offset = 0
            while True:
                page = client.read_task_runs(flow_run_filter=flt, limit=200, offset=offset)
                for run in page:
                    counts[run.name.split(" ", 1)[0]] += 1
                offset += len(page)
                if len(page) < 200:
                    break
            if counts == previous:
                break
            previous = dict(counts)
            time.sleep(settle_s)
    return dict(previous or {})
