"""Benchmark: how close the shared pace comes to the account's upload limit (issue 28).

For each worker count (default 1 and 2) a fresh throwaway wiki with ``$wgRateLimits['upload']
['user'] = [HITS, SECONDS]`` and its ordinary test account (no ``noratelimit``), one SQLite
ledger, and that many workers: threads, each with its own login, its own ledger connection and
its own :class:`~mwingest.wiki.pacing.SharedPace` — what two processes or two machines share is
the ledger's pacing row, and so do these. Each worker uploads its share of ``--files`` small
PNGs through :func:`mwingest.wiki.upload.upload_bytes` as fast as the pace lets it.

Printed per run, all from what the wiki recorded (its upload log, whole seconds, and its rate
limiter's log of refusals): the span from first to last upload; the **efficiency**, uploads per
window ÷ the limit, measured over the run after the initial burst (``(n − burst) / span ×
SECONDS / HITS``: the steady pace, 0.90 promised); the most uploads any window held ÷ the limit
(must stay ≤ 1); and the refusals. Nothing is asserted.

    .venv/bin/python bench/bench_pacing.py                      # 40 files at 20 per 40 s, ~4 min
    .venv/bin/python bench/bench_pacing.py --hits 6 --seconds 20 --files 20
"""

from __future__ import annotations

import argparse
import sys
import threading
import time
from datetime import datetime
from pathlib import Path
from tempfile import TemporaryDirectory
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from mwingest.base.ratelimit import Limit, pace_for  # noqa: E402
from mwingest.dev.devwiki import start_wiki  # noqa: E402
from mwingest.ledger.ledger import Ledger  # noqa: E402
from mwingest.ledger.model import normalise_account  # noqa: E402
from mwingest.wiki.pacing import SharedPace  # noqa: E402
from mwingest.wiki.upload import upload_bytes  # noqa: E402
from tests.integration.test_session import new_session  # noqa: E402
from tests.integration.wikihelpers import png_bytes  # noqa: E402


def _wiki_times(session: Any, prefix: str) -> list[float]:
    answer = session.get({"action": "query", "list": "logevents", "letype": "upload",
                          "lelimit": 500, "leprop": "title|timestamp"})
    return sorted(datetime.fromisoformat(e["timestamp"].replace("Z", "+00:00")).timestamp()
                  for e in answer["query"]["logevents"] if prefix in e["title"])


def _refusals(root: Path) -> int:
    log = root / "logs" / "ratelimit.log"
    return log.read_text().count("tripped rate limit") if log.exists() else 0


def most_in_a_window(times: list[float], seconds: float) -> int:
    """Uploads whose whole-second stamps lie within ``seconds`` of each other (may be one more
    than a strict window holds, never fewer)."""
    return max((sum(0 <= t - s <= seconds for t in times) for s in times), default=0)


def one_run(workers: int, files: int, limit: Limit) -> dict[str, Any]:
    wiki = start_wiki(rate_limits={"upload": {"user": [limit.hits, int(limit.seconds)]}},
                      opcache=True)  # as fast per request as a production wiki
    with wiki, TemporaryDirectory(prefix="mwingest-bench-pacing-") as tmp:
        ledger_path = Path(tmp) / "ledger.sqlite3"
        prefix = f"Bench pace {workers}w {time.time_ns()}"
        sessions = [new_session(wiki.api_url, wiki.username, wiki.password) for _ in range(workers)]
        for session in sessions:
            session.login()
        account = normalise_account(sessions[0].user)
        with Ledger(ledger_path) as setup:
            setup.set_limit(wiki.api_url, account, [limit])
        errors: list[BaseException] = []

        def work(n: int) -> None:
            with Ledger(ledger_path) as ledger:
                session = sessions[n]
                session.pace = SharedPace(ledger, wiki.api_url, account)
                try:
                    for k in range(n, files, workers):
                        upload_bytes(session, png_bytes(seed=k), f"{prefix} {k:04d}.png")
                except BaseException as exc:  # noqa: BLE001 - reported below
                    errors.append(exc)

        started = time.monotonic()
        threads = [threading.Thread(target=work, args=(n,)) for n in range(workers)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        wall = time.monotonic() - started
        times = _wiki_times(sessions[0], prefix)
        refused = _refusals(wiki.root)
    paced = pace_for([limit])
    assert paced is not None
    span = times[-1] - times[0] if len(times) > 1 else 0.0
    burst = int(paced.capacity)
    return {"workers": workers, "uploaded": len(times), "errors": len(errors), "wall_s": wall,
            "span_s": span, "refusals": refused,
            "efficiency": (len(times) - burst) / span * limit.seconds / limit.hits if span else 0.0,
            "peak_window": most_in_a_window(times, limit.seconds) / limit.hits,
            "promised": paced.share}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--hits", type=int, default=20)
    parser.add_argument("--seconds", type=int, default=40)
    parser.add_argument("--files", type=int, default=40)
    parser.add_argument("--workers", default="1,2", help="worker counts, comma-separated")
    args = parser.parse_args(argv)
    limit = Limit(args.hits, float(args.seconds))
    paced = pace_for([limit])
    assert paced is not None
    print(f"limit {limit}; pace {paced.describe()}; {args.files} files per run", flush=True)
    print(f"{'workers':>7} {'uploaded':>8} {'refused':>7} {'span s':>7} {'efficiency':>10} "
          f"{'peak window':>11}")
    for workers in (int(w) for w in args.workers.split(",")):
        r = one_run(workers, args.files, limit)
        print(f"{r['workers']:>7} {r['uploaded']:>8} {r['refusals']:>7} {r['span_s']:>7.0f} "
              f"{r['efficiency']:>10.3f} {r['peak_window']:>11.2f}"
              + (f"  ({r['errors']} worker errors)" if r["errors"] else ""), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
