"""The batch flow: the story of a batch, and of each file in it.

For every file, in its own worker thread:  validate → upload (one request, or chunk after chunk
into the stash) → publish (collect warnings) → decide by policy → publish again → verify.
Then, for the files the policy wants a person to look at, the flow pauses with a form (when a
Prefect server can show it) and carries out the answers. Every file ends with one outcome —
uploaded, skipped, rejected, needs-review, failed — in the ledger, the table artifact and the logs.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import replace
from typing import Literal

from prefect import flow, get_run_logger, task
from prefect.cache_policies import NO_CACHE
from prefect.context import get_run_context
from prefect.task_runners import ThreadPoolTaskRunner

from flows.review import ask_reviewer, describe_conflict
from mwingest import upload
from mwingest.connect import open_wiki
from mwingest.credentials import Credentials
from mwingest.errors import reason_code
from mwingest.items import FAILED, NEEDS_REVIEW, IngestItem, ItemWork, Outcome
from mwingest.ledger import Ledger, default_path
from mwingest.manifest import collect
from mwingest.pipeline import IngestOptions, Ingestor
from mwingest.policy import Action, WarningPolicy
from tasks import steps
from tasks.report import Progress, publish_report

#: Upper bound of worker threads; the ``concurrency`` parameter narrows it per run.
MAX_WORKERS = 16
#: In-process callbacks told about each outcome as it happens (the CLI's ``--json`` lines).
OUTCOME_LISTENERS: list[Callable[[Outcome], None]] = []


def _tell(work: ItemWork) -> None:
    """Say in the run's log, in plain words, how a file ended; then tell in-process listeners."""
    outcome = work.to_outcome()
    words = {"uploaded": "is on the wiki", "skipped": "was skipped", "rejected": "was refused",
             "needs-review": "waits for a decision", "failed": "failed"}
    get_run_logger().log(
        logging.INFO if outcome.ok else logging.WARNING, "%s %s (%s): %s", work.item.label,
        words.get(outcome.outcome, outcome.outcome), outcome.reason, outcome.message or "")
    for listener in list(OUTCOME_LISTENERS):
        listener(outcome)


def _named(task_obj, name: str):  # type: ignore[no-untyped-def]
    return task_obj.with_options(task_run_name=name)


def resolve_credentials(wiki: str | None, credentials_block: str | None) -> Credentials:
    """The secret is looked up here, inside the run: a block by name, else the environment."""
    if credentials_block:
        from tasks.blocks import MediaWikiCredentials

        return MediaWikiCredentials.load(credentials_block).to_credentials()
    return Credentials.from_env(api_url=wiki)


@task(name="ingest-file", cache_policy=NO_CACHE, persist_result=False)
def ingest_file(ingestor: Ingestor, item: IngestItem, slots: threading.Semaphore,
                progress: Progress) -> ItemWork:
    """One file from validation to its outcome (the review by a person comes later)."""
    label = item.label
    work = ItemWork(item=item)
    try:
        work = _named(steps.validate, f"validate · {label}")(ingestor, item)
        if not work.done and not work.filekey:
            if ingestor.needs_chunks(work):
                work = _named(steps.start_chunks, f"start chunks · {label}")(ingestor, work)
                while not work.done and work.chunk is not None and not work.chunk.done:
                    name = f"chunk {work.chunk.chunk_number}/{work.chunk.chunk_count} · {label}"
                    work = _named(steps.send_chunk, name)(ingestor, work)
            else:
                work = _named(steps.upload_direct, f"upload · {label}")(ingestor, work)
        if not work.done and work.filekey and not work.published and not work.warnings:
            work = _named(steps.publish, f"publish · {label}")(ingestor, work)
        if not work.done and not work.published:
            action = ingestor.decide(work)
            work = _named(steps.apply_decision, f"{action} · {label}")(ingestor, work, action.value)
        if not work.done and work.published:
            work = _named(steps.verify, f"verify · {label}")(ingestor, work)
    except Exception as exc:  # noqa: BLE001 - one file's failure never stops the batch
        work = ingestor.finish(work, FAILED, reason_code(exc), str(exc))
    finally:
        ingestor.discard_local_copy(work)  # a fetched URL's temp file: the stash has the bytes
        slots.release()
        progress.advance()
    if work.outcome != NEEDS_REVIEW:
        _tell(work)
    return work


def _ask_people(ingestor: Ingestor, works: list[ItemWork], timeout_s: int) -> list[ItemWork]:
    """Pause for each file the policy sent to review; carry out each answer."""
    log = get_run_logger()
    out = []
    for work in works:
        if work.outcome != NEEDS_REVIEW or not work.filekey or not work.warnings:
            out.append(work)
            continue
        existing = upload.file_info(ingestor.session, work.target or "")
        text = describe_conflict(work.item.source, work.target or "", dict(work.warnings),
                                 sha1=work.sha1, size=work.size, existing=existing)
        log.warning("%s waits for a decision (%s): open the subflow run 'review · %s' (Subflow "
                    "Runs tab), its menu ⋮ → Resume; after %d s it stays needs-review",
                    work.item.label, ", ".join(work.warnings), work.target, timeout_s)
        state = ask_reviewer(work.target or "", text, timeout_s, return_state=True)
        if not state.is_completed():
            log.warning("%s: nobody answered within %d s; it stays needs-review with its stash key",
                        work.item.label, timeout_s)
            out.append(work)
            continue
        answer = state.result()
        log.info("%s: reviewer chose %s", work.item.label, answer["action"])
        redo = replace(work, outcome=None, reason=None, message=None)
        try:
            label = work.item.label
            redo = _named(steps.apply_decision, f"{answer['action']} · {label}")(
                ingestor, redo, answer["action"], answer.get("new_filename") or None, "reviewer",
                answer.get("note") or None)
            if not redo.done and redo.published:
                redo = _named(steps.verify, f"verify · {label}")(ingestor, redo)
            if not redo.done:  # the new name warned again: back to review
                redo = ingestor.apply(redo, Action.REVIEW, by="reviewer")
        except Exception as exc:  # noqa: BLE001
            redo = ingestor.finish(redo, FAILED, reason_code(exc), str(exc))
        out.append(redo)
    for work in out:
        if work.outcome == NEEDS_REVIEW or (work.decision or {}).get("by") == "reviewer":
            _tell(work)
    return out


