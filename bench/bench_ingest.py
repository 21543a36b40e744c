"""Benchmark: the Prefect pipeline against the plainest correct ``requests`` loop, same wiki.

Workloads: **W1** many small generated PNGs (direct uploads), **W2** one big generated WAV (chunked
upload, then publish). Each phase runs in a fresh subprocess of this script, so that its peak RSS
(VmHWM, see ``measure.py``) belongs to that phase alone. The parent starts one throwaway wiki
(``mwingest.dev.devwiki.start_wiki``), generates each phase's data just before it (unique bytes and
names: the wiki warns ``duplicate``/``exists`` otherwise), and deletes data and wiki at the end.

Why a subprocess per phase and not pytest-benchmark: peak memory is per process, and the pipeline
phases pay a Prefect import and start-up that the plain loop does not; those are reported in columns
of their own instead of being hidden in (or dropped from) the wall time. Nothing here asserts timings.

    .venv/bin/python bench/bench_ingest.py                           # 100 PNGs, 256 MiB WAV
    .venv/bin/python bench/bench_ingest.py --small 20 --big-mib 32   # quick form
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import platform
import random
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
import wave
from pathlib import Path
from typing import Any

from bench_report import report
from measure import RequestLog, peak_rss_kib, status_kib, transfer_window
from plain_loop import plain_chunked, plain_direct

REPO = Path(__file__).resolve().parent.parent
MiB = 1024 * 1024
_PROXY_VARS = ("http_proxy", "https_proxy", "all_proxy", "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY")


def run_phase(spec: dict[str, Any]) -> None:
    """Child-process entry: run one phase, write its figures as JSON to ``spec["result"]``."""
    out: dict[str, Any] = {"name": spec["name"]}
    log = RequestLog()
    files = sorted(p for p in Path(spec["folder"]).iterdir() if p.is_file())
    out["files"], out["bytes"] = len(files), sum(p.stat().st_size for p in files)
    try:
        if spec["kind"] == "pipeline":
            from pipeline_phase import run_pipeline

            out["ok"] = run_pipeline(spec, out, log)
        elif spec["workload"] == "w1":
            with transfer_window(out, spec["wiki_pgid"]):
                out["ok"] = plain_direct(spec["api"], files, log)
        else:
            with transfer_window(out, spec["wiki_pgid"]):
                out["ok"] = plain_chunked(spec["api"], files[0], int(spec["chunk_mib"] * MiB), log)
    except Exception as exc:  # noqa: BLE001 - reported in the table, the other phases go on
        out["error"] = f"{type(exc).__name__}: {exc}"
    out["peak_rss_kib"] = peak_rss_kib(out)
    out.setdefault("requests", log.as_dict())
    Path(spec["result"]).write_text(json.dumps(out))


# --- data ---------------------------------------------------------------------------------------

def make_pngs(folder: Path, count: int, prefix: str, px: int) -> None:
    """``count`` valid PNGs of random pixels (unique bytes), named ``<prefix> 0001.png``…"""
    from PIL import Image

    folder.mkdir(parents=True)
    rng = random.Random(secrets.randbits(64))
    for i in range(count):
        image = Image.frombytes("RGB", (px, px), rng.randbytes(px * px * 3))
        buf = io.BytesIO()
        image.save(buf, format="PNG")
        (folder / f"{prefix} {i + 1:04d}.png").write_bytes(buf.getvalue())


def make_wav(folder: Path, total_bytes: int, name: str) -> None:
    """A valid 16-bit mono WAV of random samples, exactly ``total_bytes`` long, written 1 MiB at a time.

    WAV because the wiki accepts it at assembly with a cheap check (no decoding), and random samples
    make it unique and incompressible.
    """
    folder.mkdir(parents=True)
    left = total_bytes - 44  # the canonical RIFF/WAVE header is 44 bytes
    with wave.open(str(folder / name), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(44100)
        while left > 0:
            block = os.urandom(min(MiB, left))
            out.writeframesraw(block)
            left -= len(block)


# --- the parent: plan, run, report ---------------------------------------------------------------

def plan(args: argparse.Namespace) -> list[dict[str, Any]]:
    """The phases of one pass, in order: W1 then W2, plain before pipeline."""
    common = {"prefect": args.prefect}
    phases: list[dict[str, Any]] = [{"name": "plain W1", "kind": "plain", "workload": "w1"}]
    phases += [{**common, "name": f"pipeline W1 c={c}", "kind": "pipeline", "workload": "w1",
                "concurrency": c, "chunk_mib": args.w1_chunk_mib} for c in args.w1_concurrency]
    phases += [{"name": f"plain W2 {mib:g} MiB", "kind": "plain", "workload": "w2", "chunk_mib": mib}
               for mib in args.plain_chunk_mib]
    phases += [{**common, "name": f"pipeline W2 {mib:g} MiB", "kind": "pipeline", "workload": "w2",
                "chunk_mib": mib, "concurrency": 1} for mib in args.chunk_mib]
    if args.only:
        phases = [p for p in phases if any(s in p["name"] for s in args.only)]
    return phases


def child_env(wiki: Any, root: Path) -> dict[str, str]:
    """The secret travels to the phase through the environment, never the command line."""
    env = {k: v for k, v in os.environ.items() if k not in _PROXY_VARS and k != "PREFECT_API_URL"}
    env.update(MWINGEST_USERNAME=wiki.username, MWINGEST_PASSWORD=wiki.password,
               DO_NOT_TRACK="1", PREFECT_SERVER_ANALYTICS_ENABLED="false",
               PREFECT_HOME=str(root / "prefect-home"))
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    return env


def run_one(phase: dict[str, Any], work: Path, args: argparse.Namespace, wiki: Any,
            env: dict[str, str]) -> dict[str, Any]:
    """Make the phase's data, run it in a fresh interpreter, read its figures, delete the data."""
    work.mkdir()
    label = f"Bench {work.parent.name[-6:]} {work.name} {phase['kind']} {phase['workload']}"
    if phase["workload"] == "w1":
        make_pngs(work / "data", args.small, label, args.png_px)
    else:
        make_wav(work / "data", args.big_mib * MiB, f"{label}.wav")
    spec = {**phase, "api": wiki.api_url, "wiki_pgid": wiki.pgid, "folder": str(work / "data"),
            "work": str(work), "result": str(work / "result.json")}
    print(f"# {phase['name']} …", flush=True)
    with (work / "phase.log").open("wb") as phase_log:
        proc = subprocess.run([sys.executable, __file__, "--run-phase", json.dumps(spec)], env=env,
                              cwd=REPO, stdout=phase_log, stderr=subprocess.STDOUT, check=False)
    result_file = work / "result.json"
    result = json.loads(result_file.read_text()) if result_file.exists() else {"name": phase["name"]}
    if proc.returncode != 0 or "error" in result:
        result.setdefault("error", f"exit {proc.returncode}")
        tail = (work / "phase.log").read_text(errors="replace")[-3000:]
        print(f"#   FAILED: {result['error']}\n{tail}", flush=True)
    shutil.rmtree(work, ignore_errors=True)  # the wiki keeps its own copies until it stops
    return {**phase, **result}


