"""A warm runner: ``upload`` and ``import`` start in a process that has Prefect imported already.

Why: importing Prefect and the flows is 1.0-2.0 s of CPU, more than the rest of a warm one-file
upload, and no import trick removes it. So the local server gets a companion: the first command
that uses the server starts ``python -m mwingest.cli.warm_runner serve``, which imports what a flow command
needs and then waits on a Unix socket (a 0700 directory of the user's own,
``$XDG_RUNTIME_DIR`` where there is one). Trust goes both ways: the runner serves only its own
user's commands (``SO_PEERCRED``), and a command sends nothing — not its environment, which holds
the wiki's password, nor its terminal — before it has checked that the directory is the user's
own and closed to others, the socket the user's, and the process listening the user's
(``SO_PEERCRED`` again); anything else and it runs in its own process. A later
``upload``/``import`` hands it its arguments, environment, working directory and **its three
standard streams themselves** (file descriptors over ``SCM_RIGHTS``); the runner forks a child
that runs the command exactly as the command would have run itself: same terminal (the live
display), same pipes (``--json``), same environment (credentials are never stored in
the runner, they come with each command), same exit status. It forks before any Prefect thread
exists: the runner only imports.

A command stays the process a person or a scheduler sees and controls: it forwards ``SIGINT``
(Ctrl-C), ``SIGTERM``, ``SIGHUP`` and ``SIGWINCH`` to its child, and when the command is killed
(even with ``kill -9``) the child sees the socket close and kills itself at once, so the run
stops sending heartbeats and the server marks it ``Crashed``, as before.

When anything does not match, the child declines before doing anything and the command runs
in its own process as before: another Python, changed code on disk, other ``PREFECT_*``
settings, a server that moved. ``MWINGEST_WARM=0`` turns it off. Plain Python until ``serve``
imports the flows, so the command side costs a few milliseconds.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import signal
import socket
import stat
import struct
import subprocess
import sys
import tempfile
import threading
import time
from importlib.util import find_spec
from pathlib import Path
from typing import Any

from mwingest.base.paths import Paths
from mwingest.base.procs import alive
from mwingest.runtime import apiauth

#: Commands that run a flow: the only ones worth a warm start.
FLOW_COMMANDS = frozenset({"upload", "import"})
#: Environment variables never given to the runner itself (each command brings its own).
SECRET_WORDS = ("PASSWORD", "SECRET", "TOKEN", "API_KEY")
#: After a SIGTERM/SIGHUP, how long the run may take to stop before it is killed.
TERM_GRACE_S = 10.0
#: How often the runner looks whether its server still runs and its code is unchanged.
CHECK_EVERY_S = 1.0
_HEADER = struct.Struct("!I")


def enabled() -> bool:
    return os.environ.get("MWINGEST_WARM", "1").strip().lower() not in ("0", "no", "false", "off")


def _state_path(paths: Paths) -> Path:
    return paths.root / "warm.json"


def socket_path(paths: Paths) -> Path:
    """Short (a socket path may not pass 107 bytes) and private: ``$XDG_RUNTIME_DIR/mwingest/``
    when the session has a runtime directory of the user's own, else ``$TMPDIR/mwingest-UID/``
    (a name anyone can take first in a shared directory: :func:`trusted_socket` checks it)."""
    digest = hashlib.sha1(str(paths.root.resolve()).encode()).hexdigest()[:16]
    runtime = os.environ.get("XDG_RUNTIME_DIR")
    if runtime and _private(Path(runtime)):
        return Path(runtime) / "mwingest" / f"{digest}.sock"
    return Path(tempfile.gettempdir()) / f"mwingest-{os.getuid()}" / f"{digest}.sock"


def _private(directory: Path) -> bool:
    """A real directory (not a link) of this user that nobody else may enter or change."""
    try:
        st = os.lstat(directory)
    except OSError:
        return False
    return stat.S_ISDIR(st.st_mode) and st.st_uid == os.getuid() and not st.st_mode & 0o077


def untrusted_reason(path: Path) -> str | None:
    """Why the socket at ``path`` must not be used before anything is sent to it, or None: its
    directory must be the user's own and closed to others (so nobody else can have put the
    socket there), the socket a socket of the user's."""
    if not _private(path.parent):
        return f"{path.parent} is not a private directory of this user"
    try:
        st = os.lstat(path)
    except OSError:
        return "no socket"
    if not stat.S_ISSOCK(st.st_mode) or st.st_uid != os.getuid():
        return f"{path} is not a socket of this user"
    return None


def peer_uid(conn: socket.socket) -> int:
    """The uid of the process at the other end of a connected Unix socket (``SO_PEERCRED``)."""
    peer = conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    return int(struct.unpack("3i", peer)[1])


def code_stamp() -> str:
    """What the code on disk is: the Python, and every module of ours and Prefect's entry point
    by size and mtime. A runner started before an upgrade or an edit declines and retires."""
    ours = Path(__file__).resolve().parents[1]  # mwingest/, with every package under it
    parts = [sys.executable]
    for package in (ours, ours.parent / "flows", ours.parent / "tasks"):
        with contextlib.suppress(OSError):
            for path in sorted(package.rglob("*.py")):
                st = path.stat()
                parts.append(f"{path}:{st.st_size}:{st.st_mtime_ns}")
    spec = find_spec("prefect")
    if spec is not None and spec.origin:
        st = os.stat(spec.origin)
        parts.append(f"{spec.origin}:{st.st_size}:{st.st_mtime_ns}")
    return hashlib.sha1("\n".join(parts).encode()).hexdigest()


