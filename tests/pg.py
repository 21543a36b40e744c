"""A throwaway PostgreSQL server for the tests: Debian's binaries, a data directory of its own.

``initdb`` into a temporary directory, ``postgres`` on 127.0.0.1 at a free port (its unix socket in
the same directory, so no system directory is touched), one database ``mwingest_test``; all of it
removed at the end of the session (the server also stops when the test process dies).
PostgreSQL refuses to run as root (CI does), so then the server runs as ``nobody``, which owns
the directory. Each test gets a schema of its own
(``fresh_url``): a clean ledger in milliseconds, without a database per test.

Skips with the reason only when the binaries are missing (``bash scripts/install-system-deps``
installs them); CI sets ``MWINGEST_TEST_REQUIRE_PG=1``, which turns that skip into a failure.
"""

from __future__ import annotations

import ctypes
import glob
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

#: Pick a specific installation with MWINGEST_PG_BIN (the directory holding initdb and postgres).
_BIN_GLOB = "/usr/lib/postgresql/*/bin"
DATABASE = "mwingest_test"


def pg_bin() -> Path | None:
    """The directory with ``initdb`` and ``postgres``: $MWINGEST_PG_BIN, Debian's newest, or PATH."""
    wanted = os.environ.get("MWINGEST_PG_BIN")
    candidates = [wanted] if wanted else sorted(glob.glob(_BIN_GLOB), reverse=True)
    for folder in candidates:
        if folder and (Path(folder) / "initdb").exists() and (Path(folder) / "postgres").exists():
            return Path(folder)
    found = shutil.which("initdb")
    return Path(found).parent if found and shutil.which("postgres") else None


def _free_port() -> int:
    """A free loopback port outside 8000-8999 (those are other people's test servers)."""
    while True:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        if not 8000 <= port <= 8999:
            return port