def run_all(args: argparse.Namespace, root: Path) -> tuple[list[dict[str, Any]], list[str]]:
    """Start the wiki, run every pass of every phase, stop the wiki (whatever happens)."""
    from mwingest.dev.devwiki import start_wiki

    started = time.perf_counter()
    wiki = start_wiki(workers=4, opcache=not args.no_opcache)
    notes = [f"Wiki started in {time.perf_counter() - started:.1f} s (`start_wiki(workers=4, "
             f"opcache={not args.no_opcache})`)."]
    results = []
    try:
        env = child_env(wiki, root)
        for rep in range(args.repeat):
            for n, phase in enumerate(plan(args)):
                results.append(run_one(phase, root / f"r{rep}p{n}", args, wiki, env))
    finally:
        wiki.stop()
    return results, notes


def machine() -> str:
    """Date, CPU, RAM, versions and load: the figures mean little without them."""
    from importlib.metadata import version

    cpu = next((ln.split(":", 1)[1].strip() for ln in Path("/proc/cpuinfo").read_text().splitlines()
                if ln.startswith("model name")), platform.processor())
    mem = status_kib("MemTotal", "/proc/meminfo")
    php = subprocess.run(["php", "-r", "echo PHP_VERSION;"], capture_output=True, text=True).stdout
    return (f"{time.strftime('%Y-%m-%d %H:%M %Z')}; {os.cpu_count()} CPU ({cpu}), "
            f"{(mem or 0) // 1024} MiB RAM; Python {platform.python_version()}, Prefect "
            f"{version('prefect')}, PHP {php}; {code_version()}; at start: {load()}")


