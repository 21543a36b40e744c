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
    "AlreadyThereError": "mwingest.errors",
    "ApiError": "mwingest.errors",
    "Credentials": "mwingest.credentials",
    "FileMetadata": "mwingest.metadata",
    "Finding": "mwingest.validate",
    "IngestItem": "mwingest.items",
    "IngestOptions": "mwingest.options",
    "IngestSetupError": "mwingest.api",
    "InputError": "mwingest.errors",
    "Job": "mwingest.job",
    "JobContext": "mwingest.jobcontext",
    "Ledger": "mwingest.ledger",
    "LedgerItem": "mwingest.ledger",
    "LoginError": "mwingest.errors",
    "MWIngestError": "mwingest.errors",
    "Outcome": "mwingest.items",
    "PermanentApiError": "mwingest.errors",
    "ResyncError": "mwingest.errors",
    "RetryPolicy": "mwingest.retry",
    "RetryClass": "mwingest.errors",
    "SessionError": "mwingest.errors",
    "State": "mwingest.ledger",
    "TransientApiError": "mwingest.errors",
    "TransportError": "mwingest.errors",
    "UploadResult": "mwingest.upload",
    "UploadWarnings": "mwingest.upload",
    "Verdict": "mwingest.validate",
    "WarningPolicy": "mwingest.policy",
    "WikiRules": "mwingest.siteinfo",
    "WikiSession": "mwingest.session",
    "check_sources": "mwingest.api",
    "find_duplicates": "mwingest.validate",
    "ingest": "mwingest.api",
    "is_retryable": "mwingest.errors",
    "predict_title": "mwingest.names",
    "read_metadata": "mwingest.metadata",
    "resolve": "mwingest.api",
    "sanitise": "mwingest.names",
    "sha1_file": "mwingest.hashing",
    "validate_file": "mwingest.validate",
    "validate_folder": "mwingest.validate",
}

__all__ = sorted([*_EXPORTS, "__version__"])


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'mwingest' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value