def _prefect_env(env: dict[str, str]) -> dict[str, str]:
    """The settings Prefect read at import (the runner's must equal the command's)."""
    return {k: v for k, v in env.items()
            if k.startswith("PREFECT_") and not any(w in k for w in SECRET_WORDS)}


# --- wire format: a length, then JSON --------------------------------------------------------------

def _send(conn: socket.socket, message: dict[str, Any], fds: list[int] | None = None) -> None:
    data = json.dumps(message).encode()
    payload = _HEADER.pack(len(data)) + data
    if fds:
        sent = socket.send_fds(conn, [payload], fds)
        payload = payload[sent:]
    conn.sendall(payload)


def _recv_exact(conn: socket.socket, size: int, head: bytes = b"") -> bytes:
    data = head
    while len(data) < size:
        chunk = conn.recv(size - len(data))
        if not chunk:
            raise EOFError("the other side closed the socket")
        data += chunk
    return data


def _recv(conn: socket.socket, with_fds: int = 0) -> tuple[dict[str, Any], list[int]]:
    fds: list[int] = []
    head = b""
    if with_fds:
        head, fds, _flags, _addr = socket.recv_fds(conn, 65536, with_fds)
        if not head:
            raise EOFError("the other side closed the socket")
    head = _recv_exact(conn, _HEADER.size, head)
    (size,) = _HEADER.unpack(head[:_HEADER.size])
    body = _recv_exact(conn, size, head[_HEADER.size:])
    return json.loads(body[:size]), fds


# --- the command's side ------------------------------------------------------------------------------

def _command_of(argv: list[str]) -> str | None:
    """The subcommand, past the app's own options; None when help is asked for."""
    if any(arg in ("--help", "-h") for arg in argv):
        return None
    words = [arg for arg in argv if not arg.startswith("-")]
    return words[0] if words else None


def run_warm(argv: list[str]) -> int | None:
    """Run a flow command in the warm runner: its exit status, or None to run it here instead
    (no runner, not a flow command, or the runner declined)."""
    if not enabled() or _command_of(argv) not in FLOW_COMMANDS:
        return None
    if os.environ.get("PREFECT_API_URL") or os.environ.get("MWINGEST_PREFECT", "local") != "local":
        return None  # a configured server or the ephemeral mode: the runner serves the local one
    path = socket_path(Paths())
    if untrusted_reason(path) is not None:
        return None  # not ours, or not there: run here, send nothing
    conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        conn.connect(str(path))
        if peer_uid(conn) != os.getuid():  # whoever listens must be this user, or gets nothing
            conn.close()
            return None
        _send(conn, {"argv": argv, "env": dict(os.environ), "cwd": os.getcwd(),
                     "umask": _umask(), "stamp": code_stamp()}, [0, 1, 2])
        answer, _ = _recv(conn)
    except (OSError, EOFError, ValueError):
        conn.close()
        return None
    if "pid" not in answer:
        conn.close()
        return None
    return _wait_for(conn, int(answer["pid"]))


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _wait_for(conn: socket.socket, pid: int) -> int:
    """Forward signals to the child until it reports its exit status.

    A run asked to stop may wait for its worker threads (a file paused for review polls for
    minutes), so a second Ctrl-C, or ``TERM_GRACE_S`` after a SIGTERM, kills the child: a killed
    command never leaves its run behind."""
    interrupts = {"n": 0}

    def kill_child() -> None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)

    def forward(signum: int, _frame: object) -> None:
        if signum == signal.SIGINT:
            interrupts["n"] += 1
        if interrupts["n"] > 1:
            kill_child()
            return
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signum)
        if signum in (signal.SIGTERM, signal.SIGHUP):
            timer = threading.Timer(TERM_GRACE_S, kill_child)
            timer.daemon = True
            timer.start()

    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGWINCH):
        signal.signal(signum, forward)
    try:
        while True:
            answer, _ = _recv(conn)
            if "exit" in answer:
                return int(answer["exit"])
    except (OSError, EOFError, ValueError):
        sys.stderr.write("mwingest: the run's process ended without an exit status (killed)\n")
        return 130 if interrupts["n"] else 1
    finally:
        conn.close()


def _runner_pid(paths: Paths) -> int | None:
    """The pid the runner's state file records, or None (no runner started, or a torn file)."""
    try:
        return int(json.loads(_state_path(paths).read_text())["pid"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def ensure_started(api_url: str, paths: Paths | None = None) -> None:
    """Start a runner for the local server at ``api_url`` when none runs (in the background:
    this command does not wait for it, the next one profits)."""
    if not enabled():
        return
    paths = paths or Paths()
    pid = _runner_pid(paths)
    if pid is not None and alive(pid):
        return
    env = {k: v for k, v in os.environ.items() if not any(w in k.upper() for w in SECRET_WORDS)}
    env["PREFECT_API_URL"] = api_url
    with contextlib.suppress(apiauth.AuthFileError):
        env.update(apiauth.client_env(paths))  # Prefect reads it once, at the runner's import
    with contextlib.suppress(OSError), open(paths.log, "ab") as log:
        subprocess.Popen([sys.executable, "-m", "mwingest.cli.warm_runner", "serve"], env=env, stdout=log,
                         stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                         start_new_session=True, cwd=paths.root)


def stop(paths: Paths | None = None, grace: float = 5.0) -> None:
    """Stop the runner (``mwingest server stop``); commands it is running go on to their end."""
    paths = paths or Paths()
    pid = _runner_pid(paths)
    if pid is None:
        return
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.kill(pid, signal.SIGKILL)
