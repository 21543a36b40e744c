"""The batch flow: the story of a batch, and of each file in it.

For every file, in a worker thread, one task (a big batch's small files a few to a task run:
:mod:`flows.files`): validate → send (one request, or chunk after chunk, each chunk a task of its
own) → publish → decide by policy → verify, each step recorded in the ledger before the next
(:class:`mwingest.job.machine.Job`). When every file has an outcome the table
is published; then every file the policy wants a person to look at is asked **at once**, each in a
pause form of its own (when a Prefect server can show it), and the answers are carried out. Every
file ends with one outcome — uploaded, skipped, rejected, needs-review, failed — in the ledger,
the table artifact and the logs.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable
from dataclasses import replace
from datetime import timedelta
from typing import Any

from prefect import flow, get_run_logger, task
from prefect.cache_policies import NO_CACHE
from prefect.context import get_run_context
from prefect.futures import PrefectConcurrentFuture
from prefect.states import State
from prefect.task_runners import ThreadPoolTaskRunner

from flows.files import (
    Finished,
    failed_outcome,
    shown,
    submit,
    task_plan,
    tell,
)
from flows.heartbeat import heartbeating
from flows.plainparams import plain_parameters
from flows.review import ask_reviewer, describe_conflict
from flows.slots import Slots, completed
from mwingest.base.errors import BatchStoppedError, LoginRefusedError
from mwingest.base.items import IngestItem, Outcome
from mwingest.describe import pagecheck, structured
from mwingest.job import blacklisted
from mwingest.job import structured as structured_data
from mwingest.job.machine import Job, JobContext
from mwingest.job.settings import DEFAULT_SETTINGS, MAX_WORKERS, BatchSettings
from mwingest.ledger.ledger import Ledger, LedgerFullError, LedgerUnavailableError, default_location
from mwingest.wiki import pictures, upload
from mwingest.wiki.connect import open_wiki
from mwingest.wiki.credentials import Credentials
from mwingest.wiki.pacing import PaceNote
from tasks.pacing import paced_writes
from tasks.report import Progress, name_this_run, publish_report
from tasks.states import batch_state, file_state
from tasks.steps import carry_out

#: In-process callbacks told when a file waits for the account's upload limit (or a pause of
#: every worker): a :class:`~mwingest.wiki.pacing.PaceNote` with the wait and the batch's ETA
#: at the pace. The CLI's progress display shows it.
PACE_LISTENERS: list[Callable[[PaceNote], None]] = []


def resolve_credentials(wiki: str | None, credentials_block: str | None) -> Credentials:
    """The secret is looked up here, inside the run: a block by name, else the environment."""
    if credentials_block:
        from tasks.blocks import MediaWikiCredentials

        return MediaWikiCredentials.load(credentials_block).to_credentials()
    return Credentials.from_env(api_url=wiki)


def _tell_pace(note: PaceNote) -> None:
    for listener in list(PACE_LISTENERS):
        listener(note)


def _collect(running: dict[int, tuple[list[int], PrefectConcurrentFuture[Any]]],
             finished: Finished, items: list[IngestItem], progress: Progress, *,
             wait: bool = False) -> None:
    """Drop the futures of finished task runs: a batch of 100,000 files must not hold 100,000
    of them. (``done()`` of the wrapped thread future asks no API, unlike ``state``.) A file
    whose task died of something it could not catch, or that Prefect ended before its body
    ran, still gets an outcome and a tick of the progress bar: the batch goes on. ``wait``:
    collect all of them, in the order they finish."""
    futures = [future for _, future in running.values()]
    ready = completed(futures) if wait else [f for f in futures if f.wrapped_future.done()]
    key = {id(future): n for n, (_, future) in running.items()}
    for future in ready:
        indices, _ = running.pop(key[id(future)])
        try:
            future.result()
        except Exception as exc:  # noqa: BLE001 - reported as the outcome of its files
            for n in indices:
                if finished.files[n] is None:
                    finished.files[n] = failed_outcome(items[n], exc)
        for n in indices:
            if not finished.counted[n]:
                finished.counted[n] = True
                progress.advance()


def _outcome(done: Job | Outcome) -> Outcome:
    return done if isinstance(done, Outcome) else done.outcome()


@task(name="review", cache_policy=NO_CACHE, persist_result=False)
def review_file(job: Job, timeout_s: int) -> State:
    """Ask a person about one warned file (a pause form of its own) and carry out the answer."""
    log = get_run_logger()
    row = job.row
    assert row is not None
    label = job.item.label
    existing = upload.file_info(job.ctx.session, row.target)
    text = describe_conflict(row.source, row.target, dict(row.warnings or {}), sha1=row.sha1,
                             size=row.size, existing=existing,
                             pictures=pictures.review_pictures(
                                 job.ctx.session, row.target, row.filekey,
                                 local=None if job.item.is_url else row.source,
                                 sha1=row.sha1 or ""),
                             structured=structured_data.shown(want, None)
                             if (want := structured_data.wanted(row)) else "")
    log.warning("%s waits for a decision (%s): open the run 'review · %s' (this run's Subflow "
                "Runs tab) and press Resume (its menu ⋮) to decide; after %d s it stays "
                "needs-review",
                label, ", ".join(row.warnings or {}), shown(job), timeout_s)
    state = ask_reviewer(shown(job), text, timeout_s, return_state=True)
    if not state.is_completed():
        log.warning("%s: nobody answered within %d s; it stays needs-review with its stash key",
                    label, timeout_s)
    else:
        answer = state.result()
        log.info("%s: reviewer chose %s", label, answer["action"])
        carry_out(job, answer["action"], new_name=answer.get("new_filename") or None,
                  by="reviewer", note=answer.get("note") or None, label=label)
    outcome = job.outcome()
    tell(outcome, label)
    return file_state(outcome)


def _ask_people(waiting: list[Job], timeout_s: int) -> None:
    """Every file that needs a person is asked at the same time; wait for all the answers."""
    if not waiting or timeout_s <= 0:
        for job in waiting:
            tell(job.outcome(), job.item.label)
        return
    futures = [review_file.with_options(task_run_name=f"review · {shown(j)}")
               .submit(j, timeout_s) for j in waiting]
    for future in futures:
        future.wait()


def _can_pause(review_timeout_s: int | None, stash_max_age: timedelta) -> int:
    """Seconds to wait for a person: only with a real Prefect server, where a UI can show the
    form, and never longer than half the wiki's stash lifetime (the bytes wait in the stash)."""
    bound = int(stash_max_age.total_seconds() / 2)
    if review_timeout_s is not None:
        return max(0, min(review_timeout_s, bound))
    return min(3600, bound) if os.environ.get("PREFECT_API_URL") else 0


