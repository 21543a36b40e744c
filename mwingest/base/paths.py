"""Where mwingest keeps its own files on this machine: one home for the ledger and the local
Prefect server's state, so ``MWINGEST_HOME`` moves all of it (a test, a second setup)."""

from __future__ import annotations

import os
from pathlib import Path


def mwingest_home() -> Path:
    """``$MWINGEST_HOME``, else ``$XDG_DATA_HOME/mwingest`` (XDG's default: ``~/.local/share``)."""
    if os.environ.get("MWINGEST_HOME"):
        return Path(os.environ["MWINGEST_HOME"]).expanduser()
    data_home = os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share"
    return Path(data_home) / "mwingest"


class Paths:
    """Where the local server keeps its state, under the mwingest home."""

    def __init__(self, home: Path | None = None) -> None:
        self.root = (home or mwingest_home()) / "prefect-server"
        self.state = self.root / "server.json"
        self.log = self.root / "server.log"
        self.last_used = self.root / "last-used"
        self.lock = self.root / "lock"
        self.auth = self.root / "auth"  # the server's API secret (mwingest.runtime.apiauth), 0600
        self.prefect_home = self.root / "prefect-home"
