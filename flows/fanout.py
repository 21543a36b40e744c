"""Beyond one machine: a planned import whose shards run on every worker of a process pool.

The story, for a backlog too big for one machine (read with ``prefect.yaml``'s ``planned-import``):

1. **plan-import** (the one deployment a person starts from the UI) reads the sources once — a
   folder's listing, a manifest or URLs, each file's size from the file system — splits the
   items into shards by count and bytes and writes the plan into the shared ledger database:
   every item with its shard, and one row per shard (:func:`mwingest.job.shards.write_plan`). It
   starts one ``report-import`` run and one ``ingest-shard`` run per shard on the work pool,
   records each shard's run in the plan, and ends: it never waits.
2. **ingest-shard** reads its own items from the plan (never the manifest again) and runs the
   batch body (:func:`flows.ingest.run_batch`) over them on whichever worker pulled it. Every
   file is driven under a lease in the shared ledger (``MWINGEST_LEDGER_URL``), writes take
   tokens from the account's shared bucket, and a Prefect global concurrency limit caps the
   writes in flight (:mod:`tasks.pacing`).
3. **report-import** waits for the shards. A shard whose run crashed (its worker died: the
   heartbeats stop and the server's automation marks it Crashed) is started again once the dead
   worker's leases have run out (``MWINGEST_LEASE_S``); its files continue from the ledger and the
   wiki's offsets, and those already landed are not sent again. Then one outcome table: each
   shard's table, with the ledger's final state for every file that has a row. A report whose
   own worker died is started again by the server (:func:`mwingest.runtime.crashwatch.report_automation`)
   and takes over from the plan's rows: which runs drive the shards now, how often each started.

Workers must see local sources at the same paths (shared storage) and share the ledger database.
"""

from __future__ import annotations

import json
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

from prefect import flow, get_run_logger
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId, ArtifactFilterKey
from prefect.context import get_run_context
from prefect.deployments import run_deployment
from prefect.states import Cancelled, Crashed
from prefect.task_runners import ThreadPoolTaskRunner
from pydantic import Field

from flows.heartbeat import heartbeats
from flows.ingest import resolve_credentials, run_batch
from flows.plainparams import plain_parameters
from mwingest.base.items import OUTCOMES, IngestItem, Outcome
from mwingest.base.redact import NO_PASSWORD_PATTERN
from mwingest.job.context import default_lease_ttl
from mwingest.job.settings import DEFAULT_SETTINGS, MAX_WORKERS, BatchSettings
from mwingest.job.shards import write_plan
from mwingest.ledger.ledger import Ledger, Plan, PlanShard, State, default_location
from tasks.report import DETAILS_KEY, publish_report
from tasks.states import batch_state

SHARD_DEPLOYMENT = "ingest-shard/ingest-shard"
REPORT_DEPLOYMENT = "report-import/report-import"
#: A crashed shard is started at most this often in all before the report gives it up.
MAX_SHARD_ATTEMPTS = 3
#: A report started more often than this (its worker died each time) gives up at once.
MAX_REPORT_ATTEMPTS = 3
POLL_S = 3.0
#: A shard run a worker took (Pending) but never began: its worker died between taking it and
#: starting it (measured: a worker killed 2 s after it took a run). No heartbeat ever comes, so
#: the crash automation never sees it; a process worker begins a run in seconds, so after this
#: long the report marks it Crashed and starts the shard again (it took no file's lease yet).
PENDING_GRACE_S = 120.0


def _this_run() -> str:
    return str(get_run_context().flow_run.id)  # type: ignore[union-attr]


@flow(name="plan-import")
def plan_import(sources: list[str], credentials_block: str = "mwingest-wiki",
                shard_files: int = 50, shard_mib: float = 2048.0,
                settings: BatchSettings = DEFAULT_SETTINGS) -> dict[str, Any]:
    """Plan a big import: the plan in the ledger, shards on the work pool and a report run.

    ``credentials_block``: the MediaWiki Credentials block every shard logs in with (by name:
    no secret travels in a parameter). ``settings``: the batch's, stored with the plan, so every
    shard runs with all of them (:class:`~mwingest.job.settings.BatchSettings`); its ledger is
    the shared ledger's URL (default: the workers' ``MWINGEST_LEDGER_URL``)."""
    log = get_run_logger()
    ledger = settings.ledger_path or None
    items = settings.collect(sources)
    wiki = resolve_credentials(None, credentials_block).api_url
    plan_id = uuid.uuid4().hex[:12]
    params = {"settings": settings.model_dump(mode="json"), "plan_run": _this_run()}
    tags = [f"plan:{plan_id}"]
    with Ledger(ledger or default_location()) as led:
        plan = write_plan(led, plan_id, items, wiki=wiki, login_block=credentials_block,
                          params=params, max_files=max(1, shard_files),
                          max_bytes=max(1, int(shard_mib * 1024 * 1024)))
        # The report first: it is the oldest run, so the first free worker takes it.
        report = run_deployment(REPORT_DEPLOYMENT, timeout=0, as_subflow=False, tags=tags,
                                flow_run_name=f"report · plan {plan_id}",
                                parameters={"plan_id": plan_id, "ledger": ledger})
        for shard in led.shards_of(plan_id):
            _start_shard(led, plan, shard, ledger, tags)
    log.info("plan %s: %d files, %d shards (at most %d files or %g MiB each); report run %s",
             plan_id, plan.files, plan.shards, shard_files, shard_mib, report.id)
    return {"plan": plan_id, "files": plan.files, "shards": plan.shards,
            "report": str(report.id)}


