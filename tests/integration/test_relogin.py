"""Sessions the wiki drops mid-batch (issue 31), on a real throwaway wiki of this module's own.

The wiki's sessions are dropped for real (:func:`~tests.integration.wikihelpers.drop_sessions`:
the rows of its session store go) at chosen moments of a running ``mwingest import``, read from
the run's ledger. What is asserted is what the wiki holds afterwards (each file once, its SHA-1,
one revision), the exit status, and how many logins the *wiki* saw: its ``authevents`` log has
one line per login attempt, so "one re-login per drop" is counted on the server's side.

A wiki of its own (``wiki_factory``): dropping every session of the shared wiki would touch the
other modules' logged-in sessions, and a changed password must not leak into them.
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from mwingest.dev.devwiki import free_port
from mwingest.wiki import chunked, upload
from mwingest.wiki.session import WikiSession
from tests.integration.wikihelpers import (
    drop_sessions,
    page_revision_count,
    png_bytes,
    png_of_size,
    session_for,
)

MiB = 1024 * 1024
AUTH_LOG = ("$wgDebugLogGroups['authevents'] = __DIR__ . '/logs/authevents.log';"
            "  // relogin tests: one line per login attempt")
CLI_TIMEOUT_S = 600
_PROXY_VARS = {"http_proxy", "https_proxy", "all_proxy", "no_proxy"}


@pytest.fixture(scope="module")
def rwiki(wiki_factory: Callable[..., Any]) -> Any:
    return wiki_factory(extra_settings=AUTH_LOG)


def login_attempts(wiki: Any) -> int:
    """Login attempts the wiki logged (``action=login`` and ``clientlogin``, refused ones too)."""
    path = wiki.root / "logs" / "authevents.log"
    if not path.exists():
        return 0
    return sum(("Login attempt" in line or "API attempt" in line)
               for line in path.read_text().splitlines())


def sha1_of(data: bytes) -> str:
    return hashlib.sha1(data).hexdigest()  # noqa: S324 - MediaWiki's content hash


def ledger_rows(path: Path) -> dict[str, tuple[str, int, str | None]]:
    """``source name -> (state, offset, reason)`` from a run's ledger, read while it runs."""
    if not path.exists():
        return {}
    try:
        db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5)
        try:
            rows = db.execute('SELECT source, state, "offset", reason FROM items').fetchall()
        finally:
            db.close()
    except sqlite3.OperationalError:  # created but not yet migrated
        return {}
    return {Path(src).name: (state, offset, reason) for src, state, offset, reason in rows}


@dataclass
class Ran:
    returncode: int
    stdout: str
    stderr: str

    def expect(self, code: int) -> Ran:
        assert self.returncode == code, (f"exit {self.returncode}, wanted {code}\n--- stdout\n"
                                         f"{self.stdout[-3000:]}\n--- stderr\n{self.stderr[-6000:]}")
        return self

    def rows(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.stdout.splitlines()]


@dataclass
class Script:
    """Steps run from a watcher thread while the command runs: each waits for its condition."""

    steps: list[tuple[str, Callable[[], bool], Callable[[], None]]]
    done: list[str] = field(default_factory=list)
    errors: list[BaseException] = field(default_factory=list)

    def poll(self) -> None:
        if len(self.done) < len(self.steps):
            name, when, then = self.steps[len(self.done)]
            if when():
                then()
                self.done.append(name)


def run_cli(env: dict[str, str], *args: str, script: Script | None = None) -> Ran:
    """``mwingest ARGS`` in a subprocess, with ``script``'s steps run while it goes."""
    proc = subprocess.Popen([sys.executable, "-m", "mwingest.cli.app", *args], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    stop = threading.Event()

    def watch() -> None:
        while script is not None and not stop.is_set():
            try:
                script.poll()
            except BaseException as exc:  # noqa: BLE001 - the test reports it
                script.errors.append(exc)
                return
            time.sleep(0.03)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    try:
        out, err = proc.communicate(timeout=CLI_TIMEOUT_S)
    finally:
        stop.set()
        watcher.join(30)
        if proc.poll() is None:
            proc.kill()
    if script is not None:
        assert not script.errors, script.errors
    return Ran(proc.returncode, out, err)


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """One mwingest home for the module's commands (one local Prefect server, stopped at the end)."""
    path = tmp_path_factory.mktemp("relogin-home")
    try:
        yield path
    finally:
        stop_local_server(path)


def stop_local_server(home: Path) -> None:
    """Stop the local Prefect server the commands of ``home`` started (if any)."""
    subprocess.run([sys.executable, "-m", "mwingest.cli.app", "server", "stop"],
                   env=cli_env(home, "http://127.0.0.1:1/api.php", "x", "x"),
                   capture_output=True, timeout=120, check=False)


def cli_env(home: Path, api_url: str, username: str, password: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("PREFECT_", "MWINGEST_")) and k.lower() not in _PROXY_VARS}
    env.update(MWINGEST_API_URL=api_url, MWINGEST_USERNAME=username, MWINGEST_PASSWORD=password,
               MWINGEST_LEDGER=str(home / f"ledger-{username.replace('@', '-')}.sqlite3"),
               MWINGEST_HOME=str(home / "mwingest"), PREFECT_HOME=str(home / "prefect"),
               XDG_DATA_HOME=str(home / "xdg"),
               MWINGEST_SERVER_PORT=(home / "port").read_text() if (home / "port").exists()
               else _port(home), DO_NOT_TRACK="1", PREFECT_SERVER_ANALYTICS_ENABLED="false")
    return env


