"""Beyond one machine: a planned import whose shards run on every worker of a process pool.

The story, for a backlog too big for one machine (read with ``prefect.yaml``'s ``planned-import``):

1. **plan-import** (the one deployment a person starts from the UI) reads the sources once — a
   folder's listing or a manifest, each file's size from the file system — splits the items into
   shards by count and bytes (:mod:`mwingest.shards`), starts one ``ingest-shard`` run per shard
   on the work pool and one ``report-import`` run that watches them, and ends: it never waits.
2. **ingest-shard** runs the batch body (:func:`flows.ingest.run_batch`) over its slice on
   whichever worker pulled it. Every file is driven under a lease in the shared ledger
   (``MWINGEST_LEDGER_URL``), writes take tokens from the account's shared bucket, and a Prefect
   global concurrency limit caps the writes in flight (:mod:`tasks.pacing`).
3. **report-import** waits for the shards. A shard whose run crashed (its worker died: the
   heartbeats stop and the server's automation marks it Crashed) is started again once the dead
   worker's leases have run out (``MWINGEST_LEASE_S``); its files continue from the ledger and the
   wiki's offsets, and those already landed are not sent again. Then one outcome table: each
   shard's table, with the ledger's final state for every file that has a row.

Workers must see the sources at the same paths (shared storage) and share the ledger database.
"""

from __future__ import annotations

import json
import os
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId, ArtifactFilterKey
from prefect.deployments import run_deployment
from prefect.task_runners import ThreadPoolTaskRunner

from flows.heartbeat import heartbeats
from flows.ingest import MAX_WORKERS, resolve_credentials, run_batch
from flows.plainparams import plain_parameters
from mwingest.items import OUTCOMES, Outcome
from mwingest.jobcontext import default_lease_ttl
from mwingest.ledger import Ledger, State, default_location
from mwingest.manifest import collect
from mwingest.shards import plan_shards
from tasks.report import TABLE_KEY, publish_report

SHARD_DEPLOYMENT = "ingest-shard/ingest-shard"
REPORT_DEPLOYMENT = "report-import/report-import"
#: A crashed shard is started again at most this often before the report gives it up.
MAX_SHARD_ATTEMPTS = 3
POLL_S = 3.0


def _size(source: str) -> int:
    try:
        return os.stat(source).st_size
    except OSError:
        return 0  # a URL, or a file the shard will report as missing


@flow(name="plan-import")
def plan_import(sources: list[str], credentials_block: str = "mwingest-wiki",
                shard_files: int = 50, shard_mib: float = 2048.0, glob: str = "*",
                text_template: str | None = None, comment: str = "Uploaded with mwingest",
                chunk_size_mb: float = 16.0, concurrency: int = 4, review_timeout_s: int = 0,
                ledger: str | None = None) -> dict[str, Any]:
    """Plan a big import: shards on the work pool and a report run; the plan's id and runs.

    ``credentials_block``: the MediaWiki Credentials block every shard logs in with (by name:
    no secret travels in a parameter). ``ledger``: the shared ledger's URL (default: the
    workers' ``MWINGEST_LEDGER_URL``)."""
    log = get_run_logger()
    items = collect(sources, glob=glob, text_template=text_template)
    shards = plan_shards([_size(item.source) for item in items], max_files=max(1, shard_files),
                         max_bytes=max(1, int(shard_mib * 1024 * 1024)))
    plan_id = uuid.uuid4().hex[:12]
    common = {"sources": sources, "credentials_block": credentials_block, "glob": glob,
              "text_template": text_template, "comment": comment, "chunk_size_mb": chunk_size_mb,
              "concurrency": concurrency, "review_timeout_s": review_timeout_s, "ledger": ledger}
    runs = []
    for number, (start, stop) in enumerate(shards):
        run = run_deployment(SHARD_DEPLOYMENT, parameters={**common, "start": start, "stop": stop},
                             timeout=0, as_subflow=False, tags=[f"plan:{plan_id}"],
                             flow_run_name=f"shard {number + 1}/{len(shards)} · plan {plan_id}")
        runs.append(str(run.id))
    report = run_deployment(REPORT_DEPLOYMENT, timeout=0, as_subflow=False,
                            tags=[f"plan:{plan_id}"], flow_run_name=f"report · plan {plan_id}",
                            parameters={"plan_id": plan_id, "shard_runs": runs,
                                        "sources": sources, "glob": glob,
                                        "text_template": text_template, "ledger": ledger,
                                        "credentials_block": credentials_block})
    log.info("plan %s: %d files, %d shards (at most %d files or %g MiB each); report run %s",
             plan_id, len(items), len(shards), shard_files, shard_mib, report.id)
    return {"plan": plan_id, "files": len(items), "shards": runs, "report": str(report.id)}


@flow(name="ingest-shard", task_runner=ThreadPoolTaskRunner(max_workers=MAX_WORKERS))
def ingest_shard(sources: list[str], start: int, stop: int,
                 credentials_block: str = "mwingest-wiki", glob: str = "*",
                 text_template: str | None = None, comment: str = "Uploaded with mwingest",
                 chunk_size_mb: float = 16.0, concurrency: int = 4, review_timeout_s: int = 0,
                 ledger: str | None = None) -> list[dict]:
    """One shard of a planned import: the items ``[start, stop)`` of what the sources list."""
    return run_batch(resolve_credentials(None, credentials_block), sources, glob=glob,
                     text_template=text_template, comment=comment, chunk_size_mb=chunk_size_mb,
                     concurrency=concurrency, review_timeout_s=review_timeout_s,
                     ledger_path=ledger, item_range=(start, stop))


