"""Which Prefect a command reports to, and the local server's bookkeeping, without starting one.

The starts, stops, idle stops and crash marking of a real server are in
``tests/integration/test_local_server.py``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from mwingest.runtime import crashwatch, localserver, prefectenv


@pytest.fixture(autouse=True)
def _home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    for name in ("PREFECT_API_URL", "PREFECT_PROFILE", "PREFECT_PROFILES_PATH", "MWINGEST_PREFECT"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("MWINGEST_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("PREFECT_HOME", str(tmp_path / "prefect"))
    return tmp_path / "home"


def _refuse_start(**_: object) -> None:
    raise AssertionError("no server may be started here")


def test_a_configured_api_url_is_used_as_it_is(monkeypatch, _home):
    monkeypatch.setattr(localserver, "start", _refuse_start)
    monkeypatch.setenv("PREFECT_API_URL", "http://prefect.example:4200/api")
    choice = prefectenv.choose()
    assert (choice.kind, choice.api_url) == ("configured", "http://prefect.example:4200/api")
    assert not (_home / "prefect-server").exists()


def test_the_active_prefect_profile_counts_as_configured(monkeypatch, tmp_path):
    monkeypatch.setattr(localserver, "start", _refuse_start)
    (tmp_path / "prefect").mkdir()
    (tmp_path / "prefect" / "profiles.toml").write_text(
        'active = "team"\n[profiles.team]\nPREFECT_API_URL = "http://team:4200/api"\n'
        '[profiles.local]\n')
    assert prefectenv.choose().api_url == "http://team:4200/api"
    monkeypatch.setenv("PREFECT_PROFILE", "local")  # a profile without a URL: not configured
    monkeypatch.setenv("MWINGEST_PREFECT", "ephemeral")
    assert prefectenv.choose().kind == "ephemeral"


def test_ephemeral_opt_out_and_a_bad_mode(monkeypatch, _home):
    monkeypatch.setattr(localserver, "start", _refuse_start)
    monkeypatch.setenv("MWINGEST_PREFECT", "Ephemeral")
    assert prefectenv.choose() == prefectenv.PrefectChoice("ephemeral", None)
    monkeypatch.setenv("MWINGEST_PREFECT", "cloud")
    with pytest.raises(ValueError, match="local or ephemeral"):
        prefectenv.choose()


def test_the_local_server_is_started_once_and_announced(monkeypatch, _home):
    info = localserver.ServerInfo(pid=1, port=4242, api_url="http://127.0.0.1:4242/api",
                                  ui_url="http://127.0.0.1:4242", prefect_home="/x",
                                  started_at="now", idle_s=3600)
    monkeypatch.setattr(localserver, "status", lambda paths=None: None)
    monkeypatch.setattr(localserver, "start", lambda **_: (info, True))
    said: list[str] = []
    choice = prefectenv.choose(said.append)
    assert choice.kind == "local" and choice.api_url == info.api_url and choice.started
    assert len(said) == 1 and info.ui_url in said[0] and "mwingest server stop" in said[0]
    assert "1 h idle" in said[0]


def test_ports_stay_off_8000_to_8999():
    with pytest.raises(localserver.LocalServerError, match="8000-8999"):
        localserver.pick_port(8080)
    assert not 8000 <= localserver.pick_port() <= 8999


def test_a_state_whose_supervisor_died_is_dropped(_home):
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)
    paths = localserver.Paths()
    paths.root.mkdir(parents=True)
    paths.state.write_text(json.dumps({
        "pid": int(dead.stdout), "port": 4200, "api_url": "http://127.0.0.1:4200/api",
        "ui_url": "http://127.0.0.1:4200", "prefect_home": "/x", "started_at": "t", "idle_s": 1.0}))
    assert localserver.read_state(paths) is None and not paths.state.exists()
    assert localserver.stop(paths) is None


def test_the_crash_automation_expects_three_heartbeats_and_ignores_pauses():
    body = crashwatch.crash_automation(heartbeat_s=30)
    trigger = body["trigger"]
    assert trigger["within"] == 90 and trigger["posture"] == "Proactive"
    assert "prefect.flow-run.Paused" not in trigger["expect"]
    assert "prefect.flow-run.heartbeat" in trigger["expect"]
    assert trigger["match_related"]["prefect.resource.name"] == list(crashwatch.HEARTBEAT_FLOWS)
    assert body["actions"] == [{"type": "change-flow-run-state", "state": "CRASHED",
                                "message": body["actions"][0]["message"]}]
    assert crashwatch.crash_automation(heartbeat_s=1)["trigger"]["within"] == 10  # Prefect's minimum


def test_the_servers_secret_is_made_once_private_and_masked(_home, monkeypatch):
    from mwingest.base.redact import redact
    from mwingest.runtime import apiauth

    paths = localserver.Paths()
    secret = apiauth.ensure(paths)
    assert apiauth.ensure(paths) == secret and secret.startswith("mwingest:")
    assert paths.auth.stat().st_mode & 0o777 == 0o600
    assert paths.root.stat().st_mode & 0o777 == 0o700
    assert secret.split(":")[1] not in redact(f"header {apiauth.header(secret)} and {secret}")
    env = localserver._server_env(paths, "http://127.0.0.1:4242/api")
    assert env[apiauth.SERVER_ENV] == secret == env[apiauth.CLIENT_ENV]
    paths.auth.chmod(0o640)  # readable by a group: no longer a secret
    with pytest.raises(apiauth.AuthFileError, match="0600"):
        apiauth.read(paths)
    with pytest.raises(localserver.LocalServerError, match="0600"):
        localserver.start(paths=paths)


def test_only_the_local_servers_clients_are_given_its_secret(_home, monkeypatch):
    from mwingest.runtime import apiauth

    paths = localserver.Paths()
    secret = apiauth.ensure(paths)
    monkeypatch.setenv(apiauth.CLIENT_ENV, "restored after the test")
    monkeypatch.delenv(apiauth.CLIENT_ENV)
    monkeypatch.setattr(prefectenv, "is_local_server",
                        lambda url: url == "http://127.0.0.1:4242/api")
    assert not prefectenv.authenticate("http://prefect.example:4200/api")
    assert apiauth.CLIENT_ENV not in os.environ  # a team's server never gets the local secret
    assert prefectenv.authenticate("http://127.0.0.1:4242/api")
    assert os.environ[apiauth.CLIENT_ENV] == secret