@heartbeating
def run_batch(credentials: Credentials, sources: list[str],
              settings: BatchSettings = DEFAULT_SETTINGS, *, filename: str | None = None,
              planned: list[IngestItem] | None = None) -> list[dict]:
    """The body every import flow shares (called inside a flow run).

    ``settings``: everything the batch was told (:class:`~mwingest.job.settings.BatchSettings`,
    its fields say what each does). ``planned``: the items themselves, already read by a plan (a
    shard of a planned import, :mod:`flows.fanout`); ``sources`` is then not read.
    Returns the batch's final state (Completed, the counts in its message, the rows as its
    result): a flow that returns it ends in it, and its caller gets the rows.
    """
    log = get_run_logger()
    started = time.monotonic()
    run_id = str(get_run_context().flow_run.id)  # type: ignore[union-attr]
    retry = settings.retry()
    session, rules = retry.call(lambda: open_wiki(credentials), what="opening the wiki")
    options = settings.options(min_chunk_size=rules.min_chunk_size)
    ledger_file = settings.ledger_path or default_location()
    items = planned if planned is not None else settings.collect(sources)
    if planned is None:  # a shard keeps the name its plan gave it
        name_this_run(sources, len(items))
    notes: list[str] = []  # warnings found before the upload, for the run's summary
    if settings.describing.check_pages:  # before a byte is sent: one batched lookup for all
        checked = retry.call(lambda: pagecheck.check_items(session, items, options.policy,
                                                           default_text=options.text),
                             what="looking up the texts' templates and categories")
        items = checked.items
        for _item, message in checked.warnings:
            log.warning("%s", message)
            notes.append(message)
    # Structured data (captions, statements): properties, datatypes and items checked first.
    items = retry.call(lambda: structured.check_items(session, items,
                                                      settings.describing.statements).items,
                       what="checking the structured data columns")
    if filename and len(items) == 1:
        items = [replace(items[0], filename=filename)]
    # The wiki's TitleBlacklist and SpamBlacklist, asked for every title and link at once.
    items = retry.call(lambda: blacklisted.refuse_blacklisted(session, items, rules,
                                                              default_text=options.text),
                       what="asking the wiki's title and spam blacklists")
    log.info("%d files to ingest into %s as %s", len(items), session.api_url, session.user)
    with Ledger(ledger_file, retry_budget_s=settings.sending.retry_budget_s) as ledger, \
            contextlib.ExitStack() as paced:
        ctx = JobContext(session, rules, ledger, options, run_id=run_id)
        progress = Progress(len(items))
        paced.enter_context(paced_writes(session, ledger, ctx.account,
                                         remaining=lambda: max(0, len(items) - progress.done),
                                         on_wait=_tell_pace))
        slots = Slots(min(settings.sending.concurrency, MAX_WORKERS))
        finished = Finished(len(items))
        running: dict[int, tuple[list[int], PrefectConcurrentFuture[Any]]] = {}

        def stop() -> bool:  # the batch cannot go on (a group's next file is not begun either)
            return (session.gate.refused is not None or ledger.disk_full is not None
                    or ledger.unavailable is not None)

        for indices in task_plan(items, settings.sending.concurrency, options.chunk_size):
            slots.take()  # at most `concurrency` task runs in flight
            if stop():
                slots.give_back()
                break
            running[indices[0]] = (indices, slots.hold(
                lambda k=indices: submit(ctx, items, k, progress, finished, stop)))
            _collect(running, finished, items, progress)
        _collect(running, finished, items, progress, wait=True)
        done = [f for f in finished.files if f is not None]
        if session.gate.refused is not None:
            raise _stopped(session.gate.refused, done, len(items), session.api_url, ledger_file,
                           time.monotonic() - started)
        if ledger.disk_full is not None:
            raise _stopped(ledger.disk_full, done, len(items), session.api_url, ledger_file,
                           time.monotonic() - started)
        if ledger.unavailable is not None:
            raise _ledger_lost(ledger.unavailable, done, len(items))
        waiting = [f for f in done if isinstance(f, Job)]
        wait_s = _can_pause(settings.review_wait, ctx.stash_max_age)
        if wait_s and waiting:
            # The table for everything else first: a person may take hours over the forms.
            publish_report([_outcome(f) for f in done], wiki=session.api_url,
                           seconds=time.monotonic() - started, ledger_path=ledger_file,
                           before_review=True)
            progress.say(f"{len(waiting)} file(s) wait for a decision: open the run 'review · "
                         f"NAME' (Subflow Runs tab) and press Resume")
        _ask_people(waiting, wait_s)
    outcomes: list[Outcome] = [_outcome(f) for f in done]
    publish_report(outcomes, wiki=session.api_url, seconds=time.monotonic() - started,
                   ledger_path=ledger_file, pictures=pictures.for_outcomes(session, outcomes),
                   notes=notes)
    return batch_state(outcomes, [o.as_dict() for o in outcomes])  # type: ignore[return-value]


