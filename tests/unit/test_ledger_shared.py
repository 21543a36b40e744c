"""One ledger shared by many machines, on both backends: identity that travels between machines,
claims that never hand one row to two workers, leases that run out and are taken over."""

from __future__ import annotations

import threading
from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest

from mwingest.ledger.ledger import (
    AmbiguousItemError,
    Lease,
    Ledger,
    RowLeasedError,
    State,
    UnknownItemError,
    make_ident,
    normalise_account,
    shown,
)

WIKI = "http://127.0.0.1:9412/w/api.php"
OTHER_WIKI = "http://127.0.0.1:9413/w/api.php"
SHA_A, SHA_B = "a" * 40, "b" * 40
TTL = timedelta(minutes=5)


def machine(location: str, host: str, clock: list[datetime] | None = None) -> Ledger:
    """The shared ledger as one machine opens it."""
    return Ledger(location, host=host, clock=(lambda: clock[0]) if clock else None)


# --- identity -------------------------------------------------------------------------------------
def test_the_same_bytes_and_title_are_one_row_on_every_machine(ledger_location: str) -> None:
    with machine(ledger_location, "scan-1") as one, machine(ledger_location, "scan-2") as two:
        first = one.begin(WIKI, "/mnt/a/pier.jpg", sha1=SHA_A, size=10, target="Pier.jpg",
                          account="Archivist@ingest")
        one.transition(first.id, State.VALIDATED)
        # Another machine reads the same file from its own mount: the same row, now seen there.
        again = two.begin(WIKI, "/srv/in/pier.jpg", sha1=SHA_A, size=10, target="Pier.jpg",
                          account="Archivist@other-bot")
        assert (again.id, again.state, again.attempts) == (first.id, State.VALIDATED, 2)
        assert (again.host, again.source, again.account) == ("scan-2", "/srv/in/pier.jpg", "Archivist")
        assert again.ident == make_ident(SHA_A, "Pier.jpg")
        # A path is only a machine's: scan-1's path on scan-2 with other bytes is another file.
        other = two.begin(WIKI, "/mnt/a/pier.jpg", sha1=SHA_B, size=10, target="Pier.jpg",
                          account="Archivist")
        assert other.id != first.id and one.get(first.id).sha1 == SHA_A
        # Another account, or another wiki: another row.
        assert two.begin(WIKI, "/srv/in/pier.jpg", sha1=SHA_A, size=10, target="Pier.jpg",
                         account="Curator").id != first.id
        assert two.begin(OTHER_WIKI, "/srv/in/pier.jpg", sha1=SHA_A, size=10, target="Pier.jpg",
                         account="Archivist").id != first.id


def test_a_manifest_id_is_the_identity_and_a_changed_file_starts_over(ledger: Ledger) -> None:
    row = ledger.begin(WIKI, "/a/x.tif", sha1=SHA_A, size=10, target="X.tif", key="acc-1911-042")
    assert row.ident == "manifest:acc-1911-042" and row.ref == "manifest:acc-1911-042"
    ledger.transition(row.id, State.VALIDATED)
    moved = ledger.begin(WIKI, "/b/x-rescan.tif", sha1=SHA_B, size=12, target="X (rescan).tif",
                         key="acc-1911-042")
    assert (moved.id, moved.state, moved.reason, moved.target) == (row.id, State.PENDING,
                                                                 "source-changed", "X (rescan).tif")


def test_find_by_reference_within_a_wiki_and_account(ledger: Ledger) -> None:
    mine = ledger.begin(WIKI, "/d/one.png", sha1=SHA_A, size=1, target="One.png", account="Ann")
    ledger.begin(WIKI, "/d/two.png", sha1=SHA_A, size=1, target="Two.png", account="Ann")
    theirs = ledger.begin(OTHER_WIKI, "/d/one.png", sha1=SHA_A, size=1, target="One.png",
                          account="Ann")
    assert mine.ref == f"{SHA_A[:12]}:One.png"
    assert ledger.find(mine.ref, wiki=WIKI, account="Ann").id == mine.id
    assert ledger.find(f"sha1:{SHA_A}:One.png", wiki=WIKI).id == mine.id
    assert ledger.find(f"{SHA_A[:12].upper()}:One.png", wiki=OTHER_WIKI).id == theirs.id
    assert ledger.find(str(mine.id)).id == mine.id
    with pytest.raises(AmbiguousItemError) as many:  # two titles, and two wikis: say which
        ledger.find(SHA_A[:8], wiki=WIKI)
    assert sorted(many.value.refs) == sorted([mine.ref, f"{SHA_A[:12]}:Two.png"])
    with pytest.raises(UnknownItemError):
        ledger.find(mine.ref, wiki=WIKI, account="Bob")  # another account's rows are not found
    with pytest.raises(UnknownItemError):
        ledger.find(str(theirs.id), wiki=WIKI)  # a row id of another wiki is not this wiki's item
    digits = ledger.begin(WIKI, "/d/n.png", sha1="1234567890" + "f" * 30, size=1, target="N.png")
    assert ledger.find("123456").id == digits.id  # no row 123456: the start of a SHA-1
    assert ledger.find(digits.ref).id == digits.id


