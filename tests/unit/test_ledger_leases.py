"""Ledger leases: which run drives a row, until when, and what frees it (both backends; the
database's clock under skew: ``test_ledger_clock.py``; a lease kept through a long step:
``test_leasekeeper.py``)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from mwingest.ledger.ledger import Ledger, State
from tests.unit.test_ledger import SHA_A, WIKI, new_item


def test_a_lease_keeps_other_runs_off_a_row_until_it_ends(ledger: Ledger) -> None:
    from mwingest.ledger.ledger import Lease, RowLeasedError

    mine = Lease("host:1:a", timedelta(minutes=5))
    theirs = Lease("host:2:b", timedelta(minutes=5))
    row = ledger.begin(WIKI, "/data/l.png", sha1=SHA_A, size=10, target="L.png", lease=mine)
    assert row.lease_owner == "host:1:a"
    events = len(ledger.history(row.id))
    with pytest.raises(RowLeasedError) as held:
        ledger.begin(WIKI, "/data/l.png", sha1=SHA_A, size=10, target="L.png", lease=theirs)
    assert held.value.row.id == row.id and len(ledger.history(row.id)) == events  # untouched
    assert not ledger.claim(row.id, theirs.owner, ttl=theirs.ttl)
    assert ledger.claim(row.id, mine.owner, ttl=mine.ttl)  # the holder renews
    # A holder known to be dead (kill -9 on this machine) frees the row at once.
    assert ledger.claim(row.id, theirs.owner, ttl=theirs.ttl, is_stale=lambda o: o == "host:1:a")
    # Reaching an outcome ends the lease in the same transaction.
    ledger.transition(row.id, State.VALIDATED)
    done = ledger.transition(row.id, State.SKIPPED, reason="duplicate")
    assert done.lease_owner is None and done.lease_until is None


def test_a_lease_runs_out_without_renewal(ledger_location: str) -> None:
    now = [datetime(2026, 12, 3, tzinfo=UTC)]
    with Ledger(ledger_location, clock=lambda: now[0]) as led:
        item_id = new_item(led)
        assert led.claim(item_id, "host:1:a", ttl=timedelta(minutes=15))
        assert not led.claim(item_id, "host:2:b", ttl=timedelta(minutes=15))
        now[0] += timedelta(minutes=16)
        assert led.claim(item_id, "host:2:b", ttl=timedelta(minutes=15))
