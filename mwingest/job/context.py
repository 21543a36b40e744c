"""What every per-file job of a run shares, and who holds a ledger row's lease.

Apart from :mod:`mwingest.job.machine` so the job reads as its states; a run builds one context and
hands it to every job (threads share it: the session and the ledger are thread-safe).
"""

from __future__ import annotations

import functools
import hashlib
import os
import socket
import uuid
from dataclasses import dataclass, field
from datetime import timedelta

from mwingest.base.options import URL_MODES, IngestOptions
from mwingest.checks import netsafe
from mwingest.ledger.ledger import Lease, Ledger, normalise_account
from mwingest.wiki.session import WikiSession
from mwingest.wiki.siteinfo import WikiRules


@functools.cache
def pid_space() -> str:
    """Which space of process ids this process lives in: a digest of the kernel's boot id and the
    inode of this process's pid namespace (12 hex digits).

    Why not the host name: containers on one machine may share a host name (Compose replicas,
    ``--hostname``, ``--network host``) while each numbers its processes from 1. A worker in one
    of them would read another's live pid as "gone" and take its rows over while it still
    writes to the wiki. Two processes may judge each other by pid only when this matches."""
    try:
        with open("/proc/sys/kernel/random/boot_id") as boot:
            parts = [boot.read().strip(), str(os.stat("/proc/self/ns/pid").st_ino)]
    except OSError:  # no /proc (not Linux): the host name must do
        parts = [socket.gethostname()]
    return hashlib.sha256("/".join(parts).encode()).hexdigest()[:12]


def new_owner() -> str:
    """A lease owner for this process: ``host:pid:token:space`` (:func:`pid_space`); the host
    name is there for people reading the ledger, the space for :func:`owner_alive`."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}:{pid_space()}"


def owner_alive(owner: str) -> bool:
    """True unless ``owner`` is a process of this pid space that is gone.

    An owner written by an older mwingest (``host:pid:token``, no space) is judged by its host
    name, as it was then."""
    parts = owner.split(":")
    if len(parts) == 4:
        _host, pid, _token, space = parts
        mine = space == pid_space()
    else:
        pid = parts[1] if len(parts) > 1 else ""
        mine = parts[0] == socket.gethostname()
    if not mine or not pid.isdigit():
        return True
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def default_lease_ttl() -> timedelta:
    """How long a row stays a dead worker's before another may take it over
    (``MWINGEST_LEASE_S``, default 15 min; a live worker renews every third of it)."""
    return timedelta(seconds=float(os.environ.get("MWINGEST_LEASE_S") or 900))


@dataclass
class JobContext:
    """What every job of a run shares: the wiki, its rules, the ledger and the run's settings."""

    session: WikiSession
    rules: WikiRules
    ledger: Ledger
    options: IngestOptions = field(default_factory=IngestOptions)
    run_id: str | None = None
    owner: str = field(default_factory=new_owner)
    lease_ttl: timedelta = field(default_factory=lambda: default_lease_ttl())

    def __post_init__(self) -> None:
        if self.options.url_mode not in URL_MODES:
            raise ValueError(f"url_mode must be one of {', '.join(URL_MODES)}, "
                             f"not {self.options.url_mode!r}")
        self.allow = netsafe.AllowList.parse(self.options.allow_hosts)
        self.wiki = self.session.api_url
        #: Rows are this account's on this wiki: the user the wiki logged us in as (a bot
        #: password writes as its user), whose rate limits the writes count against.
        self.account = normalise_account(self.session.user)
        self.stash_max_age = self.options.stash_max_age(self.wiki)

    @property
    def lease(self) -> Lease:
        return Lease(self.owner, self.lease_ttl, lambda o: not owner_alive(o))

    def claim(self, item_id: int) -> bool:
        lease = self.lease
        return self.ledger.claim(item_id, lease.owner, ttl=lease.ttl, is_stale=lease.is_stale)
