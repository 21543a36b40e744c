"""A real ``prefect server start`` for tests that need what the test harness cannot give.

Why not ``prefect_test_harness``: a human review pauses a flow run and waits for someone *else*
(another process, the UI) to resume it; that needs a long-lived API that several processes reach
by URL, the way a user's ``prefect server start`` does (Prefect 3.9 findings §3, §5). The server
runs in its own process group with its own ``PREFECT_HOME`` (a temp dir), telemetry off, on a
free port outside 8000–8999 (our wikis' range), and the whole group is stopped at session end.

Registered in ``tests/conftest.py`` through ``pytest_plugins``; use the ``prefect_server`` fixture.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import requests

from mwingest.dev.devwiki import free_port
from mwingest.runtime import dbtemplate, uilogo

#: The first start migrates a fresh SQLite DB (~7 s on the 2-core VM); leave room for a busy box.
STARTUP_TIMEOUT_S = 90.0
STOP_GRACE_S = 10.0

#: Where this test run keeps its migrated Prefect database (set by ``_prefect_db_root`` in
#: tests/conftest.py: one folder for all xdist workers of a run).
_template_root: Path | None = None


def migrated_db() -> Path | None:
    """A Prefect SQLite database migrated once per test run, to be copied into each new home.

    Why: every new Prefect home otherwise migrates a fresh database when its server starts
    (7 s on an idle 2-core machine, 30-45 s on a loaded one; a run starts about 15 servers).
    A copy of a database already at the head revision starts as fast as a restart. Built under a
    file lock, so xdist workers build it once between them; None outside a pytest session."""
    if _template_root is None:
        return None
    import prefect

    folder = _template_root / f"prefect-db-{prefect.__version__}"
    target = folder / "prefect.db"
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / ".lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not target.exists():
            dbtemplate.build(target)  # the product's own migration step, into this run's folder
    return target


def seed_prefect_home(home: Path) -> None:
    """Give a new Prefect home the migrated database (nothing when it has one, or outside tests).

    Folders it makes are private (0700), as the product makes its own homes."""
    template = migrated_db()
    if template is None or (home / dbtemplate.DB_NAME).exists():
        return
    for folder in reversed([home, *home.parents]):
        if not folder.exists():
            folder.mkdir(mode=0o700)
    dbtemplate.seed(home, template)


def seed_env_homes(env: dict[str, str]) -> dict[str, str]:
    """Seed the Prefect homes a child process with ``env`` will use: ``PREFECT_HOME`` (an
    ephemeral server's) and the local server's under ``MWINGEST_HOME``. Returns ``env``."""
    if env.get("PREFECT_HOME"):
        seed_prefect_home(Path(env["PREFECT_HOME"]))
    if env.get("MWINGEST_HOME"):
        seed_prefect_home(Path(env["MWINGEST_HOME"]) / "prefect-home")
    return env


@dataclass
class PrefectServer:
    """A running local Prefect API: its URL, its home, and the env a client process needs."""

    api_url: str
    home: Path
    env: dict[str, str] = field(default_factory=dict)
    log_path: Path | None = None
    process: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    def log_tail(self, lines: int = 40) -> str:
        """The end of the server's own output, for failure messages."""
        if self.log_path is None or not self.log_path.exists():
            return ""
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])


def client_env(api_url: str, home: Path) -> dict[str, str]:
    """What a client process needs to talk to this server, and nothing that leaves the machine."""
    return {
        "PREFECT_API_URL": api_url,
        "PREFECT_HOME": str(home),
        "PREFECT_LOCAL_STORAGE_PATH": str(home / "client-results"),  # no cache leak between sessions
        "DO_NOT_TRACK": "1",
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "NO_PROXY": "127.0.0.1,localhost",
        "no_proxy": "127.0.0.1,localhost",
    }


def _base_env() -> dict[str, str]:
    """The test process's env without its Prefect settings (a harness or a user profile)."""
    return {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}


