"""The ledger: state machine, atomic moves, file mode, queries, secrets, locations (leases:
``test_ledger_leases.py``; concurrency and crashes: ``test_ledger_processes.py``; the schema and
migrations: ``test_ledger_schema.py``).

Every test taking ``ledger`` or ``ledger_location`` runs on both backends (SQLite and PostgreSQL,
see ``tests/unit/conftest.py``); the file's own properties (mode, WAL, PRAGMAs) are SQLite's only.
"""

from __future__ import annotations

import os
import sqlite3
import stat
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from mwingest.ledger.ledger import (
    OUTCOMES,
    TRANSITIONS,
    IllegalTransitionError,
    Ledger,
    State,
    default_path,
    set_redactor,
)

WIKI = "http://127.0.0.1:9412/w/api.php"
SHA_A, SHA_B = "a" * 40, "b" * 40
S = State
#: A legal way to reach each state from a fresh ``pending`` row.
ROUTE: dict[State, list[State]] = {
    S.PENDING: [], S.VALIDATED: [S.VALIDATED], S.STASHING: [S.VALIDATED, S.STASHING],
    S.STASHED: [S.VALIDATED, S.STASHING, S.STASHED],
    S.NEEDS_REVIEW: [S.VALIDATED, S.STASHING, S.STASHED, S.NEEDS_REVIEW],
    S.PUBLISHING: [S.VALIDATED, S.PUBLISHING], S.PUBLISHED: [S.VALIDATED, S.PUBLISHING, S.PUBLISHED],
    S.DESCRIBING: [S.VALIDATED, S.PUBLISHING, S.DESCRIBING],
    S.UPLOADED: [S.VALIDATED, S.UPLOADED], S.SKIPPED: [S.SKIPPED], S.REJECTED: [S.REJECTED],
    S.FAILED: [S.FAILED],
}


@pytest.fixture(autouse=True)
def _identity_redactor():
    yield
    set_redactor(None)


def walk(led: Ledger, item_id: int, states: list[State]) -> None:
    for state in states:
        led.transition(item_id, state, reason="test")


def new_item(led: Ledger, name: str = "a.png", *, sha1: str = SHA_A, size: int = 10_000) -> int:
    return led.begin(WIKI, f"/data/{name}", sha1=sha1, size=size, target=name.capitalize()).id


# --- file ---------------------------------------------------------------------------------------------
def test_new_file_is_0600_with_parent_dirs_even_under_a_lax_umask(tmp_path: Path) -> None:
    path = tmp_path / "x" / "y" / "ledger.sqlite3"
    old = os.umask(0)
    try:
        with Ledger(path) as led:
            new_item(led)
    finally:
        os.umask(old)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    wal = path.with_name(path.name + "-wal")
    if wal.exists():  # SQLite gives the WAL the database file's mode
        assert stat.S_IMODE(wal.stat().st_mode) == 0o600


