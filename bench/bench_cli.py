"""Benchmark: the ``mwingest`` command as a person runs it — start-up cost and memory by file size.

Two questions, each answered with printed figures (nothing is asserted):

* **Warm one-file upload**: ``mwingest upload photo.png`` with the local Prefect server and its
  warm runner (``mwingest.runtime.warm``) already running, against the plainest correct ``requests``
  script doing the same upload (login, token, one POST), and the same command with
  ``MWINGEST_WARM=0``. Also the first command in a new home (it starts the server) and the
  ephemeral mode.
* **Memory flat in file size**: the peak RSS (VmHWM) of the process that runs the upload — the
  command, or the warm runner's child that runs it; the Prefect server apart — for a 1 MiB WAV
  and for big chunked ones (default 256 MiB and 2 GiB).
  VmHWM is read from ``/proc/PID/status`` while the command runs; it only grows, so the last
  reading before the process ends is its peak.

The wiki is a throwaway one with PHP opcache on (as fast per request as a production wiki, so our
own overhead is not hidden); data, wiki and mwingest home are deleted at the end.

    .venv/bin/python bench/bench_cli.py                      # 5 warm runs; 1 MiB, 256 MiB, 2 GiB
    .venv/bin/python bench/bench_cli.py --sizes-mib 1,64 --repeat 3     # quick form
"""

from __future__ import annotations

import argparse
import contextlib
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

from bench_ingest import make_wav

from mwingest.dev.devwiki import free_port, start_wiki

REPO = Path(__file__).resolve().parent.parent
MiB = 1024 * 1024
PLAIN = """
import os, sys, requests
api, path = os.environ["MWINGEST_API_URL"], sys.argv[1]
http = requests.Session(); http.trust_env = False
q = {"action": "query", "meta": "tokens", "format": "json"}
lt = http.get(api, params={**q, "type": "login"}).json()["query"]["tokens"]["logintoken"]
r = http.post(api, data={"action": "login", "format": "json", "lgtoken": lt,
    "lgname": os.environ["MWINGEST_USERNAME"], "lgpassword": os.environ["MWINGEST_PASSWORD"]}).json()
assert r["login"]["result"] == "Success", r
token = http.get(api, params=q).json()["query"]["tokens"]["csrftoken"]
with open(path, "rb") as f:
    up = http.post(api, data={"action": "upload", "format": "json", "token": token,
        "filename": os.path.basename(path), "comment": "plain"},
        files={"file": (os.path.basename(path), f)}).json()
assert up["upload"]["result"] == "Success", up
"""


def _hwm_kib(pid: int) -> int | None:
    with contextlib.suppress(OSError, ValueError, IndexError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    return None


def _children_of(pid: int) -> list[int]:
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, ValueError, IndexError):
            if int(stat.read_text().rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(stat.parent.name))
    return found


def run(cmd: list[str], env: dict[str, str], *, watch_memory: bool = False,
        must_succeed: bool = True) -> tuple[float, int | None]:
    """Wall seconds and, with ``watch_memory``, the peak RSS in KiB (VmHWM) of the process that
    runs the flow: the command's own, or, when the warm runner ran it, the runner's child's."""
    started = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    peak = None
    if watch_memory:
        runner = warm_runner_pid(env)
        while proc.poll() is None:
            pids = [proc.pid, *(_children_of(runner) if runner else [])]
            peak = max([peak or 0, *(p for p in map(_hwm_kib, pids) if p)])
            time.sleep(0.02)
    out, err = proc.communicate()
    took = time.perf_counter() - started
    if proc.returncode != 0 and not must_succeed:
        print(f"    (exit {proc.returncode}: {out.strip().splitlines()[0] if out.strip() else err[-300:]})")
    elif proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} exited {proc.returncode}:\n{out[-2000:]}\n{err[-3000:]}")
    return took, peak


def warm_runner_pid(env: dict[str, str]) -> int | None:
    """The warm runner's pid when it runs for this home (``mwingest.runtime.warm``)."""
    with contextlib.suppress(OSError, ValueError, KeyError):
        return int(json.loads((Path(env["MWINGEST_HOME"]) / "prefect-server" / "warm.json")
                              .read_text())["pid"])
    return None


def wait_for_warm_runner(env: dict[str, str], timeout: float = 60.0) -> float:
    """Seconds until the runner the first command started is ready (its state file is written
    after its imports)."""
    began = time.monotonic()
    while warm_runner_pid(env) is None and time.monotonic() - began < timeout:
        time.sleep(0.1)
    return time.monotonic() - began


