"""The durable ledger: one SQLite row per (wiki, source file), moved through an explicit state machine.

Why a ledger and not Prefect's cache: Prefect leaves a killed run ``Running`` and keys its cache on
the run id, so only our own record can say "this file is already uploaded" or "resume chunk upload
*filekey* at *offset*" on the next run (reliability lessons, practice 9)::

    pending ─▶ validated ─▶ stashing ─▶ stashed ─▶ publishing ─▶ published ─▶ uploaded
                   │         (filekey,     ▲  │      (intent:        (uploaded at once when
                   │          offset)      │  │       name, flags)    the answer has the SHA-1)
                   │       warned, decided ┘  └─▶ needs-review ─▶ stashed (a decision)
                   └─▶ publishing (a small file: one direct request)
    any state ─▶ skipped | rejected | failed; failed ─▶ the state it failed in (a re-run goes on
    from there: stash key, offset and intent are kept)

Each move is one ``BEGIN IMMEDIATE`` transaction that updates the row *and* appends an ``events``
row, so history is complete and a crash leaves either the old state or the new one. WAL with
``synchronous=FULL`` makes every commit survive ``kill -9`` (and power loss); ``busy_timeout`` lets
threads (one connection each) and processes share the file. The ledger never stores secrets: field
names that look like credentials are refused and free text passes through :func:`set_redactor`.
"""

from __future__ import annotations

import json
import os
import re
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from mwingest.credentials import redact
from mwingest.ledger_model import (  # noqa: F401 - re-exported: the ledger's public names
    DECISION_ACTIONS,
    FINAL_STATES,
    OUTCOMES,
    STASH_MAX_AGE,
    TRANSITIONS,
    IllegalTransitionError,
    Lease,
    LedgerError,
    LedgerEvent,
    LedgerItem,
    RowLeasedError,
    State,
    UnknownItemError,
)
from mwingest.ledger_schema import MIGRATIONS
from mwingest.paths import mwingest_home

_STASH_COLS = ("filekey", "offset", "chunk_size", "stash_created_at")
_FIELDS = frozenset({*_STASH_COLS, "final_name", "target", "warnings", "decision", "params",
                     "intent", "flow_run_id", "task_run_id"})
_JSON_COLS = ("warnings", "decision", "params", "intent")
#: States that keep the intent of the write in flight (a failed row keeps it for the re-run).
_KEEPS_INTENT = frozenset({State.PUBLISHING, State.FAILED})
_SECRETISH = re.compile(r"pass(word|wd)?|token|cookie|secret|credential|api_?key", re.IGNORECASE)
_SHA1 = re.compile(r"[0-9a-f]{40}")


#: By default every secret the process has seen (passwords, tokens, cookies) is masked.
_redactor: Callable[[str], str] = redact


def set_redactor(redactor: Callable[[str], str] | None) -> None:
    """Install the function that scrubs reasons and messages before they are stored (None: the
    default, :func:`mwingest.credentials.redact`)."""
    global _redactor
    _redactor = redactor or redact


def default_path() -> Path:
    """``$MWINGEST_LEDGER``, else ``ledger.sqlite3`` in the mwingest home (``$MWINGEST_HOME``,
    else ``$XDG_DATA_HOME/mwingest``)."""
    if os.environ.get("MWINGEST_LEDGER"):
        return Path(os.environ["MWINGEST_LEDGER"]).expanduser()
    return mwingest_home() / "ledger.sqlite3"


def normalise_wiki(wiki: str) -> str:
    """The API URL with scheme and host lower-cased, so one wiki never gets two identities."""
    parts = urlsplit(wiki.strip())
    return urlunsplit((parts.scheme.lower(), parts.netloc.lower(), parts.path, parts.query, ""))


def normalise_source(source: str | os.PathLike[str]) -> str:
    """A URL stays as given (trimmed); a path becomes absolute and normalised (no symlink resolution)."""
    text = os.fspath(source)
    if re.match(r"\s*[a-zA-Z][a-zA-Z0-9+.-]*://", text):
        return text.strip()
    return os.path.abspath(os.path.expanduser(text))  # no strip: a trailing space is a legal name


def _refuse_secret_names(value: Any) -> None:
    """Raise if a field name, or a key anywhere inside a JSON value, looks like a credential."""
    if isinstance(value, Mapping):
        if any(_SECRETISH.search(str(key)) for key in value):
            raise ValueError("the ledger never stores credentials; refused a field that looks like one")
        value = list(value.values())
    if isinstance(value, list | tuple):
        for inner in value:
            _refuse_secret_names(inner)


