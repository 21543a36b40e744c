"""The local Prefect server every command reuses (``mwingest server``), against the real wiki.

Each test has its own mwingest home (so its own server, port and Prefect database) and stops
what it started. What is asserted is what the server's API and the wiki hold — the runs in the
server's history, their states, the files' SHA-1 on the wiki — and which processes are alive.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from mwingest.base.paths import Paths
from mwingest.base.procs import alive
from mwingest.dev.devwiki import free_port
from mwingest.runtime import apiauth, crashwatch, localserver, uilogo
from mwingest.wiki import upload
from tests.integration.clihelpers import mwingest, sha1_of
from tests.integration.wikihelpers import png_bytes, session_for
from tests.prefect_server import seed_env_homes

pytestmark = pytest.mark.wiki
_PROXY_VARS = {"http_proxy", "https_proxy", "all_proxy", "no_proxy"}


@pytest.fixture
def home(tmp_path: Path) -> Path:
    return tmp_path / "mwingest-home"


@pytest.fixture
def env(wiki: Any, home: Path, tmp_path: Path) -> Iterator[dict[str, str]]:
    """A user's shell: the wiki's bot password, no Prefect configured, a home of the test's own.
    Whatever server a test starts there is stopped afterwards."""
    base = {k: v for k, v in os.environ.items()
            if not k.startswith(("PREFECT_", "MWINGEST_")) and k.lower() not in _PROXY_VARS}
    base.update(MWINGEST_API_URL=wiki.api_url, MWINGEST_USERNAME=wiki.username,
                MWINGEST_PASSWORD=wiki.password, MWINGEST_HOME=str(home),
                MWINGEST_SERVER_PORT=str(free_port()), PREFECT_HOME=str(tmp_path / "prefect"),
                DO_NOT_TRACK="1", PREFECT_SERVER_ANALYTICS_ENABLED="false")
    seed_env_homes(base)
    try:
        yield base
    finally:
        mwingest(base, "server", "stop")


def _state(home: Path) -> dict[str, Any] | None:
    path = home / "prefect-server" / "server.json"
    return json.loads(path.read_text()) if path.exists() else None


def _group(pgid: int) -> list[int]:
    """Live processes of process group ``pgid``."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid and fields[0] not in ("Z", "X"):
            found.append(int(stat.parent.name))
    return found


def wait_for_runner(root: Path, timeout: float = 120.0) -> dict[str, Any]:
    """The runner's state once its imports are done (``server start`` launched it)."""
    path = root / "prefect-server" / "warm.json"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists():
            return json.loads(path.read_text())
        time.sleep(0.2)
    raise AssertionError(f"no warm runner after {timeout:.0f} s:\n"
                         + (root / "prefect-server" / "server.log").read_text()[-3000:])


def children_served(root: Path, command: str = "upload") -> list[int]:
    """The pids the runner ran ``command`` in, from its log (in order)."""
    log = (root / "prefect-server" / "server.log").read_text()
    return [int(pid) for pid in re.findall(rf"runs {command} in child (\d+)", log)]


def owner_http(home: Path) -> requests.Session:
    """The owner's HTTP to the local server of ``home``: with the server's secret."""
    return apiauth.session(Paths(home))


def _runs(api_url: str, home: Path) -> list[dict[str, Any]]:
    answer = owner_http(home).post(f"{api_url}/flow_runs/filter", json={"sort": "START_TIME_ASC"},
                                   timeout=10)
    answer.raise_for_status()
    return answer.json()


