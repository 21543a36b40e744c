"""A shared ledger's password never leaves the process that was given it (issue 24, point 3).

A user puts the PostgreSQL password into ``MWINGEST_LEDGER_URL`` (the test database trusts every
connection, so any password works). ``import``, ``upload``, ``status`` and ``review`` against
the mwingest local Prefect server must work, and afterwards the password is in no file under the
Prefect and mwingest homes (the server's SQLite database with every run's parameters, logs and
artifacts, the server's and the warm runner's log) and on no stdout/stderr. A password typed as
``--ledger`` is refused before a run exists; a database that cannot be reached is one line that
names its host and port, exit 2, never a traceback.
"""

from __future__ import annotations

import json
import secrets
from pathlib import Path
from urllib.parse import quote

import pytest

from mwingest.dev.devwiki import free_port
from tests.integration.clihelpers import Ran, mwingest
from tests.integration.test_local_server import (  # noqa: F401 - env, home: fixtures
    _runs,
    _state,
    _write_pngs,
    env,
    home,
)

pytestmark = pytest.mark.wiki


def _with_password(url: str, password: str) -> str:
    return url.replace("://mwingest@", f"://mwingest:{quote(password, safe='')}@", 1)


def _files_holding(roots: list[Path], needles: list[bytes]) -> list[str]:
    found = []
    for root in roots:
        for path in root.rglob("*"):
            if path.is_file() and not path.is_socket():
                data = path.read_bytes()
                found += [f"{path}: {n!r}" for n in needles if n in data]
    return found


def _one_line_error(ran: Ran, *words: str) -> None:
    ran.expect(2)
    lines = [line for line in ran.stderr.splitlines() if line.strip()]
    assert "Traceback" not in ran.stderr and lines and lines[-1].startswith("mwingest: "), ran.stderr
    problem = [line for line in lines if line.startswith("mwingest: ") and "ledger" in line]
    assert len(problem) == 1 and all(w in problem[0] for w in words), ran.stderr


def test_a_ledger_password_in_the_environment_is_stored_nowhere(
        wiki, postgres, env, home, tmp_path, unique):  # noqa: F811 - fixtures
    password = f"Pw-{secrets.token_hex(8)}"
    url = _with_password(postgres.fresh_url(), password)
    env = {**env, "MWINGEST_LEDGER_URL": url}
    u = unique()
    folder = tmp_path / "batch"
    first, _second = _write_pngs(folder, f"Ledger A {u}.png", f"Ledger B {u}.png").values()
    [other] = _write_pngs(tmp_path / "other", f"Ledger C {u}.png").values()

    ran = [mwingest(env, "import", str(folder), "--json").expect(0)]
    assert [r["outcome"] for r in ran[0].rows()] == ["uploaded", "uploaded"]
    # A name taken by other bytes waits as needs-review; status lists it; review decides it.
    waiting = mwingest(env, "upload", str(other), "--filename", first.name, "--json").expect(1)
    ran.append(waiting)
    [row] = waiting.rows()
    assert row["outcome"] == "needs-review"
    status = mwingest(env, "status").expect(0)
    ran.append(status)
    assert "mwingest:***@127.0.0.1" in status.stdout  # the URL, shown with its password masked
    listed = mwingest(env, "status", "--json").expect(0)
    ran.append(listed)
    [ref] = [item["ref"] for item in map(json.loads, listed.stdout.splitlines())
             if item["state"] == "needs-review"]
    ran.append(mwingest(env, "review", ref, "--decision", "skip", "--json").expect(0))
    state = _state(home)
    assert state is not None
    runs = _runs(state["api_url"], home)
    assert {r["state_type"] for r in runs} == {"COMPLETED"} and len(runs) == 3

    needles = [password.encode(), quote(password, safe="").encode()]
    for done in ran:
        assert password not in done.stdout + done.stderr, done.args
        assert "Traceback" not in done.stderr, done.stderr
    assert _files_holding([home, Path(env["PREFECT_HOME"])], needles) == []

    # Typed on the command line (ps shows it, the shell keeps it): refused before any run.
    typed = mwingest({k: v for k, v in env.items() if k != "MWINGEST_LEDGER_URL"},
                     "import", str(folder), "--ledger", url)
    _one_line_error(typed, "carries a password")
    assert password not in typed.stdout + typed.stderr
    assert len(_runs(state["api_url"], home)) == 3  # no run was created
    assert _files_holding([home, Path(env["PREFECT_HOME"])], needles) == []


def test_a_ledger_database_that_cannot_be_reached_is_one_line_naming_host_and_port(
        wiki, env, tmp_path, unique):  # noqa: F811 - fixtures
    port = free_port()  # nothing listens there: the connection is refused
    env = {**env, "MWINGEST_LEDGER_URL":
           f"postgresql+psycopg://mwingest:Pw-unused@127.0.0.1:{port}/mwingest"}
    [path] = _write_pngs(tmp_path / "in", f"Unreachable {unique()}.png").values()
    for args in (("import", str(path.parent)), ("upload", str(path)), ("status",),
                 ("review", "abcdef123456", "--decision", "skip")):
        ran = mwingest(env, *args)
        _one_line_error(ran, f"127.0.0.1:{port}")
        assert "Pw-unused" not in ran.stdout + ran.stderr
