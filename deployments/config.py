"""The deployments, described once for both ways of running them (``serve.py`` and ``prefect.yaml``).

``prefect.yaml`` is generated from this file (``python -m deployments.config > prefect.yaml``;
``tests/unit/test_deployment_config.py`` fails when the two differ), so a deployment, its
parameters or its schedule are written in one place. Defaults for serving come from the
environment of the process that serves: the credentials block name
(``MWINGEST_CREDENTIALS_BLOCK``, default ``mwingest-wiki``), the nightly drop folder
(``MWINGEST_DROP_FOLDER``) and its cron (``MWINGEST_DROP_CRON``, default 03:00 every night).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

from flows.fanout import ingest_shard, plan_import, report_import
from flows.imports import import_folder, import_manifest, import_urls
from flows.resolve import resolve_review

DEFAULT_BLOCK = "mwingest-wiki"
BLOCK = os.environ.get("MWINGEST_CREDENTIALS_BLOCK", DEFAULT_BLOCK)
DEFAULT_CRON = "0 3 * * *"
#: The nightly import's settings: nobody watches at 03:00, so a file that needs a person is
#: needs-review at once (decided later with ``mwingest review``).
NIGHTLY_SETTINGS = {"review_timeout_s": 0}
TAGS = ["mwingest"]


@dataclass(frozen=True)
class DeploymentSpec:
    """One deployment: which flow, its name, defaults and schedule."""

    flow: Any
    name: str
    description: str
    parameters: dict[str, Any] = field(default_factory=dict)
    cron: str | None = None


def _block_ref() -> dict[str, Any]:
    """Marks where the credentials default goes; :func:`build` fills it in."""
    return {"$block": BLOCK}


DEPLOYMENTS: list[DeploymentSpec] = [
    DeploymentSpec(import_folder, "folder-import", "Import every file of a folder on the worker.",
                   {"credentials": _block_ref()}),
    DeploymentSpec(import_manifest, "manifest-import", "Import the rows of a CSV/JSONL manifest.",
                   {"credentials": _block_ref()}),
    DeploymentSpec(import_urls, "url-import", "Let the wiki download a list of URLs.",
                   {"credentials": _block_ref()}),
    DeploymentSpec(resolve_review, "review-resolution",
                   "Decide on a needs-review file from its stash key (no bytes re-sent).",
                   {"credentials": _block_ref()}),
]
NIGHTLY = DeploymentSpec(
    import_folder, "nightly-drop-folder",
    "Every night, import what is new in the drop folder (the ledger skips the rest).",
    {"folder": os.environ.get("MWINGEST_DROP_FOLDER", ""), "credentials": _block_ref(),
     "settings": NIGHTLY_SETTINGS},
    cron=os.environ.get("MWINGEST_DROP_CRON", DEFAULT_CRON))
if os.environ.get("MWINGEST_DROP_FOLDER"):
    DEPLOYMENTS.append(NIGHTLY)

#: Only on a work pool (``prefect.yaml``): a planned import's runs go to many workers.
POOL_ONLY: list[DeploymentSpec] = [
    DeploymentSpec(plan_import, "planned-import",
                   "Plan a big import, run its shards on every worker of the pool, report once."),
    DeploymentSpec(ingest_shard, "ingest-shard",
                   "One shard of a planned import (started by planned-import)."),
    DeploymentSpec(report_import, "report-import",
                   "Waits for a planned import's shards, restarts crashed ones, reports (started "
                   "by planned-import)."),
]


def _with_blocks(parameters: dict[str, Any]) -> dict[str, Any]:
    """Replace ``{"$block": name}`` by the saved block, which Prefect stores as a reference (never
    its secret). A block that does not exist yet leaves the field for the form to fill."""
    from tasks.blocks import MediaWikiCredentials

    out = {}
    for key, value in parameters.items():
        if isinstance(value, dict) and "$block" in value:
            try:
                out[key] = MediaWikiCredentials.load(value["$block"])
            except ValueError:
                continue
        else:
            out[key] = value
    return out


def build(spec: DeploymentSpec) -> Any:
    """A ``RunnerDeployment`` for :func:`prefect.serve`."""
    return spec.flow.to_deployment(name=spec.name, description=spec.description,
                                   parameters=_with_blocks(spec.parameters), cron=spec.cron,
                                   tags=TAGS)
