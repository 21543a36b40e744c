"""Serve mwingest's deployments from this process: no work pool, no worker (the local way).

    python deployments/serve.py            # needs PREFECT_API_URL pointing at a Prefect server

Deployments: folder import, manifest import, URL list import, review resolution, and a nightly
import of a drop folder (only new files land: the ledger skips the rest). Stopping this process
pauses the schedules (Prefect 3.9 findings §5); run it under a service manager for real use.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script from anywhere

from prefect import serve  # noqa: E402

from deployments.config import DEPLOYMENTS, build  # noqa: E402


def main() -> None:
    """Register the deployments and run their flows when triggered or scheduled."""
    limit = int(os.environ.get("MWINGEST_SERVE_LIMIT", "4"))
    serve(*(build(spec) for spec in DEPLOYMENTS), limit=limit)


if __name__ == "__main__":
    main()
