"""The pace against the wiki's own counting (issue 28): MediaWiki 1.39's limiter modelled as
``WRStatsReader`` counts, a bucket's schedule fed through it with request jitter, the limits
userinfo lists picked as ``RateLimiter::limit`` does, and a refusal pausing every worker.

The model (:class:`WikiLimiter`) is a transcription of ``WRStatsRateLimiter::peekBatch`` and
``WRStatsReader::internalGetCount`` (30 buckets per window, the oldest weighted by its overlap,
``round()`` half away from zero); the real wiki checks the same in tests/integration/test_pacing.py.
"""

from __future__ import annotations

import bisect
import math
import random
from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest

from mwingest.base.ratelimit import JITTER_S, Limit, pace_for
from mwingest.ledger.ledger import Ledger
from mwingest.wiki.pacing import (
    PaceNote,
    SharedPace,
    limits_from_userinfo,
    refusal_pause,
)

WIKI = "https://commons.example.org/w/api.php"


class WikiLimiter:
    """One ``$wgRateLimits`` entry as MediaWiki 1.39 counts it (key expiry left out: it only
    ever makes the wiki count less)."""

    def __init__(self, limit: Limit, buckets: int = 30) -> None:
        self.hits, self.window = limit.hits, limit.seconds
        self.step = limit.seconds / buckets
        self.counts: Counter[int] = Counter()

    def count(self, now: float) -> int:
        start = now - self.window
        first, last = int(start / self.step), int(now / self.step)
        total = 0.0
        for bucket in range(first, last + 1):
            value = self.counts.get(bucket, 0)
            if not value:
                continue
            if bucket == first:
                total += value * max((bucket + 1) * self.step - start, 0) / self.step
            else:  # the last (current) bucket counts whole, as do those between
                total += value
        return int(math.floor(total + 0.5))  # PHP round(): half away from zero (total >= 0)

    def try_upload(self, now: float) -> bool:
        if self.count(now) + 1 > self.hits:
            return False
        self.counts[int(now / self.step)] += 1
        return True


def schedule(capacity: float, rate: float, n: int, *, start_tokens: float | None = None) -> list[float]:
    """When a greedy client takes each of ``n`` tokens from a bucket that starts full."""
    tokens, now, times = capacity if start_tokens is None else start_tokens, 0.0, []
    for _ in range(n):
        if tokens < 1.0:
            now += (1.0 - tokens) / rate
            tokens = 1.0
        tokens -= 1.0
        times.append(now)
        tokens = min(capacity, tokens)
    return times


def most_in_a_window(times: list[float], window: float) -> int:
    ordered = sorted(times)
    return max(bisect.bisect_right(ordered, t + window) - n for n, t in enumerate(ordered))


@pytest.mark.parametrize("limits", [
    [Limit(380, 4320)], [Limit(6, 20)], [Limit(19, 40)], [Limit(6, 10)], [Limit(1, 5)],
    [Limit(50, 60)], [Limit(6, 10), Limit(8, 30)], [Limit(90, 60), Limit(380, 4320)],
])
def test_the_wiki_never_refuses_the_pace_and_no_window_holds_more_than_its_limit(
        limits: list[Limit]) -> None:
    paced = pace_for(limits)
    assert paced is not None
    rng = random.Random(28)
    for trial in range(8):
        longest = max(lim.seconds for lim in limits)
        n = int(paced.capacity + paced.refill_per_s * longest * 4) + 2
        sent = schedule(paced.capacity, paced.refill_per_s, n)
        seen = sorted(t + rng.uniform(0, JITTER_S) + 10**6 + 1000.37 * trial for t in sent)
        wiki = [WikiLimiter(lim) for lim in limits]
        refused = [t for t in seen if not all([w.try_upload(t) for w in wiki])]
        assert refused == [], (paced, refused[:3])
        for lim in limits:
            assert most_in_a_window(seen, lim.seconds) <= lim.hits


@pytest.mark.parametrize("limit", [Limit(380, 4320), Limit(19, 40), Limit(50, 60)])
def test_the_steady_rate_is_ninety_percent_of_the_limit(limit: Limit) -> None:
    paced = pace_for([limit])
    assert paced is not None
    n = limit.hits * 10
    sent = schedule(paced.capacity, paced.refill_per_s, n)
    per_window = (n - paced.capacity) / sent[-1] * limit.seconds
    assert per_window / limit.hits == pytest.approx(0.9, abs=1e-6)


