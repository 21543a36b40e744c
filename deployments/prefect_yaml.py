"""``prefect.yaml`` made from :mod:`deployments.config`: the work-pool way of the same deployments.

    python -m deployments.prefect_yaml > prefect.yaml

Why generated: the deployments, their parameters and schedules were written twice (here for
``serve.py``, and by hand in ``prefect.yaml``), and the copies drift. The unit test
``tests/unit/test_deployment_config.py`` fails when the committed file is not what this prints.
"""

from __future__ import annotations

import inspect
import json
from pathlib import Path
from typing import Any

from deployments.config import DEFAULT_BLOCK, DEFAULT_CRON, DEPLOYMENTS, NIGHTLY, POOL_ONLY, DeploymentSpec

REPO = Path(__file__).resolve().parents[1]

HEADER = """\
# Generated from deployments/config.py by `python -m deployments.prefect_yaml > prefect.yaml`:
# edit that file, not this one (a unit test compares them).
#
# Deploy mwingest's flows onto a process work pool, for workers on one or many machines:
#   prefect work-pool create mwingest --type process
#   python -m deployments.register --save mwingest-wiki   # the credentials block (MWINGEST_* env)
#   MWINGEST_DROP_FOLDER=/srv/drop prefect deploy --all   # from the repository root
#   MWINGEST_CHECKOUT=/path/to/mwingest prefect worker start --pool mwingest   # on every worker machine
# `{{ $VAR }}` is filled from the env of `prefect deploy` when VAR is set there; when it is not, the
# placeholder is stored as is, and a pull step fills it from the *worker's* env at run time
# (checked with Prefect 3.9.1). So leave MWINGEST_CHECKOUT unset when deploying, and start each
# worker from a virtualenv with mwingest installed and MWINGEST_CHECKOUT set to that machine's
# checkout; or set it when deploying if every worker has the checkout at the same path. Parameters
# are not filled at run time: the nightly folder must be set when deploying. Credentials come from
# the block named in the parameters. Do not also run deployments/serve.py against the same
# server: it uses the same names.
name: mwingest
prefect-version: 3.9.1

pull:
- prefect.deployments.steps.set_working_directory:
    directory: "{{ $MWINGEST_CHECKOUT }}"

definitions:
  work_pool: &pool
    name: mwingest
    work_queue_name: default
  tags: &tags [mwingest]

deployments:
"""

POOL_NOTE = """\
# A planned import for many machines (flows/fanout.py): start `planned-import` from the UI; it
# writes the plan (items, shards) into the ledger database, then starts a `report-import` run that
# watches and one `ingest-shard` run per shard on this pool. Every worker needs the same ledger
# database (MWINGEST_LEDGER_URL) and local sources at the same paths. A crashed report is started
# again by an automation that `python -m deployments.register` installs.
"""


def entrypoint(spec: DeploymentSpec) -> str:
    """``flows/imports.py:import_folder``: the flow's file, relative to the repository."""
    fn = spec.flow.fn
    path = Path(inspect.getfile(fn)).resolve().relative_to(REPO)
    return f"{path.as_posix()}:{fn.__name__}"


def _value(key: str, value: Any) -> Any:
    """A parameter as the pool's deployment stores it: blocks by slug, the folder from the env."""
    if isinstance(value, dict) and "$block" in value:
        return {"$ref": {"block_document_slug": f"mediawiki-credentials/{DEFAULT_BLOCK}"}}
    if key == "folder":
        return "{{ $MWINGEST_DROP_FOLDER }}"
    return value


def _deployment(spec: DeploymentSpec) -> str:
    lines = [f"- name: {spec.name}", f"  description: {spec.description}",
             f"  entrypoint: {entrypoint(spec)}", "  tags: *tags", "  work_pool: *pool"]
    if spec.parameters:
        lines.append("  parameters:")
        lines += [f"    {key}: {json.dumps(_value(key, value))}"
                  for key, value in spec.parameters.items()]
    if spec.cron:
        lines += ["  schedules:", f'  - cron: "{DEFAULT_CRON if spec is NIGHTLY else spec.cron}"',
                  "    timezone: UTC", "    active: true"]
    return "\n".join(lines) + "\n"


def render() -> str:
    """The whole ``prefect.yaml``: every served deployment, the nightly one, the pool-only ones."""
    served = [spec for spec in DEPLOYMENTS if spec is not NIGHTLY]
    return (HEADER + "".join(_deployment(s) for s in [*served, NIGHTLY]) + POOL_NOTE
            + "".join(_deployment(s) for s in POOL_ONLY))


if __name__ == "__main__":
    print(render(), end="")
