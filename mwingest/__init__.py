"""mwingest: put files into a MediaWiki wiki through ``action=upload``, once, intact, with their
description, or stop them with a clear reason.

The core (this package) is plain Python with no Prefect import, so it is testable alone; the
``tasks``/``flows`` packages orchestrate it. Public names are loaded lazily so that
``import mwingest`` stays cheap for the CLI.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_EXPORTS: dict[str, str] = {
    "AlreadyThereError": "mwingest.base.errors",
    "ApiError": "mwingest.base.errors",
    "Credentials": "mwingest.wiki.credentials",
    "FileMetadata": "mwingest.describe.metadata",
    "Finding": "mwingest.checks.validate",
    "IngestItem": "mwingest.base.items",
    "IngestOptions": "mwingest.base.options",
    "IngestSetupError": "mwingest.api",
    "InputError": "mwingest.base.errors",
    "Job": "mwingest.job.machine",
    "JobContext": "mwingest.job.context",
    "Ledger": "mwingest.ledger.ledger",
    "LedgerItem": "mwingest.ledger.ledger",
    "LoginError": "mwingest.base.errors",
    "LoginRefusedError": "mwingest.base.errors",
    "MWIngestError": "mwingest.base.errors",
    "Outcome": "mwingest.base.items",
    "PermanentApiError": "mwingest.base.errors",
    "ResyncError": "mwingest.base.errors",
    "RetryPolicy": "mwingest.base.retry",
    "RetryClass": "mwingest.base.errors",
    "SessionError": "mwingest.base.errors",
    "State": "mwingest.ledger.ledger",
    "TransientApiError": "mwingest.base.errors",
    "TransportError": "mwingest.base.errors",
    "UploadResult": "mwingest.wiki.upload",
    "UploadWarnings": "mwingest.wiki.upload",
    "Verdict": "mwingest.checks.validate",
    "WarningPolicy": "mwingest.base.policy",
    "WikiRules": "mwingest.wiki.siteinfo",
    "WikiSession": "mwingest.wiki.session",
    "check_sources": "mwingest.api",
    "find_duplicates": "mwingest.checks.validate",
    "ingest": "mwingest.api",
    "is_retryable": "mwingest.base.errors",
    "predict_title": "mwingest.wiki.names",
    "read_metadata": "mwingest.describe.metadata",
    "resolve": "mwingest.api",
    "sanitise": "mwingest.wiki.names",
    "sha1_file": "mwingest.base.hashing",
    "validate_file": "mwingest.checks.validate",
    "validate_folder": "mwingest.checks.validate",
}

__all__ = sorted([*_EXPORTS, "__version__"])


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'mwingest' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value
