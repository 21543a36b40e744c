"""Where the ledger lives: an embedded SQLite file (the default) or a shared PostgreSQL database.

One machine needs nothing but the file (``ledger.sqlite3`` in the mwingest home, mode 0600). Many
machines share one PostgreSQL database, named by ``MWINGEST_LEDGER_URL``
(``postgresql+psycopg://mwingest@db/mwingest``): its own database, never Prefect's. Both are driven
through SQLAlchemy Core, so :class:`mwingest.ledger.ledger.Ledger` runs the same statements on both; what
differs is here:

* **SQLite**: WAL with ``synchronous=FULL`` (every commit survives ``kill -9``), ``busy_timeout``
  so threads and processes share the file, and write transactions that start ``BEGIN IMMEDIATE``
  (a deferred read that upgrades to a write fails at once with SQLITE_BUSY in WAL mode).
* **PostgreSQL**: READ COMMITTED with the rows a write reads locked ``FOR UPDATE``, so two workers
  never both move one row; claims skip rows another transaction holds (``SKIP LOCKED``).

A URL with a password is only ever shown through :func:`shown` (password masked), and the
password is registered with :func:`mwingest.base.redact.register_secret` so no log carries it.
"""

from __future__ import annotations

import errno
import os
import re
import sqlite3
import time
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import URL, Engine, make_url
from sqlalchemy.pool import ConnectionPoolEntry

from mwingest.base.errors import BatchStoppedError
from mwingest.base.paths import mwingest_home
from mwingest.base.redact import NO_PASSWORD_PATTERN, redact, register_secret  # noqa: F401
from mwingest.ledger.model import LedgerError

#: Execution option that marks a connection's transaction as a write (SQLite: BEGIN IMMEDIATE).
WRITE = "mwingest_write"
_URL = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*://")


class LedgerLocationError(LedgerError):
    """The ledger location is neither a file path nor a SQLite/PostgreSQL URL we can use."""


class LedgerFullError(LedgerError, BatchStoppedError):
    """The disk under the SQLite ledger is full: no move of any file can be recorded.

    Why the batch stops instead of each file failing: every step records its intent before it
    writes to the wiki, so a file whose step cannot be recorded is not sent (nothing lands
    unrecorded, nothing twice); the next file would meet the same full disk. SQLite rolls the
    refused transaction back, so the ledger stays as its last commit left it."""

    reason = "ledger-full"


#: SQLite's primary result codes: SQLITE_IOERR (a write, truncate or shared-memory size that the
#: OS refused) and SQLITE_FULL ("database or disk is full": a write got ENOSPC).
_SQLITE_IOERR, _SQLITE_FULL = 10, 13
#: Below this much free space a SQLite I/O error on the ledger's disk is taken for a full disk.
_NEARLY_FULL = 256 * 1024


def full_disk(path: Path, exc: BaseException) -> LedgerFullError | None:
    """A :class:`LedgerFullError` for the ledger file ``path`` when ``exc`` is SQLite (or the
    OS) saying the disk is full; None for anything else.

    SQLite says SQLITE_FULL when a write got ENOSPC, but only "disk I/O error" when growing its
    shared-memory index or truncating failed: an I/O error counts when the ledger's disk is
    (nearly) out of space, asked of the file system at that moment."""
    orig = getattr(exc, "orig", None) or exc
    if isinstance(orig, OSError) and orig.errno == errno.ENOSPC:
        said = "no space left on the device"
    elif isinstance(orig, sqlite3.OperationalError | sqlite3.DatabaseError):
        code = (getattr(orig, "sqlite_errorcode", None) or 0) & 0xFF
        if code == _SQLITE_FULL or "database or disk is full" in str(orig):
            said = str(orig)
        elif code == _SQLITE_IOERR and _free_bytes(path) < _NEARLY_FULL:
            said = f"{orig} with {_free_bytes(path)} bytes free"
        else:
            return None
    else:
        return None
    return LedgerFullError(f"disk full: the ledger {path} cannot record anything ({said})")


def _free_bytes(path: Path) -> int:
    """Bytes the ledger's file system still has (root may use the reserved blocks too)."""
    try:
        stat = os.statvfs(path.parent)
    except OSError:
        return 1 << 62  # cannot tell: not taken for a full disk
    return stat.f_bfree * stat.f_frsize


def default_path() -> Path:
    """``$MWINGEST_LEDGER``, else ``ledger.sqlite3`` in the mwingest home (``$MWINGEST_HOME``,
    else ``$XDG_DATA_HOME/mwingest``)."""
    if os.environ.get("MWINGEST_LEDGER"):
        return Path(os.environ["MWINGEST_LEDGER"]).expanduser()
    return mwingest_home() / "ledger.sqlite3"


def default_location() -> str:
    """``$MWINGEST_LEDGER_URL`` (a shared database) when set, else the file :func:`default_path`."""
    return os.environ.get("MWINGEST_LEDGER_URL", "").strip() or str(default_path())


def is_url(location: str | os.PathLike[str]) -> bool:
    """True for ``scheme://…`` (a database URL), False for a file path."""
    return bool(_URL.match(os.fspath(location)))


def shown(location: str | os.PathLike[str] | URL) -> str:
    """The location as it may be printed or logged: a URL's password masked."""
    if isinstance(location, URL):
        return location.render_as_string(hide_password=True)
    text = os.fspath(location)
    if not is_url(text):
        return text
    try:
        return make_url(text).render_as_string(hide_password=True)
    except sa.exc.ArgumentError:
        return re.sub(r"//[^@/]*@", "//***@", text)  # unparseable: hide any userinfo at all


