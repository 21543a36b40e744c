"""Losing the Prefect server mid-import never hangs it (issue 24).

Real wiki, the real local Prefect server (``mwingest server start``), the real CLI. The server's
whole process group is killed with SIGKILL while small files land and a chunked file is on its
way. The import must end within a bounded time with one clear line and a non-zero exit; the same
command again (which starts a new server) must finish the batch. Asserted on what the wiki holds:
each file's SHA-1, one version each, and on what reached it (a proxy that faults nothing in front
of the wiki): the re-run sends no chunk of a file the first run finished and resumes a cut-off
one at its offset. (Measured: the jobs go on without Prefect, so the WAV usually lands before the
first run ends.)
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import requests

from mwingest.base.paths import Paths
from mwingest.ledger.ledger import Ledger, LedgerItem
from mwingest.runtime import apiauth
from mwingest.wiki import upload
from tests.faultproxy import FaultProxy
from tests.integration.clihelpers import Ran, assert_rerun_finished, mwingest, sha1_of
from tests.integration.test_local_server import _state, env, home  # noqa: F401 - fixtures
from tests.integration.wikihelpers import png_bytes, session_for

pytestmark = pytest.mark.wiki

#: The issue asks for an end within 60 s; the ceiling leaves room for a loaded 2-core machine.
END_CEILING_S = 120.0
#: A whole import of nine files through the flaky API; it normally takes well under two minutes.
FLAKY_CEILING_S = 400.0


def _wav(path: Path, data_bytes: int) -> None:
    """A valid PCM WAV of random samples (big enough to go in several chunks)."""
    header = (b"RIFF" + (36 + data_bytes).to_bytes(4, "little") + b"WAVEfmt "
              + (16).to_bytes(4, "little") + (1).to_bytes(2, "little") + (1).to_bytes(2, "little")
              + (8000).to_bytes(4, "little") + (16000).to_bytes(4, "little")
              + (2).to_bytes(2, "little") + (16).to_bytes(2, "little")
              + b"data" + data_bytes.to_bytes(4, "little"))
    path.write_bytes(header + os.urandom(data_bytes))


def _big_row(ledger: Path) -> LedgerItem:
    """The chunked file's ledger row as the killed run left it."""
    led = Ledger(ledger)
    try:
        return next(item for item in led.items() if item.source.endswith("big.wav"))
    finally:
        led.close()


def _landed(api_url: str, prefix: str) -> int:
    answer = requests.get(api_url, timeout=10, params={
        "action": "query", "list": "allimages", "aiprefix": prefix, "ailimit": 500,
        "format": "json"}).json()
    return len(answer["query"]["allimages"])