def small_png(path: Path, seed: int) -> Path:
    from PIL import Image

    rng = __import__("random").Random(seed)
    Image.frombytes("RGB", (64, 64), bytes(rng.randrange(256) for _ in range(64 * 64 * 3))).save(path)
    return path


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeat", type=int, default=5, help="warm runs of each command")
    parser.add_argument("--sizes-mib", default="1,256,2048", help="WAV sizes for the memory runs")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes_mib.split(",")]
    work = Path(tempfile.mkdtemp(prefix="mwingest-bench-cli-"))
    wiki = start_wiki(opcache=True)
    mwingest = [str(Path(sys.executable).parent / "mwingest")]
    base = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "MWINGEST_"))
            and k.lower() not in ("http_proxy", "https_proxy", "all_proxy")}
    env = {**base, "MWINGEST_API_URL": wiki.api_url, "MWINGEST_USERNAME": wiki.username,
           "MWINGEST_PASSWORD": wiki.password, "MWINGEST_HOME": str(work / "home"),
           "MWINGEST_SERVER_PORT": str(free_port()), "PREFECT_HOME": str(work / "prefect"),
           "DO_NOT_TRACK": "1", "PREFECT_SERVER_ANALYTICS_ENABLED": "false"}
    results: dict[str, Any] = {}
    try:
        seed = iter(range(10_000))
        first, _ = run([*mwingest, "upload", str(small_png(work / "first.png", next(seed)))],
                          env)
        results["first command (starts the server)"] = first
        ready = wait_for_warm_runner(env)
        warm, cold_import, plain = [], [], []
        for n in range(args.repeat):
            took, _ = run([*mwingest, "upload", str(small_png(work / f"w{n}.png", next(seed)))],
                             env)
            warm.append(took)
            took, _ = run([*mwingest, "upload", str(small_png(work / f"i{n}.png", next(seed)))],
                          {**env, "MWINGEST_WARM": "0"})
            cold_import.append(took)
            took, _ = run([sys.executable, "-c", PLAIN, str(small_png(work / f"p{n}.png",
                                                                     next(seed)))], env)
            plain.append(took)
        eph, _ = run([*mwingest, "upload", str(small_png(work / "eph.png", next(seed)))],
                        {**env, "MWINGEST_PREFECT": "ephemeral"})
        print(f"\none small PNG, median of {args.repeat} (s):")
        print(f"  plain requests script      {statistics.median(plain):6.2f}  "
              f"(min {min(plain):.2f}, max {max(plain):.2f})")
        print(f"  mwingest upload, warm      {statistics.median(warm):6.2f}  "
              f"(min {min(warm):.2f}, max {max(warm):.2f})  "
              f"difference {statistics.median(warm) - statistics.median(plain):+.2f}")
        print(f"  mwingest, no warm runner   {statistics.median(cold_import):6.2f}  "
              f"(min {min(cold_import):.2f}, max {max(cold_import):.2f})  "
              f"difference {statistics.median(cold_import) - statistics.median(plain):+.2f}")
        print(f"  mwingest, first (start)    {first:6.2f}  (warm runner ready {ready:.1f} s later)")
        print(f"  mwingest, ephemeral        {eph:6.2f}")

        print("\npeak RSS of the mwingest process (VmHWM, MiB) by file size:")
        peaks: dict[int, float] = {}
        for size in sizes:
            folder = work / f"wav{size}"
            make_wav(folder, size * MiB, f"Bench {size} MiB {os.getpid()}.wav")
            [path] = folder.iterdir()
            took, peak = run([*mwingest, "upload", str(path)], env, watch_memory=True,
                             must_succeed=False)  # the peak counts even if the wiki refuses
            peaks[size] = (peak or 0) / 1024
            print(f"  {size:>6} MiB   {peaks[size]:7.1f} MiB   {took:6.1f} s   "
                  f"{size / took:6.1f} MiB/s", flush=True)
            shutil.rmtree(folder)
        if len(peaks) > 1:
            low = peaks[min(peaks)]
            print(f"  growth over the {min(peaks)} MiB file: "
                  + ", ".join(f"{s} MiB {p - low:+.1f} MiB" for s, p in peaks.items() if s != min(peaks)))
    finally:
        subprocess.run([*mwingest, "server", "stop"], env=env, capture_output=True, check=False)
        wiki.stop()
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
