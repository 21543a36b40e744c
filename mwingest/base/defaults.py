"""The batch's defaults as plain constants, for callers that must not pay for the settings model.

Why apart from :mod:`mwingest.job.settings`: the CLI shows these in ``--help`` and needs them when
its module is imported, and importing the pydantic model (with what it validates against) doubled
the cost of every ``mwingest --help``, ``status`` and usage error (0.2 s → 0.4 s, measured). The
model takes its defaults from here, so they are still written once.
"""

from __future__ import annotations

from mwingest.base.retry import DEFAULT_BUDGET_S

DEFAULT_COMMENT = "Uploaded with mwingest"
DEFAULT_CHUNK_MB = 16.0  # the benchmark's pick (bench/README.md)
DEFAULT_CONCURRENCY = 4
MAX_WORKERS = 16  # upper bound of files in flight in one run

__all__ = ["DEFAULT_BUDGET_S", "DEFAULT_CHUNK_MB", "DEFAULT_COMMENT", "DEFAULT_CONCURRENCY", "MAX_WORKERS"]
