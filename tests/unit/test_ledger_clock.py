"""On PostgreSQL the ledger's time is the database's: machines sharing one ledger whose clocks
disagree by hours still agree on who holds a lease and on what the token bucket holds.

A machine's clock is set wrong here by replacing the ledger's local clock on that one instance
(``_clock``). Not through ``clock=``, which tests use to give the ledger its time outright, on
both backends; not by faking the system clock in a second process, which needs libfaketime,
absent here. Both ledgers run in this process against one real PostgreSQL schema.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa

from mwingest.base.ratelimit import Limit
from mwingest.ledger.ledger import Lease, Ledger, RowLeasedError, State

WIKI = "http://127.0.0.1:9412/w/api.php"
TTL = timedelta(minutes=5)
SHORT = timedelta(seconds=1)
FAST = Limit(10, 1.0)  # a bucket of one token, refilled in about 0.3 s


@pytest.fixture(params=[timedelta(hours=2), timedelta(hours=-2)], ids=["ahead", "behind"])
def skew(request: pytest.FixtureRequest) -> timedelta:
    return request.param


@pytest.fixture
def pg_url(postgres) -> str:  # noqa: ANN001 - tests/pg.py's server
    return postgres.fresh_url()


@contextmanager
def machines(url: str, skew: timedelta) -> Iterator[tuple[Ledger, Ledger]]:
    """Two machines on one ledger: the first's clock is right, the second's off by ``skew``."""
    with Ledger(url, host="right") as right, Ledger(url, host="wrong") as wrong:
        wrong._clock = lambda: datetime.now(UTC) + skew
        yield right, wrong


def _row(led: Ledger, n: int) -> int:
    return led.begin(WIKI, f"/in/{n}.png", sha1=f"{n:040x}", size=1, target=f"{n}.png",
                     account="Ann").id


def _claim(led: Ledger, owner: str, ttl: timedelta = TTL) -> list[int]:
    return [r.id for r in led.claim_next(owner, wiki=WIKI, account="Ann", ttl=ttl, limit=5)]


def test_a_live_lease_is_held_for_a_machine_whose_clock_is_off(pg_url: str, skew: timedelta) -> None:
    with machines(pg_url, skew) as (right, wrong):
        mine = _row(right, 1)
        assert _claim(right, "right:1:a") == [mine]
        theirs = _row(wrong, 2)
        assert _claim(wrong, "wrong:1:b") == [theirs]
        # Neither machine takes the other's row, by any way in.
        assert _claim(wrong, "wrong:1:b") == [] and _claim(right, "right:1:a") == []
        assert not wrong.claim(mine, "wrong:1:b", ttl=TTL)
        assert not right.claim(theirs, "right:1:a", ttl=TTL)
        with pytest.raises(RowLeasedError):
            wrong.begin(WIKI, "/in/1.png", sha1=f"{1:040x}", size=1, target="1.png",
                        account="Ann", lease=Lease("wrong:1:b", TTL))
        right.transition(mine, State.VALIDATED, owner="right:1:a")
        right.transition(mine, State.STASHING, owner="right:1:a")
        with pytest.raises(RowLeasedError):  # the fences judge by the database's time too
            wrong.record_chunk(mine, filekey="k", offset=0, chunk_size=1, owner="wrong:1:b")
        with pytest.raises(RowLeasedError):
            wrong.transition(mine, State.FAILED, reason="transport-error", owner="wrong:1:b")
        assert right.renew("right:1:a", ttl=TTL) == [mine]
        assert wrong.renew("wrong:1:b", ttl=TTL) == [theirs]
        assert {r.id: r.lease_owner for r in right.items()} == {mine: "right:1:a",
                                                                theirs: "wrong:1:b"}


def test_a_lease_runs_out_by_the_databases_clock(pg_url: str, skew: timedelta) -> None:
    with machines(pg_url, skew) as (right, wrong):
        mine, theirs = _row(right, 1), _row(right, 2)
        assert right.claim(mine, "right:1:a", ttl=SHORT)
        assert wrong.claim(theirs, "wrong:1:b", ttl=SHORT)
        began = datetime.now(UTC)  # this machine's clock is the database's: one host
        for row in right.items():
            assert row.lease_until is not None
            assert began - timedelta(seconds=1) < row.lease_until <= began + SHORT
        time.sleep(1.2)  # both ran out: each machine takes the other's row
        assert right.claim(theirs, "right:1:a", ttl=SHORT)
        assert _claim(wrong, "wrong:1:b") == [mine]
        # A renewal and a claim of many rows are stamped by the database too.
        assert wrong.renew("wrong:1:b", ttl=SHORT) == [mine]
        assert wrong.get(mine).lease_until <= datetime.now(UTC) + SHORT  # type: ignore[operator]
        time.sleep(1.2)
        assert _claim(right, "right:1:a") == [mine, theirs]


def test_the_stamps_pg_writes_read_as_the_ledgers_own(pg_url: str) -> None:
    """A stamp formatted in SQL (claim_next, renew, record_chunk) is the text the ledger makes
    of the same time in Python (``Ledger._stamp``): text order is time order only while all
    stamps look alike. A guard for the SQL format, not a clock test."""
    with Ledger(pg_url) as led:
        item = _row(led, 1)
        _claim(led, "a:1:x")
        led.transition(item, State.VALIDATED, owner="a:1:x")
        led.transition(item, State.STASHING, owner="a:1:x")
        led.record_chunk(item, filekey="k", offset=1, chunk_size=1, owner="a:1:x")
    engine = sa.create_engine(pg_url)
    try:
        with engine.connect() as conn:
            stamps = conn.execute(sa.text(
                "SELECT lease_until, updated_at, stash_created_at FROM items")).one()
    finally:
        engine.dispose()
    for text in stamps:
        assert datetime.fromisoformat(text).astimezone(UTC).isoformat(timespec="microseconds") == text


def test_the_token_bucket_is_timed_by_the_database(pg_url: str, skew: timedelta) -> None:
    with machines(pg_url, skew) as (right, wrong):
        right.set_limit(WIKI, "Ann", FAST)
        assert right.take_token(WIKI, "Ann") == 0.0  # the one token
        # A clock hours ahead would find the bucket long refilled; one hours behind would
        # stamp it in the past, so the next worker would find it refilled.
        wait = wrong.take_token(WIKI, "Ann")
        assert 0.0 < wait <= 0.35
        assert 0.0 < right.take_token(WIKI, "Ann") <= 0.35
        time.sleep(wait + 0.05)
        assert wrong.take_token(WIKI, "Ann") == 0.0  # refilled by the database's time
        state = wrong.pace_state(WIKI, "Ann")
        assert state is not None and abs(state.read_at - time.time()) < 5


def test_a_pause_lasts_its_seconds_on_every_machine(pg_url: str, skew: timedelta) -> None:
    with machines(pg_url, skew) as (right, wrong):
        right.set_limit(WIKI, "Ann", FAST)
        until = wrong.pause(WIKI, "Ann", 1.0, "retry-after")
        assert abs(until - (time.time() + 1.0)) < 1
        assert 0.5 < right.take_token(WIKI, "Ann") <= 1.0
        time.sleep(1.1 + 1 / FAST.bucket()[1])  # the pause, then one token's refill
        assert right.take_token(WIKI, "Ann") == 0.0


def _statements(led: Ledger, work: Callable[[], object]) -> int:
    """How many statements ``work`` sends (psycopg's BEGIN and COMMIT are not counted)."""
    sent: list[str] = []

    def count(*args: object) -> None:
        sent.append(str(args[2]))

    sa.event.listen(led._engine, "before_cursor_execute", count)
    try:
        work()
    finally:
        sa.event.remove(led._engine, "before_cursor_execute", count)
    return len(sent)


def test_reading_the_databases_clock_costs_no_statement_on_the_busy_paths(pg_url: str) -> None:
    """The time is read with a row the write locks anyway, or inside the statement itself:
    a ledger on the database's clock sends as many statements as one given a clock. A guard
    on the cost (it holds for the old code too, which read no database time at all)."""
    def steps(led: Ledger, n: int) -> list[Callable[[], object]]:
        item = _row(led, n)
        return [lambda: led.claim(item, "a:1:x", ttl=TTL),
                lambda: led.transition(item, State.VALIDATED, owner="a:1:x"),
                lambda: led.transition(item, State.STASHING, owner="a:1:x"),
                lambda: led.record_chunk(item, filekey="k", offset=1, chunk_size=1, owner="a:1:x"),
                lambda: led.renew("a:1:x", ttl=TTL),
                lambda: led.take_token(WIKI, "Ann"),
                lambda: led.pace_state(WIKI, "Ann"),
                lambda: led.begin(WIKI, f"/in/{n}.png", sha1=f"{n:040x}", size=1,
                                  target=f"{n}.png", account="Ann", lease=Lease("a:1:x", TTL)),
                lambda: led.begin(WIKI, f"/in/new{n}.png", sha1=f"{n + 100:040x}", size=1,
                                  target=f"new{n}.png", account="Ann", lease=Lease("a:1:x", TTL)),
                lambda: _claim(led, "b:1:y")]

    with Ledger(pg_url) as own, Ledger(pg_url, clock=lambda: datetime.now(UTC)) as given:
        own.set_limit(WIKI, "Ann", None)
        counts = [(_statements(own, a), _statements(given, b))
                  for a, b in zip(steps(own, 1), steps(given, 2), strict=True)]
    assert [a for a, _ in counts] == [b for _, b in counts]


def test_a_stash_s_age_is_judged_by_the_database_s_clock(pg_url: str, skew: timedelta) -> None:
    """The wiki keeps a stash for 6 hours from when it was made: a machine two hours off must
    neither trust a key that is 5 h 55 min old (behind) nor drop a 4-hour-old one (ahead)."""
    with machines(pg_url, skew) as (right, wrong):
        assert abs(wrong.now() - datetime.now(UTC)) < timedelta(minutes=1)  # not its own clock
        judged, by_own_clock = [], []
        for n, age in ((7, timedelta(hours=5, minutes=55)), (8, timedelta(hours=4))):
            item = _row(right, n)
            right.transition(item, State.VALIDATED)
            right.transition(item, State.STASHING)
            right.transition(item, State.STASHED, filekey=f"k.{n}",
                             stash_created_at=right.now() - age)
            judged.append(wrong.get(item).is_resumable(wrong.now()))
            by_own_clock.append(wrong.get(item).is_resumable(wrong._clock()))
        assert judged == [False, True]
        assert by_own_clock != judged  # what the machine's own clock would have said


def test_on_sqlite_the_ledger_s_time_is_its_clock(tmp_path) -> None:  # noqa: ANN001
    when = datetime(2030, 1, 2, tzinfo=UTC)
    with Ledger(tmp_path / "l.sqlite3", clock=lambda: when) as led:
        assert led.now() == when