def _can_pause(review_timeout_s: int | None) -> int:
    """Seconds to wait for a person: only with a real Prefect server, where a UI can show the form."""
    if review_timeout_s is not None:
        return max(0, review_timeout_s)
    return 3600 if os.environ.get("PREFECT_API_URL") else 0


def run_batch(credentials: Credentials, sources: list[str], *, filename: str | None = None,
              comment: str = "Uploaded with mwingest", text: str | None = None,
              text_template: str | None = None, tags: list[str] | None = None,
              chunk_size_mb: float = 8.0, on_warning: dict[str, str] | None = None,
              concurrency: int = 4, review_timeout_s: int | None = None,
              ledger_path: str | None = None, glob: str = "*", recursive: bool = True,
              manifest_root: str | None = None, allow_hosts: list[str] | None = None,
              url_mode: str = "wiki") -> list[dict]:
    """The body every import flow shares (called inside a flow run).

    ``manifest_root`` widens where manifest paths may lead; ``allow_hosts`` lets URL items reach
    those hosts although they are not public; ``url_mode`` is ``wiki`` (copy upload) or
    ``local`` (mwingest downloads). The defaults are strict (README, "Running imports you did
    not write").
    """
    log = get_run_logger()
    started = time.monotonic()
    run_id = str(get_run_context().flow_run.id)  # type: ignore[union-attr]
    session, rules = open_wiki(credentials)
    options = IngestOptions(comment=comment, text=text, tags=tuple(tags or ()),
                            chunk_size=max(int(chunk_size_mb * 1024 * 1024), rules.min_chunk_size),
                            policy=WarningPolicy.parse(
                                {k: str(v) for k, v in (on_warning or {}).items()}),
                            allow_hosts=tuple(allow_hosts or ()), url_mode=url_mode)
    ledger_file = ledger_path or str(default_path())
    items = collect(sources, glob=glob, recursive=recursive, text_template=text_template,
                    root=manifest_root)
    if filename and len(items) == 1:
        items = [replace(items[0], filename=filename)]
    log.info("%d files to ingest into %s as %s", len(items), session.api_url, session.user)
    with Ledger(ledger_file) as ledger:
        ingestor = Ingestor(session, rules, ledger, options, run_id=run_id)
        progress = Progress(len(items))
        slots = threading.Semaphore(max(1, min(concurrency, MAX_WORKERS)))
        futures = []
        for item in items:
            slots.acquire()  # at most `concurrency` files in flight
            futures.append(ingest_file.with_options(task_run_name=f"file · {item.label}")
                           .submit(ingestor, item, slots, progress))
        works = [f.result() for f in futures]
        works = _ask_people(ingestor, works, _can_pause(review_timeout_s))
    outcomes: list[Outcome] = [w.to_outcome() for w in works]
    publish_report(outcomes, wiki=session.api_url, seconds=time.monotonic() - started,
                   ledger_path=ledger_file)
    return [o.as_dict() for o in outcomes]


@flow(name="ingest-batch", task_runner=ThreadPoolTaskRunner(max_workers=MAX_WORKERS))
def ingest_batch(
    sources: list[str],
    wiki: str | None = None,
    credentials_block: str | None = None,
    filename: str | None = None,
    comment: str = "Uploaded with mwingest",
    text: str | None = None,
    text_template: str | None = None,
    tags: list[str] | None = None,
    chunk_size_mb: float = 8.0,
    on_warning: dict[str, Action] | None = None,
    concurrency: int = 4,
    review_timeout_s: int | None = None,
    ledger_path: str | None = None,
    glob: str = "*",
    recursive: bool = True,
    manifest_root: str | None = None,
    allow_hosts: list[str] | None = None,
    url_mode: Literal["wiki", "local"] = "wiki",
) -> list[dict]:
    """Put files, folders, manifests or URLs on a wiki; one outcome per file.

    ``wiki`` is the API URL (default ``MWINGEST_API_URL``); the secret comes from
    ``credentials_block`` or the environment, never from a parameter. ``manifest_root``,
    ``allow_hosts`` and ``url_mode``: see :func:`run_batch`.
    """
    return run_batch(
        resolve_credentials(wiki, credentials_block), sources, filename=filename,
        comment=comment, text=text, text_template=text_template, tags=tags,
        chunk_size_mb=chunk_size_mb, on_warning={k: str(v) for k, v in (on_warning or {}).items()},
        concurrency=concurrency, review_timeout_s=review_timeout_s, ledger_path=ledger_path,
        glob=glob, recursive=recursive, manifest_root=manifest_root, allow_hosts=allow_hosts,
        url_mode=url_mode)
