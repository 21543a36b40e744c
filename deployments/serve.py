"""Serve mwingest's deployments from this process: no work pool, no worker (the local way).

    python deployments/serve.py            # needs PREFECT_API_URL pointing at a Prefect server

Against the mwingest local server (``PREFECT_API_URL`` = its API), its secret is read from the
server's private directory; any other server's comes from ``PREFECT_API_AUTH_STRING``.

Deployments: folder import, manifest import, URL list import, review resolution, and a nightly
import of a drop folder (only new files land: the ledger skips the rest). Stopping this process
pauses the schedules (Prefect 3.9 findings §5); run it under a service manager for real use.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script from anywhere

from mwingest.runtime.prefectenv import authenticate  # noqa: E402

authenticate()  # the mwingest local server's secret, before Prefect reads its settings

from prefect import serve  # noqa: E402

from deployments.config import DEPLOYMENTS, build  # noqa: E402

#: Exit status when serving would take over deployments that ``prefect deploy`` put on a pool.
EXIT_CONFLICT = 2


def pool_conflicts() -> list[str]:
    """Served names that already exist on the server as work-pool deployments (``prefect deploy``).

    Why refuse them: serving updates an existing deployment in place but leaves its pool, pull
    steps and storage path as they were, so the runs it then picks up crash while loading the
    flow ("No such file or directory: '<cwd>/None'", seen with Prefect 3.9.1), and a worker on
    that pool would race this process for the same runs. The two ways need their own names or
    their own servers.
    """
    from prefect.client.orchestration import get_client
    from prefect.exceptions import ObjectNotFound

    found = []
    with get_client(sync_client=True) as client:
        for spec in DEPLOYMENTS:
            name = f"{spec.flow.name}/{spec.name}"
            try:
                existing = client.read_deployment_by_name(name)
            except ObjectNotFound:
                continue
            if existing.work_pool_name:
                found.append(f"{name} (work pool {existing.work_pool_name!r})")
    return found


def main() -> int:
    """Register the deployments and run their flows when triggered or scheduled."""
    conflicts = pool_conflicts()
    if conflicts:
        print("refusing to serve deployments that `prefect deploy` put on a work pool: "
              f"{', '.join(conflicts)}; delete them first (prefect deployment delete NAME) or "
              "use another Prefect server", file=sys.stderr)
        return EXIT_CONFLICT
    limit = int(os.environ.get("MWINGEST_SERVE_LIMIT", "4"))
    from deployments.register import install_automation

    install_automation()  # a served run whose process dies shows Crashed, not Running for ever
    serve(*(build(spec) for spec in DEPLOYMENTS), limit=limit)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