def test_account_names_are_the_wikis() -> None:
    assert normalise_account("archivist_bot@ingest") == "Archivist bot"
    assert normalise_account(None) == ""


def test_a_database_password_is_never_shown() -> None:
    url = "postgresql+psycopg://mwingest:hunter2@db.example.org:5433/mwingest"
    assert "hunter2" not in shown(url) and "db.example.org:5433/mwingest" in shown(url)
    assert shown("/home/me/ledger.sqlite3") == "/home/me/ledger.sqlite3"
    from mwingest.base.redact import redact
    from mwingest.ledger.store import make_engine

    engine = make_engine("postgresql://mwingest:pw-canary-4711@127.0.0.1:1/x", busy_timeout=1)
    assert engine.dialect.driver == "psycopg"  # psycopg 3, also where SQLAlchemy 2.0 means psycopg2
    assert "pw-canary-4711" not in redact("connect to mwingest:pw-canary-4711@db failed")


def test_two_machines_beginning_one_new_file_at_once_get_one_row(ledger_location: str) -> None:
    """Both find no row and insert: the second insert meets the unique identity and reads the
    first one's row instead of failing."""
    barrier = threading.Barrier(8)
    ids: list[int] = []

    def worker(n: int) -> None:
        with machine(ledger_location, f"m{n}") as led:
            barrier.wait()
            ids.append(led.begin(WIKI, f"/m{n}/same.png", sha1=SHA_A, size=1, target="Same.png",
                                 account="Ann").id)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(ids) == 8 and len(set(ids)) == 1


# --- claims and leases ----------------------------------------------------------------------------
def _pending(led: Ledger, count: int, account: str = "Ann") -> list[int]:
    return [led.begin(WIKI, f"/batch/{n}.png", sha1=f"{n:040x}", size=1, target=f"{n}.png",
                      account=account).id for n in range(count)]


