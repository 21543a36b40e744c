"""The ledger's schema: its version, migrations from older files with their rows and history, and a
newer schema refused (SQLite files and PostgreSQL).
"""

from __future__ import annotations

import sqlite3
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from mwingest.ledger import ledger as ledger_mod
from mwingest.ledger.ledger import (
    Ledger,
    LedgerError,
)
from tests.unit.test_ledger import SHA_A, SHA_B, WIKI, S, new_item


# --- schema -------------------------------------------------------------------------------------------
def test_schema_version_and_migration_from_an_older_file(tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "l.db"
    with Ledger(path) as led:
        item_id = new_item(led)
    check = sqlite3.connect(path)
    current = len(ledger_mod.MIGRATIONS)
    assert check.execute("PRAGMA user_version").fetchone()[0] == current
    check.close()
    step = ("CREATE TABLE notes (item_id INTEGER, text TEXT)", "INSERT INTO notes VALUES (0, 'm2')")
    monkeypatch.setattr(ledger_mod, "MIGRATIONS", [*ledger_mod.MIGRATIONS, step])
    for _ in range(2):  # the second open must not run the step again
        with Ledger(path) as led:
            assert led.get(item_id).state is S.PENDING
    check = sqlite3.connect(path)
    assert check.execute("PRAGMA user_version").fetchone()[0] == current + 1
    assert check.execute("SELECT COUNT(*) FROM notes").fetchone()[0] == 1
    assert [r[0] for r in check.execute("SELECT version FROM schema_history")] == list(
        range(1, current + 2))
    check.close()


def _old_ledger_file(path: Path, version: int) -> None:
    """A ledger as mwingest wrote it at schema ``version`` (1 or 3): an in-flight chunked upload,
    and two copies of one picture (same bytes, same title) from two folders, with events."""
    conn = sqlite3.connect(path)
    for number, step in enumerate(ledger_mod.MIGRATIONS[:version], start=1):
        for statement in step:
            conn.execute(statement)
        conn.execute("INSERT INTO schema_history VALUES (?, '2026-01-01T00:00:00.000000+00:00')",
                     (number,))
    conn.execute(f"PRAGMA user_version = {version}")
    stamp = "2026-01-01T08:00:00.000000+00:00"
    rows = [("/data/big.tif", SHA_A, "Big.tif", "stashing", "k1.chunks", 4096),
            ("/data/x/pier.jpg", SHA_B, "Pier.jpg", "uploaded", None, 0),
            ("/data/y/pier.jpg", SHA_B, "Pier.jpg", "pending", None, 0)]
    for n, (source, sha1, target, state, filekey, offset) in enumerate(rows, start=1):
        conn.execute("INSERT INTO items (id, wiki, source, sha1, size, target, state, filekey,"
                     ' "offset", stash_created_at, created_at, updated_at, attempts)'
                     " VALUES (?, ?, ?, ?, 10000, ?, ?, ?, ?, ?, ?, ?, 1)",
                     (n, WIKI, source, sha1, target, state, filekey, offset,
                      stamp if filekey else None, stamp, stamp))
        conn.execute("INSERT INTO events (item_id, from_state, to_state, reason, at)"
                     " VALUES (?, NULL, 'pending', 'new', ?)", (n, stamp))
    conn.commit()
    conn.close()


@pytest.mark.parametrize("version", [1, 3])
def test_an_older_file_opens_with_its_rows_and_history(tmp_path: Path, version: int) -> None:
    path = tmp_path / "old.sqlite3"
    _old_ledger_file(path, version)
    with Ledger(path) as led:
        big = led.get(1)
        assert (big.state, big.filekey, big.offset, big.source) == (S.STASHING, "k1.chunks", 4096,
                                                                    "/data/big.tif")
        assert (big.account, big.ident, big.host) == ("", f"sha1:{SHA_A}:Big.tif", None)
        assert [len(led.history(n)) for n in (1, 2, 3)] == [1, 1, 1]  # no event lost to the rebuild
        # The two copies keep apart: the first owns the identity, the second is told by its id.
        assert (led.get(2).ident, led.get(3).ident) == (f"sha1:{SHA_B}:Pier.jpg",
                                                        f"sha1:{SHA_B}:Pier.jpg#3")
        assert led.find(f"{SHA_B[:8]}:Pier.jpg").id == 2 and led.find(led.get(3).ref).id == 3
        # A run with a login adopts the row (same id, same stash) and from then on it is the account's.
        again = led.begin(WIKI, "/data/big.tif", sha1=SHA_A, size=10_000, target="Big.tif",
                          account="Archivist@ingest")
        assert (again.id, again.account, again.offset, again.host) == (1, "Archivist", 4096, led.host)
        led.transition(1, S.STASHING, params={"text": "== Summary ==", "tags": ["a"]})
        assert led.get(1).params == {"text": "== Summary ==", "tags": ["a"]}
    check = sqlite3.connect(path)
    assert check.execute("PRAGMA user_version").fetchone()[0] == len(ledger_mod.MIGRATIONS)
    assert check.execute("PRAGMA foreign_key_check").fetchall() == []
    check.close()


def test_a_newer_schema_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "l.db"
    Ledger(path).close()
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA user_version = 99")
    conn.close()
    with pytest.raises(LedgerError, match="newer"):
        Ledger(path)


def test_a_newer_postgres_schema_is_refused(postgres: Any) -> None:
    url = postgres.fresh_url()
    with Ledger(url) as led, led._write() as conn:
        conn.exec_driver_sql("INSERT INTO schema_history VALUES (99, 'later')")
    with pytest.raises(LedgerError, match="newer"):
        Ledger(url)


def test_postgres_schema_is_at_the_current_version_once(postgres: Any) -> None:
    """Eight ledgers opened at once on an empty database: one migrates, all work."""
    url = postgres.fresh_url()

    def open_and_use(n: int) -> int:
        with Ledger(url) as led:
            return new_item(led, f"{n}.png")

    with ThreadPoolExecutor(max_workers=8) as pool:
        ids = list(pool.map(open_and_use, range(8)))
    assert len(set(ids)) == 8
    with Ledger(url) as led, led._write() as conn:
        versions = conn.exec_driver_sql("SELECT version FROM schema_history ORDER BY version").scalars()
        assert list(versions) == list(range(1, len(ledger_mod.PG_MIGRATIONS) + 1))


def test_v7_fills_where_each_failed_row_failed_from_its_events(tmp_path: Path) -> None:
    """Before v7 a re-run read a failed row's resume point from the events; the migration puts it
    on the row, from the last move into ``failed`` (not a failure of a failed row)."""
    path = tmp_path / "v6.sqlite3"
    conn = sqlite3.connect(path)
    for number, step in enumerate(ledger_mod.MIGRATIONS[:6], start=1):
        for statement in step:
            conn.execute(statement)
        conn.execute("INSERT INTO schema_history VALUES (?, '2026-01-01T00:00:00.000000+00:00')",
                     (number,))
    conn.execute("PRAGMA user_version = 6")
    stamp = "2026-01-01T08:00:00.000000+00:00"
    moves = {1: ("failed", ["pending", "validated", "stashing", "failed", "stashing", "failed"]),
             2: ("failed", ["pending", "validated", "publishing", "failed"]),
             3: ("uploaded", ["pending", "validated", "uploaded"])}
    for n, (state, route) in moves.items():
        conn.execute("INSERT INTO items (id, wiki, account, ident, source, sha1, size, target,"
                     " state, created_at, updated_at, attempts) VALUES (?, ?, '', ?, ?, ?, 10, ?,"
                     " ?, ?, ?, 1)", (n, WIKI, f"sha1:{SHA_A}:F{n}.png", f"/data/{n}.png", SHA_A,
                                      f"F{n}.png", state, stamp, stamp))
        for before, after in zip([None, *route], route, strict=False):
            conn.execute("INSERT INTO events (item_id, from_state, to_state, at) VALUES (?, ?, ?, ?)",
                         (n, before, after, stamp))
    conn.commit()
    conn.close()
    with Ledger(path) as led:
        assert [led.get(n).failed_from for n in (1, 2, 3)] == [S.STASHING, S.PUBLISHING, None]
        assert led.transition(2, S.PUBLISHING).failed_from is None  # picked up: no longer failed
