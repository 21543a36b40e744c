"""Flow-run heartbeats from a thread of our own, so a killed run can be marked Crashed.

Why not Prefect's: Prefect 3.9's heartbeat thread sleeps in 1 s steps and a sync flow joins it
when it ends, which adds up to a second to every run (findings §1) — a third of a warm one-file
run. This thread waits on an event, so it stops at once. It sends the same event Prefect does
(``prefect.flow-run.heartbeat`` about the flow run), which the server's automation
(:func:`mwingest.runtime.crashwatch.crash_automation`) watches: a run whose heartbeats stop is Crashed.
It stops before the flow returns, so no heartbeat can follow the run's final state.
"""

from __future__ import annotations

import contextvars
import functools
import logging
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import ParamSpec, TypeVar

from prefect.context import get_run_context
from prefect.events import emit_event

from mwingest.runtime.crashwatch import heartbeat_seconds

log = logging.getLogger("mwingest.heartbeat")
P = ParamSpec("P")
R = TypeVar("R")


@contextmanager
def heartbeats(interval_s: float | None = None) -> Iterator[None]:
    """Send the current flow run's heartbeat now and every ``interval_s`` until the block ends."""
    context = get_run_context()
    flow_run = context.flow_run  # type: ignore[union-attr]
    if flow_run is None:
        yield
        return
    interval = interval_s or heartbeat_seconds()
    resource = {"prefect.resource.id": f"prefect.flow-run.{flow_run.id}",
                "prefect.resource.name": flow_run.name or ""}
    # The flow's name: the server's automation watches mwingest's flows by it.
    related = [{"prefect.resource.id": f"prefect.flow.{flow_run.flow_id}",
                "prefect.resource.role": "flow",
                "prefect.resource.name": context.flow.name}]  # type: ignore[union-attr]
    if flow_run.deployment_id:
        related.append({"prefect.resource.id": f"prefect.deployment.{flow_run.deployment_id}",
                        "prefect.resource.role": "deployment"})
    stop = threading.Event()

    def beat() -> None:
        while not stop.is_set():
            try:
                emit_event(event="prefect.flow-run.heartbeat", resource=resource,
                           related=related)  # type: ignore[arg-type]
            except Exception:  # noqa: BLE001 - a lost heartbeat must not hurt the run
                log.debug("heartbeat not sent", exc_info=True)
            stop.wait(interval)

    # The thread sees this thread's Prefect settings (the API URL of a test harness or the
    # local server), as Prefect's own heartbeat thread does.
    thread = threading.Thread(target=contextvars.copy_context().run, args=(beat,), daemon=True,
                              name="mwingest-heartbeat")
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(timeout=5)


def heartbeating(fn: Callable[P, R]) -> Callable[P, R]:
    """``fn`` (a flow's body, called inside its flow run) with :func:`heartbeats` around it.

    Not for a ``@flow`` function itself: Prefect resolves its parameters' annotations in the
    module of the function it is given, which would be this one."""
    @functools.wraps(fn)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        with heartbeats():  # a run whose process dies is marked Crashed by the server
            return fn(*args, **kwargs)

    return wrapper
