"""The data that moves through a batch: what to ingest, its work-in-progress, and its outcome.

Why plain frozen dataclasses: each step of the pipeline is a Prefect task in another thread (or a
resumed process), so what one step hands the next must be small, serialisable and free of secrets.
The vocabulary of outcomes is the same everywhere: ledger, artifacts, CLI, logs.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, replace
from typing import Any

from .chunked import ChunkState

#: The five outcomes, the same words in the ledger, the artifacts, the CLI and the logs.
UPLOADED, SKIPPED, REJECTED, NEEDS_REVIEW, FAILED = (
    "uploaded", "skipped", "rejected", "needs-review", "failed")
OUTCOMES = (UPLOADED, SKIPPED, REJECTED, NEEDS_REVIEW, FAILED)


@dataclass(frozen=True)
class IngestItem:
    """One thing to put on the wiki: a local path or an http(s) URL, with its description."""

    source: str
    filename: str | None = None  # target name; default: the source's base name
    text: str | None = None  # page text for a new file page
    comment: str | None = None
    tags: tuple[str, ...] = ()
    line: int | None = None  # manifest line, for messages
    #: A row that could not even be read (bad manifest line, unsafe path): its reason code.
    error: str | None = None
    error_message: str | None = None

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
    ledger_id: int | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    @property
    def ok(self) -> bool:
        return self.outcome in (UPLOADED, SKIPPED)


@dataclass(frozen=True)
class ItemWork:
    """One item between steps: validated facts, stash progress, warnings, and the end state."""

    item: IngestItem
    ledger_id: int | None = None
    target: str | None = None  # validated, sanitised target name
    sha1: str | None = None
    size: int | None = None
    chunk: ChunkState | None = None
    filekey: str | None = None  # assembled/stashed file ready to publish
    warnings: Mapping[str, Any] = field(default_factory=dict)
    decision: Mapping[str, Any] | None = None
    final_name: str | None = None
    url: str | None = None
    bytes_sent: int = 0
    outcome: str | None = None
    reason: str | None = None
    message: str | None = None
    published: bool = False  # the publish answered Success: verify next
    #: The wiki's own record of the published version (``imageinfo`` of the Success answer:
    #: sha1, size, descriptionurl), so verification needs no second request when it is there.
    landed: Mapping[str, Any] | None = None
    #: URL items fetched by mwingest itself (``url_mode="local"``): the temporary local copy,
    #: which is uploaded like a file; the source (ledger, outcome) stays the URL.
    local_copy: str | None = None
    #: URL items the wiki copies: the end of the redirect chain, checked hop by hop, given to the
    #: wiki instead of the source (the wiki would follow redirects without checking them).
    final_url: str | None = None

    @property
    def done(self) -> bool:
        return self.outcome is not None

    @property
    def path(self) -> str:
        """The local file whose bytes go up: the fetched copy of a URL, else the source."""
        return self.local_copy or self.item.source

    @property
    def copy_upload(self) -> bool:
        """True when the wiki fetches the bytes itself (``url=``): we never hold them."""
        return self.item.is_url and self.local_copy is None

    def end(self, outcome: str, reason: str | None, message: str | None = None,
            **changes: Any) -> ItemWork:
        """This work with its outcome set (the ledger write is the caller's)."""
        return replace(self, outcome=outcome, reason=reason, message=message, **changes)

    def to_outcome(self) -> Outcome:
        return Outcome(
            source=self.item.source, filename=self.final_name or self.target,
            outcome=self.outcome or FAILED, reason=self.reason, message=self.message,
            sha1=self.sha1, size=self.size, url=self.url,
            filekey=self.filekey if self.outcome == NEEDS_REVIEW else None,
            bytes_sent=self.bytes_sent, ledger_id=self.ledger_id,
        )