def _write_pngs(folder: Path, *names: str) -> dict[str, Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = {}
    for n, name in enumerate(names):
        paths[name] = folder / name
        paths[name].write_bytes(png_bytes(seed=hash((name, n)) & 0xFFFF, size=(12, 12)))
    return paths


def test_first_command_starts_the_server_later_ones_reuse_it_and_stop_leaves_nothing(
        wiki, env, home, tmp_path, unique):
    u = unique()
    files = _write_pngs(tmp_path / "in", f"First {u}.png", f"Second {u}.png")
    first, second = files.values()
    [conflict] = _write_pngs(tmp_path / "other", f"Conflict {u}.png").values()
    mwingest(env, "server", "status").expect(1)

    ran = mwingest(env, "upload", str(first)).expect(0)
    started = [line for line in ran.stderr.splitlines() if "started a local Prefect server" in line]
    assert len(started) == 1, ran.stderr
    state = _state(home)
    assert state is not None and started[0].count(state["ui_url"]) == 1
    again = mwingest(env, "upload", str(second)).expect(0)
    assert "started a local Prefect server" not in again.stderr
    assert _state(home)["pid"] == state["pid"]  # the same server, not a second one
    # A name taken by other bytes: with the local server nobody may watch the UI's pause form,
    # so the file waits as needs-review at once (decided later with `mwingest review`).
    waiting = mwingest(env, "upload", str(conflict), "--filename", first.name, "--json").expect(1)
    assert [r["outcome"] for r in waiting.rows()] == ["needs-review"]

    # Both runs are in that server's history, finished, and the files are on the wiki intact.
    runs = _runs(state["api_url"], home)
    assert [r["state_type"] for r in runs] == ["COMPLETED"] * 3, [
        (r["name"], r["state_name"]) for r in runs]
    session = session_for(wiki)
    for path in files.values():
        info = upload.file_info(session, path.name)
        assert info is not None and info["sha1"] == sha1_of(path)
    # The crash automation is installed once, however often the server was found.
    automations = owner_http(home).post(f"{state['api_url']}/automations/filter", timeout=10, json={
        "automations": {"name": {"any_": [crashwatch.AUTOMATION_NAME]}}}).json()
    assert len(automations) == 1
    # The block's logo is our file, served by this server to a browser without credentials,
    # and the block type registered against it shows that URL (no host but this one).
    logo = requests.get(f"{state['ui_url']}/{uilogo.NAME}", timeout=10)
    assert (logo.status_code, logo.content) == (200, uilogo.LOGO.read_bytes())
    registered = subprocess.run([sys.executable, "-m", "deployments.register"], capture_output=True,
                                text=True, timeout=120, stdin=subprocess.DEVNULL,
                                env={**env, "PREFECT_API_URL": state["api_url"]})
    assert registered.returncode == 0, registered.stderr[-3000:]
    block_type = owner_http(home).get(f"{state['api_url']}/block_types/slug/mediawiki-credentials",
                                      timeout=10).json()
    assert block_type["logo_url"] == f"{state['ui_url']}/{uilogo.NAME}"

    members = _group(state["pid"])
    assert len(members) >= 2, members  # the supervisor and the Prefect server at least
    stopped = mwingest(env, "server", "stop").expect(0)
    assert "stopped" in stopped.stdout
    assert _group(state["pid"]) == [] and _state(home) is None
    assert not localserver.healthy(state["api_url"], timeout=1)
    mwingest(env, "server", "status").expect(1)


def test_server_stops_itself_after_its_idle_time(env, home):
    mwingest(env, "server", "start", "--idle", "3").expect(0)
    state = _state(home)
    assert state is not None and localserver.healthy(state["api_url"])
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and _group(state["pid"]):
        time.sleep(0.5)
    assert _group(state["pid"]) == [], "the idle server is still running after 60 s"
    assert _state(home) is None
    mwingest(env, "server", "status").expect(1)


def test_ephemeral_opt_out_starts_no_server(wiki, env, home, tmp_path, unique):
    [path] = _write_pngs(tmp_path / "in", f"Ephemeral {unique()}.png").values()
    ran = mwingest({**env, "MWINGEST_PREFECT": "ephemeral"}, "upload", str(path)).expect(0)
    assert "started a local Prefect server" not in ran.stderr
    assert _state(home) is None
    info = upload.file_info(session_for(wiki), path.name)
    assert info is not None and info["sha1"] == sha1_of(path)


@pytest.mark.parametrize("where", ["warm runner", "in process"])
def test_a_killed_run_is_shown_crashed_within_a_few_heartbeats(where, wiki, env, home, tmp_path,
                                                                unique):
    """The run waits in a review form (a file whose name is taken); its command is killed
    with SIGKILL; the server's automation must mark it Crashed from the missing heartbeats.
    Run in the warm runner's child, the kill of the command must end that child too."""
    heartbeat_s = 3
    env = {**env, "MWINGEST_HEARTBEAT_S": str(heartbeat_s),
           "MWINGEST_WARM": "1" if where == "warm runner" else "0"}
    u = unique()
    taken, ours = _write_pngs(tmp_path / "in", f"Taken {u}.png", f"Ours {u}.png").values()
    mwingest(env, "upload", str(taken)).expect(0)
    if where == "warm runner":
        wait_for_runner(home)
    api_url = _state(home)["api_url"]
    before = {r["id"] for r in _runs(api_url, home)}

    child = subprocess.Popen(
        [sys.executable, "-m", "mwingest.cli.app", "upload", str(ours), "--filename", taken.name,
         "--review-wait", "600"], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        start_new_session=True)
    try:
        deadline = time.monotonic() + 120
        paused = []
        while time.monotonic() < deadline and not paused:
            time.sleep(0.5)
            paused = [r for r in _runs(api_url, home) if r["id"] not in before
                      and r["state_type"] == "PAUSED"]
        assert paused, "the run never paused for the review"
    finally:
        os.killpg(child.pid, signal.SIGKILL)
        child.wait(timeout=10)
    killed_at = time.monotonic()
    if where == "warm runner":
        [served] = children_served(home)
        while alive(served) and time.monotonic() - killed_at < 10:
            time.sleep(0.1)
        assert not alive(served), "the run's process outlived its killed command"
    ours_runs: list[dict[str, Any]] = []
    while time.monotonic() - killed_at < 90:
        ours_runs = [r for r in _runs(api_url, home) if r["id"] not in before]
        if ours_runs and all(r["state_type"] == "CRASHED" for r in ours_runs):
            break
        time.sleep(1)
    took = time.monotonic() - killed_at
    print(f"crashed {took:.1f} s after the kill (heartbeat every {heartbeat_s} s)")
    assert ours_runs and all(r["state_type"] == "CRASHED" for r in ours_runs), [
        (r["name"], r["state_name"]) for r in ours_runs]
    # The file never landed under the taken name: the wiki still has the first file's bytes.
    info = upload.file_info(session_for(wiki), taken.name)
    assert info is not None and info["sha1"] == sha1_of(taken)


#: What another user of the machine tried against the owner's server (issue 24): the data routes,
#: the saved credentials with their secrets, the settings, and starting the owner's flows.
_INTRUDER = r"""
import json, sys, urllib.error, urllib.request
api, flow_id = sys.argv[1], sys.argv[2]
tries = [("POST", "/flow_runs/filter", {}), ("POST", "/task_runs/filter", {}),
         ("POST", "/block_documents/filter", {"include_secrets": True}),
         ("POST", "/artifacts/filter", {}), ("POST", "/logs/filter", {}),
         ("POST", "/variables/filter", {}), ("POST", "/deployments/filter", {}),
         ("GET", "/admin/settings", None), ("POST", "/flows/", {"name": "intruder"}),
         ("POST", "/flow_runs/", {"flow_id": flow_id, "name": "intruder"}),
         ("POST", "/automations/filter", {})]
out = {}
for method, path, body in tries:
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(api + path, data=data, method=method,
                                 headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=10) as answer:
            out[path] = answer.status
    except urllib.error.HTTPError as exc:
        out[path] = exc.code
print(json.dumps(out))
"""


def test_another_user_of_the_machine_gets_nothing_from_the_owners_server(
        wiki, env, home, tmp_path, unique):
    """Tests run as root; ``nobody`` is the other local user. The owner's upload, status and
    ``server status`` work; every data route answers ``nobody`` 401, and the secret is in no
    place ``nobody`` can read (the file is 0600 in a 0700 directory, never on a command line)."""
    if os.geteuid() != 0 or subprocess.run(["id", "nobody"], capture_output=True).returncode:
        pytest.skip("needs root and a user 'nobody' to try as another user")
    [path] = _write_pngs(tmp_path / "in", f"Private {unique()}.png").values()
    mwingest(env, "upload", str(path)).expect(0)
    state = _state(home)
    assert state is not None
    status = mwingest(env, "server", "status").expect(0)
    auth_file = home / "prefect-server" / "auth"
    secret = auth_file.read_text().strip()
    assert str(auth_file) in status.stdout and secret.split(":")[1] not in status.stdout + status.stderr
    assert auth_file.stat().st_mode & 0o777 == 0o600
    assert (home / "prefect-server").stat().st_mode & 0o777 == 0o700
    owner = owner_http(home)
    [flow] = owner.post(f"{state['api_url']}/flows/filter", json={}, timeout=10).json()

    tried = subprocess.run(["runuser", "-u", "nobody", "--", "/usr/bin/python3", "-c", _INTRUDER,
                            state["api_url"], flow["id"]], capture_output=True, text=True,
                           timeout=60, cwd="/")
    assert tried.returncode == 0, tried.stderr
    answers = json.loads(tried.stdout)
    assert answers and set(answers.values()) == {401}, answers
    # The owner with the secret gets the same routes.
    assert owner.post(f"{state['api_url']}/flow_runs/filter", json={}, timeout=10).status_code == 200
    assert owner.get(f"{state['api_url']}/admin/settings", timeout=10).status_code == 200
    assert len(_runs(state["api_url"], home)) == 1  # nobody's run was never created
    # What else nobody could read: the secret's file, the server's environment and command line.
    server_pids = _group(state["pid"])
    peek = subprocess.run(
        ["runuser", "-u", "nobody", "--", "/bin/sh", "-c",
         f"cat {auth_file}; for p in {' '.join(map(str, server_pids))}; do "
         f"cat /proc/$p/environ; tr '\\0' ' ' < /proc/$p/cmdline; done"],
        capture_output=True, text=True, timeout=30, cwd="/")
    assert secret.split(":")[1] not in peek.stdout
    # The owner's other commands still work with the server.
    mwingest(env, "status").expect(0)
    info = upload.file_info(session_for(wiki), path.name)
    assert info is not None and info["sha1"] == sha1_of(path)
