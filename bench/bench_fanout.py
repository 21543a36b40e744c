"""Benchmark: a planned import of small files on one and on two workers (``flows/fanout.py``).

Everything as a team runs it, on this one machine: a throwaway wiki with PHP opcache (as fast per
request as a production wiki), a throwaway PostgreSQL ledger (``tests/pg.py``), a local Prefect
server, ``prefect deploy --all`` onto a process pool, and ``prefect worker start`` once or twice,
each worker with a home of its own. For each worker count a fresh folder of ``--files`` small
PNGs (distinct bytes) is imported through the ``planned-import`` deployment. Printed per run:
the time from the trigger to the report's completion, the time the shards ran (first shard
start to last shard end), files per second over that span, and the outcomes. Nothing is asserted.

Read the figures with what bounds them: the workers, the wiki's PHP, PostgreSQL and the Prefect
server all share this machine's CPUs, and writes in flight are capped at 3 per account across
all workers (Wikimedia's etiquette, ``MWINGEST_WRITES_IN_FLIGHT``). A second worker on the same
machine adds no CPU; on two machines it adds the client side's CPU and bandwidth, never write
rate beyond the cap and the account's limit.

    .venv/bin/python bench/bench_fanout.py --files 2000
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
BIN = Path(sys.executable).parent
PLAN = "plan-import/planned-import"


def _run(args: list[str], env: dict[str, str]) -> None:
    done = subprocess.run(args, cwd=REPO, env=env, capture_output=True, text=True, timeout=600,
                          stdin=subprocess.DEVNULL)
    if done.returncode:
        raise SystemExit(f"{args[:3]} failed: {done.stdout[-2000:]}{done.stderr[-2000:]}")


def _runs(client: Any, flow_name: str, after: float) -> list[Any]:
    from prefect.client.schemas.filters import FlowFilter, FlowFilterName

    runs = client.read_flow_runs(flow_filter=FlowFilter(name=FlowFilterName(any_=[flow_name])),
                                 limit=200)
    return [r for r in runs if r.created and r.created.timestamp() >= after]


def one_import(env: dict[str, str], api_url: str, ledger_url: str, work: Path, *, workers: int,
               files: int, shard_files: int, concurrency: int, limit: int) -> dict[str, Any]:
    """Import ``files`` new PNGs with ``workers`` workers; the figures."""
    from prefect.client.orchestration import get_client
    from prefect.settings import PREFECT_API_URL, temporary_settings

    from tests.integration.test_deployments import Background
    from tests.integration.wikihelpers import png_bytes

    folder = work / f"backlog-{workers}"
    folder.mkdir()
    stamp = int(time.time())
    for n in range(files):
        (folder / f"Bench {stamp} w{workers} {n:05d}.png").write_bytes(png_bytes())
    procs = []
    try:
        for n in range(workers):
            home = work / f"machine-{workers}-{n}"
            home.mkdir()
            procs.append(Background(
                [str(BIN / "prefect"), "worker", "start", "--pool", "mwingest", "--name",
                 f"machine-{workers}-{n}", "--limit", str(limit)],
                {**env, "PREFECT_WORKER_QUERY_SECONDS": "1", "MWINGEST_CHECKOUT": str(REPO),
                 "MWINGEST_HOME": str(home), "MWINGEST_LEDGER_URL": ledger_url},
                home / "worker.log", cwd=home))
        time.sleep(3)  # the workers are up before the clock starts
        with temporary_settings(updates={PREFECT_API_URL: api_url}), \
                get_client(sync_client=True) as client:
            after = time.time() - 1
            dep = client.read_deployment_by_name(PLAN)
            started = time.monotonic()
            client.create_flow_run_from_deployment(dep.id, parameters={
                "sources": [str(folder)], "shard_files": shard_files, "ledger": ledger_url,
                "concurrency": concurrency})
            report = None
            while time.monotonic() - started < 3600:
                done = [r for r in _runs(client, "report-import", after)
                        if r.state is not None and r.state.is_final()]
                if done:
                    report = done[0]
                    break
                time.sleep(1)
            total = time.monotonic() - started
            if report is None:
                raise SystemExit("no report within an hour")
            shards = _runs(client, "ingest-shard", after)
            first = min(r.start_time for r in shards if r.start_time)
            last = max(r.end_time for r in shards if r.end_time)
            from flows.fanout import _shard_tables

            outcomes = Counter(row["outcome"] for row in _shard_tables(client, [str(report.id)]))
    finally:
        for proc in procs:
            proc.stop((signal.SIGINT, signal.SIGINT), grace=10.0)
        shutil.rmtree(folder, ignore_errors=True)
    span = (last - first).total_seconds()
    return {"workers": workers, "total": total, "span": span, "rate": files / span,
            "shards": len(shards), "outcomes": dict(outcomes), "report": report.state_name}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--files", type=int, default=2000)
    parser.add_argument("--shard-files", type=int, default=100)
    parser.add_argument("--concurrency", type=int, default=4, help="files in flight per shard")
    parser.add_argument("--limit", type=int, default=3, help="shard runs at once per worker")
    parser.add_argument("--workers", default="1,2")
    parser.add_argument("--prefect-db", choices=("postgresql", "sqlite"), default="postgresql",
                        help="the Prefect server's database (a team's server runs on PostgreSQL)")
    parser.add_argument("--writes-in-flight", default="3",
                        help="MWINGEST_WRITES_IN_FLIGHT of the workers (0: no cap at all)")
    args = parser.parse_args()
    os.environ.setdefault("DO_NOT_TRACK", "1")
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    from mwingest.dev.devwiki import start_wiki
    from tests.pg import start_postgres, stop_postgres
    from tests.prefect_server import _stop_group, start_server

    work = Path(tempfile.mkdtemp(prefix="mwingest-bench-fanout-"))
    wiki = start_wiki(workers=4, opcache=True)
    pg = start_postgres()
    database = None
    if args.prefect_db == "postgresql":
        import psycopg

        with psycopg.connect(pg.dsn(), autocommit=True) as conn:
            conn.execute("CREATE DATABASE prefect")
        database = f"postgresql+asyncpg://mwingest@127.0.0.1:{pg.port}/prefect"
    server = start_server(work / "prefect-home", database)
    try:
        keep = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "MWINGEST_"))}
        env = {**keep, **server.env, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
               "MWINGEST_CONTACT": "bench@example.org",
               "MWINGEST_WRITES_IN_FLIGHT": args.writes_in_flight}
        _run([sys.executable, "-m", "deployments.register", "--save", "mwingest-wiki"],
             {**env, "MWINGEST_API_URL": wiki.api_url, "MWINGEST_USERNAME": wiki.username,
              "MWINGEST_PASSWORD": wiki.password})
        _run([str(BIN / "prefect"), "work-pool", "create", "mwingest", "--type", "process",
              "--overwrite"], env)
        _run([str(BIN / "prefect"), "--no-prompt", "deploy", "--all"],
             {**env, "MWINGEST_DROP_FOLDER": str(work / "drop")})
        print(f"{args.files} small PNGs, shards of {args.shard_files}, {args.concurrency} files "
              f"in flight per shard, {args.limit} shard runs per worker, "
              f"{args.writes_in_flight if args.writes_in_flight != '0' else 'any number of'} writes "
              f"in flight per account; Prefect server on {args.prefect_db}; "
              f"{os.cpu_count()} CPUs shared by wiki, PostgreSQL, Prefect and workers")
        print(f"{'workers':>7} {'trigger→report':>15} {'shards ran':>11} {'files/s':>8}  outcomes")
        for count in (int(w) for w in args.workers.split(",")):
            got = one_import(env, server.api_url, pg.fresh_url(), work, workers=count,
                             files=args.files, shard_files=args.shard_files,
                             concurrency=args.concurrency, limit=args.limit)
            print(f"{count:>7} {got['total']:>13.1f} s {got['span']:>9.1f} s {got['rate']:>8.1f}  "
                  f"{got['outcomes']} ({got['shards']} shard runs; report {got['report']})",
                  flush=True)
    finally:
        with contextlib.suppress(Exception):
            _stop_group(server.process)
        stop_postgres(pg)
        wiki.stop()
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
