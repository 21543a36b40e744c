"""Ledger operations per second on each backend: SQLite (a file) and PostgreSQL (a throwaway
server started like the tests' one, ``tests/pg.py``, with ``fsync=off``: a floor for a real one).

One "file" is what a chunked upload writes: begin, validated, stashing, 4 × record_chunk,
stashed, uploaded — 9 write transactions. Printed per backend, for 1 and 4 threads, and for
``claim_next`` of 10 rows at a time. It asserts nothing; it is for reading::

    .venv/bin/python bench/bench_ledger.py --files 400
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from mwingest.ledger.ledger import Ledger, State  # noqa: E402

WIKI = "http://127.0.0.1:9412/w/api.php"
WRITES_PER_FILE = 9


def one_file(led: Ledger, tag: str, n: int) -> None:
    item = led.begin(WIKI, f"/{tag}/{n}.png", sha1=f"{n:08x}{tag:0>32}"[:40], size=4096,
                     target=f"{tag}-{n}.png", account="Bench")
    led.transition(item.id, State.VALIDATED)
    led.transition(item.id, State.STASHING)
    for k in range(1, 5):
        led.record_chunk(item.id, filekey="k", offset=k * 1024, chunk_size=1024)
    led.transition(item.id, State.STASHED)
    led.transition(item.id, State.UPLOADED, reason="verified")


def run(location: str, files: int, threads: int, tag: str) -> float:
    """Write transactions per second with ``threads`` threads sharing one Ledger."""
    with Ledger(location) as led:
        started = time.perf_counter()
        with ThreadPoolExecutor(max_workers=threads) as pool:
            list(pool.map(lambda n: one_file(led, f"{tag}{threads}", n), range(files)))
        return files * WRITES_PER_FILE / (time.perf_counter() - started)


def claims(location: str, files: int) -> float:
    """Rows claimed per second, 10 per claim, by one worker."""
    with Ledger(location) as led:
        for n in range(files):
            led.begin(WIKI, f"/c/{n}.png", sha1=f"{n:040x}", size=1, target=f"c{n}.png",
                      account="Claims")
        started = time.perf_counter()
        got = 0
        while batch := led.claim_next("bench:1:x", wiki=WIKI, account="Claims",
                                      ttl=timedelta(minutes=5), limit=10):
            got += len(batch)
        return got / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=400)
    args = parser.parse_args()
    from tests.pg import start_postgres, stop_postgres

    server = start_postgres()
    try:
        with tempfile.TemporaryDirectory() as tmp:
            backends = {"sqlite": str(Path(tmp) / "bench.sqlite3"), "postgresql": server.fresh_url()}
            print(f"{'backend':<11} {'1 thread':>14} {'4 threads':>14} {'claims':>14}")
            for name, location in backends.items():
                single = run(location, args.files, 1, "a")
                four = run(location, args.files, 4, "b")
                claimed = claims(location, args.files)
                print(f"{name:<11} {single:>9.0f} tx/s {four:>9.0f} tx/s {claimed:>9.0f} rows/s")
    finally:
        stop_postgres(server)


if __name__ == "__main__":
    main()
