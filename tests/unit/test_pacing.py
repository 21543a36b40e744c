"""Pacing of writes per (wiki, account), on both backends: the account's limits read from the
wiki's answer, one token bucket shared by every worker, and a pause any worker can set."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from mwingest.base.errors import ApiError
from mwingest.base.ratelimit import JITTER_S, Limit
from mwingest.ledger.ledger import Ledger
from mwingest.wiki.pacing import (
    RATELIMITED_PAUSE_S,
    fetch_limit,
    limit_from_userinfo,
    pause_seconds,
    wait_for_token,
)

WIKI = "https://commons.example.org/w/api.php"
#: What ``meta=userinfo&uiprop=ratelimits|rights`` says for a normal Commons account (2026).
NORMAL_USER = {"name": "Archivist", "rights": ["upload", "edit"],
               "ratelimits": {"upload": {"user": {"hits": 380, "seconds": 4320},
                                         "ip": {"hits": 500, "seconds": 4320}},
                              "edit": {"user": {"hits": 90, "seconds": 60}}}}


def test_the_strictest_limit_on_uploads_is_the_accounts() -> None:
    assert limit_from_userinfo(NORMAL_USER) == Limit(380, 4320.0)
    assert limit_from_userinfo({**NORMAL_USER, "rights": ["upload", "noratelimit"]}) is None  # bots
    assert limit_from_userinfo({"name": "Sysop", "rights": ["upload"]}) is None


def test_fetch_limit_asks_userinfo_once() -> None:
    asked: list[dict[str, Any]] = []

    class Session:
        def get(self, params: Any) -> dict[str, Any]:
            asked.append(dict(params))
            return {"query": {"userinfo": NORMAL_USER}}

    assert fetch_limit(Session()) == Limit(380, 4320.0)
    assert asked == [{"action": "query", "meta": "userinfo", "uiprop": "ratelimits|rights"}]


@pytest.mark.parametrize(("hits", "seconds"), [(380, 4320), (8, 60), (2, 60), (5000, 3600)])
def test_a_bucket_never_exceeds_the_limit_in_any_window(hits: int, seconds: float) -> None:
    capacity, rate = Limit(hits, seconds).bucket()
    assert capacity >= 1 and rate > 0
    # burst plus what refills while the wiki still counts an upload: fewer than hits + 1
    assert capacity + rate * (seconds * 31 / 30 + JITTER_S) < hits + 1
    assert rate == pytest.approx(0.9 * hits / seconds)  # the promised 90 %


def test_one_write_per_window_spaces_writes_more_than_the_wikis_memory_apart() -> None:
    capacity, rate = Limit(1, 60).bucket()
    assert capacity == 1.0 and 1 / rate >= 62 + JITTER_S - 1


def _clock_ledger(location: str, now: list[datetime]) -> Ledger:
    return Ledger(location, clock=lambda: now[0])


def test_workers_share_one_bucket(ledger_location: str) -> None:
    now = [datetime(2026, 12, 3, 12, tzinfo=UTC)]
    limit = Limit(100, 1000.0)  # bucket: 7.8 at once, then 90 per 1000 s
    capacity, rate = limit.bucket()
    with _clock_ledger(ledger_location, now) as one, _clock_ledger(ledger_location, now) as two:
        one.set_limit(WIKI, "Archivist@a", limit)
        two.set_limit(WIKI, "Archivist@b", limit)  # the second worker's start: no fresh burst
        taken = [w.take_token(WIKI, "Archivist") for w in (one, two) * 10]
        assert taken[:int(capacity)] == [0.0] * int(capacity)
        wait = taken[int(capacity)]
        assert wait == pytest.approx((1 - capacity % 1) / rate)  # the rest of one token's refill
        now[0] += timedelta(seconds=wait)
        assert two.take_token(WIKI, "Archivist") == 0.0
        assert one.take_token(WIKI, "Archivist") > 0
        state = one.pace_state(WIKI, "Archivist")
        assert state is not None and state.limit == limit and state.capacity == capacity
        # Another account, or an account with no limit recorded, is not held back.
        assert one.take_token(WIKI, "Curator") == 0.0
        one.set_limit(WIKI, "Botty", None)
        assert [one.take_token(WIKI, "Botty") for _ in range(50)] == [0.0] * 50


def test_a_pause_seen_by_one_worker_holds_them_all(ledger_location: str) -> None:
    now = [datetime(2026, 12, 3, 12, tzinfo=UTC)]
    with _clock_ledger(ledger_location, now) as one, _clock_ledger(ledger_location, now) as two:
        two.set_limit(WIKI, "Archivist", None)
        error = ApiError("ratelimited", "You've exceeded your rate limit.")
        seconds = pause_seconds(error)
        assert seconds == RATELIMITED_PAUSE_S
        one.pause(WIKI, "Archivist", seconds, "ratelimited")
        assert two.take_token(WIKI, "Archivist") == pytest.approx(RATELIMITED_PAUSE_S)
        one.pause(WIKI, "Archivist", 5, "retry-after")  # a shorter pause does not cut a longer one
        assert two.pace_state(WIKI, "Archivist").paused_until == pytest.approx(  # type: ignore[union-attr]
            now[0].timestamp() + RATELIMITED_PAUSE_S)
        now[0] += timedelta(seconds=RATELIMITED_PAUSE_S + 1)
        assert two.take_token(WIKI, "Archivist") == 0.0
    assert pause_seconds(ValueError("no")) is None


def test_wait_for_token_sleeps_what_the_bucket_says(ledger: Ledger) -> None:
    slept: list[float] = []
    fake_now = [0.0]

    class Bucket:
        answers = [3.0, 0.5, 0.0]

        def take_token(self, wiki: str, account: str) -> float:
            return self.answers.pop(0)

    def sleep(seconds: float) -> None:
        slept.append(seconds)
        fake_now[0] += seconds

    assert wait_for_token(Bucket(), WIKI, "A", sleep=sleep, clock=lambda: fake_now[0]) == 3.5
    assert slept == [3.0, 0.5]
    ledger.pause(WIKI, "A", 600, "retry-after")
    with pytest.raises(TimeoutError):
        wait_for_token(ledger, WIKI, "A", timeout_s=10, sleep=sleep)


def test_concurrent_takers_never_spend_more_than_the_bucket(ledger_location: str) -> None:
    with Ledger(ledger_location) as setup:
        setup.set_limit(WIKI, "Archivist", Limit(1000, 10**9))  # 70.95 tokens, refill negligible
        capacity = setup.pace_state(WIKI, "Archivist").capacity  # type: ignore[union-attr]
    got: list[int] = []
    barrier = threading.Barrier(4)

    def worker() -> None:
        with Ledger(ledger_location) as led:
            barrier.wait()
            got.append(sum(led.take_token(WIKI, "Archivist") == 0.0 for _ in range(40)))

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sum(got) == int(capacity) == 70


class _SlotServer:
    """A scripted Prefect concurrency API: a real server cannot be made to answer 503 or drop
    connections on demand. ``answers``: status codes (or an exception) in order, then 200s."""

    def __init__(self, answers: list[object]) -> None:
        self.answers, self.calls = list(answers), 0

    def increment_concurrency_slots_with_lease(self, names, slots, mode, lease):  # noqa: ANN001, ANN201
        import httpx

        self.calls += 1
        request = httpx.Request("POST", "http://prefect/v2/concurrency_limits/increment")
        answer = self.answers.pop(0) if self.answers else 200
        if isinstance(answer, Exception):
            raise answer
        response = httpx.Response(answer, request=request, json={"lease_id": "L1"},
                                  headers={"Retry-After": "0.01"} if answer != 200 else {})
        if answer != 200:
            raise httpx.HTTPStatusError("no", request=request, response=response)
        return response

    def release_concurrency_slots_with_lease(self, lease_id):  # noqa: ANN001, ANN201
        self.released = lease_id


def test_a_write_slot_waits_through_a_troubled_prefect_server_and_for_a_free_slot():
    import httpx

    from tasks.pacing import WriteSlots

    server = _SlotServer([503, 423, httpx.ConnectError("refused"), 429, 200])
    with WriteSlots(server, "mwingest-writes w A", budget_s=30)():
        pass
    assert server.calls == 5 and server.released == "L1"


def test_a_write_slot_gives_up_after_its_budget_with_a_reason_and_raises_our_own_bugs():
    import httpx

    from mwingest.base.errors import WriteCapUnavailableError, reason_code
    from tasks.pacing import WriteSlots

    with pytest.raises(WriteCapUnavailableError) as caught, \
            WriteSlots(_SlotServer([503] * 1000), "mwingest-writes w A", budget_s=0.3)():
        pass
    assert reason_code(caught.value) == "write-cap-unavailable" and "HTTP 503" in str(caught.value)
    with pytest.raises(httpx.HTTPStatusError), WriteSlots(_SlotServer([404]), "x")():
        pass


def test_a_dead_prefect_server_costs_the_run_one_slot_budget_not_one_per_write():
    """Once the server has failed for the budget, the run's next writes fail at their first
    failed call instead of waiting the budget again each (100 files would wait for hours); a
    good answer ends the trouble."""
    import httpx

    from mwingest.base.errors import WriteCapUnavailableError
    from tasks.pacing import WriteSlots

    server = _SlotServer([httpx.ConnectError("refused")] * 1000)
    slots = WriteSlots(server, "mwingest-writes w A", budget_s=0.3)
    started = time.monotonic()
    with pytest.raises(WriteCapUnavailableError), slots():
        pass
    first = server.calls
    for _ in range(5):
        with pytest.raises(WriteCapUnavailableError), slots():
            pass
    assert server.calls == first + 5 and time.monotonic() - started < 3
    server.answers = [200]
    with slots():
        pass
    server.answers = [503]  # trouble again: a new budget, so this write waits it out
    with slots():
        pass
    assert server.released == "L1"
