"""The data that moves through a batch: what to ingest, and how it ended.

Why plain frozen dataclasses: each step of the pipeline is a Prefect task in another thread (or a
resumed process), so what one step hands the next must be small, serialisable and free of secrets.
The vocabulary of outcomes is the same everywhere: ledger, artifacts, CLI, logs.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

#: The five outcomes, the same words in the ledger, the artifacts, the CLI and the logs.
UPLOADED, SKIPPED, REJECTED, NEEDS_REVIEW, FAILED = (
    "uploaded", "skipped", "rejected", "needs-review", "failed")
OUTCOMES = (UPLOADED, SKIPPED, REJECTED, NEEDS_REVIEW, FAILED)
#: The reason of a file that landed (``uploaded``) without all of its structured data (captions,
#: statements): never a plain success — counted apart, and the command exits 1.
STRUCTURED_DATA_FAILED = "structured-data-failed"


def shown_title(filename: str | None) -> str:
    """A wiki title as people read it: with spaces. The wiki's answers name a landed file by its
    DB key (underscores); refusals, logs and tables show every name this one way."""
    return (filename or "").replace("_", " ")


@dataclass(frozen=True)
class IngestItem:
    """One thing to put on the wiki: a local path or an http(s) URL, with its description."""

    source: str
    filename: str | None = None  # target name; default: the source's base name
    text: str | None = None  # page text for a new file page
    comment: str | None = None
    tags: tuple[str, ...] = ()
    line: int | None = None  # manifest line, for messages
    #: The manifest's ``id`` column: the item's identity in the ledger on every machine, so a
    #: re-scanned file (new bytes, new name) is still the same item.
    key: str | None = None
    #: A row that could not even be read (bad manifest line, unsafe path): its reason code.
    error: str | None = None
    error_message: str | None = None
    licence: str | None = None  # the licence template's name (a manifest's licence column)
    #: Structured data cells as the manifest gave them: ``("caption.en", "…")``, ``("depicts",
    #: "Q1; Q2")`` (:mod:`mwingest.describe.structured` checks them against the wiki).
    structured: tuple[tuple[str, str], ...] = ()
    #: The checked structured data to write after the upload (JSON: captions by language and
    #: statements with their property and value), set by that check; None: nothing to write.
    sdc: str | None = None

    @property
    def is_url(self) -> bool:
        return self.source.lower().startswith(("http://", "https://"))

    @property
    def label(self) -> str:
        """A short name for logs and task names (``Sunset.jpg``)."""
        base = self.filename or self.source.rstrip("/").rsplit("/", 1)[-1] or self.source
        return base if len(base) <= 60 else base[:57] + "..."


@dataclass(frozen=True)
class Outcome:
    """How one item ended. ``as_dict`` is the CLI's JSON line and the artifact row."""

    source: str
    filename: str | None
    outcome: str
    reason: str | None = None
    message: str | None = None
    sha1: str | None = None
    size: int | None = None
    url: str | None = None  # the file's description page, when it landed
    filekey: str | None = None  # when it waits in the stash (needs-review)
    bytes_sent: int = 0
    ledger_id: int | None = None  # the row in this run's ledger database
    #: The row's reference on any machine (``mwingest review REF``): SHA-1 prefix and title.
    ledger_ref: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    @property
    def ok(self) -> bool:
        return self.outcome in (UPLOADED, SKIPPED) and self.reason != STRUCTURED_DATA_FAILED
