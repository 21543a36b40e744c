"""Measuring one benchmark phase: peak RSS, CPU seconds (ours, our Prefect server's, the wiki's)
and the time spent per kind of wiki call.

Why VmHWM and not ``ru_maxrss``: Linux carries the forking parent's RSS into the child's
``ru_maxrss`` across ``exec``, so a phase started by a parent that had imported Prefect would report
the parent's memory. VmHWM belongs to this process image alone, and can be reset to the current RSS
(``/proc/self/clear_refs``) to isolate the transfer.
"""

from __future__ import annotations

import contextlib
import os
import re
import resource
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any


def status_kib(field: str, path: str = "/proc/self/status") -> int | None:
    """A ``kB`` field of a /proc status-like file (``VmHWM``, ``VmRSS``, ``MemTotal``…)."""
    match = re.search(rf"^{field}:\s+(\d+) kB", Path(path).read_text(), re.M)
    return int(match.group(1)) if match else None


def peak_rss_kib(out: dict[str, Any]) -> int:
    """This process's peak RSS: the larger of VmHWM before the window's reset and VmHWM now."""
    return max(out.get("hwm_before_kib") or 0, status_kib("VmHWM") or 0)


@contextmanager
def transfer_window(out: dict[str, Any], wiki_pgid: int | None = None) -> Iterator[None]:
    """Wall time, CPU time (see :func:`cpu_now`) and peak RSS growth of the block (VmHWM reset
    through /proc/self/clear_refs).

    The process peak also counts imports and the Prefect client; the growth is what the transfer
    itself adds, which is the number that must not scale with the file size.
    """
    out["hwm_before_kib"] = status_kib("VmHWM")  # the phase's peak so far (imports, harness)
    try:
        Path("/proc/self/clear_refs").write_text("5")  # VmHWM := current RSS
        resettable = True
    except OSError:
        resettable = False
    out["rss_before_kib"] = status_kib("VmRSS")
    cpu_before = cpu_now(wiki_pgid)
    started = time.perf_counter()
    try:
        yield
    finally:
        out["wall_s"] = time.perf_counter() - started
        out.update({k: v - cpu_before[k] for k, v in cpu_now(wiki_pgid).items()})
        if resettable and out["rss_before_kib"] is not None:
            out["growth_kib"] = (status_kib("VmHWM") or 0) - out["rss_before_kib"]


class RequestLog:
    """Count and time of HTTP calls to the wiki, by kind (thread-safe: W1 runs files in parallel)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.calls: dict[str, list[float]] = defaultdict(lambda: [0, 0.0])

    def add(self, kind: str, seconds: float) -> None:
        with self._lock:
            entry = self.calls[kind]
            entry[0] += 1
            entry[1] += seconds

    def timed(self, kind: str, fn: Callable[[], Any]) -> Any:
        started = time.perf_counter()
        try:
            return fn()
        finally:
            self.add(kind, time.perf_counter() - started)

    def reset(self) -> None:
        with self._lock:
            self.calls.clear()

    def total(self) -> float:
        """Seconds summed over every timed call so far."""
        with self._lock:
            return sum(v[1] for v in self.calls.values())

    def as_dict(self) -> dict[str, list[float]]:
        return {k: [int(v[0]), round(v[1], 4)] for k, v in sorted(self.calls.items())}


def request_kind(params: dict[str, Any], files: Any) -> str:
    """A short label for one API call: ``upload:chunk``, ``query:list=allimages``, ``login``…"""
    action = str(params.get("action", "?"))
    if action == "upload":
        if files and "chunk" in files:
            return "upload:chunk"
        if files:
            return "upload:file"
        return "upload:checkstatus" if params.get("checkstatus") else "upload:publish"
    if action == "query":
        what = [f"{k}={params[k]}" for k in ("list", "prop", "meta") if params.get(k)]
        return "query:" + ",".join(what)
    return action


def _proc_stats() -> list[list[str]]:
    """Per live process: [pid, state, ppid, pgrp, …] from /proc/*/stat (Linux only)."""
    rows = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, ValueError, IndexError):
            head, tail = stat.read_text().rsplit(")", 1)
            rows.append([head.split(" ", 1)[0], *tail.split()])
    return rows


def _cpu(row: list[str]) -> float:
    # proc(5) field numbers 14-17 (utime stime cutime cstime) sit at 12-15 here: 0 is the pid,
    # 1 the state, 2 the ppid, 3 the pgrp.
    return sum(int(f) for f in row[12:16]) / os.sysconf("SC_CLK_TCK")


def cpu_now(wiki_pgid: int | None) -> dict[str, float]:
    """CPU seconds used so far by this process, by its descendants (a Prefect server it started)
    and by the wiki's process group (``php -S`` and its workers)."""
    me = resource.getrusage(resource.RUSAGE_SELF)
    rows = _proc_stats()
    children: dict[str, list[list[str]]] = {}
    for row in rows:
        children.setdefault(row[2], []).append(row)
    todo, descendants = [str(os.getpid())], 0.0
    while todo:
        for row in children.get(todo.pop(), []):
            descendants += _cpu(row)
            todo.append(row[0])
    wiki = sum(_cpu(row) for row in rows if wiki_pgid is not None and row[3] == str(wiki_pgid))
    return {"cpu_self_s": me.ru_utime + me.ru_stime, "cpu_prefect_s": descendants, "cpu_wiki_s": wiki}
