"""The project's deployments served the way a user serves them, for the browser to drive.

``python -m deployments.register --save mwingest-wiki`` puts the wiki login into a block (the only
process that ever sees the password), then ``python deployments/serve.py`` registers the
deployments and runs what the UI triggers. The serve process runs in its own process group (a
paused run is one of its children) and is stopped before the Prefect server: a serve whose server
is gone hangs retrying (../shared/notes/prefect-ui-browser-testing.md).
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
BLOCK = "mwingest-wiki"
READY_LINE = "Your deployments are being served"
READY_TIMEOUT_S = 90.0
CLI_TIMEOUT_S = 90.0
STOP_GRACE_S = 10.0


def client_env(server_env: dict[str, str]) -> dict[str, str]:
    """This machine's env without any Prefect profile or wiki login, plus the test server's."""
    keep = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "MWINGEST_"))}
    return {**keep, **server_env}


def save_block(server_env: dict[str, str], api_url: str, username: str, password: str) -> None:
    """Save the credentials block; the login travels in this one child's env, never in argv."""
    env = {**client_env(server_env), "MWINGEST_API_URL": api_url, "MWINGEST_USERNAME": username,
           "MWINGEST_PASSWORD": password}
    proc = subprocess.run([sys.executable, "-m", "deployments.register", "--save", BLOCK],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=CLI_TIMEOUT_S,
                          stdin=subprocess.DEVNULL)
    if proc.returncode != 0:
        raise RuntimeError(f"deployments.register exited {proc.returncode}:\n"
                           f"{proc.stdout[-2000:]}\n{proc.stderr[-4000:]}")


class Served:
    """``python deployments/serve.py`` in its own process group, its output in a log file."""

    def __init__(self, env: dict[str, str], log: Path) -> None:
        self.log = log
        with open(log, "wb") as out:
            self.process = subprocess.Popen(
                [sys.executable, str(REPO / "deployments" / "serve.py")], cwd=REPO, env=env,
                stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                start_new_session=True)

    def output(self, chars: int = 6000) -> str:
        """The end of the serve log (the runner and the flow runs write there)."""
        return self.log.read_text(errors="replace")[-chars:] if self.log.exists() else ""

    def wait_ready(self, timeout: float = READY_TIMEOUT_S) -> None:
        """Return once serve says its deployments are registered; fail with its log otherwise."""
        deadline = time.monotonic() + timeout
        while READY_LINE not in self.output(chars=10**6):
            if self.process.poll() is not None:
                raise RuntimeError(f"serve.py exited {self.process.returncode}:\n{self.output()}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"serve.py not ready within {timeout} s:\n{self.output()}")
            time.sleep(0.25)

    def stop(self) -> None:
        """SIGTERM (serve pauses its schedules and exits), SIGINT, then SIGKILL what is left."""
        for sig in (signal.SIGTERM, signal.SIGINT):
            if self.process.poll() is not None:
                break
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, sig)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.process.wait(timeout=STOP_GRACE_S)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)  # a paused flow run child, if any
        self.process.wait(timeout=STOP_GRACE_S)


def delete_served_deployments(api_url: str, server_env: dict[str, str] | None = None) -> None:
    """Leave the shared test server as we found it: other modules register the same names."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterTags
    from prefect.settings import PREFECT_API_AUTH_STRING, PREFECT_API_URL, temporary_settings

    from deployments.config import TAGS

    updates: dict[Any, Any] = {PREFECT_API_URL: api_url}
    if (server_env or {}).get("PREFECT_API_AUTH_STRING"):
        updates[PREFECT_API_AUTH_STRING] = (server_env or {})["PREFECT_API_AUTH_STRING"]
    with (temporary_settings(updates=updates),
          get_client(sync_client=True) as client):
        for dep in client.read_deployments(deployment_filter=DeploymentFilter(
                tags=DeploymentFilterTags(all_=TAGS))):
            if dep.work_pool_name is None:  # served, not deployed onto a pool
                client.delete_deployment(dep.id)
