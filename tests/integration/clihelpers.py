"""Running the ``mwingest`` command as a user would, and reading what it and the wiki say (shared by
the integration tests that drive the CLI)."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mwingest.cli.app import JSON_KEYS
from mwingest.wiki import upload

CLI_TIMEOUT_S = 600  # a busy 2-core box has taken 50 s for one ephemeral run
#: Proxy variables a test's environment drops: the wiki and Prefect are on loopback.
PROXY_VARS = {"http_proxy", "https_proxy", "all_proxy", "no_proxy"}


@dataclass
class Ran:
    """One finished ``mwingest`` process."""

    args: tuple[str, ...]
    returncode: int
    stdout: str
    stderr: str

    def expect(self, code: int) -> Ran:
        assert self.returncode == code, (
            f"mwingest {' '.join(self.args)} exited {self.returncode}, wanted {code}\n"
            f"--- stdout\n{self.stdout[-3000:]}\n--- stderr\n{self.stderr[-5000:]}")
        return self

    def rows(self) -> list[dict[str, Any]]:
        """The ``--json`` lines; fails unless *every* stdout line is one with exactly the keys."""
        rows = []
        for line in self.stdout.splitlines():
            row = json.loads(line)
            assert list(row) == list(JSON_KEYS), line
            rows.append(row)
        return rows


def mwingest(env: dict[str, str], *args: str, cwd: Path | None = None) -> Ran:
    """Run the CLI as a user would (``python -m mwingest.cli.app``), capturing both streams."""
    done = subprocess.run([sys.executable, "-m", "mwingest.cli.app", *args], env=env, cwd=cwd,
                          capture_output=True, text=True, timeout=CLI_TIMEOUT_S, check=False)
    return Ran(args, done.returncode, done.stdout, done.stderr)


def sha1_of(data: bytes | Path) -> str:
    raw = data.read_bytes() if isinstance(data, Path) else data
    return hashlib.sha1(raw).hexdigest()  # noqa: S324 - MediaWiki's content hash


def same_name(a: str | None, b: str) -> bool:
    """Wiki names compare with spaces and underscores alike (the API answers with ``_``)."""
    return (a or "").replace("_", " ") == b.replace("_", " ")


def upload_log(session: Any, name: str) -> dict[str, Any]:
    answer = session.get({"action": "query", "list": "logevents", "letype": "upload",
                          "letitle": f"File:{name}", "leprop": "tags|comment|ids"})
    return answer["query"]["logevents"][0]


def latest_upload_log_id(session: Any) -> int:
    answer = session.get({"action": "query", "list": "logevents", "letype": "upload",
                          "lelimit": 1, "leprop": "ids"})
    events = answer["query"]["logevents"]
    return int(events[0]["logid"]) if events else 0


def assert_rerun_finished(session: Any, folder: Path, first_rows: list[dict[str, Any]],
                          again_rows: list[dict[str, Any]]) -> None:
    """After a run that stopped and the same command again: every file ``uploaded`` or
    ``skipped``, on the wiki once (one version) with its source's SHA-1, and a file the first
    run finished ``skipped`` (found, not sent again)."""
    finished = {r["source"] for r in first_rows if r["outcome"] == "uploaded"}
    for row in again_rows:
        name = Path(row["source"]).name
        assert row["outcome"] in ("uploaded", "skipped"), row
        info = upload.file_info(session, row["filename"], history=True)
        assert info is not None and info["sha1"] == sha1_of(folder / name), name
        assert len(info["versions"]) == 1, (name, info["versions"])  # nothing published twice
        if row["source"] in finished:
            assert row["outcome"] == "skipped", row
