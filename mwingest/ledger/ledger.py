"""The durable ledger: one row per (wiki, account, file identity), moved through an explicit
state machine, in a SQLite file (one machine) or a PostgreSQL database (many machines).

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

A row's identity travels between machines: (wiki, account, ``sha1:<SHA-1>:<title>`` or
``manifest:<id>``), see :func:`make_ident`; the path it was read from is only where one machine
saw it. Each move is one transaction that updates the row *and* appends an ``events`` row, so
history is complete and a crash leaves either the old state or the new one (the backends'
differences live in :mod:`mwingest.ledger.store`; claims and leases in
:mod:`mwingest.ledger.leases`; the shared pacing of writes in :mod:`mwingest.ledger.pacing`;
planned imports in :mod:`mwingest.ledger.plans`).
The ledger never stores secrets: field names that look like
credentials are refused and free text passes through :func:`set_redactor`.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager, suppress
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa

from mwingest.ledger.leases import CLAIMABLE, LeaseMixin  # noqa: F401 - re-exported
from mwingest.ledger.model import (  # noqa: F401 - re-exported: the ledger's public names
    DECISION_ACTIONS,
    FINAL_STATES,
    IN_FLIGHT,
    OUTCOMES,
    STASH_MAX_AGE,
    TRANSITIONS,
    AmbiguousItemError,
    IllegalTransitionError,
    Lease,
    LedgerError,
    LedgerEvent,
    LedgerItem,
    RowLeasedError,
    State,
    UnknownItemError,
    item_from_row,
    make_ident,
    normalise_account,
    normalise_source,
    normalise_wiki,
)
from mwingest.ledger.outage import LedgerUnavailableError, Outage, ridden_out, transient  # noqa: F401
from mwingest.ledger.pacing import PaceState, PacingMixin  # noqa: F401 - re-exported
from mwingest.ledger.plans import Plan, PlanMixin, PlanShard, UnknownPlanError  # noqa: F401
from mwingest.ledger.reads import ReadsMixin
from mwingest.ledger.schema import MIGRATIONS, PG_HISTORY, PG_MIGRATIONS
from mwingest.ledger.store import (  # noqa: F401 - re-exported
    NO_PASSWORD_PATTERN,
    WRITE,
    LedgerFullError,
    LedgerLocationError,
    default_location,
    default_path,
    full_disk,
    is_url,
    make_engine,
    parameter_location,
    problem,
    server_of,
    shown,
    sqlite_file,
    unreachable,
)
from mwingest.ledger.writes import WritesMixin, set_redactor  # noqa: F401 - re-exported

#: PostgreSQL's ``to_char`` pattern for :meth:`Ledger._stamp`'s text (colons escaped for ``sa.text``).
_PG_STAMP = 'YYYY-MM-DD"T"HH24\\:MI\\:SS.US"+00\\:00"'
_PG_MIGRATION_LOCK = 0x6D77_6C65  # "mwle": one migrator at a time per database


class Ledger(ReadsMixin, WritesMixin, LeaseMixin, PacingMixin, PlanMixin):
    """The ledger; safe to share between threads and processes (and, on PostgreSQL, machines).

    ``location`` is a file path, ``sqlite:///PATH`` or ``postgresql+psycopg://USER@HOST/DB``;
    None means ``$MWINGEST_LEDGER_URL``, else the file :func:`default_path`. ``host`` names this
    machine in the rows it touches (the paths it read are its own). The ledger's time (leases,
    the token bucket, every stamp) is the database's clock on PostgreSQL and this machine's on
    SQLite; ``clock`` replaces it on both (tests). ``retry_budget_s``: how long a PostgreSQL
    ledger that went away is waited for, per operation (:mod:`mwingest.ledger.outage`; the
    batch's ``retry_budget_s``, 150 s by default).
    """

    def __init__(self, location: str | os.PathLike[str] | None = None, *,
                 busy_timeout: float = 60.0, clock: Callable[[], datetime] | None = None,
                 host: str | None = None, retry_budget_s: float | None = None) -> None:
        location = default_location() if location is None else location
        self.path = sqlite_file(location)  # None on PostgreSQL
        self.dialect = "sqlite" if self.path is not None else "postgresql"
        self.where = str(self.path) if self.path is not None else shown(location)
        self.host = host or socket.gethostname()
        self._clock = clock or _local_clock
        # Many machines share a PostgreSQL ledger, so its leases and token bucket are timed by
        # the database's clock: a machine whose clock is off would otherwise take live leases
        # or spend tokens the bucket does not have. A given ``clock`` (tests) is used as is.
        self._db_clock = clock is None and self.dialect == "postgresql"
        self._closed = False
        #: Set once a write met a full disk under the SQLite file: the batch stops on it.
        self.disk_full: LedgerFullError | None = None
        if self.path is not None:
            self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            # Create the file 0600 before SQLite does (it would use 0644 minus umask); fix old files.
            os.close(os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600))
            os.chmod(self.path, 0o600)
        self._engine = make_engine(self.path if self.path is not None else location,
                                   busy_timeout=busy_timeout)
        self._pid = os.getpid()
        #: None on SQLite; on PostgreSQL what rides out a database restart (opening does not).
        self._outage = None if self.path is not None else Outage(server_of(location),
                                                                  retry_budget_s)
        try:
            self._migrate()
        except BaseException:
            self.close()
            raise

    # --- connections and transactions -------------------------------------------------------------
    def _eng(self) -> sa.Engine:
        if self._closed:
            raise LedgerError("the ledger is closed")
        if self._pid != os.getpid():  # a forked child: never reuse the parent's connections
            self._engine.dispose(close=False)
            self._pid = os.getpid()
        return self._engine

    @contextmanager
    def _write(self) -> Iterator[sa.Connection]:
        """One write transaction, committed at the end of the block (rolled back on error).

        On PostgreSQL the transaction's id is read before COMMIT: if the answer to COMMIT is
        lost, the server is asked whether it committed (:meth:`Outage.committed`), and the block's
        result stands only if it did; else the error goes up, to run the operation again."""
        with self._full_disk(), self._eng().connect() as conn:
            conn.execution_options(**{WRITE: True})
            tx = conn.begin()
            try:
                yield conn
                xid = None if self._outage is None else conn.exec_driver_sql(
                    "SELECT txid_current_if_assigned()").scalar()
            except BaseException:
                _rollback(tx)
                raise
            try:
                tx.commit()
            except sa.exc.DBAPIError as exc:
                if self._outage is None or xid is None or not transient(exc) \
                        or not self._outage.committed(self._eng().connect, int(xid), exc):
                    raise

    @contextmanager
    def _read(self) -> Iterator[sa.Connection]:
        with self._full_disk(), self._eng().connect() as conn:
            yield conn

    @contextmanager
    def _full_disk(self) -> Iterator[None]:
        """A full disk under the SQLite file raises :class:`LedgerFullError` (and is remembered
        in :attr:`disk_full`): the one error every caller can tell from a broken statement."""
        try:
            yield
        except (sa.exc.OperationalError, sa.exc.DatabaseError, OSError) as exc:
            full = full_disk(self.path, exc) if self.path is not None else None
            if full is None:
                raise
            self.disk_full = self.disk_full or full
            raise full from exc

    def _migrate(self) -> None:
        """Bring the schema to this mwingest's version (a newer one is refused), under a lock so
        processes opening a new ledger at once migrate it once."""
        steps = MIGRATIONS if self.dialect == "sqlite" else PG_MIGRATIONS
        with self._full_disk(), self._eng().connect() as conn:
            raw = conn.connection.driver_connection
            if self.dialect == "sqlite":  # v4 rebuilds items: its DROP must not cascade to events
                raw.execute("PRAGMA foreign_keys = OFF")  # type: ignore[union-attr]
            try:
                conn.execution_options(**{WRITE: True})
                with conn.begin():
                    if self.dialect == "sqlite":
                        version = conn.exec_driver_sql("PRAGMA user_version").scalar_one()
                    else:
                        conn.execute(sa.text("SELECT pg_advisory_xact_lock(:k)"),
                                     {"k": _PG_MIGRATION_LOCK})
                        conn.exec_driver_sql(PG_HISTORY)
                        version = conn.exec_driver_sql(
                            "SELECT COALESCE(MAX(version), 0) FROM schema_history").scalar_one()
                    if version > len(steps):
                        raise LedgerError(f"{self.where} has schema version {version}, newer than "
                                          f"this mwingest's {len(steps)}: upgrade mwingest")
                    for number in range(version + 1, len(steps) + 1):
                        for statement in steps[number - 1]:
                            conn.exec_driver_sql(statement)
                        conn.execute(sa.text("INSERT INTO schema_history VALUES (:v, :at)"),
                                     {"v": number, "at": self._stamp(self._now(conn))})
                        if self.dialect == "sqlite":
                            conn.exec_driver_sql(f"PRAGMA user_version = {number}")
                    if self.dialect == "sqlite" and conn.exec_driver_sql(
                            "PRAGMA foreign_key_check").first() is not None:
                        raise LedgerError(f"{self.where}: migration left events without their item")
            finally:
                if self.dialect == "sqlite":
                    raw.execute("PRAGMA foreign_keys = ON")  # type: ignore[union-attr]

    @property
    def unavailable(self) -> LedgerUnavailableError | None:
        """Why the database could not be used for a whole retry budget, if that ever happened
        to this ledger: a batch stops starting files then (its rows could not be recorded)."""
        return None if self._outage is None else self._outage.lost

    def close(self) -> None:
        """Close every connection this process opened. Call it after the worker threads finished."""
        if not self._closed:
            self._closed = True
            self._engine.dispose(close=self._pid == os.getpid())

    def __enter__(self) -> Ledger:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @staticmethod
    def _stamp(when: datetime) -> str:
        """A timestamp as stored: fixed-width ISO 8601 in UTC, so text order is time order on
        both backends (``lease_until <= now`` compares in SQL). The time is given: a write takes
        it from :meth:`_now`, never from this machine's clock behind the ledger's back."""
        when = when if when.tzinfo else when.replace(tzinfo=UTC)  # naive means UTC, not local time
        return when.astimezone(UTC).isoformat(timespec="microseconds")

    def _now(self, conn: sa.Connection, row: Mapping[str, Any] | None = None) -> datetime:
        """The time a transaction decides by: the database's clock on PostgreSQL (``db_now`` of a
        ``row`` read with :meth:`_clock_column`, else one ``SELECT``), else the local clock."""
        if not self._db_clock:
            return self._clock()
        if row is not None and row.get("db_now") is not None:
            return row["db_now"]
        return conn.execute(sa.text("SELECT clock_timestamp()")).scalar_one()

    def now(self) -> datetime:
        """The time this ledger's rows are stamped by (the database's clock on PostgreSQL): what
        a row's stamp, e.g. when its stash was made, must be compared with. One ``SELECT`` there."""
        if not self._db_clock:
            return self._clock()
        with self._read() as conn:
            return self._now(conn)

    def _clock_column(self) -> str:
        """The select-list entry that reads the database's clock with a row, so a transaction
        that reads a row first learns the time without another round trip. ``clock_timestamp()``:
        when a ``FOR UPDATE`` waited for another writer, PostgreSQL evaluates it again on the
        row as that writer left it, so the time is never older than what the row says."""
        return ", clock_timestamp() AS db_now" if self._db_clock else ""

    def _sql_stamp(self, name: str, after: timedelta = timedelta(0)) -> tuple[str, dict[str, Any]]:
        """SQL for the stamp of now + ``after`` in a statement that reads no row first, and its
        parameter: on PostgreSQL the database's statement time, formatted in SQL exactly as
        :meth:`_stamp` formats it (one value however often the statement uses it), no round
        trip; else the local clock's value, bound."""
        if self._db_clock:
            return (f"to_char((statement_timestamp() + :{name}) AT TIME ZONE 'UTC',"
                    f" '{_PG_STAMP}')"), {name: after}
        return f":{name}", {name: self._stamp(self._clock() + after)}

    # --- reads ------------------------------------------------------------------------------------
    def _items_where(self, conn: sa.Connection, where: str, *, order: str = "id",
                     **params: Any) -> Iterator[LedgerItem]:
        stmt = sa.text(f"SELECT * FROM items WHERE {where} ORDER BY {order}")
        expanding = [sa.bindparam(k, expanding=True) for k, v in params.items() if isinstance(v, list)]
        rows = conn.execute(stmt.bindparams(*expanding) if expanding else stmt, params).mappings()
        return (item_from_row(row) for row in rows.all())

    def _get(self, conn: sa.Connection, item_id: int, *, lock: bool = False) -> LedgerItem:
        stmt = "SELECT * FROM items WHERE id = :id" + (self._row_lock() if lock else "")
        row = conn.execute(sa.text(stmt), {"id": item_id}).mappings().first()
        if row is None:
            raise UnknownItemError(f"no ledger item {item_id}")
        return item_from_row(row)

    def _get_locked(self, conn: sa.Connection, item_id: int) -> tuple[LedgerItem, datetime]:
        """The row locked for this transaction, and the time (read with it on PostgreSQL)."""
        stmt = f"SELECT *{self._clock_column()} FROM items WHERE id = :id{self._row_lock()}"
        row = conn.execute(sa.text(stmt), {"id": item_id}).mappings().first()
        if row is None:
            raise UnknownItemError(f"no ledger item {item_id}")
        now = self._now(conn, row)
        return item_from_row({k: v for k, v in row.items() if k != "db_now"}), now


def _local_clock() -> datetime:
    """This machine's clock: the ledger's time on SQLite, which one machine uses."""
    return datetime.now(UTC)


def _rollback(tx: sa.RootTransaction) -> None:
    """Roll back after an error in the block; a connection that is gone rolled back by itself
    (the server ends its transaction), and the block's error is the one worth raising."""
    with suppress(sa.exc.DBAPIError):
        tx.rollback()
