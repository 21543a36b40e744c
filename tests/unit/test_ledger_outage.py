"""A PostgreSQL ledger rides out its database going away (issue 24): a restart under writers,
a COMMIT whose answer is lost (applied once, never twice), an outage longer than the budget.

Each test here restarts or cuts a server, so they use a PostgreSQL of their own (not the
session's, which other tests of this worker share) and, for the lost answers, a TCP relay in
front of it (``tests/tcprelay.py``).
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Iterator

import psycopg
import pytest
import sqlalchemy as sa

from mwingest.ledger.ledger import Ledger, LedgerUnavailableError, State, transient
from tests.pg import PostgresServer, running_postgres
from tests.tcprelay import Relay

WIKI = "http://127.0.0.1:9412/w/api.php"


@pytest.fixture(scope="module")
def own_pg() -> Iterator[PostgresServer]:
    with running_postgres() as server:
        yield server


def _row(ledger: Ledger, n: int) -> int:
    return ledger.begin(WIKI, f"/in/{n}.png", sha1=f"{n:040x}", size=10, target=f"{n}.png").id


def _events(ledger: Ledger, item_id: int) -> list[tuple[str | None, str]]:
    return [(e.from_state and e.from_state.value, e.to_state.value)
            for e in ledger.history(item_id)]


def test_a_restart_under_two_writers_loses_and_doubles_nothing(own_pg: PostgresServer) -> None:
    """Two threads (two workers' ledgers) move rows while the server stops fast and starts
    again 2 s later: every move lands once, none fails."""
    url = own_pg.fresh_url()
    ledgers = [Ledger(url, retry_budget_s=30), Ledger(url, retry_budget_s=30)]
    errors: list[BaseException] = []
    ids: list[list[int]] = [[], []]

    def work(k: int) -> None:
        try:
            for n in range(40):
                item = _row(ledgers[k], 1000 * k + n)
                ledgers[k].transition(item, State.VALIDATED)
                ids[k].append(item)
                time.sleep(0.05)
        except BaseException as exc:  # noqa: BLE001 - the assertion shows it
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(k,)) for k in (0, 1)]
    for thread in threads:
        thread.start()
    time.sleep(0.5)
    down = own_pg.restart(2.0)
    for thread in threads:
        thread.join(timeout=60)
    try:
        assert not errors, errors
        assert len(ids[0]) == len(ids[1]) == 40
        retries = sum(led._outage.retries for led in ledgers)  # type: ignore[union-attr]
        print(f"down {down:.1f} s, {retries} operations run again")
        assert retries > 0
        for item in ids[0] + ids[1]:
            assert _events(ledgers[0], item) == [(None, "pending"), ("pending", "validated")]
    finally:
        for led in ledgers:
            led.close()


@pytest.mark.parametrize("when", ["before", "after"])
def test_a_commit_whose_answer_is_lost_is_applied_once(own_pg: PostgresServer, when: str,
                                                        caplog: pytest.LogCaptureFixture) -> None:
    """The connection is cut as COMMIT goes out: ``before`` the server saw it (run again) or
    ``after`` it committed (asked, found saved, not run again). Either way one move, one event."""
    schema_url = own_pg.fresh_url()
    relay = Relay(own_pg.port)
    try:
        with Ledger(schema_url.replace(f":{own_pg.port}/", f":{relay.port}/"),
                    retry_budget_s=20) as ledger:
            item = _row(ledger, 1)
            relay.arm(b"COMMIT", when)  # type: ignore[arg-type]
            moved = ledger.transition(item, State.VALIDATED)
            assert relay.cuts == 1
            assert moved.state is State.VALIDATED
            assert _events(ledger, item) == [(None, "pending"), ("pending", "validated")]
            saved = [r for r in caplog.records if "the server says it was saved" in r.getMessage()]
            assert len(saved) == (when == "after"), caplog.text
            # A transaction that wrote nothing has no id to ask about: it is simply run again.
            relay.arm(b"COMMIT", when)  # type: ignore[arg-type]
            assert ledger.take_token(WIKI, "bot") == 0.0 and relay.cuts == 2
    finally:
        relay.close()


def test_an_outage_longer_than_the_budget_says_so_and_the_next_try_is_quick(
        own_pg: PostgresServer) -> None:
    url = own_pg.fresh_url()
    with Ledger(url, retry_budget_s=3) as ledger:
        item = _row(ledger, 7)
        own_pg.stop()
        try:
            started = time.monotonic()
            with pytest.raises(LedgerUnavailableError, match=r"did not answer for \d+ s") as said:
                ledger.transition(item, State.VALIDATED)
            assert 3 <= time.monotonic() - started < 10
            assert f"127.0.0.1:{own_pg.port}" in str(said.value) and "mwingest" not in str(said.value)
            started = time.monotonic()
            with pytest.raises(LedgerUnavailableError):  # once given up: one try, no new budget
                ledger.get(item)
            assert time.monotonic() - started < 2
        finally:
            own_pg.start()
        assert ledger.transition(item, State.VALIDATED).state is State.VALIDATED
        assert ledger.transition(item, State.STASHING).state is State.STASHING


def test_only_a_lost_or_refused_connection_is_run_again() -> None:
    """What a wait can fix (a server going down, starting up, a cut connection) is retried;
    a wrong name, a refused login, a broken constraint or SQLite's own errors are not."""
    def wrapped(orig: Exception, kind: type[sa.exc.DBAPIError] = sa.exc.OperationalError,
                invalidated: bool = False) -> sa.exc.DBAPIError:
        return kind("SELECT 1", {}, orig, connection_invalidated=invalidated)

    refused = psycopg.OperationalError('connection failed: connection to server at "127.0.0.1", '
                                       "port 5432 failed: Connection refused")
    assert transient(wrapped(refused))
    assert transient(wrapped(psycopg.errors.AdminShutdown("terminating connection")))
    assert transient(wrapped(psycopg.errors.CannotConnectNow("the database system is starting up")))
    assert transient(wrapped(psycopg.errors.DeadlockDetected("deadlock"), sa.exc.DBAPIError))
    assert transient(wrapped(psycopg.InterfaceError("the connection is lost"), sa.exc.DBAPIError,
                             invalidated=True))
    assert not transient(wrapped(psycopg.OperationalError(
        'connection failed: FATAL:  database "ledger" does not exist')))
    assert not transient(wrapped(psycopg.OperationalError(
        'connection failed: FATAL:  password authentication failed for user "mwingest"')))
    assert not transient(wrapped(psycopg.errors.UniqueViolation("duplicate key"),
                                 sa.exc.IntegrityError))
    assert not transient(wrapped(sqlite3.OperationalError("database is locked")))
    assert not transient(ValueError("not a database error"))
