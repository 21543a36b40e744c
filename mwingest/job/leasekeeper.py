"""A row's lease renewed while one long step runs (issue 24).

Why: a job renews its lease between steps, but one step can outlast the lease: a 16 MiB chunk
over a slow line, a publish the wiki takes minutes to answer. Once the lease ran out, a second
run on the same ledger took the row over and wrote to the wiki while the first was still
waiting for its answer. So while a step runs, a thread renews the lease every third of its
lifetime; a renewal that finds the row taken over marks the job, and the job's next ledger
write (which names its owner) is refused, so the first run writes nothing more for that file.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import timedelta

from mwingest.base.errors import BatchStoppedError

log = logging.getLogger("mwingest.job")


@contextmanager
def kept(claim: Callable[[], bool], ttl: timedelta, *, on_lost: Callable[[], None],
         label: str = "") -> Iterator[None]:
    """Run the block with the lease renewed (``claim()``) every ``ttl / 3``.

    ``claim`` answers False when another live run holds the row: ``on_lost`` is called once and
    renewing stops. A renewal the ledger could not make (its database restarting) is tried again
    at the next beat; the lease lasts ``ttl`` from the last renewal that worked."""
    interval = max(0.05, ttl.total_seconds() / 3)
    stop = threading.Event()

    def keep() -> None:
        while not stop.wait(interval):
            try:
                held = claim()
            except BatchStoppedError:  # the ledger's disk is full: the batch stops and says so
                continue  # once; the step's own next write ends it
            except Exception as exc:  # noqa: BLE001 - the next beat tries again
                log.warning("%s: the lease could not be renewed now (%s)", label, exc)
                continue
            if not held:
                on_lost()
                return

    thread = threading.Thread(target=keep, name="mwingest-lease", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(timeout=30)