def _start_shard(led: Ledger, plan: Plan, shard: PlanShard, ledger: str | None,
                 tags: list[str]) -> str | None:
    """Start a run for the shard and record it in the plan, unless another watcher recorded one
    first (then ours is cancelled before a worker takes it); the new run's id, or None."""
    again = " · again" * (shard.attempts > 0)
    run = run_deployment(SHARD_DEPLOYMENT, timeout=0, as_subflow=False, tags=tags,
                         parameters={"plan_id": plan.id, "shard": shard.shard, "ledger": ledger},
                         flow_run_name=f"shard {shard.shard + 1}/{plan.shards} · plan {plan.id}"
                                       f"{again}")
    if led.set_shard_run(plan.id, shard.shard, str(run.id), expect=shard.run_id):
        return str(run.id)
    with get_client(sync_client=True) as client:
        client.set_flow_run_state(run.id, Cancelled(message="another watcher started this shard"),
                                  force=True)
    return None


@flow(name="ingest-shard", task_runner=ThreadPoolTaskRunner(max_workers=MAX_WORKERS))
def ingest_shard(plan_id: str, shard: int, ledger: str | None = None) -> list[dict]:
    """One shard of a planned import: its own items, read from the plan in the ledger."""
    with Ledger(ledger or default_location()) as led:
        plan = led.plan(plan_id)
        items = led.plan_items(plan_id, shard)
    return run_batch(resolve_credentials(None, plan.login_block), [], plan_settings(plan, ledger),
                     planned=items)


def plan_settings(plan: Plan, ledger: str | None) -> BatchSettings:
    """The settings the plan was made with; the shard's own ``ledger`` parameter wins (it is
    where this shard found the plan). Plans written before the settings model carry a few flat
    names only, which are read as such."""
    stored = plan.params.get("settings")
    if stored is not None:
        settings = BatchSettings.model_validate(stored)
    else:
        flat = {k: plan.params[k] for k in ("comment", "chunk_size_mb", "concurrency",
                                            "review_timeout_s", "allow_hosts", "url_mode")
                if k in plan.params}
        settings = BatchSettings.from_flat(**flat)
    return BatchSettings.from_flat(settings, ledger_path=ledger) if ledger else settings


@flow(name="report-import")
def report_import(plan_id: str, ledger: Annotated[str | None, Field(
        json_schema_extra={"pattern": NO_PASSWORD_PATTERN})] = None) -> list[dict]:
    """Wait for the plan's shards, start crashed ones again, and report every file once."""
    log = get_run_logger()
    started = time.monotonic()
    me = _this_run()
    with Ledger(ledger or default_location()) as led, heartbeats():
        plan = led.adopt_report(plan_id, me)
        if plan.report_attempts > MAX_REPORT_ATTEMPTS:
            raise RuntimeError(f"plan {plan_id}: the report was started {plan.report_attempts} "
                               "times; giving up (run report-import again by hand to retry)")
        if plan.report_attempts > 1:
            log.warning("plan %s: taking over the report (start %d): the last report's worker "
                        "died", plan_id, plan.report_attempts)
        shards = _watch(led, plan, ledger, me)
        if shards is None:
            return []
        with get_client(sync_client=True) as client:
            rows = _shard_tables(client, [s.run_id for s in shards if s.run_id])
        outcomes = _merge(led.plan_items(plan_id), rows, plan.wiki, led)
    publish_report(outcomes, wiki=plan.wiki, seconds=time.monotonic() - started,
                   ledger_path=ledger or default_location())
    counts = {o: sum(1 for x in outcomes if x.outcome == o) for o in sorted(OUTCOMES)}
    log.info("plan %s: %s", plan_id, ", ".join(f"{n} {o}" for o, n in counts.items() if n))
    return batch_state(outcomes, [o.as_dict() for o in outcomes])  # type: ignore[return-value]


