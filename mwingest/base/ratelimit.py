"""The arithmetic of pacing: the wiki's upload limits turned into one token bucket (issue 28).

Moved out of :mod:`mwingest.wiki.pacing` so that its importers need not import it (issue 25).

**How MediaWiki 1.39 counts** (``includes/Permissions/RateLimiter.php`` over
``includes/libs/WRStats/``): each limit ``[hits, seconds]`` is a counter split into 30 time
buckets of ``seconds / 30`` (``WRStatsRateLimiter::BUCKET_COUNT``). An upload is refused when
``round(count) + 1 > hits``, where ``count`` adds every bucket that lies in the last ``seconds``
plus the oldest bucket weighted by how much of it still overlaps the window
(``WRStatsReader::internalGetCount``). So an upload counts fully for a little less than the
window and then fades out over one bucket: the wiki may still count it up to ``seconds · 31/30``
after it, and the rounding lets half an upload more through. A plain loop therefore gets a few
more than ``hits`` through in some window, and a client that paces at 100 % of the limit is
refused now and then (measured: issue 28).

**What we promise**: a steady rate of ``fraction`` (default 90 %) of the tightest limit, and a
burst no larger than the wiki's counting tolerates. A token bucket of ``capacity`` refilled at
``rate`` lets at most ``capacity + rate · T`` uploads through in any stretch of ``T`` seconds.
For every limit we need fewer than ``hits + 1`` in ``T = seconds · 31/30 + jitter`` (the wiki's
longest memory, plus how much later than our token the wiki may see the upload: the request's
travel and start-up), so that the upload being sent finds at most ``hits - 1`` others counted:

    capacity = min over limits of (hits + 1 − slack − rate · T)

At Commons' 380 per 72 minutes that is a burst of 27 and a steady 342 per 72 minutes. For a limit
of a handful per window the formula leaves less than one token; the bucket then keeps a
capacity of one and lowers the rate until one token plus the window's refill still fits.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

#: The share of the wiki's limit we use: the wiki counts in its own windows and clocks differ.
MARGIN = 0.9
#: ``WRStatsRateLimiter::BUCKET_COUNT``: the wiki keeps each limit's window in this many buckets,
#: and may count an upload for one bucket longer than the window.
WIKI_BUCKETS = 30
#: How much later than our token the wiki may see (and count) an upload, in seconds.
JITTER_S = 2.0
#: Kept below ``hits + 1`` so that rounding never lets an extra upload into a window.
_SLACK = 0.05


@dataclass(frozen=True)
class Limit:
    """The wiki lets the account make ``hits`` uploads per ``seconds`` (``$wgRateLimits``)."""

    hits: int
    seconds: float

    @property
    def per_second(self) -> float:
        return self.hits / self.seconds

    @property
    def memory_s(self) -> float:
        """How long after an upload the wiki may still count it (one bucket past the window)."""
        return self.seconds * (1 + 1 / WIKI_BUCKETS)

    def bucket(self, margin: float = MARGIN) -> tuple[float, float]:
        """``(capacity, refill_per_s)`` of this limit's bucket (see :func:`pace_for`)."""
        paced = pace_for([self], margin)
        assert paced is not None
        return paced.capacity, paced.refill_per_s

    def __str__(self) -> str:
        return f"{self.hits} per {_duration(self.seconds)}"


@dataclass(frozen=True)
class Pace:
    """The bucket every worker of one account takes from, and why it is so."""

    capacity: float
    refill_per_s: float
    limits: tuple[Limit, ...]
    fraction: float = MARGIN

    @property
    def governing(self) -> Limit:
        """The tightest limit (lowest rate): the one the pace is a fraction of."""
        return min(self.limits, key=lambda lim: lim.per_second)

    @property
    def share(self) -> float:
        """The steady rate as a share of the governing limit (``fraction``, or less for tiny limits)."""
        return self.refill_per_s / self.governing.per_second

    def seconds_for(self, uploads: int, tokens: float = 0.0) -> float:
        """How long ``uploads`` more take at this pace, with ``tokens`` in the bucket now."""
        return max(0.0, uploads - tokens) / self.refill_per_s

    def describe(self) -> str:
        """``5.2 uploads per 20 s (87 % of the limit 6 per 20 s), bursts of 1``."""
        lim = self.governing
        others = [str(x) for x in self.limits if x != lim]
        return (f"{self.refill_per_s * lim.seconds:.3g} uploads per {_duration(lim.seconds)} "
                f"({self.share:.0%} of the limit {lim}"
                + (f"; also {', '.join(others)}" if others else "")
                + f"), bursts of {math.floor(self.capacity + 1e-9)}")


def pace_for(limits: Iterable[Limit], fraction: float = MARGIN,
             jitter_s: float = JITTER_S) -> Pace | None:
    """The bucket that keeps every one of ``limits`` (None when there is none: no limit)."""
    found = tuple(dict.fromkeys(limits))
    if not found:
        return None
    rate = min(fraction * lim.per_second for lim in found)
    capacity = min(lim.hits + 1 - _SLACK - rate * (lim.memory_s + jitter_s) for lim in found)
    if capacity < 1.0:
        capacity = 1.0
        rate = min(rate, *((lim.hits - _SLACK) / (lim.memory_s + jitter_s) for lim in found))
    return Pace(capacity, rate, found, fraction)


def refill(tokens: float, capacity: float, refill_per_s: float, elapsed_s: float) -> float:
    """Tokens after ``elapsed_s`` seconds (never above capacity; a clock going back adds none)."""
    return min(capacity, tokens + refill_per_s * max(0.0, elapsed_s))


def _duration(seconds: float) -> str:
    """``20 s``, ``72 min``, ``1.5 h``."""
    if seconds < 120 or seconds % 60:
        return f"{seconds:g} s"
    if seconds < 7200 or seconds % 3600:
        return f"{seconds / 60:g} min"
    return f"{seconds / 3600:g} h"


def duration(seconds: float) -> str:
    """A wait or a time left in words: ``12 s``, ``4 min 10 s``, ``3 h 05 min``."""
    s = max(0, round(seconds))
    if s < 60:
        return f"{s} s"
    if s < 3600:
        return f"{s // 60} min {s % 60:02d} s"
    return f"{s // 3600} h {s % 3600 // 60:02d} min"