def test_concurrent_claims_never_hand_out_one_row_twice(ledger_location: str) -> None:
    with Ledger(ledger_location) as led:
        ids = _pending(led, 60)
    barrier = threading.Barrier(4)
    got: dict[str, list[int]] = {}

    def worker(name: str) -> None:
        mine: list[int] = []
        with machine(ledger_location, name) as led:
            barrier.wait()
            while batch := led.claim_next(f"{name}:1:run", wiki=WIKI, account="Ann", ttl=TTL, limit=3):
                mine += [row.id for row in batch]
        got[name] = mine

    threads = [threading.Thread(target=worker, args=(f"w{n}",)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    claimed = Counter(i for rows in got.values() for i in rows)
    assert sorted(claimed) == sorted(ids) and set(claimed.values()) == {1}
    with Ledger(ledger_location) as led:  # the database agrees: each row leased to its claimer
        owners = {row.id: row.lease_owner for row in led.items()}
    assert all(owners[i] == f"{name}:1:run" for name, rows in got.items() for i in rows)


def test_claims_take_only_free_rows_of_that_wiki_and_account(ledger: Ledger) -> None:
    ids = _pending(ledger, 3)
    _pending(ledger, 2, account="Bob")
    ledger.transition(ids[2], State.VALIDATED)
    ledger.transition(ids[2], State.NEEDS_REVIEW, reason="exists")  # a person's, not a worker's
    assert [r.id for r in ledger.claim_next("a:1:x", wiki=WIKI, account="Ann", ttl=TTL, limit=9)] == ids[:2]
    assert ledger.claim_next("b:1:y", wiki=WIKI, account="Ann", ttl=TTL) == []
    assert ledger.claim_next("b:1:y", wiki=OTHER_WIKI, account="Ann", ttl=TTL) == []
    # The holder asking again gets nothing new: its rows are kept by renew, not claimed twice.
    assert ledger.claim_next("a:1:x", wiki=WIKI, account="Ann", ttl=TTL, limit=9) == []
    assert ledger.renew("a:1:x", ttl=TTL * 2) == ids[:2]


def test_an_expired_lease_is_taken_over_and_renewal_keeps_it(ledger_location: str) -> None:
    now = [datetime(2026, 12, 3, 12, 0, tzinfo=UTC)]
    with machine(ledger_location, "a", now) as a, machine(ledger_location, "b", now) as b:
        kept, lost = _pending(a, 2)
        assert [r.id for r in a.claim_next("a:1:x", wiki=WIKI, account="Ann", ttl=TTL, limit=2)] == [
            kept, lost]
        a.transition(lost, State.VALIDATED)
        a.transition(lost, State.STASHING)
        a.record_chunk(lost, filekey="k1.chunks", offset=1, chunk_size=1)
        now[0] += timedelta(minutes=4)
        assert a.renew("a:1:x", ttl=TTL, item_ids=[kept]) == [kept]  # worker a renews one row only
        assert b.claim_next("b:2:y", wiki=WIKI, account="Ann", ttl=TTL, limit=5) == []
        now[0] += timedelta(minutes=2)  # 6 min: the unrenewed lease ran out, the renewed one holds
        taken = b.claim_next("b:2:y", wiki=WIKI, account="Ann", ttl=TTL, limit=5)
        assert [(r.id, r.lease_owner, r.filekey, r.offset) for r in taken] == [
            (lost, "b:2:y", "k1.chunks", 1)]  # b continues from the stash key and offset
        assert a.renew("a:1:x", ttl=TTL) == [kept]  # a learns it lost the other row
        with pytest.raises(RowLeasedError):
            a.begin(WIKI, "/batch/1.png", sha1=f"{1:040x}", size=1, target="1.png", account="Ann",
                    lease=Lease("a:1:x", TTL))
        b.release(lost, "b:2:y")
        assert b.get(lost).lease_owner is None


def test_a_worker_that_was_taken_over_can_no_longer_write(ledger_location: str) -> None:
    """The fence: after its lease ran out and another worker claimed the row, the stalled
    worker's chunk and move are refused and the row stays as the new holder has it."""
    now = [datetime(2026, 12, 3, 12, 0, tzinfo=UTC)]
    with machine(ledger_location, "a", now) as a, machine(ledger_location, "b", now) as b:
        [item_id] = _pending(a, 1)
        assert a.claim(item_id, "a:1:x", ttl=TTL)
        a.transition(item_id, State.VALIDATED, owner="a:1:x")
        a.transition(item_id, State.STASHING, owner="a:1:x")
        a.record_chunk(item_id, filekey="k1", offset=0, chunk_size=1, owner="a:1:x")
        now[0] += TTL + timedelta(seconds=1)  # a stalls past its lease
        assert [r.id for r in b.claim_next("b:2:y", wiki=WIKI, account="Ann", ttl=TTL)] == [item_id]
        before = b.get(item_id)
        with pytest.raises(RowLeasedError):
            a.record_chunk(item_id, filekey="k1", offset=1, chunk_size=1, owner="a:1:x")
        with pytest.raises(RowLeasedError):
            a.transition(item_id, State.FAILED, reason="transport-error", owner="a:1:x")
        assert b.get(item_id) == before and len(b.history(item_id)) == 3
        b.record_chunk(item_id, filekey="k1", offset=1, chunk_size=1, owner="b:2:y")
        assert b.transition(item_id, State.STASHED, owner="b:2:y").offset == 1


def test_copy_uploads_are_known_by_their_url(ledger: Ledger) -> None:
    """The wiki fetches a copy upload's bytes, so its URL stands for them in the identity."""
    unknown = "0" * 40
    one = ledger.begin(WIKI, "https://files.example.org/a.tif", sha1=unknown, size=0, target="A.tif")
    two = ledger.begin(WIKI, "https://mirror.example.org/a.tif", sha1=unknown, size=0, target="A.tif")
    assert one.id != two.id and one.ident == "url:https://files.example.org/a.tif:A.tif"
    assert ledger.find(two.ref, wiki=WIKI).id == two.id


def test_item_by_path_is_this_machines(ledger_location: str) -> None:
    with machine(ledger_location, "a") as a, machine(ledger_location, "b") as b:
        row = a.begin(WIKI, "/in/p.png", sha1=SHA_A, size=1, target="P.png", account="Ann")
        assert a.item(WIKI, "/in/p.png") == row == a.item(WIKI, "/in/p.png", account="Ann")
        assert a.item(WIKI, "/in/p.png", account="Bob") is None
        assert b.item(WIKI, "/in/p.png") is None  # b's /in/p.png is another file


def test_a_ledger_parameter_with_a_password_is_refused_and_the_password_not_shown():
    from mwingest.ledger.ledger import LedgerLocationError, parameter_location

    assert parameter_location(None) is None
    assert parameter_location("/srv/ledger.sqlite3") == "/srv/ledger.sqlite3"
    plain = "postgresql+psycopg://mwingest@db/mwingest"
    assert parameter_location(plain) == plain  # the password comes from ~/.pgpass or the env
    with pytest.raises(LedgerLocationError) as caught:
        parameter_location("postgresql+psycopg://mwingest:s3cret-pw@db/mwingest")
    assert "s3cret-pw" not in str(caught.value) and "MWINGEST_LEDGER_URL" in str(caught.value)
