"""The local Prefect server's secret: only the user who started it may use its API (issue 24).

Why: a server on 127.0.0.1 without authentication answers every local user — flow runs and their
parameters, artifacts, logs, saved credentials blocks with ``include_secrets``, and it starts the
owner's deployments for them. Prefect 3.9 has HTTP basic authentication built in: the server
refuses every API route but its health checks without ``server.api.auth_string``
(``PREFECT_SERVER_API_AUTH_STRING``), and its clients send ``api.auth_string``
(``PREFECT_API_AUTH_STRING``); the UI asks for the same string on its login page.

Shape: a random ``mwingest:<secret>`` made at the server's first start, kept in ``auth`` (0600)
in the server's private directory (0700) under the mwingest home, so it survives restarts and
a browser's login keeps working. It is handed to Prefect through the environment only (never
a command line, which every user can read in ``ps``), registered with
:mod:`mwingest.base.redact`, and never printed: ``mwingest server status`` names the file.
"""

from __future__ import annotations

import base64
import contextlib
import os
import secrets
import stat
from pathlib import Path

import requests

from mwingest.base.paths import Paths
from mwingest.base.redact import register_secret

#: The user part of the basic-auth string (Prefect's UI asks for ``user:password`` in one field).
USER = "mwingest"
SERVER_ENV = "PREFECT_SERVER_API_AUTH_STRING"
CLIENT_ENV = "PREFECT_API_AUTH_STRING"


class AuthFileError(RuntimeError):
    """The secret's file is not private to this user (another user could have read or made it)."""


def _private_dir(path: Path) -> None:
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    st = path.stat()
    if st.st_uid != os.getuid():
        raise AuthFileError(f"{path} belongs to another user")
    if st.st_mode & 0o077:
        os.chmod(path, 0o700)


def _register(value: str) -> str:
    register_secret(value)
    register_secret(value.split(":", 1)[-1])
    register_secret(base64.b64encode(value.encode()).decode())  # as it travels in a header
    return value


def read(paths: Paths | None = None) -> str | None:
    """The secret, or None when the server was never started here. A file another user owns,
    or one others could read, is refused (a leaked or planted secret is no secret)."""
    path = (paths or Paths()).auth
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise AuthFileError(f"cannot read {path}: {exc.strerror}") from None
    with os.fdopen(fd) as handle:
        st = os.fstat(handle.fileno())
        if st.st_uid != os.getuid() or not stat.S_ISREG(st.st_mode) or st.st_mode & 0o077:
            raise AuthFileError(f"{path} is not a private file of this user (want mode 0600); "
                                f"remove it and start the server again")
        value = handle.read().strip()
    return _register(value) if value else None


def ensure(paths: Paths | None = None) -> str:
    """The secret, made (0600, written once, atomically) when there is none yet."""
    paths = paths or Paths()
    _private_dir(paths.root)
    found = read(paths)
    if found is not None:
        return found
    value = f"{USER}:{secrets.token_urlsafe(32)}"
    tmp = paths.auth.with_name(f".auth.{os.getpid()}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    try:
        with os.fdopen(fd, "w") as handle:
            handle.write(value + "\n")
        with contextlib.suppress(FileExistsError):  # never over one another starter made
            os.link(tmp, paths.auth)
    finally:
        with contextlib.suppress(OSError):
            tmp.unlink()
    found = read(paths)
    assert found is not None
    return found


def header(value: str) -> dict[str, str]:
    """The ``Authorization`` header Prefect's server expects for ``value``."""
    return {"Authorization": "Basic " + base64.b64encode(value.encode()).decode()}


def session(paths: Paths | None = None) -> requests.Session:
    """HTTP to the local server (loopback: never through a proxy), its secret in every request."""
    http = requests.Session()
    http.trust_env = False
    value = read(paths)
    if value:
        http.headers.update(header(value))
    return http


def client_env(paths: Paths | None = None) -> dict[str, str]:
    """What a Prefect client process of the local server needs besides its URL."""
    value = read(paths)
    return {CLIENT_ENV: value} if value else {}