def _watch(led: Ledger, plan: Plan, ledger: str | None, me: str) -> list[PlanShard] | None:
    """Poll the shards' runs until each has ended for good, starting crashed ones again; the
    shards as they ended, or None when another report run took over from this one."""
    log = get_run_logger()
    lease_s = default_lease_ttl().total_seconds()
    tags = [f"plan:{plan.id}"]
    with get_client(sync_client=True) as client:
        while True:
            if led.plan(plan.id).report_run != me:
                log.warning("plan %s: another report run took over; this one stops", plan.id)
                return None
            shards = led.shards_of(plan.id)
            waiting = False
            planner_over = None  # whether the plan's own run has ended: asked once per poll
            for shard in shards:
                if shard.run_id is None:  # the plan is still starting its shards, or died
                    waiting = True
                    if planner_over is None:
                        planner = client.read_flow_run(uuid.UUID(plan.params["plan_run"])).state
                        planner_over = planner is not None and planner.is_final()
                    if planner_over:
                        log.warning("plan %s: shard %d was never started; starting it",
                                    plan.id, shard.shard + 1)
                        _start_shard(led, plan, shard, ledger, tags)
                    continue
                state = client.read_flow_run(uuid.UUID(shard.run_id)).state
                step = shard_step(state, shard.attempts, lease_s)
                waiting = waiting or step != "done"
                if step == "never-began":
                    client.set_flow_run_state(uuid.UUID(shard.run_id), Crashed(
                        message="its worker took it and died before it began"), force=True)
                    new = _start_shard(led, plan, shard, ledger, tags)
                    log.warning("shard %d of plan %s was taken by a worker that never began it "
                                "(%.0f s); started it again as %s", shard.shard + 1, plan.id,
                                PENDING_GRACE_S, new)
                elif step == "restart":
                    new = _start_shard(led, plan, shard, ledger, tags)
                    log.warning("shard %d of plan %s crashed (its worker died?); started it "
                                "again as %s after its leases ran out", shard.shard + 1,
                                plan.id, new)
            if not waiting:
                return shards
            time.sleep(POLL_S)


def shard_step(state: Any, attempts: int, lease_s: float, now: datetime | None = None) -> str:
    """What the report does about one shard's run in ``state``: ``"done"`` (it ended for good,
    or crashed too often), ``"wait"``, ``"restart"`` (crashed, and its leases ran out since), or
    ``"never-began"`` (taken by a worker that has not begun it for :data:`PENDING_GRACE_S`)."""
    now = now or datetime.now(UTC)
    since = (now - (state.timestamp or now)).total_seconds() if state is not None else 0.0
    if state is None:
        return "wait"
    if state.is_pending() and attempts < MAX_SHARD_ATTEMPTS:
        return "never-began" if since >= PENDING_GRACE_S else "wait"
    if not state.is_final():
        return "wait"
    if state.is_crashed() and attempts < MAX_SHARD_ATTEMPTS:
        return "restart" if since >= lease_s else "wait"
    return "done"


def _shard_tables(client: Any, run_ids: list[str]) -> list[dict[str, Any]]:
    """The detail table rows (every fact of every file) of each shard's last run."""
    artifacts = client.read_artifacts(artifact_filter=ArtifactFilter(
        flow_run_id=ArtifactFilterFlowRunId(any_=[uuid.UUID(r) for r in run_ids]),
        key=ArtifactFilterKey(any_=[DETAILS_KEY])))
    rows: list[dict[str, Any]] = []
    for artifact in artifacts:
        data = json.loads(artifact.data) if isinstance(artifact.data, str) else artifact.data
        rows.extend(data or [])
    return rows


def _merge(items: list[IngestItem], rows: list[dict[str, Any]], wiki: str,
           led: Ledger) -> list[Outcome]:
    """One outcome per planned item: the shard table's row, with the ledger's final state where
    the file has a row (a file landed by a worker that then died shows ``uploaded``)."""
    by_source = {str(Path(r["source"])): r for r in rows if r.get("source")}
    outcomes = []
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
                              int(row.get("sent") or 0), found.id, found.ref)
        outcomes.append(outcome)
    return outcomes


def _row_of(led: Ledger, wiki: str, outcome: Outcome) -> Any:
    """The file's ledger row by its identity (SHA-1 and title, as the wiki spells the title or
    as it was asked for), or None (a file rejected before it had a row)."""
    if not (outcome.sha1 and outcome.filename):
        return None
    for title in dict.fromkeys((outcome.filename, outcome.filename.replace("_", " "),
                                outcome.filename.replace(" ", "_"))):
        try:
            return led.find(f"{outcome.sha1[:12]}:{title}", wiki=wiki)
        except Exception:  # noqa: BLE001, S112 - not under this spelling: try the next
            continue
    return None


for _flow in (plan_import, ingest_shard, report_import):
    plain_parameters(_flow)