def _port(home: Path) -> str:
    port = str(free_port())
    (home / "port").write_text(port)
    return port


def _on_wiki_once(session: WikiSession, name: str, data: bytes) -> None:
    info = upload.file_info(session, name, history=True)
    assert info is not None, f"File:{name} is not on the wiki"
    assert info["sha1"] == sha1_of(data), name
    assert len(info["versions"]) == 1, f"File:{name} has {len(info['versions'])} versions"
    assert page_revision_count(session, f"File:{name}") == 1, name


def _files(folder: Path, small: int, big: dict[str, int], prefix: str) -> dict[str, bytes]:
    folder.mkdir()
    files = {f"{prefix}-{n:02d}.png": png_bytes() for n in range(small)}
    files.update({name: png_of_size(size) for name, size in big.items()})
    for name, data in files.items():
        (folder / name).write_bytes(data)
    return files


# --- the session dropped twice during an import -----------------------------------------------

def test_sessions_dropped_twice_mid_import_cost_one_relogin_each(rwiki: Any, home: Path,
                                                                 tmp_path: Path) -> None:
    tag = secrets.token_hex(3)
    big = f"Z-{tag}-big.png"  # sorts last: it starts once most small files are done
    files = _files(tmp_path / "batch", 14, {big: 8 * MiB}, f"R-{tag}")
    env = cli_env(home, rwiki.api_url, rwiki.username, rwiki.password)
    ledger = Path(env["MWINGEST_LEDGER"])
    before = login_attempts(rwiki)
    seen: dict[str, int] = {}

    def uploaded(count: int) -> Callable[[], bool]:
        return lambda: sum(r[0] == "uploaded" for r in ledger_rows(ledger).values()) >= count

    def big_midway() -> bool:
        state, offset, _ = ledger_rows(ledger).get(big, ("", 0, None))
        # the first drop's re-login is done (so the two drops cannot meet in one login)
        return state == "stashing" and offset >= 2 * MiB and login_attempts(rwiki) > seen["one"]

    def drop(name: str, everything: bool) -> Callable[[], None]:
        def act() -> None:
            seen[name] = login_attempts(rwiki)
            assert drop_sessions(rwiki, everything=everything) > 0
        return act

    # Sessions only, both times: a full flush of the object cache also loses the chunk
    # session's upload status, without which MediaWiki 1.39 takes no further chunk ("No chunked
    # upload session with this key"): that case is test_a_chunked_upload_whose_key_is_gone_….
    script = Script([("small files", uploaded(4), drop("one", False)),
                     ("chunked file", big_midway, drop("two", False))])
    ran = run_cli(env, "import", str(tmp_path / "batch"), "--json", "--concurrency", "3",
                  "--chunk-size", "1MiB", script=script).expect(0)
    assert script.done == ["small files", "chunked file"], (script.done, ran.stderr[-3000:])
    # One re-login per drop: the run's own login, then two more, as the wiki counted them.
    assert login_attempts(rwiki) - before == 3, ran.stderr[-4000:]
    rows = ran.rows()
    assert sorted(r["filename"].replace("_", " ") for r in rows) == sorted(files)
    assert {r["outcome"] for r in rows} == {"uploaded"}
    session = session_for(rwiki)
    for name, data in files.items():
        _on_wiki_once(session, name, data)
    assert "(re-login 2)" in ran.stderr and "(re-login 3)" not in ran.stderr
    assert "again from 0" not in ran.stderr  # the chunked file went on from the wiki's offset


# --- a password changed mid-run ------------------------------------------------------------------

