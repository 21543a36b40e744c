"""Which Prefect API a command's flow runs report to, decided before Prefect is imported.

In order: a server the user configured (``PREFECT_API_URL``, in the environment or the active
Prefect profile) is used as it is; ``MWINGEST_PREFECT=ephemeral`` keeps Prefect's ephemeral
in-process server (history in ``PREFECT_HOME``, nothing left running); otherwise the mwingest
local server (:mod:`mwingest.runtime.localserver`) is used, started first when none runs, which the
command says in one line.

Why before the import: Prefect reads its settings from the environment when it is imported, so
setting ``PREFECT_API_URL`` here costs nothing and every Prefect part (flow engine, log and event
workers, threads) sees the same server.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from mwingest.runtime import apiauth, localserver

Kind = Literal["configured", "local", "ephemeral"]


@dataclass(frozen=True)
class PrefectChoice:
    """The Prefect API a run reports to, and where it came from."""

    kind: Kind
    api_url: str | None
    ui_url: str | None = None
    started: bool = False


def _profile_api_url() -> str | None:
    """``PREFECT_API_URL`` of the active Prefect profile (``prefect config set`` writes it)."""
    home = Path(os.environ.get("PREFECT_HOME") or Path.home() / ".prefect").expanduser()
    path = Path(os.environ.get("PREFECT_PROFILES_PATH") or home / "profiles.toml").expanduser()
    try:
        data = tomllib.loads(path.read_text())
    except (OSError, tomllib.TOMLDecodeError):
        return None
    name = os.environ.get("PREFECT_PROFILE") or data.get("active") or "local"
    value = data.get("profiles", {}).get(name, {}).get("PREFECT_API_URL")
    return str(value) if value else None


def mode() -> str:
    """``MWINGEST_PREFECT``: ``local`` (default) or ``ephemeral``."""
    value = (os.environ.get("MWINGEST_PREFECT") or "local").strip().lower()
    if value not in ("local", "ephemeral"):
        raise ValueError(f"MWINGEST_PREFECT must be local or ephemeral, not {value!r}")
    return value


def choose(announce: Callable[[str], None] | None = None, *,
           configured: str | None = None, start: bool = True) -> PrefectChoice:
    """Decide (and start, if need be) the Prefect API for this process's runs.

    ``configured``: an API URL the caller already knows Prefect uses (a test harness's, set
    through Prefect's settings rather than the environment). When the local server is chosen,
    ``PREFECT_API_URL`` is set in this process's environment. ``start=False``: a local server
    that does not run yet is not started; the answer is then ``local`` without an ``api_url``.
    """
    url = configured or os.environ.get("PREFECT_API_URL") or _profile_api_url()
    if url:
        authenticate(url)
        return PrefectChoice("configured", url)
    if mode() == "ephemeral":
        return PrefectChoice("ephemeral", None)
    info = localserver.status()
    started = False
    if info is None and not start:
        return PrefectChoice("local", None)
    if info is None:
        info, started = localserver.start()
        if announce is not None:
            announce(f"mwingest: started a local Prefect server, UI at {info.ui_url} "
                     f"({localserver.idle_words(info)}; `mwingest server stop` stops it now)")
    else:
        localserver.touch()
    os.environ["PREFECT_API_URL"] = info.api_url
    authenticate(info.api_url)
    return PrefectChoice("local", info.api_url, info.ui_url, started)


def authenticate(api_url: str | None = None) -> bool:
    """When this process's Prefect API is the mwingest local server, give Prefect its secret
    (``PREFECT_API_AUTH_STRING``, before Prefect is imported; a value already set is kept).
    Whether it was given. ``deployments/serve.py`` and ``deployments.register`` call it too."""
    url = api_url or os.environ.get("PREFECT_API_URL") or _profile_api_url()
    if not url or not is_local_server(url):
        return False
    try:
        found = apiauth.client_env()
    except apiauth.AuthFileError:
        return False
    for name, value in found.items():
        os.environ.setdefault(name, value)
    return bool(found)


def is_local_server(api_url: str) -> bool:
    """Whether ``api_url`` is the mwingest local server's (whose UI nobody may be watching)."""
    info = localserver.read_state()
    return info is not None and info.api_url.rstrip("/") == api_url.rstrip("/")