def test_killing_the_prefect_server_mid_import_ends_it_and_a_rerun_finishes(
        wiki: Any, env: dict[str, str], home: Path, tmp_path: Path, unique: Any) -> None:  # noqa: F811
    u = unique()
    prefix = f"Lost {u}"
    folder = tmp_path / "in"
    folder.mkdir()
    _wav(folder / f"{prefix} 0 big.wav", 7_000_000)  # first in the batch: chunks while others land
    for i in range(1, 13):
        (folder / f"{prefix} {i:02d}.png").write_bytes(png_bytes(seed=i, size=(12, 12)))
    ledger = tmp_path / "ledger.sqlite3"
    args = ["import", str(folder), "--chunk-size", "1MiB", "--concurrency", "3",
            "--ledger", str(ledger), "--json"]
    # The wiki through a proxy that faults nothing: it shows which chunk offsets each run sent.
    proxy = FaultProxy(wiki.api_url).start()
    env = {**env, "MWINGEST_WARM": "0", "MWINGEST_API_URL": proxy.url_for(wiki.api_url)}
    mwingest(env, "server", "start").expect(0)
    server = _state(home)
    assert server is not None

    child = subprocess.Popen([sys.executable, "-m", "mwingest.cli.app", *args], env=env,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                             start_new_session=True)
    try:
        deadline = time.monotonic() + 300
        # Small files landed and the WAV two chunks in (of seven): kill while both go on.
        while child.poll() is None and not (
                sum(e.chunk for e in proxy.stats.exchanges) >= 2
                and _landed(wiki.api_url, prefix) >= 2):
            assert time.monotonic() < deadline, "no file landed in 300 s"
            time.sleep(0.05)
        os.killpg(server["pid"], signal.SIGKILL)  # the server and all its children
        killed = time.monotonic()
        print(f"killed with {_landed(wiki.api_url, prefix)} of 13 files on the wiki")
        try:
            out, err = child.communicate(timeout=END_CEILING_S)
        except subprocess.TimeoutExpired:
            pytest.fail(f"the import still ran {END_CEILING_S:.0f} s after the server was killed")
        took = time.monotonic() - killed
    finally:
        if child.poll() is None:
            os.killpg(child.pid, signal.SIGKILL)
            child.wait()
    print(f"import ended {took:.1f} s after kill -9 of the server, exit {child.returncode}")
    first = Ran(tuple(args), child.returncode, out, err)
    if child.returncode != 0:  # it could not report; it said so in one line, no traceback
        assert "Traceback" not in err, err[-3000:]
        assert "Prefect API stopped answering" in err.strip().splitlines()[-1], err[-3000:]
    cut = _big_row(ledger)
    sent_before = len(proxy.stats.exchanges)

    try:
        again = mwingest(env, *args).expect(0)  # a new server starts; the batch finishes
    finally:
        proxy.stop()
    offsets = [int(e.offset or 0) for e in proxy.stats.exchanges[sent_before:] if e.chunk]
    print(f"the WAV after the kill: {cut.state.value} at offset {cut.offset} of {cut.size}; "
          f"the re-run sent chunks at {offsets}")
    if cut.done:  # the job went on without Prefect and finished it: not one chunk again
        assert offsets == [], (cut, offsets)
    else:  # cut off mid-chunks: the re-run goes on at the offset it reached, never from 0
        assert offsets and min(offsets) >= cut.offset > 0, (cut, offsets)
    assert len(again.rows()) == 13
    assert_rerun_finished(session_for(wiki), folder, first.rows(), again.rows())


def test_a_prefect_api_failing_a_fifth_of_its_requests_ends_and_a_rerun_finishes(
        wiki: Any, env: dict[str, str], home: Path, tmp_path: Path, unique: Any) -> None:  # noqa: F811
    """In front of the local server's API, a proxy answers 20 % of the requests with a 503
    ("database is locked"), resets them before they reach the server, or after it acted."""
    u = unique()
    prefix = f"Flaky {u}"
    folder = tmp_path / "in"
    folder.mkdir()
    _wav(folder / f"{prefix} 0 big.wav", 3_000_000)
    for i in range(1, 9):
        (folder / f"{prefix} {i:02d}.png").write_bytes(png_bytes(seed=100 + i, size=(12, 12)))
    args = ["import", str(folder), "--chunk-size", "1MiB", "--concurrency", "3",
            "--ledger", str(tmp_path / "ledger.sqlite3"), "--json"]
    env = {**env, "MWINGEST_WARM": "0"}
    mwingest(env, "server", "start").expect(0)
    server = _state(home)
    assert server is not None
    with FaultProxy(server["api_url"]) as proxy:
        proxy.fail_rate(0.2, ("refuse_before", "drop_after", "unavailable"),
                        match=lambda head: True, seed=24)
        flaky = {**env, "PREFECT_API_URL": proxy.url_for(server["api_url"]),
                 apiauth.CLIENT_ENV: apiauth.read(Paths(home)) or ""}
        started = time.monotonic()
        first = mwingest(flaky, *args)
        took = time.monotonic() - started
        faulted = dict(proxy.stats.faulted)
    print(f"import through the flaky API: exit {first.returncode} after {took:.1f} s, "
          f"{proxy.stats.requests} requests, faults {faulted}")
    assert took < FLAKY_CEILING_S
    if first.returncode not in (0, 1):
        assert "Traceback" not in first.stderr, first.stderr[-3000:]
    again = mwingest(env, *args).expect(0)
    session = session_for(wiki)
    for row in again.rows():
        name = Path(row["source"]).name
        info = upload.file_info(session, row["filename"], history=True)
        assert info is not None and info["sha1"] == sha1_of(folder / name), name
        assert len(info["versions"]) == 1, name
