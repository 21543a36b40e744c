"""A lease kept while one long step runs: a second run cannot take the row over (issue 24).

A real SQLite ledger, two owners. The "long step" is a sleep several times the lease's life."""

from __future__ import annotations

import time
from datetime import timedelta

import pytest

from mwingest.job import leasekeeper
from mwingest.ledger.ledger import Ledger

pytestmark = pytest.mark.unit
WIKI = "http://127.0.0.1:9412/w/api.php"
SHA = "a" * 40


def test_a_step_longer_than_the_lease_keeps_it_and_a_second_run_is_kept_off(tmp_path) -> None:
    ttl = timedelta(seconds=0.6)
    with Ledger(str(tmp_path / "l.sqlite3")) as ledger:
        row = ledger.begin(WIKI, "/data/a.png", sha1=SHA, size=1, target="A.png").id
        assert ledger.claim(row, "host:1:mine", ttl=ttl)
        lost: list[bool] = []
        with leasekeeper.kept(lambda: ledger.claim(row, "host:1:mine", ttl=ttl), ttl,
                              on_lost=lambda: lost.append(True)):
            tries = []
            end = time.monotonic() + 4 * ttl.total_seconds()  # the step outlasts the lease 4x
            while time.monotonic() < end:
                tries.append(ledger.claim(row, "host:2:theirs", ttl=ttl))
                time.sleep(0.1)
        assert tries and not any(tries) and not lost
        time.sleep(ttl.total_seconds() + 0.2)  # the step is over: nobody renews, it runs out
        assert ledger.claim(row, "host:2:theirs", ttl=ttl)


def test_a_renewal_that_finds_the_row_taken_says_so_once(tmp_path) -> None:
    ttl = timedelta(seconds=0.3)
    with Ledger(str(tmp_path / "l.sqlite3")) as ledger:
        row = ledger.begin(WIKI, "/data/b.png", sha1=SHA, size=1, target="B.png").id
        assert ledger.claim(row, "host:2:theirs", ttl=timedelta(minutes=5))
        lost: list[bool] = []
        with leasekeeper.kept(lambda: ledger.claim(row, "host:1:mine", ttl=ttl), ttl,
                              on_lost=lambda: lost.append(True)):
            time.sleep(4 * ttl.total_seconds())
        assert lost == [True]


def test_a_renewal_on_a_full_ledger_disk_says_nothing_the_batch_says_it_once(caplog) -> None:
    """The batch stops with one line on a full ledger disk; the keeper must not add its own
    (the claim here is the ledger's answer on that disk, as the real one raises it)."""
    from mwingest.ledger.ledger import LedgerFullError

    def full() -> bool:
        raise LedgerFullError("disk full: the ledger /x/l.sqlite3 cannot record anything")

    ttl = timedelta(seconds=0.15)
    lost: list[bool] = []
    with caplog.at_level("WARNING", logger="mwingest.job"), \
            leasekeeper.kept(full, ttl, on_lost=lambda: lost.append(True)):
        time.sleep(4 * ttl.total_seconds())
    assert not lost and not [r for r in caplog.records if r.name == "mwingest.job"]
