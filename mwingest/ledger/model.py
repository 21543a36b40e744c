"""The ledger's vocabulary: the states of a file, the allowed moves, the row types, and what
makes a row's identity (wiki, account, ``sha1:…``/``manifest:…``/``url:…``).

Kept apart from the store (:mod:`mwingest.ledger.ledger`) so the state machine can be read, and
imported, on its own; ``mwingest.ledger.ledger`` re-exports every name here.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from mwingest.base.errors import MWIngestError

_SHA1 = re.compile(r"[0-9a-f]{40}")


class State(StrEnum):
    """Where one file stands; the last five values are the outcome vocabulary."""

    PENDING = "pending"
    VALIDATED = "validated"
    STASHING = "stashing"  # chunks going up; filekey + offset move with every chunk
    STASHED = "stashed"  # assembled in the user's stash, not yet published
    #: A publish is about to be sent (its name and flags are the row's ``intent``): a run that
    #: dies here finds out on restart whether the wiki published, by name and by SHA-1.
    PUBLISHING = "publishing"
    PUBLISHED = "published"  # the wiki answered Success: verify next
    #: The file landed (SHA-1 verified); its structured data (captions, statements on the
    #: MediaInfo entity ``M<page id>``) is being written. Each attempt reads the entity first,
    #: so a lost answer or a crash never writes a statement twice (``mwingest.job.structured``).
    DESCRIBING = "describing"
    NEEDS_REVIEW = "needs-review"  # publish warned; waits for a human decision
    UPLOADED = "uploaded"
    SKIPPED = "skipped"
    REJECTED = "rejected"
    FAILED = "failed"


#: The outcomes every report uses, each recorded with a reason code.
OUTCOMES: frozenset[State] = frozenset(
    {State.UPLOADED, State.SKIPPED, State.REJECTED, State.NEEDS_REVIEW, State.FAILED})
#: States a re-run leaves alone (unless the file's bytes changed, see :meth:`Ledger.begin`).
FINAL_STATES: frozenset[State] = frozenset({State.UPLOADED, State.SKIPPED, State.REJECTED})
_S = State
#: The allowed moves. ``failed`` is retryable and keeps the stash key and offset, so a re-run
#: continues where the wiki stands; ``validated`` after a stash state means "start over"; the
#: self-moves are a re-validation (a re-run), a restarted chunk session and a second review.
TRANSITIONS: Mapping[State, frozenset[State]] = {
    _S.PENDING: frozenset({_S.VALIDATED, _S.SKIPPED, _S.REJECTED, _S.FAILED}),
    _S.VALIDATED: frozenset({_S.VALIDATED, _S.STASHING, _S.STASHED, _S.PUBLISHING, _S.NEEDS_REVIEW,
                             _S.UPLOADED, _S.SKIPPED, _S.REJECTED, _S.FAILED}),
    # An extension may refuse the file when its chunks are put together (needs-review: warned).
    _S.STASHING: frozenset({_S.STASHING, _S.STASHED, _S.VALIDATED, _S.REJECTED, _S.FAILED,
                            _S.NEEDS_REVIEW}),
    _S.STASHED: frozenset({_S.STASHED, _S.PUBLISHING, _S.NEEDS_REVIEW, _S.UPLOADED, _S.SKIPPED,
                           _S.REJECTED, _S.FAILED, _S.VALIDATED}),
    _S.PUBLISHING: frozenset({_S.PUBLISHING, _S.PUBLISHED, _S.STASHED, _S.VALIDATED,
                              _S.UPLOADED, _S.SKIPPED, _S.REJECTED, _S.FAILED, _S.NEEDS_REVIEW,
                              _S.DESCRIBING}),
    _S.PUBLISHED: frozenset({_S.UPLOADED, _S.FAILED, _S.DESCRIBING}),
    # Captions and statements after the verified landing; its failure keeps the landing
    # (``uploaded``, reason ``structured-data-failed``), which a re-run may take up again.
    _S.DESCRIBING: frozenset({_S.DESCRIBING, _S.UPLOADED, _S.FAILED}),
    # Usually left after a human decision; a re-run may also find the warning gone and publish.
    _S.NEEDS_REVIEW: frozenset({_S.NEEDS_REVIEW, _S.STASHED, _S.UPLOADED, _S.SKIPPED, _S.REJECTED,
                                _S.FAILED, _S.VALIDATED}),
    _S.FAILED: frozenset({_S.PENDING, _S.VALIDATED, _S.STASHING, _S.STASHED, _S.PUBLISHING,
                          _S.PUBLISHED, _S.SKIPPED, _S.REJECTED, _S.FAILED, _S.DESCRIBING}),
    # The one move out of a final state: a landed file whose structured data is still to write
    # (it failed, or a re-run brings captions and statements the file does not have yet).
    _S.UPLOADED: frozenset({_S.DESCRIBING}), _S.SKIPPED: frozenset(), _S.REJECTED: frozenset(),
}
#: States in which the wiki's stash holds (or may hold) our bytes under ``filekey``.
STASH_STATES: frozenset[State] = frozenset(
    {State.STASHING, State.STASHED, State.PUBLISHING, State.NEEDS_REVIEW})
#: States of a file on its way (bytes going up, waiting to publish, publishing, verifying,
#: describing): what ``mwingest status`` lists first, since a stopped run left them there.
IN_FLIGHT: tuple[State, ...] = (State.STASHING, State.STASHED, State.PUBLISHING, State.PUBLISHED,
                                State.DESCRIBING)
#: MediaWiki's default ``$wgUploadStashMaxAge``: cleanup deletes stash rows this long after chunk 1
#: (spec §7). Wikimedia Commons keeps them 48 h; a run passes its wiki's figure where it knows it.
STASH_MAX_AGE = timedelta(hours=6)
#: What a reviewer (or the warnings policy) can decide for a warned file.
DECISION_ACTIONS = frozenset({"skip", "publish", "rename", "fail"})


class LedgerError(MWIngestError):
    """The ledger cannot do what was asked (bad state, unknown item, a newer schema)."""


class IllegalTransitionError(LedgerError):
    """The state machine does not allow this move; nothing was written."""


class UnknownItemError(LedgerError, LookupError):
    """No ledger row has this id (or this reference)."""


class AmbiguousItemError(LedgerError, LookupError):
    """A reference matches more than one row; ``refs`` are theirs, to pick one."""

    def __init__(self, message: str, refs: list[str]) -> None:
        super().__init__(message)
        self.refs = refs


@dataclass(frozen=True)
class LedgerItem:
    """A snapshot of one ledger row (timestamps are aware UTC datetimes)."""

    id: int
    wiki: str
    source: str
    sha1: str
    size: int
    target: str
    final_name: str | None
    state: State
    reason: str | None
    message: str | None
    filekey: str | None
    offset: int
    chunk_size: int | None
    stash_created_at: datetime | None
    warnings: Any
    decision: dict[str, Any] | None
    flow_run_id: str | None
    task_run_id: str | None
    created_at: datetime
    updated_at: datetime
    attempts: int
    #: Page text, comment and tags for a late publish (schema v2); no secrets.
    params: Any = None
    #: The wiki write about to be sent whose effect may be lost (schema v3): for a publish
    #: ``{"op": "publish", "name": ..., "ignorewarnings": bool, "at": ...}``.
    intent: Any = None
    #: Which run drives the row (``host:pid:run``) and until when (schema v3).
    lease_owner: str | None = None
    lease_until: datetime | None = None
    #: Identity that travels (schema v4): the wiki account ('' for rows from before v4) and
    #: ``sha1:<SHA-1>:<target>`` or ``manifest:<id>``; ``host`` is the machine whose path
    #: ``source`` is.
    account: str = ""
    ident: str = ""
    host: str | None = None
    #: For a ``failed`` row, the state it failed in: where a re-run picks it up (schema v7).
    failed_from: State | None = None

    @property
    def ref(self) -> str:
        """A reference to this row that means the same on every machine and every ledger of
        this wiki and account: ``<12 hex of the SHA-1>:<title>`` or ``manifest:<id>``."""
        if self.ident.startswith("sha1:"):
            return f"{self.sha1[:12]}:{self.ident[46:]}"
        return self.ident or str(self.id)

    @property
    def done(self) -> bool:
        """True when a re-run has nothing left to do for these bytes."""
        return self.state in FINAL_STATES

    def is_resumable(self, now: datetime | None = None, *, margin: timedelta = timedelta(minutes=10),
                     max_age: timedelta = STASH_MAX_AGE) -> bool:
        """True when the stash row behind ``filekey`` should still exist (younger than the wiki's
        stash lifetime − margin). A ``failed`` row counts too: it keeps its key for the re-run."""
        if self.state not in (*STASH_STATES, State.FAILED) or not (
                self.filekey and self.stash_created_at):
            return False
        return (now or datetime.now(UTC)) - self.stash_created_at < max_age - margin

    @property
    def resumable(self) -> bool:
        """:meth:`is_resumable` right now."""
        return self.is_resumable()


@dataclass(frozen=True)
class LedgerEvent:
    """One row of an item's append-only history."""

    id: int
    item_id: int
    from_state: State | None
    to_state: State
    reason: str | None
    message: str | None
    at: datetime
    run_id: str | None


