"""Prefect tasks: one per pipeline step, each a thin wrapper that names, retries and observes a
core step of :class:`mwingest.pipeline.Ingestor`.

Retries: only what the core calls retryable (transient faults and chunk resyncs,
:func:`mwingest.errors.is_retryable`), with exponential backoff and jitter. A permanent error fails
the task at once with the wiki's reason. Tasks never cache (the ledger drives resume, and the
ingestor holds a live session that must not be hashed or persisted).
"""

from __future__ import annotations

from typing import Any

from prefect import task
from prefect.cache_policies import NO_CACHE
from prefect.tasks import exponential_backoff

from mwingest.errors import is_retryable
from mwingest.items import IngestItem, ItemWork
from mwingest.pipeline import Ingestor
from mwingest.policy import Action

RETRIES = 4


def retry_transient(task: Any, task_run: Any, state: Any) -> bool:
    """Prefect's ``retry_condition_fn``: retry only faults a retry can fix."""
    try:
        state.result()
    except Exception as exc:  # noqa: BLE001 - we classify, Prefect re-raises
        return is_retryable(exc)
    return False


_RETRYING: dict[str, Any] = {
    "retries": RETRIES,
    "retry_delay_seconds": exponential_backoff(backoff_factor=1),
    "retry_jitter_factor": 0.5,
    "retry_condition_fn": retry_transient,
    "cache_policy": NO_CACHE,
    "persist_result": False,
}


@task(name="validate", **_RETRYING)
def validate(ingestor: Ingestor, item: IngestItem) -> ItemWork:
    """Local checks, the wiki's rules, the ledger and the SHA-1 duplicate pre-check."""
    return ingestor.validate(item)


@task(name="upload", **_RETRYING)
def upload_direct(ingestor: Ingestor, work: ItemWork) -> ItemWork:
    """A file up to one chunk in one request (a copy upload for URLs)."""
    return ingestor.upload_direct(work)


@task(name="start-chunks", **_RETRYING)
def start_chunks(ingestor: Ingestor, work: ItemWork) -> ItemWork:
    """A new chunk session, or a saved one brought in line with the wiki's offset."""
    return ingestor.start_chunks(work)


@task(name="chunk", **_RETRYING)
def send_chunk(ingestor: Ingestor, work: ItemWork) -> ItemWork:
    """One chunk into the stash; resyncs to the wiki's offset after a lost answer."""
    return ingestor.send_chunk(work)


@task(name="publish", **_RETRYING)
def publish(ingestor: Ingestor, work: ItemWork) -> ItemWork:
    """Publish from the stash key without ignoring warnings: this is where warnings appear."""
    return ingestor.publish(work)


@task(name="decide", **_RETRYING)
def apply_decision(ingestor: Ingestor, work: ItemWork, action: str, new_name: str | None = None,
                   by: str = "policy", note: str | None = None) -> ItemWork:
    """Carry out skip / publish / rename / review / fail on a warned file."""
    return ingestor.apply(work, Action(action), new_name=new_name, by=by, note=note)


@task(name="verify", **_RETRYING)
def verify(ingestor: Ingestor, work: ItemWork) -> ItemWork:
    """The landed SHA-1 and size must be ours."""
    return ingestor.verify(work)
