"""The file tasks of a batch: one task run per file, or one per group of small files.

Why groups: a Prefect task run costs its server ~30 ms of CPU (the state events it records) and
the worker a few ms of its own, whatever the file; for a small file that is more than our whole
upload (issue 27's bench). A batch small enough for a person to read file by file in the UI
keeps one task run per file, named ``file · NAME`` and ending in a state named for the outcome.
A bigger one sends its small local files :data:`GROUP_FILES` to a task run (``files · FIRST …
(+N)``, ending in a state that counts the outcomes), while a big file keeps a task run of its
own with one task per chunk, each retried on its own. Each file still ends with its own outcome
in the ledger, in the run's log (one line per file, its name first) and in the outcome table,
which is how the UI answers "what happened to file X" in a big batch.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterator
from typing import Any

from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE
from prefect.states import State

from mwingest.base.errors import LoginRefusedError, reason_code
from mwingest.base.items import NEEDS_REVIEW, IngestItem, Outcome
from mwingest.job.machine import OUTCOME_LOG, Job, JobContext
from mwingest.ledger.ledger import LedgerFullError, LedgerUnavailableError
from tasks.report import Progress, shown_name
from tasks.states import file_state, group_state, waiting_state
from tasks.steps import drive

#: The reasons of a file stopped with its batch (the wiki refused to log in again, the ledger's
#: disk is full, its database stayed away): its row stays as it was. From the classes, so a
#: new kind of stop is not told per file by mistake.
STOPPED = frozenset(c.reason for c in (LoginRefusedError, LedgerFullError, LedgerUnavailableError))
#: In-process callbacks told about each outcome as it happens (the CLI's ``--json`` lines).
OUTCOME_LISTENERS: list[Callable[[Outcome], None]] = []
#: In-process callbacks told, after each step of a file, ``(source, label, bytes on the wiki,
#: size)``: the CLI's progress display, chunk by chunk.
PROGRESS_LISTENERS: list[Callable[[str, str, int, int], None]] = []
#: Small files per task run in a big batch. A batch of at most ``concurrency × GROUP_FILES``
#: files keeps one task run per file.
GROUP_FILES = 8


class Finished:
    """Where the file tasks leave how each file ended: its outcome, or its job while it waits for
    a person. Why not the tasks' return values: Prefect keeps a copy of the state of every task
    run's result (and of its fields) in the flow run's context until the flow run ends
    (``FlowRunContext.run_results``); a task that returns None leaves nothing there, so the
    flow's memory does not grow with the number of files."""

    def __init__(self, count: int) -> None:
        self.files: list[Job | Outcome | None] = [None] * count
        #: Files the progress bar has counted (a task Prefect ended before its body is counted
        #: by the flow when it collects the task's future).
        self.counted: list[bool] = [False] * count


def tell(outcome: Outcome, label: str) -> None:
    """Say in the run's log, in plain words, how a file ended; then tell in-process listeners."""
    words = {"uploaded": "is on the wiki", "skipped": "was skipped", "rejected": "was refused",
             "needs-review": "waits for a decision", "failed": "failed"}
    get_run_logger().log(
        logging.INFO if outcome.ok else logging.WARNING, "%s %s (%s): %s", label,
        words.get(outcome.outcome, outcome.outcome), outcome.reason, outcome.message or "",
        extra=OUTCOME_LOG)  # a console that shows outcomes itself drops these
    for listener in list(OUTCOME_LISTENERS):
        listener(outcome)


def shown(job: Job) -> str:
    """The file's name wherever a person reads it: the wiki's title, with spaces."""
    return shown_name(job.row.target) if job.row is not None else job.item.label


def waits_for_person(job: Job) -> bool:
    row = job.row
    return (job.verdict is None and row is not None and row.state.value == NEEDS_REVIEW
            and bool(row.filekey) and bool(row.warnings))


def _progress(job: Job) -> None:
    done, total = job.progress
    for listener in list(PROGRESS_LISTENERS):
        listener(job.item.source, job.item.label, done, total)