def _stopped(cause: BatchStoppedError, done: list[Job | Outcome], total: int, wiki: str,
             ledger_file: str, seconds: float) -> BatchStoppedError:
    """The one message of a batch that cannot go on: the wiki refused to log in again (a
    changed password, a revoked grant), or the ledger's disk is full; the table of the files
    that finished is published first."""
    outcomes = [_outcome(f) for f in done]
    landed = sum(o.ok for o in outcomes)
    why = " ".join(str(cause).split()).rstrip(".")
    told = (f"{why}. The batch stopped: {landed} of {total} files finished; the others were not "
            f"started, or wait where they stopped (stash key, offset) for the next run. ")
    stop: BatchStoppedError
    if isinstance(cause, LoginRefusedError):
        stop = LoginRefusedError(
            f"{told}Check MWINGEST_USERNAME/MWINGEST_PASSWORD (or the credentials block) and the "
            f"bot password's grants, then run the same command again", result=cause.result)
    else:  # the ledger's disk (a file moved elsewhere would not know what landed)
        stop = LedgerFullError(f"{told}Free space on the ledger's disk, then run the same "
                               f"command again")
    publish_report(outcomes, wiki=wiki, seconds=seconds, ledger_path=ledger_file,
                   notes=[str(stop)])
    return stop


def _ledger_lost(lost: LedgerUnavailableError, done: list[Job | Outcome],
                 total: int) -> LedgerUnavailableError:
    """The one message of a batch whose ledger database stayed away longer than the retry
    budget. No table is published: it would be read from the ledger, which is what is missing."""
    landed = sum(_outcome(f).ok for f in done)
    return LedgerUnavailableError(
        f"{str(lost).rstrip('.')}. The batch stopped: {landed} of {total} files recorded as "
        f"finished (one that landed unrecorded is found on the wiki by the next run); the "
        f"others were not started, or wait where they stopped (stash key, offset, intent) for "
        f"the next run: run the same command again once the database answers")


@flow(name="ingest-batch", task_runner=ThreadPoolTaskRunner(max_workers=MAX_WORKERS))
def ingest_batch(
    sources: list[str],
    wiki: str | None = None,
    credentials_block: str | None = None,
    filename: str | None = None,
    settings: BatchSettings = DEFAULT_SETTINGS,
) -> list[dict]:
    """Put files, folders, manifests or URLs on a wiki; one outcome per file.

    ``wiki`` is the API URL (default ``MWINGEST_API_URL``); the secret comes from
    ``credentials_block`` or the environment, never from a parameter. ``settings``: everything
    else the batch is told (:class:`~mwingest.job.settings.BatchSettings`).
    """
    return run_batch(resolve_credentials(wiki, credentials_block), sources, settings,
                     filename=filename)


plain_parameters(ingest_batch)