def code_version() -> str:
    """The commit measured (read-only git), and whether tracked files differ from it."""
    def git(*args: str) -> str:
        return subprocess.run(["git", "-C", str(REPO), *args], capture_output=True, text=True).stdout
    commit = git("rev-parse", "--short", "HEAD").strip() or "unknown"
    dirty = [ln for ln in git("status", "--porcelain", "--untracked-files=no").splitlines() if ln]
    return f"code at {commit}" + (f" with {len(dirty)} modified file(s)" if dirty else "")


def load() -> str:
    """Load average and CPU pressure: other work on the machine slows the wiki, not just us."""
    text = f"load average {os.getloadavg()[0]:.2f}"
    with contextlib.suppress(OSError, IndexError):
        some = Path("/proc/pressure/cpu").read_text().split()[3]  # "avg300=…" of the "some" line
        text += f", CPU pressure {some.replace('avg300=', 'avg300 ')} %"
    return text


def _floats(text: str) -> list[float]:
    return [float(x) for x in text.split(",") if x.strip()]


def _ints(text: str) -> list[int]:
    return [int(x) for x in text.split(",") if x.strip()]


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    add = parser.add_argument
    add("--small", type=int, default=100, help="W1: number of small PNGs (100)")
    add("--big-mib", type=int, default=256, help="W2: size of the big file in MiB (256)")
    add("--png-px", type=int, default=64, help="W1: PNG width and height in pixels (64)")
    add("--chunk-mib", type=_floats, default=[5.0, 16.0, 64.0],
        help="pipeline W2 chunk sizes in MiB, comma-separated (5,16,64)")
    add("--plain-chunk-mib", type=_floats, default=[5.0, 16.0, 64.0],
        help="plain-loop W2 chunk sizes; 5 MiB is the reference the ratios use (5,16,64)")
    add("--w1-concurrency", type=_ints, default=[4, 1],
        help="pipeline W1 `concurrency` values (4,1); 4 is the flow's default")
    add("--w1-chunk-mib", type=float, default=8.0,
        help="pipeline chunk_size_mb for W1 (files up to it go in one request) (8, the default)")
    add("--prefect", choices=("harness", "ephemeral", "server"), default="harness",
        help="how the pipeline phases get a Prefect API (harness)")
    add("--no-opcache", action="store_true",
        help="run the wiki's PHP without opcache (~100 ms per request: hides our overhead)")
    add("--repeat", type=int, default=1, help="passes over all phases; the report takes medians (1)")
    add("--only", type=lambda s: s.split(","), default=None,
        help="run only the phases whose name contains one of these comma-separated strings")
    add("--json", type=Path, default=None, help="also write every run's raw figures to this file")
    add("--run-phase", help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.run_phase:
        run_phase(json.loads(args.run_phase))
        return 0
    header = machine()
    print(f"# {header}", flush=True)
    root = Path(tempfile.mkdtemp(prefix="mwingest-bench-"))
    try:
        results, notes = run_all(args, root)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    notes += [f"W1 = {args.small} PNGs of {args.png_px}×{args.png_px} random pixels; W2 = one "
              f"{args.big_mib} MiB WAV; Prefect mode {args.prefect}; {args.repeat} pass(es). "
              f"MB = 10^6 bytes. {header}; at the end: {load()}, {code_version()}."]
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))
    print(report(results, notes))
    return 0 if all("error" not in r and r.get("ok") == r.get("files") for r in results) else 1


if __name__ == "__main__":
    raise SystemExit(main())
