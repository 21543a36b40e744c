"""The retry policy: a time budget, exponential backoff with jitter, ``Retry-After`` honoured.

A fake clock and sleep stand in for time (the policy takes both as parameters), so these run in
microseconds and assert the exact waits."""

from __future__ import annotations

import pytest

from mwingest.base.errors import PermanentApiError, TransientApiError, TransportError
from mwingest.base.retry import DEFAULT_BUDGET_S, RetryPolicy


class FakeTime:
    def __init__(self) -> None:
        self.now = 0.0
        self.waits: list[float] = []

    def sleep(self, seconds: float) -> None:
        self.waits.append(seconds)
        self.now += seconds

    def clock(self) -> float:
        return self.now


def policy(t: FakeTime, **kw) -> RetryPolicy:
    return RetryPolicy(sleep=t.sleep, clock=t.clock, **kw)


def test_the_default_rides_out_two_minutes():
    delays = RetryPolicy().delays()
    assert DEFAULT_BUDGET_S >= 120 and sum(delays) >= DEFAULT_BUDGET_S
    assert delays[:4] == [1, 2, 4, 8] and max(delays) == 20  # capped, not 2**n for ever


def test_an_outage_shorter_than_the_budget_is_ridden_out():
    t = FakeTime()
    calls = []

    def flaky() -> str:
        calls.append(t.now)
        if t.now < 125:  # the wiki is down for 125 s
            raise TransportError("refused")
        return "ok"

    assert policy(t).call(flaky) == "ok"
    assert t.now >= 125 and len(calls) > 5


def test_the_budget_ends_it_and_permanent_errors_are_not_retried():
    t = FakeTime()
    with pytest.raises(TransportError):
        policy(t, budget_s=10).call(lambda: (_ for _ in ()).throw(TransportError("down")))
    assert 10 <= t.now <= 12
    t2 = FakeTime()
    with pytest.raises(PermanentApiError):
        policy(t2).call(lambda: (_ for _ in ()).throw(PermanentApiError("permissiondenied")))
    assert t2.waits == []


def test_retry_after_is_never_undercut_and_jitter_spreads_waits():
    exc = TransientApiError("ratelimited", "slow down", {"retry-after": "30"})
    assert RetryPolicy().delay(1, exc) >= exc.retry_after >= 30
    assert RetryPolicy().delay(1, TransportError("x", retry_after=7.0)) >= 7
    waits = {round(RetryPolicy().delay(3), 3) for _ in range(20)}
    assert len(waits) > 1 and all(4 * 0.7 <= w <= 4 * 1.3 for w in waits)