@dataclass(frozen=True)
class Lease:
    """Who claims a row (``host:pid:run``), for how long, and how to tell a dead holder."""

    owner: str
    ttl: timedelta
    is_stale: Callable[[str], bool] | None = None


class RowLeasedError(LedgerError):
    """Another live run holds the row's lease; ``row`` is the row as it is."""

    def __init__(self, message: str, row: LedgerItem) -> None:
        super().__init__(message)
        self.row = row


def normalise_wiki(wiki: str) -> str:
    """The API URL with scheme and host lower-cased, so one wiki never gets two identities."""
    parts = urlsplit(wiki.strip())
    return urlunsplit((parts.scheme.lower(), parts.netloc.lower(), parts.path, parts.query, ""))


def normalise_source(source: str | os.PathLike[str]) -> str:
    """A URL stays as given (trimmed); a path becomes absolute and normalised (no symlink resolution)."""
    text = os.fspath(source)
    if re.match(r"\s*[a-zA-Z][a-zA-Z0-9+.-]*://", text):
        return text.strip()
    return os.path.abspath(os.path.expanduser(text))  # no strip: a trailing space is a legal name


def normalise_account(username: str | None) -> str:
    """The wiki account a login writes as: a bot password's ``User@bot`` is the user ``User``;
    underscores are spaces and the first letter is upper-case, as MediaWiki stores user names.
    The rate limits the wiki applies, and so the pacing, belong to this account."""
    name = (username or "").partition("@")[0].replace("_", " ").strip()
    return name[:1].upper() + name[1:]


