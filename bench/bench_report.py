"""The benchmark's printed report: one table row per phase, then where each phase spent its time.

With ``--repeat`` a phase has several runs: the table shows the median wall time with the spread,
and every other figure comes from the median run (the run whose wall time is the median), so the
numbers of one row belong together.
"""

from __future__ import annotations

from typing import Any

MB = 1_000_000
HEADER = ("| phase | ok/files | MB | wall s | MB/s | files/s | ms/file | CPU s client/Prefect/wiki "
          "| peak RSS MiB | RSS growth MiB | vs plain | Prefect import s | Prefect start s | first batch s |")


def _mib(kib: int | None) -> str:
    return "-" if kib is None else f"{kib / 1024:.1f}"


def representative(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """The median run by wall time (the lower median for an even count); failed runs lose."""
    good = sorted((r for r in runs if "wall_s" in r and "error" not in r), key=lambda r: r["wall_s"])
    if not good:
        return runs[-1]
    chosen = dict(good[(len(good) - 1) // 2])
    chosen["walls"] = [r["wall_s"] for r in good]
    chosen["failed_runs"] = len(runs) - len(good)
    return chosen


def group(results: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One representative per phase name, in the order the phases first ran."""
    by_name: dict[str, list[dict[str, Any]]] = {}
    for r in results:
        by_name.setdefault(r["name"], []).append(r)
    return [representative(runs) for runs in by_name.values()]


def _wall(r: dict[str, Any]) -> str:
    walls = r.get("walls") or [r["wall_s"]]
    text = f"{r['wall_s']:.2f}"  # the median run's own (the lower median for an even count)
    return text + (f" ({min(walls):.2f}–{max(walls):.2f})" if len(walls) > 1 else "")


def _ratios(r: dict[str, Any], plain: dict[tuple[str, Any], dict[str, Any]]) -> str:
    """Pipeline wall / plain wall: against the reference loop, and against the same chunk size."""
    if r["kind"] != "pipeline":
        return "-"
    if r["workload"] == "w1":
        ref = plain.get(("w1", None))
    else:
        ref = plain.get(("w2", 5.0)) or next((p for k, p in plain.items() if k[0] == "w2"), None)
    if not ref or "wall_s" not in ref:
        return "-"
    wall = r["wall_s"]
    out = [f"{wall / ref['wall_s']:.2f}× {ref['name']}"]
    if r["workload"] == "w1":
        out.append(f"{1000 * (wall - ref['wall_s']) / r['files']:+.1f} ms/file")
    same = plain.get(("w2", r.get("chunk_mib"))) if r["workload"] == "w2" else None
    if same and same is not ref and "wall_s" in same:
        out.append(f"{wall / same['wall_s']:.2f}× same chunk")
    return "; ".join(out)


def row(r: dict[str, Any], plain: dict[tuple[str, Any], dict[str, Any]]) -> str:
    if "wall_s" not in r:
        return f"| {r['name']} | FAILED: {r.get('error', '?')} |" + " |" * 12
    wall, files = r["wall_s"], r["files"]
    ok = f"{r.get('ok', 0)}/{files}" + ("" if r.get("ok") == files else " ⚠")
    if r.get("failed_runs"):
        ok += f" ({r['failed_runs']} run(s) failed)"
    pipeline = r["kind"] == "pipeline"
    extra = (f"{r.get('import_s', 0):.2f} | {r.get('harness_start_s', 0):.2f} | "
             f"{r.get('first_batch_s', 0):.2f}" if pipeline else "- | - | -")
    cpu = " / ".join(f"{r.get(k, 0):.1f}" for k in ("cpu_self_s", "cpu_prefect_s", "cpu_wiki_s"))
    return (f"| {r['name']} | {ok} | {r['bytes'] / MB:.1f} | {_wall(r)} | {r['bytes'] / MB / wall:.1f} | "
            f"{files / wall:.1f} | {1000 * wall / files:.1f} | {cpu} | {_mib(r.get('peak_rss_kib'))} | "
            f"{_mib(r.get('growth_kib'))} | {_ratios(r, plain)} | {extra} |")


def breakdown(r: dict[str, Any]) -> str:
    """One bullet: calls by kind, the time outside them, and for the pipeline what Prefect costs."""
    calls = r.get("requests") or {}
    if not calls or "wall_s" not in r:
        return ""
    parts = ", ".join(f"{k} {int(v[0])}×/{v[1]:.2f}s" for k, v in calls.items())
    http = sum(v[1] for k, v in calls.items() if not k.startswith(("local:", "prefect:")))
    text = f"* **{r['name']}**: {parts}. Wiki HTTP total {http:.2f} s"
    # Only where nothing overlaps: the plain loop, and the pipeline's one-file W2. (Even at c=1 the
    # pipeline starts the next file while the last one still updates its progress artifact.)
    if r["kind"] == "plain" or r["files"] == 1:
        text += f"; outside the timed calls {r['wall_s'] - sum(v[1] for v in calls.values()):.2f} s"
    if r["kind"] != "pipeline":
        return text + "."
    runs = r.get("task_runs") or {}
    return (text + f". Task runs {sum(runs.values())} "
            f"({', '.join(f'{k} {v}' for k, v in sorted(runs.items()))}); an empty batch takes "
            f"{r.get('empty_batch_s', 0):.2f} s, {r.get('empty_batch_untimed_s', 0):.2f} s of it outside "
            f"the timed calls. RSS after `import flows.ingest` {_mib(r.get('rss_after_flow_import_kib'))} "
            f"MiB, after Prefect start {_mib(r.get('rss_after_harness_kib'))} MiB; Prefect stop "
            f"{r.get('harness_stop_s', 0):.2f} s; outcomes {r.get('outcomes')}.")


def report(results: list[dict[str, Any]], notes: list[str]) -> str:
    """The table, the per-phase breakdown, then the notes (machine, sizes, load)."""
    rows = group(results)
    plain = {(r["workload"], r.get("chunk_mib")): r for r in rows if r["kind"] == "plain"}
    lines = [HEADER, "|" + "---|" * (HEADER.count("|") - 1)]
    lines += [row(r, plain) for r in rows]
    lines += ["", "Where the time went (median run; calls by kind: count × / summed seconds; "
              "with c>1 the calls overlap):", ""]
    lines += [text for r in rows if (text := breakdown(r))]
    return "\n".join(lines + [""] + notes)
