"""The warm runner (``mwingest.runtime.warm``): flow commands run in a process with Prefect imported.

Against the real wiki and a real local server in the test's own home. What is asserted: the
command's exit status and its ``--json`` lines on its own stdout (the streams were handed over),
the file's SHA-1 on the wiki, the run in the server's history, the runner's own log line that
names the child that ran the command, and which processes are alive after a signal or a stop.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import pytest

from mwingest.base.paths import Paths
from mwingest.base.procs import alive
from mwingest.runtime import warm
from mwingest.wiki import upload
from tests.integration.clihelpers import mwingest, sha1_of
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
    env = {**env, "MWINGEST_HEARTBEAT_S": "3"}  # a killed run is Crashed 10 s after its end
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
    runs = _runs(runner["api_url"], home)
    assert [r["state_type"] for r in runs] == ["COMPLETED"] * 5  # the rejected one too

    # Ctrl-C on a run waiting for a reviewer: the command ends within seconds, warm or not; the
    # run's process is gone and the server marks the run Crashed; the taken name is untouched.
    for where in ("warm", "in process"):
        served = len(children_served(home))
        run_env = {**env, "MWINGEST_WARM": "1" if where == "warm" else "0"}
        code, took, runs = _interrupt_while_paused(run_env, runner["api_url"], home, other,
                                                  warm_png.name)
        assert code == 130 and took < 20, (where, code, took)
        assert {r["state_type"] for r in runs} <= {"CRASHED", "CANCELLED", "FAILED"}, (where, [
            (r["name"], r["state_name"]) for r in runs])
        if where == "warm":
            child = children_served(home)[-1]
            assert len(children_served(home)) == served + 1 and not alive(child)
    info = upload.file_info(session, warm_png.name)
    assert info is not None and info["sha1"] == sha1_of(warm_png)

    # `server stop` stops the runner too and removes its socket.
    mwingest(env, "server", "stop").expect(0)
    assert not alive(runner["pid"]) and not Path(runner["socket"]).exists()
    assert _state(home) is None and not (home / "prefect-server" / "warm.json").exists()


def _interrupt_while_paused(run_env: dict[str, str], api_url: str, home: Path, source: Path,  # noqa: F811
                            taken: str) -> tuple[int, float, list[dict[str, Any]]]:
    """Start an upload onto a taken name, Ctrl-C it once it waits for a reviewer: its exit
    status, seconds from the signal to its end, and its runs once none is running any more."""
    before = {r["id"] for r in _runs(api_url, home)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "mwingest.cli.app", "upload", str(source), "--filename", taken,
         "--review-wait", "600"], env=run_env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and not any(
                r["state_type"] == "PAUSED" for r in _runs(api_url, home) if r["id"] not in before):
            time.sleep(0.3)
        sent = time.monotonic()
        proc.send_signal(signal.SIGINT)
        code = proc.wait(timeout=60)
        took = time.monotonic() - sent
    finally:
        proc.kill()
    runs: list[dict[str, Any]] = []
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        runs = [r for r in _runs(api_url, home) if r["id"] not in before]
        if runs and not any(r["state_type"] in ("RUNNING", "PAUSED", "PENDING") for r in runs):
            break
        time.sleep(1)
    return code, took, runs


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


#: Another user's listener at the runner's socket path: it records every connection, every byte
#: and every file descriptor it is handed, one JSON line each.
_SQUATTER = r"""
import json, os, socket, sys
path = sys.argv[1]
os.makedirs(os.path.dirname(path), mode=0o755, exist_ok=True)
os.chmod(os.path.dirname(path), 0o755)
sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
sock.bind(path)
os.chmod(path, 0o777)
sock.listen(8)
print(json.dumps({"ready": True}), flush=True)
while True:
    conn, _ = sock.accept()
    conn.settimeout(5)
    got, fds = b"", []
    try:
        while True:
            data, new, _flags, _addr = socket.recv_fds(conn, 65536, 8)
            if not data:
                break
            got += data
            fds += new
    except OSError:
        pass
    print(json.dumps({"bytes": len(got), "fds": len(fds),
                      "password": os.environ.get("SQUAT_LOOK_FOR", "-") in got.decode("latin-1")}),
          flush=True)
"""


def test_a_squatted_runner_directory_receives_nothing(wiki, env, home, tmp_path, unique):  # noqa: F811
    """Another local user (``nobody``) makes the runner's directory in the shared temp
    directory first and listens at the socket's path. The owner's commands must send it
    nothing (no environment with the wiki password, no terminal) and still land their files."""
    if os.geteuid() != 0 or subprocess.run(["id", "nobody"], capture_output=True).returncode:
        pytest.skip("needs root and a user 'nobody' to try as another user")
    shared = Path(tempfile.mkdtemp(prefix="mwingest-shared-tmp-", dir="/tmp"))
    shared.chmod(0o1777)  # like /tmp: anyone may create a name first
    env = {k: v for k, v in env.items() if k != "XDG_RUNTIME_DIR"}
    env["TMPDIR"] = str(shared)
    target = shared / f"mwingest-{os.getuid()}" / warm.socket_path(Paths(home)).name
    squatter = subprocess.Popen(
        ["runuser", "-u", "nobody", "--", "/usr/bin/python3", "-c", _SQUATTER, str(target)],
        env={"PATH": os.environ["PATH"], "SQUAT_LOOK_FOR": wiki.password}, cwd="/",
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        assert json.loads(squatter.stdout.readline()) == {"ready": True}, squatter.stderr.read()
        u = unique()
        first, second = _write_pngs(tmp_path / "in", f"Squat {u}.png", f"Squat 2 {u}.png").values()
        mwingest(env, "upload", str(first)).expect(0)
        mwingest(env, "server", "start").expect(0)  # starts the runner, which must refuse too
        log = home / "prefect-server" / "server.log"
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and "not serving" not in log.read_text():
            time.sleep(0.5)
        assert "is not private to this user" in log.read_text()
        mwingest(env, "upload", str(second)).expect(0)
        assert children_served(home) == []  # both ran in their own process
        session = session_for(wiki)
        for path in (first, second):
            info = upload.file_info(session, path.name)
            assert info is not None and info["sha1"] == sha1_of(path)
    finally:
        os.killpg(squatter.pid, signal.SIGKILL)
        out, _err = squatter.communicate(timeout=10)
        shutil.rmtree(shared, ignore_errors=True)
    assert out.strip() == "", f"the squatter was sent: {out}"
