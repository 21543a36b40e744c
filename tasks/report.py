"""Run history as Prefect artifacts: a progress bar that moves, a per-file outcome table, and a
markdown summary that says what needs review and how to resolve it.

All Prefect artifact calls live here, so the flow reads as the story of the batch and the core
stays free of Prefect. Artifact keys are lowercase with dashes (Prefect rejects anything else).
"""

from __future__ import annotations

import shlex
import sqlite3
import threading
import time
from collections import Counter
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import PurePath
from typing import Any
from uuid import UUID

from prefect.artifacts import (
    create_markdown_artifact,
    create_progress_artifact,
    create_table_artifact,
    update_progress_artifact,
)
from sqlalchemy.exc import SQLAlchemyError

from mwingest.base import markdown as md
from mwingest.base.items import NEEDS_REVIEW, OUTCOMES, STRUCTURED_DATA_FAILED, Outcome
from mwingest.ledger.ledger import Ledger
from mwingest.ledger.model import LedgerError
from mwingest.ledger.store import shown
from mwingest.wiki.pictures import Picture

#: Thumbnails for the summary: published files by name, stashed ones by key.
Pictures = tuple[Mapping[str, Picture], Mapping[str, Picture]]

TABLE_KEY = "ingest-outcomes"
SUMMARY_KEY = "ingest-summary"
PROGRESS_KEY = "ingest-progress"


class Progress:
    """A progress artifact updated as items finish (thread-safe: items finish in worker threads)."""

    def __init__(self, total: int) -> None:
        self.total = max(total, 1)
        self.done = 0
        self._lock = threading.Lock()
        self._last = time.monotonic()
        # One file needs no progress bar in the UI: two API calls less on a one-file run.
        self._id: UUID | None = create_progress_artifact(  # type: ignore[assignment]
            progress=0.0, key=PROGRESS_KEY, description=f"files finished of {total}"
        ) if total > 1 else None

    #: At most one update a second (each is an API call); the last file always updates.
    MIN_INTERVAL_S = 1.0

    def advance(self, n: int = 1) -> None:
        with self._lock:
            self.done += n
            now = time.monotonic()
            if self._id is not None and (self.done >= self.total
                                         or now - self._last >= self.MIN_INTERVAL_S):
                self._last = now
                update_progress_artifact(artifact_id=self._id,
                                         progress=round(100.0 * self.done / self.total, 1))


def describe_decision(decision: Mapping[str, Any] | None) -> str:
    """A ledger decision in a few words: what, by whom, when (and the reviewer's note)."""
    if not decision:
        return ""
    text = f"{decision.get('action', '?')} by {decision.get('by', '?')}"
    if decision.get("at"):
        try:
            when = datetime.fromisoformat(decision["at"]).astimezone(UTC)
            text += f", {when:%Y-%m-%d %H:%M:%S} UTC"
        except (TypeError, ValueError):
            text += f", {decision['at']}"
    if decision.get("note"):
        text += f" ({decision['note']})"
    return text


def run_decisions(ledger_path: str, outcomes: Sequence[Outcome], run_id: str | None
                  ) -> dict[int, str]:
    """The decisions taken on these files during run ``run_id``, as the ledger recorded them.

    Why the ledger: an :class:`Outcome` says *what* happened (``decided-rename``), the ledger row
    also says who decided and when. Rows last touched by another run keep their old decision out of
    this run's table. A ledger that cannot be read leaves the column empty: the report must not fail.
    """
    ids = [o.ledger_id for o in outcomes if o.ledger_id is not None]
    if not ids or not run_id:
        return {}
    out: dict[int, str] = {}
    try:
        with Ledger(ledger_path) as ledger:
            for item_id in ids:
                entry = ledger.get(item_id)
                if entry.decision and entry.flow_run_id == run_id:
                    out[item_id] = describe_decision(entry.decision)
    except (LedgerError, sqlite3.Error, SQLAlchemyError, OSError):
        return out
    return out


def outcome_rows(outcomes: Sequence[Outcome],
                 decisions: Mapping[int, str] | None = None) -> list[dict[str, Any]]:
    """One row per file: what a person wants to read, with a link when the file landed."""
    decisions = decisions or {}
    # The short name first and the full source last: the UI shows the first columns of a wide
    # table, and a worker's absolute paths would fill them.
    return [{
        "file": PurePath(o.source).name or o.source,
        "outcome": o.outcome,
        "reason": o.reason or "",
        "target": o.filename or "",
        "decision": decisions.get(o.ledger_id, "") if o.ledger_id is not None else "",
        "message": o.message or "",
        "link": o.url or "",
        "sha1": o.sha1 or "",
        "bytes": o.size if o.size is not None else "",
        "sent": o.bytes_sent,  # by this run: less than the size when it continued a stash
        "source": o.source,
    } for o in outcomes]


