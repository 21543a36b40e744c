"""Driving deployments the way a user does, for tests/integration/test_deployments.py: long-running
commands (serve, worker) in their own process group, runs triggered and awaited through the client
as the UI does, and the run's table artifacts read back."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote, quote_plus

import pytest

from tests.integration.wikihelpers import png_bytes

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
CLI_TIMEOUT_S = 120
RUN_TIMEOUT_S = 180
READY_TIMEOUT_S = 120


def sha1(data: bytes) -> str:
    return hashlib.sha1(data).hexdigest()  # noqa: S324


class Background:
    """A long-running command (serve, worker) in its own process group, output to a file."""

    def __init__(self, args: list[str], env: dict[str, str], log: Path, cwd: Path = REPO) -> None:
        self.log = log
        with open(log, "wb") as out:
            self.process = subprocess.Popen(args, cwd=cwd, env=env, stdout=out,
                                            stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                            start_new_session=True)

    def output(self, chars: int = 6000) -> str:
        return self.log.read_text(errors="replace")[-chars:]

    def wait_for_line(self, text: str, timeout: float = READY_TIMEOUT_S) -> None:
        deadline = time.monotonic() + timeout
        while text not in self.log.read_text(errors="replace"):
            if self.process.poll() is not None:
                pytest.fail(f"{self.process.args[:3]} exited {self.process.returncode}\n{self.output()}")
            if time.monotonic() > deadline:
                pytest.fail(f"no {text!r} within {timeout} s\n{self.output()}")
            time.sleep(0.25)

    def stop(self, signals: tuple[int, ...], grace: float = 10.0) -> float:
        """Send each signal to the group until the leader exits; SIGKILL the rest; seconds taken."""
        started = time.monotonic()
        for sig in signals:
            if self.process.poll() is not None:
                break
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, sig)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.process.wait(timeout=grace)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)  # flow-run children left in the group
        self.process.wait(timeout=grace)
        return time.monotonic() - started


def cli(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(args, cwd=REPO, env=env, capture_output=True, text=True,
                          timeout=CLI_TIMEOUT_S, stdin=subprocess.DEVNULL)
    assert proc.returncode == 0, f"{args[:4]} exited {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
    return proc


@contextlib.contextmanager
def client_of(prefect_server) -> Iterator[Any]:  # type: ignore[no-untyped-def]
    from prefect.client.orchestration import get_client
    from prefect.settings import PREFECT_API_URL, temporary_settings

    with (temporary_settings(updates={PREFECT_API_URL: prefect_server.api_url}),
          get_client(sync_client=True) as client):
        yield client


def wait_final(prefect_server, run_id: Any, proc: Background | None = None):  # type: ignore[no-untyped-def]
    """The flow run once it reached a final state (a failure shows the runner's output)."""
    deadline = time.monotonic() + RUN_TIMEOUT_S
    with client_of(prefect_server) as client:
        while time.monotonic() < deadline:
            run = client.read_flow_run(run_id)
            if run.state is not None and run.state.is_final():
                break
            time.sleep(0.5)
        else:
            pytest.fail(f"run {run_id} not final within {RUN_TIMEOUT_S} s\n"
                        f"{proc.output() if proc else ''}")
    assert run.state.is_completed(), f"run ended {run.state!r}\n{proc.output() if proc else ''}"
    return run


def trigger(prefect_server, deployment: str, **parameters: Any) -> Any:
    """A run of ``deployment`` created through the client (what the UI's Run button does)."""
    with client_of(prefect_server) as client:
        dep = client.read_deployment_by_name(deployment)
        return client.create_flow_run_from_deployment(dep.id, parameters=parameters).id


def run_to_end(prefect_server, deployment: str, proc: Background, **parameters: Any):  # type: ignore[no-untyped-def]
    """Trigger ``deployment`` and wait until its run completed."""
    return wait_final(prefect_server, trigger(prefect_server, deployment, **parameters), proc)


def outcome_rows(prefect_server, run_id: Any) -> dict[str, dict[str, Any]]:
    """The run's ``ingest-details`` table artifact (every fact of every file), keyed by the
    source's file name; the narrow ``ingest-outcomes`` table is there once too."""
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId

    with client_of(prefect_server) as client:
        arts = client.read_artifacts(artifact_filter=ArtifactFilter(
            flow_run_id=ArtifactFilterFlowRunId(any_=[run_id])))
    assert [a.key for a in arts].count("ingest-outcomes") == 1, [a.key for a in arts]
    table = [a for a in arts if a.key == "ingest-details"]
    assert len(table) == 1, [a.key for a in arts]
    rows = json.loads(table[0].data) if isinstance(table[0].data, str) else table[0].data
    return {Path(r["source"]).name: r for r in rows}


def pngs(folder: Path, *names: str) -> dict[str, bytes]:
    """New unique PNGs written into ``folder`` under ``names``; name → bytes."""
    folder.mkdir(parents=True, exist_ok=True)
    files = {name: png_bytes() for name in names}
    for name, data in files.items():
        (folder / name).write_bytes(data)
    return files


def secret_forms(password: str) -> list[str]:
    return sorted({password, quote(password, safe=""), quote_plus(password)})
