"""At most ``concurrency`` files in flight, and a slot that always comes back.

Why here and not in the file task: a slot given back by the task's own body is lost whenever
Prefect ends the task run before the body runs (its API unreachable when the run is created or
set Running, a parameter it cannot resolve, a run the server refuses to start). After
``concurrency`` such losses the batch would wait for ever while Prefect still shows it Running
(issue 24). The slot is given back when the task's *thread future* completes, which happens
however the task run ended: body finished, body raised, or Prefect gave up before it.
"""

from __future__ import annotations

import concurrent.futures
import threading
from collections.abc import Callable, Iterable
from typing import TypeVar

from prefect.futures import PrefectConcurrentFuture

F = TypeVar("F", bound=PrefectConcurrentFuture)


class Slots:
    """A counting semaphore whose slots are tied to futures, not to code inside the task."""

    def __init__(self, count: int) -> None:
        self._free = threading.Semaphore(max(1, count))

    def take(self) -> None:
        """Wait for a free slot (the flow's thread, before it submits the next file)."""
        self._free.acquire()

    def give_back(self) -> None:
        """Return a slot taken with :meth:`take` that no future will hold (nothing submitted)."""
        self._free.release()

    def hold(self, submit: Callable[[], F]) -> F:
        """Submit with a slot already taken; the slot is returned when the future completes
        in any way, or at once when submitting itself fails."""
        try:
            future = submit()
        except BaseException:
            self._free.release()
            raise
        # concurrent.futures runs the callback at once if the future is already done.
        future.wrapped_future.add_done_callback(lambda _done: self._free.release())
        return future


def completed(futures: Iterable[PrefectConcurrentFuture]) -> Iterable[PrefectConcurrentFuture]:
    """The futures in the order they complete (``done()`` of the thread future asks no API)."""
    by_thread = {f.wrapped_future: f for f in futures}
    for done in concurrent.futures.as_completed(by_thread):
        yield by_thread[done]