@flow(name="report-import")
def report_import(plan_id: str, shard_runs: list[str], sources: list[str], glob: str = "*",
                  text_template: str | None = None, ledger: str | None = None,
                  credentials_block: str = "mwingest-wiki") -> list[dict]:
    """Wait for the plan's shards, start crashed ones again, and report every file once."""
    log = get_run_logger()
    started = time.monotonic()
    lease_s = default_lease_ttl().total_seconds()
    current = list(shard_runs)
    attempts = [1] * len(current)
    with get_client(sync_client=True) as client, heartbeats():
        while True:
            runs = [client.read_flow_run(uuid.UUID(run_id)) for run_id in current]
            waiting = False
            for n, run in enumerate(runs):
                state = run.state
                if state is None or not state.is_final():
                    waiting = True
                elif state.is_crashed() and attempts[n] < MAX_SHARD_ATTEMPTS:
                    waiting = True
                    ended = state.timestamp or datetime.now(UTC)
                    if (datetime.now(UTC) - ended).total_seconds() >= lease_s:
                        again = run_deployment(SHARD_DEPLOYMENT, parameters=dict(run.parameters),
                                               timeout=0, as_subflow=False,
                                               tags=[f"plan:{plan_id}"],
                                               flow_run_name=f"{run.name} · again")
                        log.warning("shard run %s crashed (its worker died?); started it again "
                                    "as %s after its leases ran out", run.name, again.id)
                        current[n], attempts[n] = str(again.id), attempts[n] + 1
            if not waiting:
                break
            time.sleep(POLL_S)
        rows = _shard_tables(client, current)
    items = collect(sources, glob=glob, text_template=text_template)
    wiki = resolve_credentials(None, credentials_block).api_url
    outcomes = _merge(items, rows, wiki, ledger)
    publish_report(outcomes, wiki=wiki, seconds=time.monotonic() - started,
                   ledger_path=ledger or default_location())
    counts = {o: sum(1 for x in outcomes if x.outcome == o) for o in sorted(OUTCOMES)}
    log.info("plan %s: %s", plan_id, ", ".join(f"{n} {o}" for o, n in counts.items() if n))
    return [o.as_dict() for o in outcomes]


def _shard_tables(client: Any, run_ids: list[str]) -> list[dict[str, Any]]:
    """The outcome table rows of each shard's last run."""
    artifacts = client.read_artifacts(artifact_filter=ArtifactFilter(
        flow_run_id=ArtifactFilterFlowRunId(any_=[uuid.UUID(r) for r in run_ids]),
        key=ArtifactFilterKey(any_=[TABLE_KEY])))
    rows: list[dict[str, Any]] = []
    for artifact in artifacts:
        data = json.loads(artifact.data) if isinstance(artifact.data, str) else artifact.data
        rows.extend(data or [])
    return rows


def _merge(items: list[Any], rows: list[dict[str, Any]], wiki: str,
           ledger: str | None) -> list[Outcome]:
    """One outcome per planned item: the shard table's row, with the ledger's final state where
    the file has a row (a file landed by a worker that then died shows ``uploaded``)."""
    by_source = {str(Path(r["source"])): r for r in rows if r.get("source")}
    outcomes = []
    with Ledger(ledger or default_location()) as led:
        for item in items:
            row = by_source.get(str(Path(item.source)))
            if row is None:
                outcomes.append(Outcome(item.source, item.filename, "failed", "not-run",
                                        "no shard reported this file"))
                continue
            outcome = Outcome(row["source"], row.get("target") or None, row["outcome"],
                              row.get("reason") or None, row.get("message") or None,
                              row.get("sha1") or None, row.get("bytes") or None,
                              row.get("link") or None)
            found = _row_of(led, wiki, outcome)
            if found is not None and found.state in OUTCOMES:
                outcome = Outcome(outcome.source, found.final_name or found.target,
                                  found.state.value, found.reason, found.message, found.sha1,
                                  found.size, outcome.url,
                                  found.filekey if found.state is State.NEEDS_REVIEW else None,
                                  0, found.id, found.ref)
            outcomes.append(outcome)
    return outcomes


def _row_of(led: Ledger, wiki: str, outcome: Outcome) -> Any:
    """The file's ledger row by its identity (SHA-1 and title, as the wiki spells the title or
    as it was asked for), or None (a file rejected before it had a row)."""
    if not (outcome.sha1 and outcome.filename):
        return None
    for title in dict.fromkeys((outcome.filename, outcome.filename.replace("_", " "))):
        try:
            return led.find(f"{outcome.sha1[:12]}:{title}", wiki=wiki)
        except Exception:  # noqa: BLE001, S112 - not under this spelling: try the next
            continue
    return None


for _flow in (plan_import, ingest_shard, report_import):
    plain_parameters(_flow)
