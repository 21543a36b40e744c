"""Benchmark: small files through a plain ``requests`` loop, pywikibot, mwclient and ``mwingest import``.

Issue 27's question: what does one small file cost with each tool, side by side on one wiki, and
how much of mwingest's extra is our client's CPU and how much the Prefect server's? Printed
figures only, nothing asserted.

* **One throwaway wiki with PHP opcache on** (``start_wiki(opcache=True)``): per request as fast
  as a production wiki, so client overhead is not hidden under PHP compiling MediaWiki.
* **Whole processes**, as a person runs them (``peer_clients.py`` for the peers, the
  ``mwingest`` command with its defaults, the local Prefect server and the warm runner already
  running: steady state). Each tool runs once with ``--files`` PNGs and once with one PNG; the
  **marginal** per-file figure is ``(T(N) - T(1)) / (N - 1)``, which takes every tool's start-up
  (imports, login, siteinfo, the flow run's creation) off alike.
* **Interleaved**: each round runs every tool, in an order rotated per round, each on fresh files
  of unique bytes and names, so a load spike on the shared machine hits all of them.
* **CPU**, from ``/proc``: the client (the command and, for ``mwingest``, the warm runner's
  child that runs the flow: sampled while it runs, as the runner's children are reaped by the
  kernel), the local Prefect server (its supervisor's process group) and the wiki (``php -S``'s
  group), each before and after.

    .venv/bin/python bench/bench_peers.py                        # 100 PNGs, 2 rounds
    .venv/bin/python bench/bench_peers.py --files 20 --rounds 1  # quick form
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_ingest import make_pngs  # noqa: E402
from measure import _cpu, _proc_stats  # noqa: E402
from peer_clients import pywikibot_config  # noqa: E402

from mwingest.dev.devwiki import free_port, start_wiki  # noqa: E402

HERE = Path(__file__).resolve().parent
TOOLS = ("plain", "pywikibot", "mwclient", "mwingest")


def group_cpu(pgid: int | None) -> float:
    """CPU seconds of every live process in a process group (a server and its workers)."""
    if pgid is None:
        return 0.0
    return sum(_cpu(row) for row in _proc_stats() if row[3] == str(pgid))


def _stat_cpu(pid: int) -> float | None:
    try:
        head, tail = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)
    except OSError:
        return None
    return _cpu([head.split(" ", 1)[0], *tail.split()])


def runner_children(runner: int | None) -> list[int]:
    if runner is None:
        return []
    return [int(row[0]) for row in _proc_stats() if row[2] == str(runner)]


def run_tool(tool: str, folder: Path, env: dict[str, str], ctx: dict[str, Any]) -> dict[str, float]:
    """One process of ``tool`` over ``folder``: wall, client, Prefect-server and wiki CPU seconds."""
    if tool == "mwingest":
        cmd = [ctx["mwingest"], "import", str(folder), "--json"]
    else:
        cmd = [sys.executable, str(HERE / "peer_clients.py"), tool, str(folder)]
    server0, wiki0 = group_cpu(ctx["server_pgid"]), group_cpu(ctx["wiki_pgid"])
    started = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    child_cpu: dict[int, float] = {}  # the warm runner's children: last reading while alive
    before = set(runner_children(ctx["runner"]))
    while proc.poll() is None:
        for pid in set(runner_children(ctx["runner"])) - before:
            if (cpu := _stat_cpu(pid)) is not None:
                child_cpu[pid] = cpu
        time.sleep(0.02)
    wall = time.perf_counter() - started
    out, err = proc.communicate()
    if proc.returncode != 0:
        raise RuntimeError(f"{tool} exited {proc.returncode}:\n{out[-1500:]}\n{err[-2500:]}")
    if tool == "mwingest":
        outcomes = [json.loads(line).get("outcome") for line in out.splitlines()
                    if line.startswith("{") and '"outcome"' in line]
        if outcomes.count("uploaded") != len(list(folder.iterdir())):
            raise RuntimeError(f"mwingest: outcomes {outcomes[:5]}…\n{out[-1500:]}")
    return {"wall": wall, "client": ctx["rusage_children"]() + sum(child_cpu.values()),
            "server": group_cpu(ctx["server_pgid"]) - server0,
            "wiki": group_cpu(ctx["wiki_pgid"]) - wiki0}


def children_cpu_counter() -> Any:
    """CPU of this process's waited-for children since the last call (``RUSAGE_CHILDREN``)."""
    import resource

    last = [0.0]

    def delta() -> float:
        ru = resource.getrusage(resource.RUSAGE_CHILDREN)
        now = ru.ru_utime + ru.ru_stime
        took, last[0] = now - last[0], now
        return took
    delta()
    return delta


def load() -> str:
    avg = " ".join(Path("/proc/loadavg").read_text().split()[:3])
    try:
        cpu = Path("/proc/pressure/cpu").read_text().split()[1]
    except (OSError, IndexError):
        cpu = "?"
    return f"load {avg}, CPU pressure {cpu}"


