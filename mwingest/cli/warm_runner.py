"""The warm runner's side (:mod:`mwingest.runtime.warm` is the command's side and the protocol).

``python -m mwingest.cli.warm_runner serve`` imports what a flow command needs, listens on the
user's own Unix socket and forks one child per command; the child declines (the command then
runs in its own process) when the code on disk, the ``PREFECT_*`` settings or the server differ,
and otherwise becomes the command: its streams, environment, directory and exit status. Kept
apart from the command's side so the few milliseconds every command pays import only that.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import stat
import sys
import threading
import time
from pathlib import Path
from typing import Any

from mwingest.base.paths import Paths
from mwingest.runtime.apiauth import CLIENT_ENV
from mwingest.runtime.localserver import read_state
from mwingest.runtime.warm import (
    CHECK_EVERY_S,
    _command_of,
    _prefect_env,
    _recv,
    _send,
    _state_path,
    code_stamp,
    peer_uid,
    socket_path,
)

#: What a flow command imports; imported once by the runner, before any fork.
PRELOAD = ("mwingest.cli.app", "mwingest.api", "mwingest.cli.progress", "flows.ingest", "rich.live",
           "rich.progress")


def _log(message: str) -> None:
    print(f"{time.strftime('%Y-%m-%dT%H:%M:%S')} mwingest warm runner [{os.getpid()}]: {message}",
          flush=True)


def _listen(path: Path) -> socket.socket:
    """Bind in a directory only the user can enter (checked, not assumed)."""
    path.parent.mkdir(mode=0o700, exist_ok=True)
    st = os.lstat(path.parent)
    if not stat.S_ISDIR(st.st_mode) or st.st_uid != os.getuid() or st.st_mode & 0o077:
        raise PermissionError(f"{path.parent} is not private to this user")
    with contextlib.suppress(FileNotFoundError):
        path.unlink()
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.bind(str(path))
    os.chmod(path, 0o600)
    sock.listen(16)
    return sock


def serve(paths: Paths | None = None) -> int:
    """Import, listen, and fork one child per command until the server goes or the code changes."""
    import fcntl
    import importlib

    paths = paths or Paths()
    api_url = os.environ.get("PREFECT_API_URL", "")
    info = read_state(paths)
    if info is None or info.api_url != api_url:
        _log("no local server at PREFECT_API_URL, not starting")
        return 1
    lock = open(paths.root / "warm.lock", "w")  # noqa: SIM115 - held for the runner's life
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        return 0  # another runner is starting for this home
    stamp, began = code_stamp(), time.monotonic()
    for name in PRELOAD:
        importlib.import_module(name)
    if threading.active_count() != 1:  # a fork would copy a lock some thread holds
        _log(f"threads started at import ({threading.enumerate()}), not serving")
        return 1
    path = socket_path(paths)
    try:
        sock = _listen(path)
    except PermissionError as exc:  # squatted by another user: commands run in their own process
        _log(f"not serving: {exc}")
        return 1
    state = _state_path(paths)
    state.write_text(json.dumps({"pid": os.getpid(), "socket": str(path), "api_url": api_url,
                                 "stamp": stamp, "import_s": round(time.monotonic() - began, 2)}))
    _log(f"ready at {path} after {time.monotonic() - began:.1f} s of imports")

    def finish(*_: object) -> None:
        raise SystemExit(0)

    signal.signal(signal.SIGTERM, finish)
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # children are reaped by the kernel
    sock.settimeout(CHECK_EVERY_S)
    try:
        while True:
            try:
                conn, _ = sock.accept()
            except TimeoutError:
                reason = _retire_reason(paths, api_url, stamp, path)
                if reason is None:
                    continue
                _log(reason)
                return 0
            if peer_uid(conn) != os.getuid():
                conn.close()
                continue
            conn.settimeout(None)
            if os.fork() == 0:
                sock.close()
                lock.close()  # a long run must not keep the next runner from starting
                _child(conn, stamp, api_url)
            conn.close()
    finally:
        with contextlib.suppress(OSError, ValueError, KeyError):
            if json.loads(state.read_text())["pid"] == os.getpid():
                state.unlink()
                path.unlink()


def _retire_reason(paths: Paths, api_url: str, stamp: str, path: Path) -> str | None:
    """Why the runner should stop now, or None."""
    info = read_state(paths)
    if info is None or info.api_url != api_url:
        return "the local server is gone, stopping"
    if not path.exists():
        return "its socket was removed, stopping"
    if code_stamp() != stamp:
        return "the code on disk changed, stopping (the next command starts a fresh runner)"
    return None


def _decline_reason(request: dict[str, Any], stamp: str, api_url: str) -> str | None:
    if request.get("stamp") != stamp:
        return "the code on disk changed"
    own = ("PREFECT_API_URL", CLIENT_ENV)  # the runner's server and its secret, given to it
    mine = {k: v for k, v in _prefect_env(dict(os.environ)).items() if k not in own}
    theirs = {k: v for k, v in _prefect_env(request["env"]).items() if k not in own}
    if mine != theirs or request["env"].get(CLIENT_ENV, os.environ.get(CLIENT_ENV)) != \
            os.environ.get(CLIENT_ENV):
        return "other Prefect settings"
    info = read_state()
    if info is None or info.api_url != api_url:
        return "the local server moved"
    from mwingest.runtime.prefectenv import _profile_api_url

    if _profile_api_url():
        return "a Prefect profile names another server"
    return None


def _child(conn: socket.socket, stamp: str, api_url: str) -> None:
    """Become the command: its streams, environment and directory; run it; report; exit."""
    import atexit
    import random
    import traceback

    code = 1
    try:
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)  # the run's own subprocesses must be waitable
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        signal.signal(signal.SIGINT, signal.default_int_handler)
        os.setsid()  # out of the runner's group: stopping the server does not kill a run
        request, fds = _recv(conn, with_fds=3)
        reason = _decline_reason(request, stamp, api_url)
        command = _command_of(list(request["argv"]))
        if reason is not None or len(fds) != 3:
            _log(f"declined {command}: {reason or 'no streams'}")
            _send(conn, {"declined": reason or "no streams"})
            code = 0
            return
        _log(f"runs {command} in child {os.getpid()}")
        for fd, target in zip(fds, (0, 1, 2), strict=True):
            os.dup2(fd, target)
            os.close(fd)
        os.chdir(request["cwd"])
        os.umask(int(request["umask"]))
        os.environ.clear()
        os.environ.update(request["env"])
        sys.stdout.reconfigure(line_buffering=os.isatty(1))  # type: ignore[union-attr]
        random.seed()  # not the runner's sequence, shared by every child
        sys.argv = ["mwingest", *request["argv"]]
        _send(conn, {"pid": os.getpid()})
        threading.Thread(target=_die_with_command, args=(conn,), name="mwingest-warm-watch",
                         daemon=True).start()
        code = _run_command(list(request["argv"]))
        with contextlib.suppress(Exception):
            atexit._run_exitfuncs()  # Prefect's handlers send the run's last logs, as at any exit
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(Exception):
                stream.flush()
        _send(conn, {"exit": code})
    except BaseException:  # noqa: BLE001 - the child must never return into the runner's loop
        with contextlib.suppress(Exception):
            traceback.print_exc()
    finally:
        os._exit(code)


def _die_with_command(conn: socket.socket) -> None:
    """The command's end closes the socket: if the command was killed, the run dies too."""
    with contextlib.suppress(OSError):
        while conn.recv(1):
            pass
    os.kill(os.getpid(), signal.SIGKILL)


def _run_command(argv: list[str]) -> int:
    from mwingest.cli.app import main

    try:
        main(argv)
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    except KeyboardInterrupt:
        sys.stderr.write("mwingest: aborted\n")
        return 130
    return 0


if __name__ == "__main__":
    if sys.argv[1:] != ["serve"]:
        raise SystemExit("usage: python -m mwingest.cli.warm_runner serve  (started by mwingest "
                         "itself)")
    raise SystemExit(serve())