@dataclass
class PostgresServer:
    """A running throwaway server: ``url`` is its test database (user ``mwingest``, no password)."""

    root: Path
    port: int
    process: subprocess.Popen[bytes]

    @property
    def url(self) -> str:
        return f"postgresql+psycopg://mwingest@127.0.0.1:{self.port}/{DATABASE}"

    def fresh_url(self) -> str:
        """A URL whose connections see only a new, empty schema: one clean ledger."""
        import psycopg

        schema = f"t_{uuid.uuid4().hex[:12]}"
        with psycopg.connect(self.dsn(), autocommit=True) as conn:
            conn.execute(f"CREATE SCHEMA {schema}")
        return f"{self.url}?options=-csearch_path%3D{schema}"

    def dsn(self, database: str = DATABASE) -> str:
        return f"host=127.0.0.1 port={self.port} user=mwingest dbname={database}"

    def stop(self) -> None:
        """Stop the server the way an operator's ``pg_ctl stop -m fast`` does (SIGINT: open
        transactions rolled back, every session told "terminating connection due to administrator
        command"); the data directory stays, for :meth:`start`."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            self.process.wait(timeout=60)

    def start(self) -> None:
        """Start the stopped server again on the same port and data; returns once it answers."""
        folder = pg_bin()
        assert folder is not None and self.process.poll() is not None
        self.process = _launch(folder, self.root, self.port)
        _wait_ready(self, self.dsn())

    def restart(self, down_s: float) -> float:
        """Stop fast, stay down ``down_s`` seconds, start; the seconds nobody could connect."""
        began = time.monotonic()
        self.stop()
        time.sleep(down_s)
        self.start()
        return time.monotonic() - began


def _as_server_user() -> dict[str, object]:
    """Popen arguments that drop root to ``nobody`` (initdb and postgres refuse to run as root)."""
    if os.geteuid() != 0:
        return {}
    user = pwd.getpwnam("nobody")
    return {"user": user.pw_uid, "group": user.pw_gid, "extra_groups": []}


_LIBC = ctypes.CDLL("libc.so.6", use_errno=True)  # loaded here: nothing to import after fork


def _die_with_parent() -> None:
    """In the server's process, before exec: a fast shutdown (SIGINT) when the test process
    dies, even by ``kill -9``, so no server outlives its session (Linux's PR_SET_PDEATHSIG,
    set after the switch to ``nobody``, which would clear it)."""
    _LIBC.prctl(1, signal.SIGINT)


def start_postgres() -> PostgresServer:
    """initdb, start, wait until it answers, create the test database."""
    folder = pg_bin()
    if folder is None and os.environ.get("MWINGEST_TEST_REQUIRE_PG"):  # CI: a skip would hide it
        pytest.fail("PostgreSQL binaries (initdb, postgres) are missing and MWINGEST_TEST_REQUIRE_PG "
                    "is set: run `bash scripts/install-system-deps`")
    if folder is None:
        pytest.skip("PostgreSQL binaries (initdb, postgres) are not installed: "
                    "run `bash scripts/install-system-deps` (Debian package postgresql)")
    root = Path(tempfile.mkdtemp(prefix="mwingest-pg-", dir="/tmp"))
    try:
        port, process = _init_and_start(folder, root)
    except BaseException:  # initdb refused, postgres did not exec: leave nothing behind
        shutil.rmtree(root, ignore_errors=True)
        raise
    server = PostgresServer(root, port, process)
    try:
        _create_database(server)
    except BaseException:
        stop_postgres(server)
        raise
    return server


def _create_database(server: PostgresServer) -> None:
    """Wait until the server answers, then create the test database."""
    _wait_ready(server, server.dsn("postgres"), f"CREATE DATABASE {DATABASE}")


def _wait_ready(server: PostgresServer, dsn: str, statement: str = "SELECT 1") -> None:
    """Run ``statement`` as soon as the server accepts connections (60 s at most)."""
    import psycopg

    deadline = time.monotonic() + 60
    while True:
        try:
            with psycopg.connect(dsn, autocommit=True, connect_timeout=2) as conn:
                conn.execute(statement)  # type: ignore[arg-type]
            return
        except psycopg.OperationalError:
            if server.process.poll() is not None or time.monotonic() > deadline:
                said = (server.root / "server.log").read_text(errors="replace")[-2000:]
                raise RuntimeError(f"the test PostgreSQL did not start: {said}") from None
            time.sleep(0.1)


def _init_and_start(folder: Path, root: Path) -> tuple[int, subprocess.Popen[bytes]]:
    """initdb into ``root/data`` and start ``postgres`` on a free loopback port (as ``nobody``
    when we are root); its port and process."""
    drop = _as_server_user()
    if drop:
        os.chown(root, int(drop["user"]), int(drop["group"]))  # type: ignore[call-overload]
    data = root / "data"
    subprocess.run([str(folder / "initdb"), "-D", str(data), "-U", "mwingest", "--auth=trust",
                    "-E", "UTF8", "--locale=C.UTF-8", "--no-sync"], check=True, capture_output=True,
                   cwd=root, **drop)  # type: ignore[call-overload]
    port = _free_port()
    return port, _launch(folder, root, port)


def _launch(folder: Path, root: Path, port: int) -> subprocess.Popen[bytes]:
    """``postgres`` on ``root/data`` at ``port`` (as ``nobody`` when we are root), its log
    appended to ``root/server.log``."""
    with open(root / "server.log", "ab") as out:
        return subprocess.Popen(
            [str(folder / "postgres"), "-D", str(root / "data"), "-h", "127.0.0.1", "-p", str(port),
             "-k", str(root), "-c", "fsync=off", "-c", "full_page_writes=off",
             "-c", "max_connections=200"],
            stdout=out, stderr=subprocess.STDOUT, cwd=root, preexec_fn=_die_with_parent,
            **_as_server_user())  # type: ignore[call-overload]


def stop_postgres(server: PostgresServer) -> None:
    """Fast shutdown (SIGINT: roll back, disconnect, exit), then remove the directory."""
    if server.process.poll() is None:
        server.process.send_signal(signal.SIGINT)
        try:
            server.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.process.kill()
            server.process.wait()
    shutil.rmtree(server.root, ignore_errors=True)


@contextmanager
def running_postgres() -> Iterator[PostgresServer]:
    """A throwaway PostgreSQL for the ``with`` block, stopped and removed after it."""
    server = start_postgres()
    try:
        yield server
    finally:
        stop_postgres(server)


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresServer]:
    """One throwaway PostgreSQL for the whole session."""
    with running_postgres() as server:
        yield server
