"""Resolve a ``needs-review`` item later, from its stash key: the bytes are not sent again.

Used by ``mwingest review``, by the review-resolution deployment, and by anyone who answers after
the batch's pause timed out. The decision and when it was taken go into the ledger.
"""

from __future__ import annotations

from typing import Annotated, Literal

from prefect import flow, get_run_logger
from prefect.context import get_run_context
from pydantic import Field

from flows.heartbeat import heartbeats
from flows.ingest import resolve_credentials
from flows.plainparams import plain_parameters
from mwingest.base.options import IngestOptions
from mwingest.base.redact import NO_PASSWORD_PATTERN
from mwingest.base.retry import RetryPolicy
from mwingest.job.machine import Job, JobContext
from mwingest.ledger.ledger import Ledger
from mwingest.wiki.connect import open_wiki
from tasks.blocks import MediaWikiCredentials
from tasks.steps import carry_out


@flow(name="resolve-review", flow_run_name="resolve · item {item_id} · {decision}")
def resolve_review(item_id: int | str, decision: Literal["skip", "publish", "rename"],
                   new_filename: str | None = None, wiki: str | None = None,
                   credentials_block: str | None = None,
                   ledger_path: Annotated[str | None, Field(
                       json_schema_extra={"pattern": NO_PASSWORD_PATTERN})] = None,
                   comment: str = "Uploaded with mwingest",
                   credentials: MediaWikiCredentials | None = None) -> dict:
    """Carry out skip / publish (new version) / rename for one ledger item; its outcome as a dict.

    The wiki login comes from ``credentials`` (a block picked in the UI), ``credentials_block``
    (a block name, for the CLI) or the environment.

    Args:
        item_id: The ledger item to decide on: its reference in `mwingest status` or the run
            summary (SHA-1 prefix and title, the same on every machine), or its row id in
            this ledger. Only an item of this wiki and account is found.
        decision: skip (leave the wiki as it is), publish (a new version of the existing file) or
            rename (publish under new_filename).
        new_filename: The new name, for rename; empty lets mwingest pick the first free name.
        wiki: The wiki's API URL, only when no credentials block is picked (CLI use).
        credentials_block: A MediaWiki Credentials block's name, instead of picking one (CLI use).
        ledger_path: The ledger file or database URL (default: MWINGEST_LEDGER_URL, else the
            worker's per-user data directory).
        comment: The upload summary for the publish.
        credentials: The wiki and how to log in: pick a MediaWiki Credentials block.
    """
    # Not a decorator: Prefect resolves the signature's annotations in the function's module.
    with heartbeats():  # a run whose process dies is marked Crashed by the server
        log = get_run_logger()
        run_id = str(get_run_context().flow_run.id)  # type: ignore[union-attr]
        retry = RetryPolicy()
        creds = (credentials.to_credentials() if credentials is not None
                 else resolve_credentials(wiki, credentials_block))
        session, rules = retry.call(lambda: open_wiki(creds), what="opening the wiki")
        with Ledger(ledger_path or None) as ledger:
            ctx = JobContext(session, rules, ledger, IngestOptions(comment=comment, retry=retry),
                             run_id=run_id)
            # By identity within this login's wiki and account: never another wiki's row 42.
            row = ledger.find(item_id, wiki=ctx.wiki, account=ctx.account)
            job = Job.from_ledger(ctx, row.id)
            if job.verdict is None and job.row is not None and job.row.state.value != "needs-review":
                raise ValueError(f"ledger item {row.ref} is {job.row.state}, not needs-review")
            log.info("item %s (%s): carrying out %s", row.ref, job.item.filename, decision)
            carry_out(job, decision, new_name=new_filename or None, by="resolve-review",
                      label=job.item.label)
        session.gate.check()  # the wiki refused to log in again: say so (the CLI exits 2)
        return job.outcome().as_dict()


plain_parameters(resolve_review)