def test_existing_file_is_made_0600(tmp_path: Path) -> None:
    path = tmp_path / "ledger.sqlite3"
    path.touch(mode=0o644)
    os.chmod(path, 0o644)
    Ledger(path).close()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_default_path(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("MWINGEST_LEDGER", str(tmp_path / "explicit.db"))
    assert default_path() == tmp_path / "explicit.db"
    monkeypatch.delenv("MWINGEST_LEDGER")
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    assert default_path() == tmp_path / "xdg" / "mwingest" / "ledger.sqlite3"
    monkeypatch.delenv("XDG_DATA_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert default_path() == tmp_path / "home" / ".local" / "share" / "mwingest" / "ledger.sqlite3"


def test_wal_and_full_sync(tmp_path: Path) -> None:
    with Ledger(tmp_path / "l.sqlite3") as ledger:
        outside = sqlite3.connect(ledger.path)
        assert outside.execute("PRAGMA journal_mode").fetchone()[0] == "wal"  # persisted in the file
        outside.close()
        with ledger._write() as conn:  # synchronous is per connection: look at the ledger's own
            assert conn.exec_driver_sql("PRAGMA synchronous").scalar() == 2  # FULL
            assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() >= 1000
            assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1


# --- state machine ------------------------------------------------------------------------------------
@pytest.mark.parametrize("src", list(State))
@pytest.mark.parametrize("dst", list(State))
def test_every_move_follows_the_table(ledger: Ledger, src: State, dst: State) -> None:
    item_id = new_item(ledger)
    walk(ledger, item_id, ROUTE[src])
    events_before = len(ledger.history(item_id))
    if dst in TRANSITIONS[src]:
        item = ledger.transition(item_id, dst, reason="r", decision={"action": "publish", "by": "me"})
        assert item.state is dst
        assert len(ledger.history(item_id)) == events_before + 1
    else:
        with pytest.raises(IllegalTransitionError):
            ledger.transition(item_id, dst, reason="r")
        assert ledger.get(item_id).state is src
        assert len(ledger.history(item_id)) == events_before


def test_the_brief_s_key_moves() -> None:
    assert not TRANSITIONS[S.SKIPPED] and not TRANSITIONS[S.REJECTED]
    # A landed file goes back only to write its structured data; its bytes are never sent again.
    assert TRANSITIONS[S.UPLOADED] == {S.DESCRIBING}
    assert {S.VALIDATED, S.STASHING} <= TRANSITIONS[S.FAILED]
    assert {S.STASHED, S.UPLOADED, S.SKIPPED, S.FAILED} <= TRANSITIONS[S.NEEDS_REVIEW]
    assert S.UPLOADED not in TRANSITIONS[S.STASHING]  # publish only an assembled stash
    assert S.STASHING not in TRANSITIONS[S.PENDING]  # never send unvalidated bytes
    assert {str(o) for o in OUTCOMES} == {"uploaded", "skipped", "rejected", "needs-review", "failed"}


def test_chunked_upload_with_review(ledger: Ledger) -> None:
    item_id = new_item(ledger)
    walk(ledger, item_id, [S.VALIDATED, S.STASHING])
    for n in range(1, 4):
        ledger.record_chunk(item_id, filekey="k1.png", offset=n * 1024, chunk_size=1024)
    item = ledger.get(item_id)
    assert (item.filekey, item.offset, item.chunk_size, item.resumable) == ("k1.png", 3072, 1024, True)
    # The final chunk's answer brings a new key; the review is about the publish warnings.
    ledger.transition(item_id, S.STASHED, filekey="k2.png", offset=10_000)
    warnings = {"duplicate": ["Other.png"], "exists": "A.png"}
    ledger.transition(item_id, S.NEEDS_REVIEW, reason="duplicate", warnings=warnings)
    decision = {"action": "rename", "name": "B.png", "by": "reviewer"}
    done = ledger.transition(item_id, S.UPLOADED, reason="published", final_name="B.png",
                             decision=decision, flow_run_id="run-2")
    assert (done.state, done.final_name, done.filekey, done.warnings) == (
        S.UPLOADED, "B.png", "k2.png", warnings)
    assert done.decision is not None and done.decision["name"] == "B.png" and "at" in done.decision
    moves = [(e.from_state, e.to_state) for e in ledger.history(item_id)]
    assert moves == [(None, S.PENDING), (S.PENDING, S.VALIDATED), (S.VALIDATED, S.STASHING),
                     (S.STASHING, S.STASHED), (S.STASHED, S.NEEDS_REVIEW), (S.NEEDS_REVIEW, S.UPLOADED)]
    assert ledger.history(item_id)[-1].run_id == "run-2"


def test_run_ids_are_kept_unless_replaced(ledger: Ledger) -> None:
    item_id = ledger.begin(WIKI, "/data/r.png", sha1=SHA_A, size=1, target="R.png", run_id="run-1").id
    ledger.transition(item_id, S.VALIDATED, flow_run_id=None, task_run_id="task-9")
    item = ledger.get(item_id)
    assert (item.flow_run_id, item.task_run_id) == ("run-1", "task-9")
    ledger.transition(item_id, S.FAILED, reason="x", flow_run_id="run-2")
    assert [e.run_id for e in ledger.history(item_id)] == ["run-1", "run-1", "run-2"]


def test_outcomes_need_a_reason_and_bad_decisions_are_refused(ledger: Ledger) -> None:
    item_id = new_item(ledger)
    with pytest.raises(ValueError, match="reason"):
        ledger.transition(item_id, S.FAILED)
    walk(ledger, item_id, ROUTE[S.NEEDS_REVIEW])
    with pytest.raises(ValueError, match="new name"):
        ledger.transition(item_id, S.UPLOADED, reason="x", decision={"action": "rename"})
    with pytest.raises(ValueError, match="action"):
        ledger.transition(item_id, S.SKIPPED, reason="x", decision={"action": "delete"})
    assert ledger.get(item_id).state is S.NEEDS_REVIEW


def test_record_chunk_only_while_stashing_and_within_the_file(ledger: Ledger) -> None:
    item_id = new_item(ledger, size=4096)
    walk(ledger, item_id, [S.VALIDATED])
    with pytest.raises(IllegalTransitionError):
        ledger.record_chunk(item_id, filekey="k", offset=1024, chunk_size=1024)
    walk(ledger, item_id, [S.STASHING])
    with pytest.raises(IllegalTransitionError):
        ledger.record_chunk(item_id, filekey="k", offset=5000, chunk_size=1024)
    assert ledger.get(item_id).offset == 0


def test_restarting_from_validated_forgets_the_stash(ledger: Ledger) -> None:
    item_id = new_item(ledger)
    walk(ledger, item_id, [S.VALIDATED, S.STASHING])
    ledger.record_chunk(item_id, filekey="gone.png", offset=2048, chunk_size=1024)
    item = ledger.transition(item_id, S.VALIDATED, reason="uploadstash-file-not-found")
    assert (item.filekey, item.offset, item.stash_created_at, item.resumable) == (None, 0, None, False)


def _sabotage_stashed_events(ledger: Ledger, on: bool) -> None:
    """A trigger that makes the event insert of a move to ``stashed`` fail (or its removal)."""
    if ledger.dialect == "sqlite":
        sql = ["CREATE TRIGGER boom BEFORE INSERT ON events WHEN NEW.to_state = 'stashed' "
               "BEGIN SELECT RAISE(ABORT, 'disk on fire'); END"] if on else ["DROP TRIGGER boom"]
    else:
        sql = ["CREATE FUNCTION boom() RETURNS trigger LANGUAGE plpgsql AS "
               "$$ BEGIN RAISE EXCEPTION 'disk on fire'; END $$",
               "CREATE TRIGGER boom BEFORE INSERT ON events FOR EACH ROW "
               "WHEN (NEW.to_state = 'stashed') EXECUTE FUNCTION boom()"] if on else [
               "DROP TRIGGER boom ON events", "DROP FUNCTION boom()"]
    with ledger._write() as conn:  # another connection than the move's
        for statement in sql:
            conn.exec_driver_sql(statement)


def test_a_failed_transaction_leaves_the_old_state(ledger: Ledger) -> None:
    """The event insert fails after the row update ran: the update must roll back with it."""
    import sqlalchemy as sa

    item_id = new_item(ledger)
    walk(ledger, item_id, [S.VALIDATED, S.STASHING])
    ledger.record_chunk(item_id, filekey="k.png", offset=1024, chunk_size=1024)
    before, events = ledger.get(item_id), ledger.history(item_id)
    _sabotage_stashed_events(ledger, True)
    with pytest.raises(sa.exc.DBAPIError, match="disk on fire"):
        ledger.transition(item_id, S.STASHED, filekey="final.png", offset=10_000)
    assert ledger.get(item_id) == before
    assert ledger.history(item_id) == events
    _sabotage_stashed_events(ledger, False)
    assert ledger.transition(item_id, S.STASHED, filekey="final.png").filekey == "final.png"


# --- begin: re-runs -----------------------------------------------------------------------------------
def test_begin_returns_the_existing_row(ledger: Ledger) -> None:
    done_id = new_item(ledger, "done.png")
    walk(ledger, done_id, ROUTE[S.UPLOADED])
    again = ledger.begin(WIKI, "/data/done.png", sha1=SHA_A, size=10_000, target="Done.png", run_id="r2")
    assert (again.id, again.state, again.attempts) == (done_id, S.UPLOADED, 1)
    busy_id = new_item(ledger, "busy.png")
    walk(ledger, busy_id, ROUTE[S.STASHING])
    ledger.record_chunk(busy_id, filekey="kb.png", offset=4096, chunk_size=4096)
    resumed = ledger.begin(WIKI, "/data/busy.png", sha1=SHA_A, size=10_000, target="Busy.png",
                           run_id="r2")
    assert (resumed.id, resumed.state, resumed.filekey, resumed.offset) == (busy_id, S.STASHING,
                                                                          "kb.png", 4096)
    assert resumed.attempts == 2 and resumed.flow_run_id == "r2" and resumed.resumable


def test_changed_bytes_start_over_and_keep_history(ledger: Ledger) -> None:
    item_id = new_item(ledger)
    walk(ledger, item_id, ROUTE[S.UPLOADED])
    item = ledger.begin(WIKI, "/data/a.png", sha1=SHA_B, size=12, target="A.png")
    assert (item.id, item.state, item.sha1, item.size, item.reason) == (
        item_id, S.PENDING, SHA_B, 12, "source-changed")
    assert [e.to_state for e in ledger.history(item_id)][-1] is S.PENDING
    assert len(ledger.history(item_id)) == 4


def test_a_new_name_retries_a_rejected_file(ledger: Ledger) -> None:
    item_id = new_item(ledger)
    walk(ledger, item_id, ROUTE[S.REJECTED])
    same = ledger.begin(WIKI, "/data/a.png", sha1=SHA_A, size=10_000, target="A.png")
    assert same.state is S.REJECTED
    renamed = ledger.begin(WIKI, "/data/a.png", sha1=SHA_A, size=10_000, target="Better.png")
    assert (renamed.state, renamed.target, renamed.reason) == (S.PENDING, "Better.png", "target-changed")


def test_sources_and_wikis_are_normalised(ledger: Ledger, monkeypatch: pytest.MonkeyPatch,
                                          tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    first = ledger.begin("HTTP://127.0.0.1:9412/w/api.php", "pics/../pics/x.png", sha1=SHA_A, size=1,
                         target="X.png")
    second = ledger.begin(WIKI, tmp_path / "pics" / "x.png", sha1=SHA_A, size=1, target="X.png")
    assert first.id == second.id and first.source == str(tmp_path / "pics" / "x.png")
    assert ledger.item(WIKI, "pics/x.png") == second
    url = ledger.begin(WIKI, " https://example.org/a.png ", sha1=SHA_A, size=1, target="A.png")
    assert url.source == "https://example.org/a.png"


# --- queries ------------------------------------------------------------------------------------------
def test_find_by_sha1_summary_and_items(ledger: Ledger) -> None:
    other = "http://127.0.0.1:9413/w/api.php"
    a = new_item(ledger, "a.png")
    b = new_item(ledger, "copy-of-a.png")
    c = new_item(ledger, "c.png", sha1=SHA_B)
    ledger.begin(other, "/data/a.png", sha1=SHA_A, size=10_000, target="A.png")
    walk(ledger, a, ROUTE[S.UPLOADED])
    walk(ledger, c, ROUTE[S.FAILED])
    assert [i.id for i in ledger.find_by_sha1(WIKI, SHA_A.upper())] == [a, b]
    assert ledger.summary(WIKI) == {**{s.value: 0 for s in State}, "uploaded": 1, "pending": 1,
                                    "failed": 1}
    assert ledger.summary()["pending"] == 2
    assert [i.id for i in ledger.items(wiki=WIKI, states=["failed", S.UPLOADED])] == [a, c]
    assert [i.id for i in ledger.items(wiki=WIKI, limit=1)] == [a]
    future = datetime.now(UTC) + timedelta(days=1)
    assert ledger.items(since=future) == [] and len(ledger.items(states=[])) == 0


def test_stash_clock_and_resumable(ledger_location: str) -> None:
    now = [datetime(2026, 1, 1, 8, 0, tzinfo=UTC)]
    with Ledger(ledger_location, clock=lambda: now[0]) as led:
        item_id = new_item(led)
        walk(led, item_id, [S.VALIDATED, S.STASHING])
        led.record_chunk(item_id, filekey="k.png", offset=1024, chunk_size=1024)
        now[0] += timedelta(hours=2)
        led.record_chunk(item_id, filekey="k.png", offset=2048, chunk_size=1024)
        item = led.get(item_id)
        assert item.stash_created_at == datetime(2026, 1, 1, 8, 0, tzinfo=UTC)  # chunk 1 starts the clock
        assert item.is_resumable(now=datetime(2026, 1, 1, 13, 0, tzinfo=UTC))
        assert not item.is_resumable(now=datetime(2026, 1, 1, 14, 0, tzinfo=UTC))
        led.record_chunk(item_id, filekey="fresh.png", offset=1024, chunk_size=1024)  # a new session
        assert led.get(item_id).stash_created_at == now[0]


# --- secrets ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("field", ["password", "csrf_token", "cookie", "client_secret"])
def test_secret_like_fields_are_refused(ledger: Ledger, field: str) -> None:
    item_id = new_item(ledger)
    with pytest.raises(ValueError, match="credentials") as info:
        ledger.transition(item_id, S.VALIDATED, **{field: "hunter2"})
    assert "hunter2" not in str(info.value)
    with pytest.raises(ValueError, match="credentials"):
        ledger.transition(item_id, S.VALIDATED, warnings={"nested": [{field: "hunter2"}]})
    assert ledger.get(item_id).state is S.PENDING


def test_messages_pass_the_redactor(ledger: Ledger) -> None:
    set_redactor(lambda text: text.replace("hunter2", "***"))
    item_id = new_item(ledger)
    ledger.transition(item_id, S.FAILED, reason="login-failed", message="bad password hunter2")
    assert ledger.get(item_id).message == "bad password ***"
    assert ledger.history(item_id)[-1].message == "bad password ***"
    assert b"hunter2" not in everything_stored(ledger)


def everything_stored(ledger: Ledger) -> bytes:
    """What the database holds: the file and its WAL, or every row of every table."""
    if ledger.path is not None:
        return ledger.path.read_bytes() + Path(str(ledger.path) + "-wal").read_bytes()
    with ledger._write() as conn:
        rows = [conn.exec_driver_sql(f"SELECT t::text FROM {table} t").scalars().all()
                for table in ("items", "events", "schema_history")]
    return "\n".join(str(row) for table in rows for row in table).encode()


def test_registered_secrets_are_masked_by_default(ledger: Ledger) -> None:
    from mwingest.base.redact import register_secret

    register_secret("s3cret-canary-value")
    item_id = new_item(ledger)
    ledger.transition(item_id, S.FAILED, reason="login-failed",
                      message="wiki said: bad password s3cret-canary-value")
    assert "s3cret-canary-value" not in (ledger.get(item_id).message or "")


def test_a_failed_row_remembers_where_it_failed_and_keeps_its_stash(ledger: Ledger) -> None:
    item_id = new_item(ledger)
    ledger.transition(item_id, State.VALIDATED)
    ledger.transition(item_id, State.STASHING, chunk_size=4096)
    ledger.record_chunk(item_id, filekey="k1.chunks", offset=4096, chunk_size=4096)
    failed = ledger.transition(item_id, State.FAILED, reason="transport-error")
    assert (failed.filekey, failed.offset) == ("k1.chunks", 4096)
    assert ledger.get(item_id).failed_from is State.STASHING
    intent = {"op": "publish", "name": "A.png", "ignorewarnings": False, "at": "2026-12-03T00:00:00"}
    ledger.transition(item_id, State.STASHING)
    ledger.record_chunk(item_id, filekey="k1.chunks", offset=10_000, chunk_size=4096)
    ledger.transition(item_id, State.STASHED, filekey="k2.final")
    ledger.transition(item_id, State.PUBLISHING, intent=intent)
    kept = ledger.transition(item_id, State.FAILED, reason="response-lost")
    assert kept.intent == intent and ledger.get(item_id).failed_from is State.PUBLISHING
    assert ledger.transition(item_id, State.PUBLISHING).intent == intent
    assert ledger.transition(item_id, State.UPLOADED, reason="verified").intent is None


def test_the_ledger_url_wins_and_sqlite_urls_are_files(tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    from mwingest.ledger.ledger import LedgerLocationError, default_location

    monkeypatch.setenv("MWINGEST_LEDGER", str(tmp_path / "file.sqlite3"))
    assert default_location() == str(tmp_path / "file.sqlite3")
    monkeypatch.setenv("MWINGEST_LEDGER_URL", f"sqlite:///{tmp_path}/by-url.sqlite3")
    with Ledger() as led:  # no location: the URL from the environment
        assert led.path == tmp_path / "by-url.sqlite3" and led.dialect == "sqlite"
        item_id = new_item(led)
    with Ledger(tmp_path / "by-url.sqlite3") as led:
        assert led.get(item_id).state is S.PENDING
    for bad in ("sqlite://", "mysql://u@h/db"):
        with pytest.raises(LedgerLocationError):
            Ledger(bad)
