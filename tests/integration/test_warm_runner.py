"""The warm runner (``mwingest.warm``): flow commands run in a process with Prefect imported.

Against the real wiki and a real local server in the test's own home. What is asserted: the
command's exit status and its ``--json`` lines on its own stdout (the streams were handed over),
the file's SHA-1 on the wiki, the run in the server's history, the runner's own log line that
names the child that ran the command, and which processes are alive after a signal or a stop.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from mwingest import upload, warm
from mwingest.localserver import Paths
from mwingest.procs import alive
from tests.integration.test_cli import mwingest, sha1_of
from tests.integration.test_cli_console import _on_a_terminal
from tests.integration.test_local_server import (  # noqa: F401 - env, home: fixtures
    _runs,
    _state,
    _write_pngs,
    children_served,
    env,
    home,
    wait_for_runner,
)
from tests.integration.wikihelpers import session_for

pytestmark = pytest.mark.wiki


def test_flow_commands_run_warm_with_their_own_streams_env_and_exit_status(
        wiki, env, home, tmp_path, unique):  # noqa: F811 - fixtures
    u = unique()
    files = _write_pngs(tmp_path / "in", f"Warm {u}.png", f"Declined {u}.png", f"Cold {u}.png",
                        f"Other {u}.png", f"Terminal {u}.png")
    warm_png, declined, cold, other, terminal = files.values()
    mwingest(env, "server", "start").expect(0)
    runner = wait_for_runner(home)

    ran = mwingest(env, "upload", str(warm_png), "--json").expect(0)
    assert [(r["outcome"], r["reason"]) for r in ran.rows()] == [("uploaded", "verified")]
    [child] = children_served(home)
    assert child != runner["pid"] and not alive(child)
    # On a terminal the child draws the live display and the table on the command's terminal.
    code, screen = _on_a_terminal(env, "upload", str(terminal))
    assert code == 0 and len(children_served(home)) == 2, screen
    assert "1 files in" in screen and "1 uploaded" in screen and "verified" in screen, screen
    # Other Prefect settings than the runner imported with: declined, run here, lands all the same.
    mwingest({**env, "PREFECT_LOGGING_LEVEL": "DEBUG"}, "upload", str(declined)).expect(0)
    assert "declined upload: other Prefect settings" in (
        home / "prefect-server" / "server.log").read_text()
    mwingest({**env, "MWINGEST_WARM": "0"}, "upload", str(cold)).expect(0)
    assert len(children_served(home)) == 2  # neither of the last two went through the runner
    # A run whose item is rejected: its exit status 1 comes back through the command.
    gone = mwingest(env, "upload", str(tmp_path / "missing.png")).expect(1)
    assert "not-found" in gone.stdout and len(children_served(home)) == 3
    mwingest(env, "status").expect(0)  # not a flow command: never sent to the runner
    assert len(children_served(home)) == 3

    session = session_for(wiki)
    for path in (warm_png, terminal, declined, cold):
        info = upload.file_info(session, path.name)
        assert info is not None and info["sha1"] == sha1_of(path)
    runs = _runs(runner["api_url"])
    assert [r["state_type"] for r in runs] == ["COMPLETED"] * 5  # the rejected one too

    # SIGTERM to the command reaches the run's process: both are gone, the taken name untouched.
    proc = subprocess.Popen(
        [sys.executable, "-m", "mwingest.cli", "upload", str(other), "--filename", warm_png.name,
         "--review-wait", "600"], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and len(children_served(home)) < 4:
            time.sleep(0.2)
        child = children_served(home)[-1]
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and not any(
                r["state_type"] == "PAUSED" for r in _runs(runner["api_url"])):
            time.sleep(0.5)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) != 0
    finally:
        proc.kill()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and alive(child):
        time.sleep(0.1)
    assert not alive(child)
    info = upload.file_info(session, warm_png.name)
    assert info is not None and info["sha1"] == sha1_of(warm_png)

    # `server stop` stops the runner too and removes its socket.
    mwingest(env, "server", "stop").expect(0)
    assert not alive(runner["pid"]) and not Path(runner["socket"]).exists()
    assert _state(home) is None and not (home / "prefect-server" / "warm.json").exists()


def test_the_runner_retires_when_its_server_dies(env, home):  # noqa: F811 - fixtures
    mwingest(env, "server", "start").expect(0)
    runner = wait_for_runner(home)
    os.killpg(_state(home)["pid"], signal.SIGKILL)  # the supervisor and the server, at once
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline and alive(runner["pid"]):
        time.sleep(0.2)
    assert not alive(runner["pid"]), "the runner outlived its server"
    assert not Path(runner["socket"]).exists()
    assert warm.socket_path(Paths(home)) == Path(runner["socket"])
