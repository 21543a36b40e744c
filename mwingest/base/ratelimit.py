"""Moved out of :mod:`mwingest.wiki.pacing` so that its importers need not import it (issue 25)."""

from __future__ import annotations

from dataclasses import dataclass

#: The share of the wiki's limit we use: the wiki counts in its own windows and clocks differ.
MARGIN = 0.9


@dataclass(frozen=True)
class Limit:
    """The wiki lets the account make ``hits`` uploads per ``seconds`` (``$wgRateLimits``)."""

    hits: int
    seconds: float

    def bucket(self, margin: float = MARGIN) -> tuple[float, float]:
        """``(capacity, refill_per_s)`` of a bucket that never exceeds the limit.

        A bucket lets through ``capacity + refill · W`` in any window ``W``; with a burst of a
        tenth of the limit and the rest refilled over the window, a window of the wiki's length
        sees at most ``margin · hits``, wherever it starts. A limit of one write per window
        spaces writes one window apart.
        """
        allowed = max(1.0, float(int(self.hits * margin)))
        capacity = max(1.0, float(int(allowed // 10)))
        refill = max(allowed - capacity, 1.0) / self.seconds
        return capacity, refill


def refill(tokens: float, capacity: float, refill_per_s: float, elapsed_s: float) -> float:
    """Tokens after ``elapsed_s`` seconds (never above capacity; a clock going back adds none)."""
    return min(capacity, tokens + refill_per_s * max(0.0, elapsed_s))