def report(runs: dict[str, list[dict[str, float]]], singles: dict[str, list[dict[str, float]]],
           n: int) -> None:
    peers = [r for t in runs if t != "mwingest" for r in runs[t] + singles[t]]
    idle = sum(r["server"] for r in peers) / sum(r["wall"] for r in peers) if peers else 0.0
    for r in (r for t in runs for r in runs[t] + singles[t]):  # the server's own background work
        r["server_net"] = r["server"] - idle * r["wall"]

    def marginal(tool: str, key: str) -> list[float]:
        one = statistics.median(s[key] for s in singles[tool])
        return [(r[key] - one) / (n - 1) * 1000 for r in runs[tool]]

    plain = statistics.median(marginal("plain", "wall"))
    print(f"\n{n} small PNGs per run, {len(runs['plain'])} run(s) per tool; ms per file, "
          "marginal = (T(N) - T(1)) / (N - 1), median (runs):")
    print(f"{'tool':<10} {'whole/file':>10} {'marginal':>16} {'vs plain':>8} {'client CPU':>10} "
          f"{'Prefect CPU':>11} {'net':>5} {'wiki CPU':>9}")
    for tool in runs:
        whole = statistics.median(r["wall"] for r in runs[tool]) / n * 1000
        walls = marginal(tool, "wall")
        cpu = {k: statistics.median(marginal(tool, k)) for k in ("client", "server", "server_net", "wiki")}
        spread = "/".join(f"{w:.0f}" for w in walls)
        print(f"{tool:<10} {whole:10.1f} {statistics.median(walls):6.1f} ({spread:>7}) "
              f"{statistics.median(walls) / plain:7.2f}x {cpu['client']:10.1f} "
              f"{cpu['server']:11.1f} {cpu['server_net']:5.1f} {cpu['wiki']:9.1f}")
    print(f"(Prefect CPU: the local server's process group; net: less its background rate while "
          f"the peers ran, {idle * 1000:.0f} ms/s. CPU figures are steadier than wall times on a "
          f"loaded machine.)")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--files", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--tools", default=",".join(TOOLS))
    args = parser.parse_args()
    tools = [t for t in args.tools.split(",") if t]
    work = Path(tempfile.mkdtemp(prefix="mwingest-bench-peers-"))
    wiki = start_wiki(opcache=True)
    base = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "MWINGEST_"))
            and k.lower() not in ("http_proxy", "https_proxy", "all_proxy")}
    env = {**base, "MWINGEST_API_URL": wiki.api_url, "MWINGEST_USERNAME": wiki.username,
           "MWINGEST_PASSWORD": wiki.password, "MWINGEST_HOME": str(work / "home"),
           "MWINGEST_SERVER_PORT": str(free_port()), "PREFECT_HOME": str(work / "prefect"),
           "PYWIKIBOT_DIR": str(work / "pywikibot"), "DO_NOT_TRACK": "1",
           "PREFECT_SERVER_ANALYTICS_ENABLED": "false"}
    pywikibot_config(work / "pywikibot", wiki.api_url, wiki.username, wiki.password)
    ctx: dict[str, Any] = {"mwingest": str(Path(sys.executable).parent / "mwingest"),
                           "wiki_pgid": wiki.pgid, "server_pgid": None, "runner": None,
                           "rusage_children": children_cpu_counter()}
    serial = iter(range(100_000))

    def fresh(tool: str, count: int) -> Path:
        folder = work / "data" / f"{tool}-{next(serial)}"
        make_pngs(folder, count, f"Peer {tool} {os.getpid()} {folder.name}", 64)
        return folder

    try:
        print(f"start: {load()}", flush=True)
        for tool in tools:  # warm-up: server and runner start, pywikibot's caches, first imports
            run_tool(tool, fresh(tool, 1), env, ctx)
            if tool == "mwingest":
                home = Path(env["MWINGEST_HOME"]) / "prefect-server"
                ctx["server_pgid"] = json.loads((home / "server.json").read_text())["pid"]
                for _ in range(600):
                    if (home / "warm.json").exists():
                        break
                    time.sleep(0.1)
                ctx["runner"] = json.loads((home / "warm.json").read_text())["pid"]
                time.sleep(3)
        ctx["rusage_children"]()
        runs: dict[str, list[dict[str, float]]] = {t: [] for t in tools}
        singles: dict[str, list[dict[str, float]]] = {t: [] for t in tools}
        for r in range(args.rounds):
            order = tools[r % len(tools):] + tools[:r % len(tools)]
            for tool in order:
                singles[tool].append(run_tool(tool, fresh(tool, 1), env, ctx))
                runs[tool].append(run_tool(tool, fresh(tool, args.files), env, ctx))
                shutil.rmtree(work / "data", ignore_errors=True)
                print(f"  round {r + 1} {tool:<10} {runs[tool][-1]['wall']:6.2f} s "
                      f"(1 file: {singles[tool][-1]['wall']:.2f} s)", flush=True)
        report(runs, singles, args.files)
        print(f"end: {load()}")
    finally:
        subprocess.run([ctx["mwingest"], "server", "stop"], env=env, capture_output=True, check=False)
        wiki.stop()
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