def test_pacing_at_the_full_limit_is_refused_by_the_wikis_counting() -> None:
    """Why 90 %: a bucket that lets ``hits`` per window through exactly is refused by the wiki
    (its last bucket still counts uploads just older than the window)."""
    limit = Limit(6, 20)
    sent = schedule(1.0, limit.per_second, 30)
    wiki = WikiLimiter(limit)
    assert not all(wiki.try_upload(t + 0.001 * (i % 3)) for i, t in enumerate(sent))


NEWBIE = {"upload": {"user": {"hits": 8, "seconds": 60}, "newbie": {"hits": 4, "seconds": 60},
                     "ip": {"hits": 6, "seconds": 120}, "subnet": {"hits": 20, "seconds": 120}}}


def test_the_limits_the_wiki_applies_are_those_it_counts() -> None:
    # A new account: newbie replaces user; ip and subnet count besides.
    assert limits_from_userinfo({"ratelimits": NEWBIE}) == [Limit(4, 60), Limit(6, 120),
                                                            Limit(20, 120)]
    # The most generous of user and the account's groups is the account's own.
    grouped = {"upload": {"user": {"hits": 8, "seconds": 60}, "uploader": {"hits": 30, "seconds": 60},
                          "slow": {"hits": 2, "seconds": 60}}}
    assert limits_from_userinfo({"ratelimits": grouped}) == [Limit(30, 60)]
    assert limits_from_userinfo({"ratelimits": grouped, "rights": ["noratelimit"]}) == []
    paced = pace_for(limits_from_userinfo({"ratelimits": NEWBIE}))
    assert paced is not None and paced.governing == Limit(6, 120)  # 3 per min beats 4 per min
    assert "90% of the limit 6 per 2 min; also 4 per 60 s, 20 per 2 min" in paced.describe()


def test_a_refusal_pauses_every_worker_for_a_window_then_they_resume_at_the_pace(
        ledger_location: str) -> None:
    now = [datetime(2026, 12, 7, 12, tzinfo=UTC)]
    clock = lambda: now[0]  # noqa: E731
    asked: list[int] = []
    notes: list[PaceNote] = []
    lowered = [Limit(2, 20)]

    def refresh() -> list[Limit]:
        asked.append(1)
        return lowered

    def sleep(seconds: float) -> None:
        now[0] += timedelta(seconds=max(seconds, 1e-6))  # the clock's resolution

    with Ledger(ledger_location, clock=clock) as one, Ledger(ledger_location, clock=clock) as two:
        one.set_limit(WIKI, "Archivist", [Limit(6, 20)])
        a = SharedPace(one, WIKI, "Archivist", refresh=refresh, sleep=sleep)
        b = SharedPace(two, WIKI, "Archivist", sleep=sleep, on_wait=notes.append,
                       remaining=lambda: 5)
        b.working_on("Harbour.jpg")
        a.throttled(None, "ratelimited")  # worker A was refused
        assert asked == [1]
        state = two.pace_state(WIKI, "Archivist")
        assert state is not None and state.limits == (Limit(2, 20),)  # the lowered limit, read again
        pause = refusal_pause(lowered)
        assert pause == pytest.approx(20 * 31 / 30 + JITTER_S)
        started = now[0]
        b.before_write()  # worker B waits out the pause, then one token's refill: no burst
        paced = pace_for(lowered)
        assert paced is not None
        waited = (now[0] - started).total_seconds()
        assert waited == pytest.approx(pause + 1 / paced.refill_per_s, abs=0.01)
        assert notes and notes[0].reason == "ratelimited" and notes[0].label == "Harbour.jpg"
        assert "every worker of the account is paused" in notes[0].message()
        assert notes[0].eta_s == pytest.approx(notes[0].wait_s + 4 / paced.refill_per_s)
        # a later run's start reads the limits again: the pause and its empty bucket hold
        one.pause(WIKI, "Archivist", 30, "ratelimited")
        one.set_limit(WIKI, "Archivist", lowered)
        assert two.take_token(WIKI, "Archivist") == pytest.approx(30)


def test_the_live_display_says_when_a_file_waits_for_the_limit_and_the_time_left() -> None:
    from mwingest.cli.progress import LiveProgress

    paced = pace_for([Limit(380, 4320)])
    display = LiveProgress(3, 3000)
    for wait in (12.0, 11.0):
        display.pace(PaceNote("Harbour 1911.jpg", wait, "limit", paced, 200,
                              wait + 199 / paced.refill_per_s))  # type: ignore[union-attr]
    lines = [t.description for t in display._progress.tasks if "waits" in t.description]
    assert lines == ["  Harbour 1911.jpg waits 11 s for the account's upload limit; paced at 342 "
                     "uploads per 72 min (90% of the limit 380 per 72 min), bursts of 27; at that "
                     "pace the remaining 200 uploads take about 42 min 05 s"]
