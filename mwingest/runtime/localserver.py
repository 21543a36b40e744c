"""A local Prefect server that every ``mwingest`` command reuses: start, find, stop, idle out.

Why: Prefect's ephemeral mode starts a server inside each command (5–20 s) and forgets the run
history when the command ends. One server in the background, with its own Prefect home under the
mwingest home, costs that once; every later command finds it and its runs stay visible in its UI.

Shape: ``start()`` launches a small **supervisor** (``python -m mwingest.runtime.localserver supervise``)
in a session of its own; the supervisor runs ``prefect server start`` as its child, writes the
state file (pid, port, URL), and stops the server after ``idle_s`` without use (no command touched
``last-used``, no flow run running, pending or due). ``stop()`` ends the supervisor's whole process
group, so no process is left behind. Plain Python: no Prefect import (the server is a subprocess,
its API is reached with ``requests``).
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

import requests

from mwingest.base.paths import Paths
from mwingest.base.procs import alive, group_alive
from mwingest.runtime import apiauth, dbtemplate, uilogo
from mwingest.runtime.crashwatch import install_crash_automation, rest_sender

#: The server stops itself after this long without use (``MWINGEST_SERVER_IDLE_S``; 0: never).
DEFAULT_IDLE_S = 3600.0
#: Ports tried first (Prefect's usual 4200 and its neighbours); never 8000–8999, the range of
#: local dev servers and of Prefect's own ephemeral server.
PREFERRED_PORTS = range(4200, 4300)
#: First start migrates a fresh SQLite database (~7 s here; 20 s seen on a busy 2-core machine).
STARTUP_TIMEOUT_S = 120.0
STOP_GRACE_S = 10.0


class LocalServerError(RuntimeError):
    """The local Prefect server could not be started (the message carries its log's tail)."""


def idle_seconds() -> float:
    return float(os.environ.get("MWINGEST_SERVER_IDLE_S") or DEFAULT_IDLE_S)


@dataclass(frozen=True)
class ServerInfo:
    """A running local server as its state file records it."""

    pid: int  # the supervisor's; it leads the process group that holds the server
    port: int
    api_url: str
    ui_url: str
    prefect_home: str
    started_at: str
    idle_s: float


def idle_words(info: ServerInfo) -> str:
    """When the server stops by itself, in the words a command prints."""
    idle = info.idle_s
    if idle <= 0:
        return "never stops by itself"
    return f"stops after {idle / 3600:g} h idle" if idle >= 3600 else f"stops after {idle:g} s idle"


def _http(paths: Paths | None = None) -> requests.Session:
    """Loopback only (never through a proxy), with the server's secret."""
    return apiauth.session(paths)


def healthy(api_url: str, timeout: float = 2.0) -> bool:
    """True when the Prefect API at ``api_url`` answers its health check (open to all: it
    tells nothing)."""
    http = requests.Session()
    http.trust_env = False
    try:
        return http.get(f"{api_url}/health", timeout=timeout).status_code == 200
    except requests.RequestException:
        return False


def read_state(paths: Paths | None = None) -> ServerInfo | None:
    """The running server's record, or None (a record whose supervisor died is removed)."""
    paths = paths or Paths()
    try:
        info = ServerInfo(**json.loads(paths.state.read_text()))
    except (OSError, ValueError, TypeError):
        return None
    if not alive(info.pid):
        with contextlib.suppress(OSError):
            paths.state.unlink()
        return None
    return info


def status(paths: Paths | None = None) -> ServerInfo | None:
    """The server if it runs and answers, else None."""
    info = read_state(paths)
    return info if info is not None and healthy(info.api_url) else None


def touch(paths: Paths | None = None) -> None:
    """Mark the server as used now (commands do, and their heartbeats while they run)."""
    paths = paths or Paths()
    with contextlib.suppress(OSError):
        paths.last_used.touch()


@contextlib.contextmanager
def _locked(paths: Paths) -> Iterator[None]:
    """One starter at a time: two commands started together must not start two servers."""
    paths.root.mkdir(parents=True, exist_ok=True, mode=0o700)
    with open(paths.lock, "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _starting(paths: Paths) -> bool:
    """A command holds the starter's lock (setting the server up, or stopping it): not idle."""
    try:
        with open(paths.lock, "a") as handle:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                return True
            fcntl.flock(handle, fcntl.LOCK_UN)
    except OSError:
        return False
    return False


def _port_free(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def pick_port(wanted: int | None = None) -> int:
    """``wanted`` (or ``MWINGEST_SERVER_PORT``) if given, else the first free preferred port."""
    wanted = wanted or int(os.environ.get("MWINGEST_SERVER_PORT") or 0) or None
    if wanted is not None:
        if 8000 <= wanted <= 8999:
            raise LocalServerError(f"port {wanted}: keep the server off 8000-8999")
        return wanted
    for port in PREFERRED_PORTS:
        if _port_free(port):
            return port
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _server_env(paths: Paths, api_url: str) -> dict[str, str]:
    """The server's environment: its own home, no telemetry, not a client of any other server,
    and its secret (the environment, not the command line: ``ps`` shows that to every user)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    secret = apiauth.ensure(paths)
    env.update({apiauth.SERVER_ENV: secret, apiauth.CLIENT_ENV: secret})
    env.update(uilogo.static_env(paths.prefect_home / "ui"))  # it serves the block's logo too
    env.update(PREFECT_HOME=str(paths.prefect_home), PREFECT_UI_API_URL=api_url,
               DO_NOT_TRACK="1", PREFECT_SERVER_ANALYTICS_ENABLED="false",
               NO_PROXY="127.0.0.1,localhost", no_proxy="127.0.0.1,localhost")
    return env


def start(*, idle_s: float | None = None, port: int | None = None,
          paths: Paths | None = None, timeout: float = STARTUP_TIMEOUT_S) -> tuple[ServerInfo, bool]:
    """The running server, started first when there is none: ``(info, started_now)``."""
    paths = paths or Paths()
    try:
        return _start(idle_s, port, paths, timeout)
    except apiauth.AuthFileError as exc:
        raise LocalServerError(str(exc)) from None


def _start(idle_s: float | None, port: int | None, paths: Paths,
           timeout: float) -> tuple[ServerInfo, bool]:
    with _locked(paths):
        info = read_state(paths)
        if (info is not None and _wait_healthy(info.api_url, info.pid, min(timeout, 30.0))
                and apiauth.read(paths) is not None):
            touch(paths)
            return info, False
        if info is not None:  # not answering, or started without a secret: replace it
            _stop_group(info.pid)
        chosen = pick_port(port)
        idle = idle_seconds() if idle_s is None else idle_s
        paths.prefect_home.mkdir(parents=True, exist_ok=True, mode=0o700)
        dbtemplate.seed(paths.prefect_home)  # a new home: no migrations at start (issue 27)
        api_url = f"http://127.0.0.1:{chosen}/api"
        with open(paths.log, "ab") as log:
            process = subprocess.Popen(
                [sys.executable, "-m", "mwingest.runtime.localserver", "supervise", "--port", str(chosen),
                 "--idle", str(idle), "--root", str(paths.root)],
                env=_server_env(paths, api_url), stdout=log, stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL, start_new_session=True, cwd=paths.root)
        if not _wait_healthy(api_url, process.pid, timeout, process):
            _stop_group(process.pid)
            raise LocalServerError(f"the local Prefect server did not come up within {timeout:.0f} s "
                                   f"(log: {paths.log}):\n{_tail(paths.log)}")
        info = read_state(paths)
        if info is None:
            raise LocalServerError(f"the local Prefect server left no state (log: {paths.log})")
        # Still under the lock: a server told to idle out after a few seconds must not stop
        # while its starter is setting it up (the supervisor never stops while the lock is held).
        install_crash_automation(rest_sender(info.api_url, _http(paths)))
        uilogo.place(paths.prefect_home / "ui")
        touch(paths)
    return info, True


def _wait_healthy(api_url: str, pid: int, timeout: float,
                  process: subprocess.Popen[bytes] | None = None) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            return False
        if process is None and not alive(pid):
            return False
        if healthy(api_url, timeout=2.0):
            return True
        time.sleep(0.2)
    return False


def _tail(path: Path, lines: int = 15) -> str:
    with contextlib.suppress(OSError):
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    return ""


def _stop_group(pgid: int, grace: float = STOP_GRACE_S) -> None:
    """SIGTERM the group, SIGKILL whatever is left after ``grace``; return when none is left."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pgid, sig)
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline:
            with contextlib.suppress(ChildProcessError):
                os.waitpid(-pgid, os.WNOHANG)  # reap our own children (start() in this process)
            if not group_alive(pgid):
                return
            time.sleep(0.1)


def stop(paths: Paths | None = None) -> ServerInfo | None:
    """Stop the server and everything it started; the stopped server's record, or None."""
    paths = paths or Paths()
    with _locked(paths):
        info = read_state(paths)
        if info is None:
            return None
        from mwingest.runtime import warm  # here, not at the top: warm builds on this module

        warm.stop(paths)
        _stop_group(info.pid)
        with contextlib.suppress(OSError):
            paths.state.unlink()
        return info


# --- the supervisor: the server's own side ---------------------------------------------------------

def active_runs(api_url: str, paths: Paths | None = None) -> int:
    """Flow runs that keep the server busy: running, pending, cancelling, or due soon."""
    http = _http(paths)
    busy = {"flow_runs": {"state": {"type": {"any_": ["RUNNING", "PENDING", "CANCELLING"]}}}}
    soon = {"flow_runs": {"state": {"type": {"any_": ["SCHEDULED"]}},
                          "expected_start_time": {"after_": datetime.now(UTC).isoformat()}}}
    total = 0
    for body in (busy, soon):
        answer = http.post(f"{api_url}/flow_runs/count", json=body, timeout=10)
        answer.raise_for_status()
        total += int(answer.json())
    return total


def _last_used(paths: Paths, started: float) -> float:
    try:
        return max(started, paths.last_used.stat().st_mtime)
    except OSError:
        return started


def supervise(port: int, idle_s: float, root: Path) -> int:
    """Run ``prefect server start`` until stopped, or until it has been idle for ``idle_s``."""
    paths = Paths(root.parent)
    api_url = f"http://127.0.0.1:{port}/api"
    server = subprocess.Popen([sys.executable, "-m", "prefect", "server", "start",
                               "--host", "127.0.0.1", "--port", str(port)],
                              stdin=subprocess.DEVNULL)

    def finish(*_: object) -> None:
        with contextlib.suppress(OSError, ValueError, KeyError):
            if json.loads(paths.state.read_text())["pid"] == os.getpid():  # ours, not a successor's
                paths.state.unlink()
        server.terminate()
        with contextlib.suppress(subprocess.TimeoutExpired):
            server.wait(timeout=STOP_GRACE_S)
        server.kill()
        sys.exit(0)

    signal.signal(signal.SIGTERM, finish)
    signal.signal(signal.SIGINT, finish)
    started = time.time()
    info = ServerInfo(pid=os.getpid(), port=port, api_url=api_url,
                      ui_url=f"http://127.0.0.1:{port}", prefect_home=os.environ["PREFECT_HOME"],
                      started_at=datetime.now(UTC).isoformat(timespec="seconds"), idle_s=idle_s)
    tmp = paths.state.with_suffix(".tmp")
    tmp.write_text(json.dumps(asdict(info)))
    os.replace(tmp, paths.state)
    check_every = min(60.0, max(1.0, idle_s / 6)) if idle_s > 0 else 60.0
    print(f"{info.started_at} mwingest: Prefect server at {info.ui_url}, idle stop "
          f"{'never' if idle_s <= 0 else f'after {idle_s:.0f} s'}", flush=True)
    while server.poll() is None:
        time.sleep(check_every)
        if not paths.state.exists():  # its home was deleted: nobody can find or stop it any more
            print("mwingest: the server's state file is gone, stopping", flush=True)
            finish()
        if idle_s <= 0 or time.time() - _last_used(paths, started) < idle_s or _starting(paths):
            continue
        try:
            if active_runs(api_url, paths):
                continue
        except (requests.RequestException, ValueError):
            continue  # not answering now: ask again next time, never stop on a guess
        print(f"{datetime.now(UTC).isoformat(timespec='seconds')} mwingest: idle for "
              f"{idle_s:.0f} s, stopping", flush=True)
        finish()
    return server.returncode or 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m mwingest.runtime.localserver")
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("supervise", help="(internal) run the server until stopped or idle")
    run.add_argument("--port", type=int, required=True)
    run.add_argument("--idle", type=float, required=True)
    run.add_argument("--root", type=Path, required=True)
    args = parser.parse_args(argv)
    return supervise(args.port, args.idle, args.root)


if __name__ == "__main__":
    raise SystemExit(main())
