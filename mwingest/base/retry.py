"""How long and how often a transient fault is retried: one policy for every request a file needs.

Why a time budget and not a retry count: what users meet is a wiki that restarts (a minute or two
unreachable), a proxy that drops answers, a ``maxlag`` spell. Four quick retries (1+2+4+8 s) fail
every file in flight during a one-minute restart; a budget in seconds says what is promised: a
fault that lasts less than ``budget_s`` is ridden out. Delays grow exponentially with jitter (so
workers that failed together do not come back together), are capped, and never undercut the
wiki's own ``Retry-After``.

The same policy drives both places that retry: :meth:`RetryPolicy.call` for steps run inside one
task (a small file's whole journey, the run's login), and Prefect's task retries for each chunk
(:meth:`RetryPolicy.delays` becomes ``retry_delay_seconds``), so a chunk's retries stay visible as
runs of its task.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TypeVar

from mwingest.base.errors import MWIngestError, TransientApiError, TransportError, is_retryable

log = logging.getLogger("mwingest.base.retry")
T = TypeVar("T")

#: Ride out an outage of at least two minutes by default (issue 11): the budget plus the last delay.
DEFAULT_BUDGET_S = 150.0


def parse_retry_after(value: str | None) -> float | None:
    """A ``Retry-After`` header in seconds (from the wiki, its front end or a Prefect server);
    an HTTP date counts as 60 s; None when there is none."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return 60.0


def retry_after(exc: BaseException) -> float | None:
    """Seconds the wiki asked us to wait (``Retry-After`` on 429/503, maxlag's lag), if any."""
    if isinstance(exc, TransientApiError):
        return exc.retry_after
    if isinstance(exc, TransportError):
        return getattr(exc, "retry_after", None)
    return None


@dataclass(frozen=True)
class RetryPolicy:
    """Exponential backoff with jitter under a time budget, honouring ``Retry-After``."""

    budget_s: float = DEFAULT_BUDGET_S
    first_delay_s: float = 1.0
    max_delay_s: float = 20.0
    jitter: float = 0.3  # each delay is stretched or shrunk by up to this fraction
    sleep: Callable[[float], None] = field(default=time.sleep, compare=False, repr=False)
    clock: Callable[[], float] = field(default=time.monotonic, compare=False, repr=False)

    def delays(self) -> list[float]:
        """The plain delays (no jitter) whose sum first exceeds the budget: Prefect's retry list."""
        out: list[float] = []
        delay = self.first_delay_s
        while sum(out) < self.budget_s and len(out) < 50:  # Prefect takes at most 50 delays
            out.append(round(min(delay, self.max_delay_s), 3))
            delay *= 2
        return out

    def delay(self, attempt: int, exc: BaseException | None = None) -> float:
        """The wait before retry number ``attempt`` (1-based), jittered, at least ``Retry-After``."""
        base = min(self.first_delay_s * 2 ** (attempt - 1), self.max_delay_s)
        jittered = base * (1 + random.uniform(-self.jitter, self.jitter))  # noqa: S311 - not crypto
        asked = retry_after(exc) if exc is not None else None
        return max(jittered, min(asked or 0.0, 120.0))

    def call(self, fn: Callable[[], T], *, what: str = "request",
             retryable: Callable[[BaseException], bool] = is_retryable) -> T:
        """Run ``fn`` until it succeeds, retrying retryable faults until the budget is spent."""
        started = self.clock()
        attempt = 0
        while True:
            try:
                return fn()
            except MWIngestError as exc:
                attempt += 1
                spent = self.clock() - started
                if not retryable(exc) or spent >= self.budget_s:
                    raise
                wait = min(self.delay(attempt, exc), max(0.0, self.budget_s - spent) + 1.0)
                log.warning("%s: %s; retry %d in %.1f s", what, exc, attempt, wait)
                self.sleep(wait)