def test_a_password_changed_mid_run_stops_the_batch_with_one_message(rwiki: Any, home: Path,
                                                                     tmp_path: Path) -> None:
    user, old, new = f"Relogin{secrets.token_hex(3)}", secrets.token_hex(12), secrets.token_hex(12)
    rwiki.run_maintenance("createAndPromote.php", user, old)
    tag = secrets.token_hex(3)
    big = f"A-{tag}-big.png"  # sorts first: in flight, mid-chunks, when the password changes
    # Big enough to be mid-chunks for the whole time changePassword.php takes (32 chunks).
    files = _files(tmp_path / "batch", 16, {big: 32 * MiB}, f"P-{tag}")
    env = cli_env(home, rwiki.api_url, user, old)  # a main account: clientlogin
    ledger = Path(env["MWINGEST_LEDGER"])
    before = login_attempts(rwiki)

    def big_at(offset: int) -> Callable[[], bool]:
        def check() -> bool:
            state, now, _ = ledger_rows(ledger).get(big, ("", 0, None))
            return state == "stashing" and now >= offset
        return check

    def change_password() -> None:
        # A main account's sessions outlive a password change (its bot passwords do not):
        rwiki.run_maintenance("changePassword.php", f"--user={user}", f"--password={new}")

    # … so the session store then loses them, and the next request needs a login.
    script = Script([("password changed", big_at(1 * MiB), change_password),
                     ("sessions dropped", big_at(4 * MiB), lambda: drop_sessions(rwiki))])
    ran = run_cli(env, "import", str(tmp_path / "batch"), "--json", "--concurrency", "3",
                  "--chunk-size", "1MiB", script=script).expect(2)
    assert script.done == ["password changed", "sessions dropped"]
    assert ran.stderr.count("refused to log in again") == 1, ran.stderr[-6000:]
    assert "login-failed" not in ran.stderr + ran.stdout
    assert old not in ran.stderr + ran.stdout and new not in ran.stderr + ran.stdout
    assert {r["outcome"] for r in ran.rows()} <= {"uploaded"}  # no failed line per file
    assert login_attempts(rwiki) - before == 2  # the run's login and one refused re-login

    # Nothing half-done: a file is on the wiki whole, once, or not at all; no row is failed,
    # the unfinished ones wait where they stopped (the chunked one with its stash key).
    rows = ledger_rows(ledger)
    session = session_for(rwiki)
    landed = {n for n, (state, _, _) in rows.items() if state == "uploaded"}
    assert len(landed) < len(files)
    assert not [r for r in rows.values() if r[0] in ("failed", "rejected", "needs-review")], rows
    for name, data in files.items():
        if name in landed:
            _on_wiki_once(session, name, data)
        else:
            assert upload.file_info(session, name) is None, f"File:{name} is half there"
    assert rows[big][0] == "stashing" and rows[big][1] >= 4 * MiB

    # With the new password the same command finishes the batch: each file once.
    again = run_cli(cli_env(home, rwiki.api_url, user, new), "import", str(tmp_path / "batch"),
                    "--json", "--concurrency", "3", "--chunk-size", "1MiB").expect(0)
    assert {r["outcome"] for r in again.rows()} <= {"uploaded", "skipped"}
    for name, data in files.items():
        _on_wiki_once(session, name, data)
    assert "again from 0" not in again.stderr


# --- a chunked upload, in plain Python: on from the wiki's offset, or from 0 when the key is gone --

def _chunked(rwiki: Any, tmp_path: Path, after_chunk: Callable[[WikiSession], None]
             ) -> tuple[WikiSession, chunked.ChunkState, bytes, str]:
    data = png_of_size(5 * MiB)
    path = tmp_path / "big.png"
    path.write_bytes(data)
    name = f"Relogin-chunked-{secrets.token_hex(4)}.png"
    session = session_for(rwiki)
    state = chunked.new_state(path, name, sha1_of(data), chunk_size=MiB)
    chunks = []

    def progress(now: chunked.ChunkState) -> None:
        chunks.append(now.offset)
        if len(chunks) == 2:
            after_chunk(session)

    done = chunked.upload_chunked(session, state, on_progress=progress)
    result = upload.publish_stash(session, done.final_filekey or "", name, ignorewarnings=True)
    assert result.filename
    return session, done, data, name


def test_a_chunked_upload_goes_on_from_the_wikis_offset_after_a_drop(rwiki: Any,
                                                                    tmp_path: Path) -> None:
    session, done, data, name = _chunked(rwiki, tmp_path, lambda s: drop_sessions(rwiki))
    assert session.gate.relogins == 1
    assert done.restarts == 0 and done.bytes_sent == len(data)  # no byte sent twice
    _on_wiki_once(session, name, data)


@pytest.mark.parametrize("how", ["cache flushed", "stash row gone"])
def test_a_chunked_upload_whose_key_is_gone_starts_again(rwiki: Any, tmp_path: Path,
                                                         how: str) -> None:
    def drop_and_forget(session: WikiSession) -> None:
        if how == "cache flushed":
            # The whole object cache: sessions and the chunk session's upload status with them.
            drop_sessions(rwiki, everything=True)
            return
        drop_sessions(rwiki)
        db = sqlite3.connect(rwiki.root / "data" / "wiki.sqlite", timeout=60)
        try:
            with db:  # the wiki forgets the chunk session's key, as after its stash expired
                db.execute("DELETE FROM uploadstash")
        finally:
            db.close()

    session, done, data, name = _chunked(rwiki, tmp_path, drop_and_forget)
    assert session.gate.relogins == 1
    assert done.restarts == 1 and done.bytes_sent > len(data)
    _on_wiki_once(session, name, data)