def _wait_healthy(server: PrefectServer, deadline: float) -> None:
    http = requests.Session()
    http.trust_env = False  # loopback only: never through a proxy
    while time.monotonic() < deadline:
        if server.process is not None and server.process.poll() is not None:
            raise RuntimeError(f"prefect server exited with {server.process.returncode}:\n"
                               f"{server.log_tail()}")
        try:
            if http.get(f"{server.api_url}/health", timeout=2).status_code == 200:
                return
        except requests.RequestException:
            pass
        time.sleep(0.25)
    raise RuntimeError(f"prefect server not healthy after {STARTUP_TIMEOUT_S} s:\n{server.log_tail()}")


def stop_group(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM the server's whole process group; SIGKILL what is left after the grace time."""
    if process.poll() is not None:
        return
    try:
        os.killpg(process.pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(timeout=STOP_GRACE_S)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)  # stragglers in the group, if any
    process.wait(timeout=STOP_GRACE_S)


def start_server(home: Path, database_url: str | None = None,
                 auth_string: str | None = None) -> PrefectServer:
    """Start ``prefect server start`` with ``home`` as its ``PREFECT_HOME``; return once healthy.

    ``database_url``: the server's database (``postgresql+asyncpg://…``), as a team's server
    runs; default SQLite in ``home``, copied from the run's migrated database. ``auth_string``:
    ``user:password`` the server demands (Prefect's basic authentication, as a team secures a
    shared server); the client env then carries it in ``PREFECT_API_AUTH_STRING``."""
    home.mkdir(parents=True, exist_ok=True)
    if not database_url:
        seed_prefect_home(home)
    port = free_port()
    api_url = f"http://127.0.0.1:{port}/api"
    env = {**_base_env(), **client_env(api_url, home), "PREFECT_UI_API_URL": api_url}
    ui_root = (_template_root or home) / "prefect-ui"  # one copy of the UI for the run's servers
    env.update(uilogo.static_env(ui_root))  # as mwingest's local server: it serves the logo
    if database_url:
        env["PREFECT_SERVER_DATABASE_CONNECTION_URL"] = database_url
    if auth_string:
        env["PREFECT_SERVER_API_AUTH_STRING"] = auth_string
    del env["PREFECT_API_URL"]  # the server is not its own client
    prefect = Path(sys.executable).parent / "prefect"
    log_path = home / "server.log"
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            [str(prefect), "server", "start", "--host", "127.0.0.1", "--port", str(port)],
            env=env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            start_new_session=True)  # its own process group, so we can stop all of it
    server = PrefectServer(api_url=api_url, home=home, env=client_env(api_url, home),
                           log_path=log_path, process=process)
    if auth_string:
        server.env["PREFECT_API_AUTH_STRING"] = auth_string
    try:
        _wait_healthy(server, time.monotonic() + STARTUP_TIMEOUT_S)
    except BaseException:
        stop_group(process)
        raise
    uilogo.place(ui_root)
    return server


@pytest.fixture(scope="session")
def prefect_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrefectServer]:
    """A real local Prefect server for the session (SQLite in a temp ``PREFECT_HOME``)."""
    server = start_server(tmp_path_factory.mktemp("prefect-server-home"))
    try:
        yield server
    finally:
        assert server.process is not None
        stop_group(server.process)


def task_runs_of(flow_run_id: Any, ready: Any, timeout_s: float = 60.0) -> list[Any]:
    """The task runs of a flow run as this process's Prefect client reads them, read again until
    ``ready(runs)`` holds or ``timeout_s`` passed (the last reading either way).

    Why wait: a task run's states reach the server as events, which it records on its own
    time, so right after the flow returns a task run may not be final there yet; the test then
    asserts on what the server holds once it is."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    deadline = time.monotonic() + timeout_s
    with get_client(sync_client=True) as client:
        while True:
            runs = client.read_task_runs(flow_run_filter=FlowRunFilter(
                id=FlowRunFilterId(any_=[flow_run_id])))
            if ready(runs) or time.monotonic() > deadline:
                return runs
            time.sleep(0.5)
