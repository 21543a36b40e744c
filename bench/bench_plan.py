"""Benchmark: the plan step of a planned import (``flows/fanout.py``) on a big manifest.

What ``plan-import`` does before it starts any shard: read the manifest once (``collect``), stat
each file for its size, split the items into shards (``mwingest.shards.plan_shards``). Printed:
wall time and peak RSS (``VmHWM``) of this process, which does nothing else. Prefect's part of the
plan step (one ``run_deployment`` per shard) is not in it: it is one API call per shard, and the
shards are few (rows / 50). Nothing is asserted.

    .venv/bin/python bench/bench_plan.py --rows 100000
"""

from __future__ import annotations

import argparse
import csv
import os
import shutil
import tempfile
import time
from pathlib import Path

from mwingest.manifest import collect
from mwingest.shards import plan_shards


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
        sizes = []
        for item in items:
            try:
                sizes.append(os.stat(item.source).st_size)
            except OSError:
                sizes.append(0)
        stat = time.perf_counter() - started - read
        shards = plan_shards(sizes, max_files=50, max_bytes=2048 * 1024 * 1024)
        total = time.perf_counter() - started
        print(f"{len(items):,} manifest rows: read {read:.2f} s, stat {stat:.2f} s, "
              f"{len(shards):,} shards; plan step {total:.2f} s")
        print(f"peak RSS {_hwm_mib():.1f} MiB (before reading the manifest: {before:.1f} MiB)")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