def summary_markdown(outcomes: Sequence[Outcome], *, wiki: str, seconds: float,
                     ledger_path: str, pictures: Pictures | None = None,
                     notes: Sequence[str] = ()) -> str:
    """Counts, bytes, time, and the items waiting for a decision with the command to resolve them.

    ``pictures`` (published files by name, stashed ones by key; :func:`mwingest.wiki.pictures.for_outcomes`)
    puts each landed file's thumbnail beside its link, and both pictures beside a file waiting
    for review. ``notes``: warnings found before the upload (a red category), listed too."""
    files, stash = pictures or ({}, {})

    def thumb(picture: Picture | None, alt: str) -> str:
        return f" ![{md.text(alt)}]({md.url(picture.thumb_url)})" if picture else ""
    counts = Counter(o.outcome for o in outcomes)
    sent = sum(o.bytes_sent for o in outcomes)
    landed = sum(o.size or 0 for o in outcomes if o.outcome == "uploaded")
    no_sdc = [o for o in outcomes if o.reason == STRUCTURED_DATA_FAILED]
    lines = [
        f"# Ingest into {md.text(wiki)}",
        "",
        "| outcome | files |", "|---|---|",
        *(f"| {name} | {counts.get(name, 0)} |" for name in OUTCOMES),
        "",
        f"* {len(outcomes)} files in {seconds:.1f} s; {landed:,} bytes landed, {sent:,} bytes sent",
        *([f"* **{len(no_sdc)} uploaded without their structured data** "
           f"({md.code(STRUCTURED_DATA_FAILED)}, listed below; a re-run writes what is missing)"]
          if no_sdc else []),
        f"* ledger: {md.code(shown(ledger_path))}",
    ]
    uploaded = [o for o in outcomes if o.outcome == "uploaded" and o.url]
    if uploaded:
        lines += ["", "## Landed", *(f"* [{md.text(o.filename)}]({md.url(o.url)})"
                                     + thumb(files.get(_key(o.filename)), o.filename or "")
                                     for o in uploaded[:50])]
    waiting = [o for o in outcomes if o.outcome == NEEDS_REVIEW]
    if waiting:
        lines += ["", "## Needs review",
                  "Each waits in the wiki's stash (6 h); decide without re-sending its bytes:", ""]
        lines += [f"* {md.code(o.source)} → {md.code(o.filename)}: {md.text(o.message or o.reason)} — "
                  + md.code(f"mwingest review {shlex.quote(o.ledger_ref or str(o.ledger_id))}"
                            " --decision skip|publish|rename")
                  + thumb(files.get(_key(o.filename)), "on the wiki")
                  + thumb(stash.get(o.filekey or ""), "this file (stashed)")
                  for o in waiting]
    if notes:
        lines += ["", "## Warnings before the upload", *(f"* {md.text(note)}" for note in notes[:100])]
    problems = [o for o in outcomes if o.outcome in ("rejected", "failed")] + no_sdc
    if problems:
        lines += ["", "## Rejected, failed or without structured data",
                  *(f"* {md.code(o.source)}: **{o.outcome}** {md.code(o.reason)} — {md.text(o.message or '')}"
                    for o in problems)]
    return "\n".join(lines)


def _key(name: str | None) -> str:
    return (name or "").replace(" ", "_")


def publish_report(outcomes: Sequence[Outcome], *, wiki: str, seconds: float,
                   ledger_path: str, before_review: bool = False,
                   pictures: Pictures | None = None, notes: Sequence[str] = ()) -> None:
    """The table and the summary artifacts of one run.

    ``before_review``: the table of a run that is about to wait for people, under keys of its
    own (``…-before-review``), so the final table keeps its key and a reader sees both.
    """
    from prefect.runtime import flow_run

    suffix = "-before-review" if before_review else ""
    decisions = run_decisions(ledger_path, outcomes, flow_run.get_id())
    create_table_artifact(key=TABLE_KEY + suffix, table=outcome_rows(outcomes, decisions),
                          description=f"one row per file ({len(outcomes)})")
    create_markdown_artifact(key=SUMMARY_KEY + suffix,
                             markdown=summary_markdown(outcomes, wiki=wiki, seconds=seconds,
                                                       ledger_path=ledger_path, pictures=pictures,
                                                       notes=notes),
                             description="batch summary")