#: The SHA-1 of a copy upload, whose bytes only the wiki sees (``mwingest.base.options.URL_SHA1``).
UNKNOWN_SHA1 = "0" * 40


def make_ident(sha1: str, target: str, key: str | None = None, *, source: str | None = None) -> str:
    """A row's identity within (wiki, account): ``manifest:<key>`` when the manifest names the
    item, else ``sha1:<content SHA-1>:<target title>`` (the same bytes under the same title are
    the same piece of work on any machine, whatever path they were read from). A copy upload's
    bytes are unknown, so its URL stands for them: ``url:<source>:<target title>``."""
    if key is not None and str(key).strip():
        return f"manifest:{str(key).strip()}"
    if sha1 == UNKNOWN_SHA1 and source:
        return f"url:{source}:{target}"
    if not _SHA1.fullmatch(sha1):
        raise ValueError("sha1 must be 40 lower-case hex digits")
    return f"sha1:{sha1}:{target}"


#: Columns stored as JSON text.
JSON_COLUMNS = ("warnings", "decision", "params", "intent")


def item_from_row(row: Mapping[str, Any]) -> LedgerItem:
    """A :class:`LedgerItem` from a database row (timestamps and JSON as stored)."""
    cols = dict(row)
    for name in ("stash_created_at", "created_at", "updated_at", "lease_until"):
        cols[name] = datetime.fromisoformat(cols[name]) if cols.get(name) else None
    for name in JSON_COLUMNS:
        cols[name] = json.loads(cols[name]) if cols.get(name) else None
    failed_from = cols.get("failed_from")
    return LedgerItem(**{**cols, "state": State(cols["state"]),
                         "failed_from": State(failed_from) if failed_from else None})
