"""A full disk under the SQLite ledger (issue 24): told from other database errors, one error
that stops the batch, the ledger left as its last commit.

The disk is SQLite's own: ``PRAGMA max_page_count`` makes a real SQLite answer SQLITE_FULL
("database or disk is full") exactly as a write that got ENOSPC does, without a file system
that needs root to mount (tests/integration/test_ledger_disk_full.py fills a real tmpfs).
"""

from __future__ import annotations

import errno
import logging
import sqlite3
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from mwingest.base.errors import BatchStoppedError, reason_code
from mwingest.ledger.ledger import Ledger, LedgerFullError, State, full_disk
from mwingest.runtime.adhoc import ConsoleFilter

WIKI = "https://wiki.example.org/w/api.php"


def _sqlite_full(tmp_path: Path) -> sqlite3.OperationalError:
    db = sqlite3.connect(tmp_path / "small.sqlite3")
    db.execute("CREATE TABLE t (x BLOB)")
    db.execute(f"PRAGMA max_page_count = {db.execute('PRAGMA page_count').fetchone()[0]}")
    try:
        db.execute("INSERT INTO t VALUES (zeroblob(100000))")
    except sqlite3.OperationalError as exc:
        return exc
    finally:
        db.close()
    raise AssertionError("SQLite took a row over its page limit")


def test_sqlite_full_and_enospc_are_a_full_disk_other_errors_are_not(tmp_path: Path) -> None:
    ledger = tmp_path / "ledger.sqlite3"
    full = full_disk(ledger, _sqlite_full(tmp_path))
    assert isinstance(full, LedgerFullError) and isinstance(full, BatchStoppedError)
    assert str(ledger) in str(full) and "disk full" in str(full)
    assert reason_code(full) == "ledger-full"
    assert full_disk(ledger, OSError(errno.ENOSPC, "No space left on device")) is not None
    try:
        sqlite3.connect(":memory:").execute("SELECT * FROM nowhere")
    except sqlite3.OperationalError as exc:
        assert full_disk(ledger, exc) is None
    assert full_disk(ledger, OSError(errno.EACCES, "Permission denied")) is None
    # "disk I/O error" is a full disk only when the disk has (almost) no space: this one has.
    ioerr = sqlite3.OperationalError("disk I/O error")
    ioerr.sqlite_errorcode = 10  # type: ignore[attr-defined]
    assert full_disk(ledger, ioerr) is None


def _limit_pages(ledger: Ledger) -> None:
    """Every connection of ``ledger`` from now on may not grow the file: the next write that
    needs a new page gets SQLITE_FULL. (The engine is the ledger's own: its pool is emptied so
    each connection is opened again with the limit.)"""
    engine: sa.Engine = ledger._engine  # noqa: SLF001 - the only way to reach its connections

    @sa.event.listens_for(engine, "connect")
    def _limit(dbapi_conn: Any, _record: Any) -> None:
        pages = dbapi_conn.execute("PRAGMA page_count").fetchone()[0]
        dbapi_conn.execute(f"PRAGMA max_page_count = {pages}")

    engine.dispose()


def test_a_write_on_a_full_disk_raises_once_and_leaves_the_rows_as_they_were(
        tmp_path: Path) -> None:
    with Ledger(tmp_path / "ledger.sqlite3") as ledger:
        row = ledger.begin(WIKI, tmp_path / "a.png", sha1="a" * 40, size=1, target="A.png",
                           params={"text": "x"})
        _limit_pages(ledger)
        with pytest.raises(LedgerFullError, match="disk full"):
            for n in range(200):  # until a write needs a page the file may not have
                ledger.begin(WIKI, tmp_path / f"{n}.png", sha1=f"{n:040x}", size=1,
                             target=f"N{n}.png", params={"text": "x" * 2000})
        assert isinstance(ledger.disk_full, LedgerFullError)
        kept = {r.target: r.state for r in ledger.items()}
        assert kept["A.png"] is State.VALIDATED
        assert ledger.get(row.id).intent is None  # no half-written move
        with ledger._read() as conn:  # noqa: SLF001 - the same file, as the ledger reads it
            assert conn.exec_driver_sql("PRAGMA integrity_check").scalar_one() == "ok"


def test_the_console_shows_no_traceback_of_a_full_ledger_disk() -> None:
    full = LedgerFullError("disk full: the ledger /x/ledger.sqlite3 cannot record anything")
    record = logging.LogRecord("prefect.flow_runs", logging.ERROR, __file__, 1, "Flow run failed",
                               None, (LedgerFullError, full, None))
    assert not ConsoleFilter(drop_outcomes=False).filter(record)
