"""The ledger database can fail too: PostgreSQL restarted mid-import is ridden out (issue 24).

Real wiki, the real local Prefect server, the real CLI, Debian's PostgreSQL (``tests/pg.py``, a
server of this test's own: it is restarted). Two ``mwingest import`` processes (two workers, each
its own folder) share one ledger database and one account's pacing row; while their files land,
PostgreSQL is stopped the way an operator does (fast shutdown: every session is terminated) and
started again a few seconds later. Both imports must finish as if nothing happened: exit 0,
every file on the wiki once (its SHA-1, one version), every ledger row ``uploaded``.
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from mwingest.ledger.ledger import Ledger, State
from mwingest.wiki import upload
from tests.integration.clihelpers import Ran, assert_rerun_finished, mwingest, sha1_of
from tests.integration.test_local_server import env, home  # noqa: F401 - fixtures
from tests.integration.test_prefect_lost import _landed, _wav
from tests.integration.wikihelpers import png_bytes, session_for
from tests.pg import PostgresServer, running_postgres

pytestmark = pytest.mark.wiki

DOWN_S = 4.0  # how long nobody can connect to the database (plus its start-up)
CEILING_S = 240.0  # each import, on a loaded 2-core machine


@pytest.fixture
def own_pg() -> Iterator[PostgresServer]:
    """A PostgreSQL of this test's own: restarting the session's would cut other tests off."""
    with running_postgres() as server:
        yield server


def _folder(root: Path, prefix: str, seed: int) -> Path:
    """A chunked WAV first (its chunks are recorded while others land), then eight PNGs."""
    folder = root / prefix.replace(" ", "-")
    folder.mkdir()
    _wav(folder / f"{prefix} 0 big.wav", 4_000_000)
    for i in range(1, 9):
        (folder / f"{prefix} {i:02d}.png").write_bytes(png_bytes(seed=seed + i, size=(12, 12)))
    return folder


def test_a_postgres_restart_mid_import_on_two_workers_is_ridden_out(
        wiki: Any, env: dict[str, str], tmp_path: Path, unique: Any,  # noqa: F811
        own_pg: PostgresServer) -> None:
    u = unique()
    prefixes = [f"PgRestart {u} a", f"PgRestart {u} b"]
    folders = [_folder(tmp_path, p, 300 + 20 * n) for n, p in enumerate(prefixes)]
    env = {**env, "MWINGEST_WARM": "0", "MWINGEST_LEDGER_URL": own_pg.fresh_url()}
    mwingest(env, "server", "start").expect(0)  # one Prefect server for both "workers"
    args = [["import", str(f), "--chunk-size", "1MiB", "--concurrency", "3", "--json"]
            for f in folders]
    children = [subprocess.Popen([sys.executable, "-m", "mwingest.cli.app", *a], env=env,
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                for a in args]
    try:
        started = time.monotonic()
        while sum(_landed(wiki.api_url, p) for p in prefixes) < 3:
            assert all(c.poll() is None for c in children), "an import ended before the restart"
            assert time.monotonic() - started < CEILING_S, "no file landed"
            time.sleep(0.2)
        landed = sum(_landed(wiki.api_url, p) for p in prefixes)
        assert all(c.poll() is None for c in children), "an import ended before the restart"
        restart_at = time.monotonic() - started
        down = own_pg.restart(DOWN_S)
        print(f"restarted {restart_at:.1f} s into the imports with {landed} of 18 files on the "
              f"wiki; nobody could connect for {down:.1f} s")
        ran = [Ran(tuple(a), c.returncode, *c.communicate(timeout=CEILING_S))
               for a, c in zip(args, children, strict=True)]
        took = time.monotonic() - started
    finally:
        for child in children:
            if child.poll() is None:
                child.kill()
                child.wait()
    for child, done in zip(children, ran, strict=True):
        done.returncode = child.returncode
    said = [line for r in ran for line in r.stderr.splitlines()
            if f"ledger 127.0.0.1:{own_pg.port}" in line]
    print(f"both imports done {took:.1f} s after they started; {len(said)} ledger retries logged"
          + (f", e.g. {said[0].strip()}" if said else ""))
    assert said, "the restart was not felt: no ledger operation was run again"

    session = session_for(wiki)
    for done, folder in zip(ran, folders, strict=True):
        rows = {Path(r["source"]).name: r for r in done.expect(0).rows()}
        assert len(rows) == 9
        for name, row in rows.items():
            assert row["outcome"] == "uploaded", row
            info = upload.file_info(session, row["filename"], history=True)
            assert info is not None and info["sha1"] == sha1_of(folder / name), name
            assert len(info["versions"]) == 1, (name, info["versions"])  # nothing sent twice
    with Ledger(env["MWINGEST_LEDGER_URL"]) as ledger:
        items = ledger.items()
        assert len(items) == 18 and {i.state for i in items} == {State.UPLOADED}, [
            (i.source, i.state, i.reason) for i in items if i.state is not State.UPLOADED]
        for item in items:  # one publish each in the history: no move recorded twice
            moves = [e.to_state for e in ledger.history(item.id)]
            assert moves.count(State.UPLOADED) == 1, (item.source, moves)


def test_an_outage_longer_than_the_budget_ends_the_import_and_a_rerun_finishes(
        wiki: Any, env: dict[str, str], tmp_path: Path, unique: Any,  # noqa: F811
        own_pg: PostgresServer) -> None:
    """With ``--retry-budget 5`` the database stays down for longer: the import ends with one
    line naming the database, exit 2, no traceback; once it is back the same command finishes
    the batch without sending a landed file again."""
    u = unique()
    prefix = f"PgGone {u}"
    folder = _folder(tmp_path, prefix, 500)
    env = {**env, "MWINGEST_WARM": "0", "MWINGEST_LEDGER_URL": own_pg.fresh_url()}
    mwingest(env, "server", "start").expect(0)
    args = ["import", str(folder), "--chunk-size", "1MiB", "--concurrency", "3", "--json",
            "--retry-budget", "5"]
    child = subprocess.Popen([sys.executable, "-m", "mwingest.cli.app", *args], env=env,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        started = time.monotonic()
        while _landed(wiki.api_url, prefix) < 2:
            assert child.poll() is None, "the import ended before the outage"
            assert time.monotonic() - started < CEILING_S, "no file landed"
            time.sleep(0.2)
        own_pg.stop()
        stopped = time.monotonic()
        out, err = child.communicate(timeout=CEILING_S)
        took = time.monotonic() - stopped
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
        if own_pg.process.poll() is not None:
            own_pg.start()
    print(f"the import ended {took:.1f} s after the database stopped, exit {child.returncode}; "
          f"{_landed(wiki.api_url, prefix)} of 9 files on the wiki")
    last = err.strip().splitlines()[-1]
    print(f"its last line: {last}")
    assert child.returncode == 2, err[-3000:]
    assert "Traceback" not in err, err[-3000:]
    assert last.startswith("mwingest: the ledger database at 127.0.0.1:") and "did not answer" \
        in last and "run the same command again" in last, last
    before = {Path(r["source"]).name: r for r in Ran(tuple(args), 2, out, err).rows()}
    # The stop is said once: no file is told as failed for the ledger that went away.
    assert {r["outcome"] for r in before.values()} <= {"uploaded"}, before

    again = mwingest(env, *args).expect(0).rows()
    assert len(again) == 9
    assert_rerun_finished(session_for(wiki), folder, list(before.values()), again)
