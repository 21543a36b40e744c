"""Benchmark: the plan step of a planned import (``flows/fanout.py``) on a big manifest.

What ``plan-import`` does before it starts any shard: read the manifest once (``collect``), then
stat each file for its size, split the items into shards and write the plan (every item with its
shard, one row per shard) into the ledger (``mwingest.job.shards.write_plan``), on a SQLite file and
on a throwaway PostgreSQL (``tests/pg.py``, ``fsync`` off: a floor for a real server). Then what a
shard does first: read its own 50 items back. Printed: wall times and peak RSS (``VmHWM``) of
this process, which does nothing else. Prefect's part of the plan step (one ``run_deployment``
per shard) is not in it: one API call per shard. Nothing is asserted.

    .venv/bin/python bench/bench_plan.py --rows 100000
"""

from __future__ import annotations

import argparse
import csv
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from mwingest.describe.sources import collect  # noqa: E402
from mwingest.job.shards import write_plan  # noqa: E402
from mwingest.ledger.ledger import Ledger  # noqa: E402

WIKI = "https://commons.wikimedia.org/w/api.php"


def _hwm_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--files", type=int, default=1_000,
                        help="real (tiny) files the rows point at, round robin")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="mwingest-bench-plan-"))
    try:
        for n in range(args.files):
            (work / f"scan {n:05d}.tif").write_bytes(b"II*\0" + os.urandom(60))
        manifest = work / "backlog.csv"
        with open(manifest, "w", newline="") as out:
            writer = csv.writer(out)
            writer.writerow(["source", "filename", "id", "text"])
            for n in range(args.rows):
                writer.writerow([f"scan {n % args.files:05d}.tif", f"Backlog {n:06d}.tif",
                                 f"acc-{n:06d}", f"Scan {n} of the backlog"])
        before = _hwm_mib()
        started = time.perf_counter()
        items = collect([str(manifest)])
        read = time.perf_counter() - started
        print(f"{len(items):,} manifest rows read in {read:.2f} s "
              f"(peak RSS {_hwm_mib():.1f} MiB; before reading {before:.1f} MiB)")
        from tests.pg import start_postgres, stop_postgres

        server = start_postgres()
        try:
            for name, where in (("sqlite", str(work / "ledger.sqlite3")),
                                ("postgresql", server.fresh_url())):
                with Ledger(where) as ledger:
                    began = time.perf_counter()
                    plan = write_plan(ledger, f"bench-{name}", items, wiki=WIKI,
                                      login_block="mwingest-wiki", params={"comment": "bench"},
                                      max_files=50, max_bytes=2048 * 1024 * 1024)
                    wrote = time.perf_counter() - began
                    began = time.perf_counter()
                    mine = ledger.plan_items(plan.id, plan.shards // 2)
                    shard = time.perf_counter() - began
                print(f"{name:<10}: stat, split and write {plan.files:,} items in "
                      f"{plan.shards:,} shards {wrote:.2f} s; plan step {read + wrote:.2f} s; "
                      f"a shard reads its {len(mine)} items in {shard * 1000:.1f} ms")
        finally:
            stop_postgres(server)
        print(f"peak RSS {_hwm_mib():.1f} MiB")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
