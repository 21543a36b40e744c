"""Prefect tasks around the per-file job (:class:`mwingest.job.machine.Job`): they name, retry and observe
its steps; the logic and the ledger writes stay in the core.

Why these tasks and no others: a small file's whole journey (validate, upload, verify) is **one**
task run, its steps retried inside it by the run's :class:`~mwingest.base.retry.RetryPolicy`; a big
file's task runs each chunk as a task of its own, retried by Prefect with the same policy's delays,
so every chunk's attempts are visible in the run's history. Tasks never cache: the ledger drives
resume, and the job holds a live session that must not be hashed or persisted.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from prefect import task
from prefect.cache_policies import NO_CACHE

from mwingest.base.errors import is_retryable
from mwingest.base.retry import RetryPolicy, retry_after
from mwingest.job.machine import Job


def retry_transient(task: Any, task_run: Any, state: Any) -> bool:
    """Prefect's ``retry_condition_fn``: retry only faults a retry can fix."""
    try:
        state.result()
    except Exception as exc:  # noqa: BLE001 - we classify, Prefect re-raises
        return is_retryable(exc)
    return False


def retrying(policy: RetryPolicy) -> dict[str, Any]:
    """Task options that retry transient faults as ``policy`` says (budget, backoff, jitter)."""
    delays = policy.delays()
    return {"retries": len(delays), "retry_delay_seconds": delays,
            "retry_jitter_factor": policy.jitter, "retry_condition_fn": retry_transient}


@task(name="chunk", cache_policy=NO_CACHE, persist_result=False)
def send_chunk(job: Job) -> None:
    """One chunk into the stash (or the wait for its assembly); after a lost answer the wiki's
    offset decides what is sent next."""
    try:
        job.step()
    except Exception as exc:
        wait = retry_after(exc)
        if wait and is_retryable(exc):  # the wiki asked for a pause: give it before Prefect's delay
            time.sleep(min(wait, 120.0))
        raise


def drive(job: Job, *, label: str, on_step: Callable[[Job], None] | None = None) -> None:
    """Run ``job`` to its end: chunks as tasks, every other step retried in place; ``on_step``
    is told after each step (a progress display)."""
    policy = job.ctx.options.retry
    chunk = send_chunk.with_options(**retrying(policy))
    while not job.done:
        if job.next_is_chunk:
            chunk.with_options(task_run_name=f"{job.label()} · {label}")(job)
        else:
            policy.call(job.step, what=f"{label} ({job.label()})")
        if on_step is not None:
            on_step(job)


def carry_out(job: Job, action: str, *, new_name: str | None, by: str, label: str,
              note: str | None = None) -> None:
    """A decision on a file that waited for one (a reviewer's answer, ``mwingest review``), then
    the rest of its journey; whatever goes wrong becomes the file's outcome."""
    try:
        if job.verdict is None:  # a row another run holds has its verdict already
            job.decide(action, new_name=new_name, by=by, note=note)
            drive(job, label=label)
    except Exception as exc:  # noqa: BLE001 - the outcome says what went wrong
        job.fail(exc)
    finally:
        job.finish()