def run_file(ctx: JobContext, item: IngestItem, progress: Progress, finished: Finished,
             index: int) -> State | None:
    """One file from validation to its outcome, inside whichever task runs it; its state."""
    job = Job(ctx, item)
    pace = getattr(ctx.session, "pace", None)
    if pace is not None:
        pace.working_on(item.label)  # named in the notes when this file waits for the limit
    try:
        drive(job, label=item.label, on_step=_progress if PROGRESS_LISTENERS else None)
    except Exception as exc:  # noqa: BLE001 - one file's failure never stops the batch
        job.fail(exc)
    finally:
        job.finish()
        finished.counted[index] = True
        progress.advance()
    if waits_for_person(job):
        finished.files[index] = job  # told once a person answered, or the run gave up waiting
        return waiting_state(shown(job))
    outcome = job.outcome()
    if outcome.reason in STOPPED:  # the batch stops: the flow says why once, not per file
        return None
    tell(outcome, item.label)
    finished.files[index] = outcome
    return file_state(outcome)


@task(name="ingest-file", cache_policy=NO_CACHE, persist_result=False)
def ingest_file(ctx: JobContext, item: IngestItem, progress: Progress, finished: Finished,
                index: int) -> State | None:
    """One file from validation to its outcome (the review by a person comes later); the task
    ends in a state named for the outcome (:mod:`tasks.states`). Its concurrency slot is not
    its business: the flow gets it back when the task's future completes (:mod:`flows.slots`)."""
    return run_file(ctx, item, progress, finished, index)


@task(name="ingest-files", cache_policy=NO_CACHE, persist_result=False)
def ingest_files(ctx: JobContext, items: list[IngestItem], progress: Progress, finished: Finished,
                 indices: list[int], stop: Callable[[], bool]) -> State | None:
    """Small files one after the other in one task run; each gets its own outcome and log line,
    the task a state that counts them. A file's failure is its own: the next one goes on. When
    the batch must stop (``stop()``) the files not begun stay as they are, for the next run."""
    for item, index in zip(items, indices, strict=True):
        if stop():
            break
        try:
            run_file(ctx, item, progress, finished, index)
        except Exception as exc:  # noqa: BLE001 - told as this file's outcome, the group goes on
            outcome = failed_outcome(item, exc)
            finished.files[index] = outcome
            tell(outcome, item.label)
    ended = [f if isinstance(f, Outcome) else f.outcome()
             for f in (finished.files[i] for i in indices) if f is not None]
    return group_state(ended) if ended else None


def failed_outcome(item: IngestItem, exc: BaseException) -> Outcome:
    """A file whose task died of something it could not catch: ``failed``, with the error."""
    return Outcome(source=item.source, filename=None, outcome="failed", reason=reason_code(exc),
                   message=f"internal error: {exc}")


def task_plan(items: list[IngestItem], concurrency: int, chunk_size: int) -> Iterator[list[int]]:
    """The items' indices, one list per task run: each file alone in a batch of at most
    ``concurrency × GROUP_FILES`` files, and for a big file or a URL in any batch; else
    consecutive small local files :data:`GROUP_FILES` to a list."""
    if len(items) <= max(1, concurrency) * GROUP_FILES:
        yield from ([n] for n in range(len(items)))
        return
    group: list[int] = []
    for n, item in enumerate(items):
        if item.is_url or _size(item.source) > chunk_size:
            yield [n]
            continue
        group.append(n)
        if len(group) == GROUP_FILES:
            yield group
            group = []
    if group:
        yield group


def _size(path: str) -> int:
    """The file's size for the plan (an unreadable file is small: validation tells why)."""
    try:
        return os.stat(path).st_size
    except OSError:
        return 0


def task_name(items: list[IngestItem]) -> str:
    """``file · NAME`` for one file, ``files · FIRST … (+N)`` for a group."""
    if len(items) == 1:
        return f"file · {items[0].label}"
    return f"files · {items[0].label} … (+{len(items) - 1})"


def submit(ctx: JobContext, items: list[IngestItem], indices: list[int], progress: Progress,
           finished: Finished, stop: Callable[[], bool]) -> Any:
    """Submit the task run for these files (one file: ``ingest-file``; more: ``ingest-files``)."""
    chosen = [items[n] for n in indices]
    if len(indices) == 1:
        return ingest_file.with_options(task_run_name=task_name(chosen)).submit(
            ctx, chosen[0], progress, finished, indices[0])
    return ingest_files.with_options(task_run_name=task_name(chosen)).submit(
        ctx, chosen, progress, finished, indices, stop)
