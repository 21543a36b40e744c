"""The ledger under concurrency and crashes: threads and processes writing at once, and kill -9
keeping every reported chunk (both backends, as in test_ledger.py).
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from mwingest.ledger.ledger import (
    Ledger,
)
from tests.unit.test_ledger import SHA_A, WIKI, S, walk


# --- concurrency and crashes --------------------------------------------------------------------------
def _full_run(led: Ledger, source: str, chunks: int = 4) -> int:
    """One file's whole journey; each source its own title (same bytes, same title = one row)."""
    target = source.strip("/").replace("/", "-").capitalize()
    item_id = led.begin(WIKI, source, sha1=SHA_A, size=chunks * 1024, target=target).id
    walk(led, item_id, [S.VALIDATED, S.STASHING])
    for n in range(1, chunks + 1):
        led.record_chunk(item_id, filekey=f"k-{item_id}", offset=n * 1024, chunk_size=1024)
    led.transition(item_id, S.STASHED, filekey=f"f-{item_id}")
    led.transition(item_id, S.UPLOADED, reason="published", final_name=target)
    return item_id


def test_eight_threads_share_one_ledger(ledger: Ledger) -> None:
    with ThreadPoolExecutor(max_workers=8) as pool:
        ids = list(pool.map(lambda n: _full_run(ledger, f"/t/{n}.png"), range(160)))
    assert len(set(ids)) == 160
    assert ledger.summary()["uploaded"] == 160
    assert all(len(ledger.history(i)) == 5 for i in ids)


def _process_worker(path: str, tag: str, barrier: Any, count: int) -> None:
    barrier.wait()
    with Ledger(path) as led:
        for n in range(count):
            _full_run(led, f"/{tag}/{n}.png")


def test_two_processes_write_at_once(ledger_location: str) -> None:
    """Both processes also create and migrate the (missing) ledger at the same moment."""
    path = ledger_location
    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(2)
    procs = [ctx.Process(target=_process_worker, args=(path, tag, barrier, 60)) for tag in "pq"]
    for proc in procs:
        proc.start()
    for proc in procs:
        proc.join(timeout=300)
    assert [p.exitcode for p in procs] == [0, 0]  # a "database is locked" would exit 1
    with Ledger(path) as led:
        assert led.summary()["uploaded"] == 120


_CHUNK_LOOP = textwrap.dedent("""
    import sys
    from mwingest.ledger.ledger import Ledger, State
    led = Ledger(sys.argv[1])
    item = led.begin("http://127.0.0.1:9412/w/api.php", "/big.bin", sha1="c" * 40, size=10**12,
                     target="Big.bin")
    led.transition(item.id, State.VALIDATED)
    led.transition(item.id, State.STASHING)
    print(item.id, flush=True)
    offset = 0
    while True:
        offset += 1024
        led.record_chunk(item.id, filekey="big.bin", offset=offset, chunk_size=1024)
        print(offset, flush=True)  # only after the commit returned
""")


@pytest.mark.timeout(120)
def test_kill_9_keeps_every_reported_chunk(ledger_location: str) -> None:
    path = ledger_location
    child = subprocess.Popen([sys.executable, "-c", _CHUNK_LOOP, str(path)], stdout=subprocess.PIPE,
                             text=True)
    assert child.stdout is not None
    item_id = int(child.stdout.readline())
    reported = 0
    while reported < 300 * 1024:
        line = child.stdout.readline()
        assert line, "the child died on its own"
        reported = int(line)
    os.kill(child.pid, signal.SIGKILL)
    rest = child.stdout.read()  # lines written before the kill landed
    child.wait()
    assert child.returncode == -signal.SIGKILL
    reported = max([reported, *(int(x) for x in rest.split())])
    if not path.startswith("postgresql"):
        check = sqlite3.connect(path)
        assert check.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
        check.close()
    with Ledger(path) as led:
        item = led.get(item_id)
        assert item.state is S.STASHING and item.filekey == "big.bin"
        assert item.offset >= reported
        led.record_chunk(item_id, filekey="big.bin", offset=item.offset + 1024, chunk_size=1024)
