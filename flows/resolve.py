"""Resolve a ``needs-review`` item later, from its stash key: the bytes are not sent again.

Used by ``mwingest review``, by the review-resolution deployment, and by anyone who answers after
the batch's pause timed out. The decision and when it was taken go into the ledger.
"""

from __future__ import annotations

from typing import Literal

from prefect import flow, get_run_logger
from prefect.context import get_run_context

from flows.ingest import resolve_credentials
from mwingest.connect import open_wiki
from mwingest.errors import reason_code
from mwingest.items import FAILED
from mwingest.ledger import Ledger, default_path
from mwingest.pipeline import IngestOptions, Ingestor
from mwingest.policy import Action
from tasks import steps
from tasks.blocks import MediaWikiCredentials


@flow(name="resolve-review", flow_run_name="resolve · item {item_id} · {decision}")
def resolve_review(item_id: int, decision: Literal["skip", "publish", "rename"],
                   new_filename: str | None = None, wiki: str | None = None,
                   credentials_block: str | None = None, ledger_path: str | None = None,
                   comment: str = "Uploaded with mwingest",
                   credentials: MediaWikiCredentials | None = None) -> dict:
    """Carry out skip / publish (new version) / rename for one ledger item; its outcome as a dict.

    The wiki login comes from ``credentials`` (a block picked in the UI), ``credentials_block``
    (a block name, for the CLI) or the environment.

    Args:
        item_id: The ledger item to decide on (its id in `mwingest status` or the run summary).
        decision: skip (leave the wiki as it is), publish (a new version of the existing file) or
            rename (publish under new_filename).
        new_filename: The new name, for rename; empty lets mwingest pick the first free name.
        wiki: The wiki's API URL, only when no credentials block is picked (CLI use).
        credentials_block: A MediaWiki Credentials block's name, instead of picking one (CLI use).
        ledger_path: The ledger file (default: the worker's per-user data directory).
        comment: The upload summary for the publish.
        credentials: The wiki and how to log in: pick a MediaWiki Credentials block.
    """
    log = get_run_logger()
    run_id = str(get_run_context().flow_run.id)  # type: ignore[union-attr]
    session, rules = open_wiki(credentials.to_credentials() if credentials is not None
                               else resolve_credentials(wiki, credentials_block))
    with Ledger(ledger_path or default_path()) as ledger:
        ingestor = Ingestor(session, rules, ledger, IngestOptions(comment=comment), run_id=run_id)
        work = ingestor.from_ledger(item_id)
        log.info("item %d (%s): carrying out %s", item_id, work.target, decision)
        try:
            work = steps.apply_decision(ingestor, work, Action(decision).value, new_filename,
                                        "resolve-review")
            if not work.done and work.published:
                work = steps.verify(ingestor, work)
            if not work.done:
                work = ingestor.apply(work, Action.REVIEW, by="resolve-review")
        except Exception as exc:  # noqa: BLE001 - the outcome says what went wrong
            work = ingestor.finish(work, FAILED, reason_code(exc), str(exc))
    return work.to_outcome().as_dict()