def parameter_location(location: str | None) -> str | None:
    """A ledger location given as a flow parameter, refused when it carries a password: flow
    parameters are stored and shown by Prefect (and copied to every shard), so a shared
    database's password belongs in the workers' ``MWINGEST_LEDGER_URL`` or ``~/.pgpass``."""
    if location and is_url(location):
        try:
            password = make_url(location).password
        except sa.exc.ArgumentError:
            password = "@" in location.split("//", 1)[-1].split("/", 1)[0]
        if password:
            raise LedgerLocationError(
                f"the ledger parameter {shown(location)} carries a password; flow parameters "
                "are stored and shown by Prefect: set it in the workers' MWINGEST_LEDGER_URL "
                "(or ~/.pgpass) and leave the parameter empty")
    return location


def unreachable(location: str | os.PathLike[str], exc: BaseException) -> str | None:
    """One line for a ledger database that cannot be reached or refuses the connection (host and
    port named, the password never); None when ``exc`` is something else."""
    orig = getattr(exc, "orig", None) or exc
    if not isinstance(exc, sa.exc.OperationalError | sa.exc.InterfaceError) \
            and type(orig).__module__.split(".")[0] != "psycopg":
        return None
    text = os.fspath(location)
    if not is_url(text):
        return f"cannot use the ledger {text}: {first_line(exc)}"
    return f"cannot use the ledger database at {server_of(text)}: {first_line(exc)}"


def first_line(exc: BaseException) -> str:
    """The first non-empty line of a database error (the driver's own, under SQLAlchemy's
    wrapper), redacted: what a one-line message or a log line says of it."""
    orig = getattr(exc, "orig", None) or exc
    lines = [line.strip() for line in str(orig).splitlines() if line.strip()]
    return redact(lines[0]) if lines else type(orig).__name__


def server_of(location: str | os.PathLike[str]) -> str:
    """``host:port`` of a database URL, as messages name it (never its user or password)."""
    try:
        url = make_url(os.fspath(location))
        return f"{url.host or 'localhost'}:{url.port or 5432}"
    except sa.exc.ArgumentError:
        return "?:5432"


def problem(location: str | os.PathLike[str], exc: BaseException) -> str | None:
    """The one line a person is told when the ledger at ``location`` cannot be used: its own
    refusal (a location it cannot use, a newer schema: any :class:`LedgerError`) or a database
    that cannot be reached (:func:`unreachable`). None for anything else: that is a bug, and
    hiding its traceback would hide it."""
    if isinstance(exc, LedgerError):
        return str(exc)
    return unreachable(location, exc)


def sqlite_file(location: str | os.PathLike[str]) -> Path | None:
    """The file behind a path or ``sqlite:///`` URL; None for a server database."""
    text = os.fspath(location)
    if not is_url(text):
        return Path(text).expanduser()
    url = make_url(text)
    if url.get_backend_name() != "sqlite":
        return None
    if not url.database or url.database == ":memory:":
        raise LedgerLocationError("the ledger must be a file: an in-memory SQLite database "
                                  "would forget everything a re-run needs")
    return Path(url.database).expanduser()


def make_engine(location: str | os.PathLike[str], *, busy_timeout: float) -> Engine:
    """An engine for the ledger at ``location`` (a path, ``sqlite:///…`` or
    ``postgresql+psycopg://…``); nothing is connected yet."""
    path = sqlite_file(location)
    if path is not None:
        engine = sa.create_engine(f"sqlite:///{path}", pool_size=5, max_overflow=-1,
                                  connect_args={"timeout": busy_timeout, "check_same_thread": False})
        _sqlite_events(engine, path, busy_timeout)
        return engine
    url = make_url(os.fspath(location))
    if url.get_backend_name() != "postgresql":
        raise LedgerLocationError(f"unsupported ledger URL {shown(url)}: use a file path, "
                                  "sqlite:///PATH or postgresql+psycopg://USER@HOST/DB")
    if url.get_driver_name() in ("", "psycopg2"):  # psycopg 3 is the one we depend on
        url = url.set(drivername="postgresql+psycopg")
    if url.password:
        register_secret(str(url.password))
    return sa.create_engine(url, pool_size=5, max_overflow=10, pool_pre_ping=True,
                            connect_args={"connect_timeout": max(1, int(busy_timeout))})


def _sqlite_events(engine: Engine, path: Path, busy_timeout: float) -> None:
    """Per-connection pragmas, and BEGIN (IMMEDIATE for writes) issued by us, not by pysqlite."""

    @sa.event.listens_for(engine, "connect")
    def _connect(dbapi_conn: Any, _record: ConnectionPoolEntry) -> None:
        dbapi_conn.isolation_level = None  # autocommit at the driver: we send BEGIN ourselves
        dbapi_conn.execute(f"PRAGMA busy_timeout = {int(busy_timeout * 1000)}")
        _enable_wal(dbapi_conn, path, busy_timeout)
        dbapi_conn.execute("PRAGMA synchronous = FULL")
        dbapi_conn.execute("PRAGMA foreign_keys = ON")

    @sa.event.listens_for(engine, "begin")
    def _begin(conn: sa.Connection) -> None:
        write = conn.get_execution_options().get(WRITE)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")


def _enable_wal(dbapi_conn: Any, path: Path, busy_timeout: float) -> None:
    """Switch to WAL (a no-op once the file is WAL). While another process is creating the file
    the switch can fail with "database is locked" at once, busy_timeout or not: retry it."""
    import sqlite3

    deadline = time.monotonic() + busy_timeout
    while True:
        try:
            mode = dbapi_conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
            break
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.02)
    if mode != "wal":  # e.g. a filesystem without shared memory: we will not run without WAL
        raise LedgerLocationError(f"{path}: SQLite refused WAL mode ({mode}); use a local disk")