def _redact(text: str | None) -> str | None:
    return None if text is None else _redactor(str(text))


class Ledger:
    """The ledger file; safe to share between threads (one connection each) and processes."""

    def __init__(self, path: str | os.PathLike[str] | None = None, *, busy_timeout: float = 60.0,
                 clock: Callable[[], datetime] | None = None) -> None:
        self.path = Path(path).expanduser() if path is not None else default_path()
        self._busy_timeout = busy_timeout
        self._clock = clock or (lambda: datetime.now(UTC))
        self._local = threading.local()
        self._lock = threading.Lock()
        self._conns: list[tuple[int, sqlite3.Connection]] = []
        self._closed = False
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        # Create the file 0600 before SQLite does (SQLite would use 0644 minus umask); fix old files.
        os.close(os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600))
        os.chmod(self.path, 0o600)
        try:
            self._migrate()
        except BaseException:
            self.close()
            raise

    # --- connections and transactions -------------------------------------------------------------
    def _conn(self) -> sqlite3.Connection:
        if self._closed:
            raise LedgerError("the ledger is closed")
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None or self._local.pid != os.getpid():  # never reuse a connection across fork
            conn = sqlite3.connect(self.path, timeout=self._busy_timeout, isolation_level=None,
                                   check_same_thread=False)
            conn.row_factory = sqlite3.Row
            conn.execute(f"PRAGMA busy_timeout = {int(self._busy_timeout * 1000)}")
            self._enable_wal(conn)
            conn.execute("PRAGMA synchronous = FULL")
            conn.execute("PRAGMA foreign_keys = ON")
            self._local.conn, self._local.pid = conn, os.getpid()
            with self._lock:
                self._conns.append((os.getpid(), conn))
        return conn

    def _enable_wal(self, conn: sqlite3.Connection) -> None:
        """Switch to WAL (a no-op once the file is WAL). While another process is creating the file
        the switch can fail with "database is locked" at once, busy_timeout or not: retry it."""
        deadline = time.monotonic() + self._busy_timeout
        while True:
            try:
                mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
                break
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) or time.monotonic() > deadline:
                    raise
                time.sleep(0.02)
        if mode != "wal":  # e.g. a filesystem without shared memory: we will not run without WAL
            raise LedgerError(f"{self.path}: SQLite refused WAL mode ({mode}); use a local disk")

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """One write transaction. IMMEDIATE takes the write lock up front: a deferred read that
        upgrades to a write fails at once with SQLITE_BUSY in WAL mode, whatever busy_timeout says."""
        conn = self._conn()
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield conn
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise

    def _migrate(self) -> None:
        with self._write() as conn:  # re-read inside the lock: another process may have migrated
            version = conn.execute("PRAGMA user_version").fetchone()[0]
            if version > len(MIGRATIONS):
                raise LedgerError(f"{self.path} has schema version {version}, newer than this mwingest's "
                                  f"{len(MIGRATIONS)}: upgrade mwingest")
            for number in range(version + 1, len(MIGRATIONS) + 1):
                for statement in MIGRATIONS[number - 1]:
                    conn.execute(statement)
                conn.execute("INSERT INTO schema_history VALUES (?, ?)", (number, self._stamp()))
                conn.execute(f"PRAGMA user_version = {number}")

    def close(self) -> None:
        """Close every connection this process opened. Call it after the worker threads finished."""
        with self._lock:
            self._closed = True
            for pid, conn in self._conns:
                if pid == os.getpid():
                    conn.close()
            self._conns.clear()

    def __enter__(self) -> Ledger:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _stamp(self, when: datetime | None = None) -> str:
        when = when or self._clock()
        when = when if when.tzinfo else when.replace(tzinfo=UTC)  # naive means UTC, not local time
        return when.astimezone(UTC).isoformat(timespec="microseconds")

    # --- reads ------------------------------------------------------------------------------------
    def item(self, wiki: str, source: str | os.PathLike[str]) -> LedgerItem | None:
        """The row for this file on this wiki, or None."""
        row = self._conn().execute("SELECT * FROM items WHERE wiki = ? AND source = ?",
                                   (normalise_wiki(wiki), normalise_source(source))).fetchone()
        return _item(row) if row else None

    def get(self, item_id: int) -> LedgerItem:
        """The row with this id; :class:`UnknownItemError` if there is none."""
        return self._get(self._conn(), item_id)

    def find_by_sha1(self, wiki: str, sha1: str) -> list[LedgerItem]:
        """Every row on this wiki with these bytes, whatever path they came from."""
        rows = self._conn().execute("SELECT * FROM items WHERE wiki = ? AND sha1 = ? ORDER BY id",
                                    (normalise_wiki(wiki), sha1.lower()))
        return [_item(r) for r in rows]

    def items(self, *, wiki: str | None = None, states: Iterable[State | str] | None = None,
              since: datetime | None = None, limit: int | None = None) -> list[LedgerItem]:
        """Rows filtered by wiki, states and last change (``updated_at >= since``), oldest id first."""
        where, args = ["1"], []
        if wiki is not None:
            where.append("wiki = ?")
            args.append(normalise_wiki(wiki))
        if states is not None:
            wanted = [State(s).value for s in states]
            where.append(f"state IN ({','.join('?' * len(wanted))})" if wanted else "0")
            args.extend(wanted)
        if since is not None:
            where.append("updated_at >= ?")
            args.append(self._stamp(since))
        sql = f"SELECT * FROM items WHERE {' AND '.join(where)} ORDER BY id"
        if limit is not None:
            sql += f" LIMIT {int(limit)}"
        return [_item(r) for r in self._conn().execute(sql, args)]

    def history(self, item_id: int) -> list[LedgerEvent]:
        """Every event of one item, oldest first."""
        rows = self._conn().execute("SELECT * FROM events WHERE item_id = ? ORDER BY id", (item_id,))
        return [LedgerEvent(r["id"], r["item_id"], State(r["from_state"]) if r["from_state"] else None,
                            State(r["to_state"]), r["reason"], r["message"],
                            datetime.fromisoformat(r["at"]), r["run_id"]) for r in rows]

    def summary(self, wiki: str | None = None) -> dict[str, int]:
        """Count of rows per state (every state present, zeros included)."""
        rows = self._conn().execute("SELECT state, COUNT(*) FROM items WHERE ? IS NULL OR wiki = ?"
                                    " GROUP BY state", (wiki and normalise_wiki(wiki),) * 2)
        return {**{s.value: 0 for s in State}, **dict(rows.fetchall())}

    # --- writes -----------------------------------------------------------------------------------
    def begin(self, wiki: str, source: str | os.PathLike[str], *, sha1: str, size: int, target: str,
              run_id: str | None = None, lease: Lease | None = None) -> LedgerItem:
        """Register a run's interest in a file and return its row.

        With ``lease`` the row is claimed in the same transaction (see :meth:`claim`); a row that
        another live run holds raises :class:`RowLeasedError` and is left exactly as it was.

        A new file starts ``pending``. A known one comes back as it is, so the caller sees that it
        is uploaded or can resume its stash; ``attempts`` counts the runs that picked it up while
        unfinished. Changed bytes (SHA-1 or size) start the row over, as does a new target for a
        rejected file (the rejection may have been the name).
        """
        sha1 = sha1.lower()
        if not _SHA1.fullmatch(sha1) or size < 0:
            raise ValueError("sha1 must be 40 hex digits and size ≥ 0")
        wiki, source, now = normalise_wiki(wiki), normalise_source(source), self._stamp()
        with self._write() as conn:
            row = conn.execute("SELECT * FROM items WHERE wiki = ? AND source = ?",
                               (wiki, source)).fetchone()
            if row is not None and lease is not None and self._held(row, lease):
                raise RowLeasedError(f"item {row['id']} is leased by another run", _item(row))
            if row is None:
                cur = conn.execute(
                    "INSERT INTO items (wiki, source, sha1, size, target, state, flow_run_id, created_at,"
                    " updated_at, attempts) VALUES (?, ?, ?, ?, ?, 'pending', ?, ?, ?, 1)",
                    (wiki, source, sha1, size, target, run_id, now, now))
                item_id = int(cur.lastrowid or 0)
                self._event(conn, item_id, None, State.PENDING, "new", None, run_id)
                self._lease(conn, item_id, lease)
                return self._get(conn, item_id)
            old = _item(row)
            if (old.sha1, old.size) != (sha1, size) or (old.state is State.REJECTED and old.target != target):
                why = "source-changed" if old.sha1 != sha1 or old.size != size else "target-changed"
                self._reset(conn, old, why, run_id, sha1=sha1, size=size, target=target)
            elif not old.done:
                conn.execute("UPDATE items SET target = ?, flow_run_id = COALESCE(?, flow_run_id),"
                             " attempts = attempts + 1, updated_at = ? WHERE id = ?",
                             (target, run_id, now, old.id))
                self._event(conn, old.id, old.state, old.state, "begin", None, run_id)
            self._lease(conn, old.id, lease)
            return self._get(conn, old.id)

    def transition(self, item_id: int, to: State | str, *, reason: str | None = None,
                   message: str | None = None, **fields: Any) -> LedgerItem:
        """Move one item to ``to`` in one transaction, with an event; illegal moves raise.

        ``fields`` may set filekey, offset, chunk_size, stash_created_at, final_name, target,
        warnings (JSON), decision (``{"action": "skip"|"publish"|"rename"|"fail", "name", "by", "at"}``),
        flow_run_id and task_run_id (None keeps the old run id). Outcomes need a reason code.
        Moving to ``validated`` or ``pending`` forgets the stash (the wiki's copy is gone or unwanted).
        """
        _refuse_secret_names(fields)
        fields = {k: v for k, v in fields.items() if v is not None or not k.endswith("run_id")}
        if unknown := set(fields) - _FIELDS:
            raise ValueError(f"unknown ledger fields: {sorted(unknown)}")
        to = State(to)
        if to in OUTCOMES and not reason:
            raise ValueError(f"moving to {to} needs a reason code")
        with self._write() as conn:
            old = self._get(conn, item_id)
            if to not in TRANSITIONS[old.state]:
                raise IllegalTransitionError(f"item {item_id}: {old.state} → {to} is not allowed")
            if to in (State.VALIDATED, State.PENDING):
                fields = {"filekey": None, "offset": 0, "chunk_size": None, "stash_created_at": None,
                          **fields}
            if to not in _KEEPS_INTENT:
                fields = {"intent": None, **fields}
            values = self._columns(old, fields)
            if to in OUTCOMES:  # the run is done with the row: its lease ends with the move
                values.update(lease_owner=None, lease_until=None)
            values.update(state=to.value, reason=_redact(reason), message=_redact(message),
                          updated_at=self._stamp())
            assignments = ", ".join(f'"{col}" = ?' for col in values)
            conn.execute(f"UPDATE items SET {assignments} WHERE id = ?", (*values.values(), item_id))
            run_id = fields.get("flow_run_id") or old.flow_run_id
            self._event(conn, item_id, old.state, to, reason, message, run_id)
            return self._get(conn, item_id)

    def record_chunk(self, item_id: int, *, filekey: str, offset: int, chunk_size: int) -> None:
        """Store the stash key and next offset after a chunk landed: one statement, one fsync.

        A new filekey (first chunk, or a restarted session) restarts the 6-hour stash clock.
        """
        if offset < 0 or chunk_size <= 0 or not filekey:
            raise ValueError("record_chunk needs a filekey, offset ≥ 0 and chunk_size > 0")
        cur = self._conn().execute(
            """UPDATE items SET "offset" = :offset, chunk_size = :chunk, updated_at = :now,
                 stash_created_at = CASE WHEN filekey IS :fk AND stash_created_at IS NOT NULL
                                         THEN stash_created_at ELSE :now END, filekey = :fk
               WHERE id = :id AND state = 'stashing' AND :offset <= size""",
            {"offset": offset, "chunk": chunk_size, "now": self._stamp(), "fk": filekey, "id": item_id})
        if cur.rowcount != 1:
            item = self.get(item_id)
            raise IllegalTransitionError(
                f"item {item_id}: record_chunk needs state stashing and offset ≤ size "
                f"(state {item.state}, size {item.size}, offset {offset})")

    # --- leases -----------------------------------------------------------------------------------
    def claim(self, item_id: int, owner: str, *, ttl: timedelta,
              is_stale: Callable[[str], bool] | None = None) -> bool:
        """Take (or renew) the lease on a row for ``ttl``; False when another live run holds it.

        A lease runs out after ``ttl`` without renewal; ``is_stale(owner)`` may free it earlier,
        e.g. when the owner is a process on this machine that no longer exists (``kill -9``).
        """
        lease = Lease(owner, ttl, is_stale)
        with self._write() as conn:
            row = conn.execute("SELECT lease_owner, lease_until FROM items WHERE id = ?",
                               (item_id,)).fetchone()
            if row is None:
                raise UnknownItemError(f"no ledger item {item_id}")
            if self._held(row, lease):
                return False
            self._lease(conn, item_id, lease)
            return True

    def _held(self, row: sqlite3.Row, lease: Lease) -> bool:
        """True when another run's lease on the row is still good."""
        holder, until = row["lease_owner"], row["lease_until"]
        return bool(holder and holder != lease.owner and until
                    and datetime.fromisoformat(until) > self._clock()
                    and not (lease.is_stale is not None and lease.is_stale(holder)))

    def _lease(self, conn: sqlite3.Connection, item_id: int, lease: Lease | None) -> None:
        if lease is not None:
            conn.execute("UPDATE items SET lease_owner = ?, lease_until = ? WHERE id = ?",
                         (lease.owner, self._stamp(self._clock() + lease.ttl), item_id))

    def release(self, item_id: int, owner: str) -> None:
        """Give the lease back (only the holder's release counts)."""
        self._conn().execute("UPDATE items SET lease_owner = NULL, lease_until = NULL"
                             " WHERE id = ? AND lease_owner = ?", (item_id, owner))

    def failed_from(self, item_id: int) -> State | None:
        """The state a ``failed`` row was in when it failed (where a re-run picks it up)."""
        row = self._conn().execute(
            "SELECT from_state FROM events WHERE item_id = ? AND to_state = 'failed'"
            " AND from_state IS NOT NULL AND from_state != 'failed' ORDER BY id DESC LIMIT 1",
            (item_id,)).fetchone()
        return State(row[0]) if row else None

    # --- helpers ----------------------------------------------------------------------------------
    def _get(self, conn: sqlite3.Connection, item_id: int) -> LedgerItem:
        row = conn.execute("SELECT * FROM items WHERE id = ?", (item_id,)).fetchone()
        if row is None:
            raise UnknownItemError(f"no ledger item {item_id}")
        return _item(row)

    def _reset(self, conn: sqlite3.Connection, old: LedgerItem, reason: str, run_id: str | None,
               *, sha1: str, size: int, target: str) -> None:
        """Start a row over from ``pending`` with new bytes or name; its history stays."""
        cleared = ", ".join(f'"{c}" = NULL' for c in (
            "final_name", "filekey", "chunk_size", "stash_created_at", "warnings", "decision",
            "task_run_id", "intent"))
        conn.execute(f"""UPDATE items SET state = 'pending', sha1 = ?, size = ?, target = ?, reason = ?,
                         message = NULL, "offset" = 0, {cleared}, attempts = attempts + 1,
                         flow_run_id = COALESCE(?, flow_run_id), updated_at = ? WHERE id = ?""",
                     (sha1, size, target, reason, run_id, self._stamp(), old.id))
        self._event(conn, old.id, old.state, State.PENDING, reason, None, run_id)

    def _event(self, conn: sqlite3.Connection, item_id: int, from_state: State | None, to: State,
               reason: str | None, message: str | None, run_id: str | None) -> None:
        conn.execute("INSERT INTO events (item_id, from_state, to_state, reason, message, at, run_id)"
                     " VALUES (?, ?, ?, ?, ?, ?, ?)",
                     (item_id, from_state.value if from_state else None, to.value, _redact(reason),
                      _redact(message), self._stamp(), run_id))

    def _columns(self, old: LedgerItem, fields: Mapping[str, Any]) -> dict[str, Any]:
        """Turn ``transition`` fields into column values (JSON, timestamps), checking each."""
        values: dict[str, Any] = {}
        for name, value in fields.items():
            if name in _JSON_COLS and value is not None:
                _refuse_secret_names(value)
                if name == "decision":
                    value = self._decision(value)
                value = json.dumps(value, sort_keys=True)
            elif name == "stash_created_at" and value is not None:
                value = self._stamp(value)
            elif name in ("offset", "chunk_size") and value is not None and (
                    int(value) < 0 or (name == "offset" and int(value) > old.size)):
                raise ValueError(f"{name} {value} is out of range for a {old.size}-byte file")
            values[name] = value
        new_key = values.get("filekey", old.filekey)
        if new_key and new_key != old.filekey and "stash_created_at" not in values:
            values["stash_created_at"] = self._stamp()  # a new stash row: its 6-hour clock starts now
        return values

    def _decision(self, decision: Mapping[str, Any]) -> dict[str, Any]:
        out = {k: v for k, v in decision.items() if v is not None}
        if set(out) - {"action", "name", "by", "at", "note", "tried"}:
            raise ValueError("a decision has only action, name, by, at, note and tried")
        if out.get("action") not in DECISION_ACTIONS:
            raise ValueError(f"decision action must be one of {sorted(DECISION_ACTIONS)}")
        if out["action"] == "rename" and not out.get("name"):
            raise ValueError("a rename decision needs the new name")
        out.setdefault("at", self._stamp())
        return out


def _item(row: sqlite3.Row) -> LedgerItem:
    cols = dict(row)
    for name in ("stash_created_at", "created_at", "updated_at", "lease_until"):
        cols[name] = datetime.fromisoformat(cols[name]) if cols.get(name) else None
    for name in _JSON_COLS:
        cols[name] = json.loads(cols[name]) if cols.get(name) else None
    return LedgerItem(**{**cols, "state": State(cols["state"])})
