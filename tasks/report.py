"""Run history as Prefect artifacts: a progress bar that moves, a per-file outcome table, and a
markdown summary that says what needs review and how to resolve it.

All Prefect artifact calls live here, so the flow reads as the story of the batch and the core
stays free of Prefect. Artifact keys are lowercase with dashes (Prefect rejects anything else).
"""

from __future__ import annotations

import json
import shlex
import sqlite3
import threading
import time
from collections import Counter
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path, PurePath
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
from tasks.reporting import best_effort

#: Thumbnails for the summary: published files by name, stashed ones by key.
Pictures = tuple[Mapping[str, Picture], Mapping[str, Picture]]

TABLE_KEY = "ingest-outcomes"
SUMMARY_KEY = "ingest-summary"
DETAILS_KEY = "ingest-details"
PROGRESS_KEY = "ingest-progress"


class Progress:
    """A progress artifact updated as items finish (thread-safe: items finish in worker threads)."""

    def __init__(self, total: int) -> None:
        self.total = max(total, 1)
        self.done = 0
        self._lock = threading.Lock()
        self._last = time.monotonic()
        # One file needs no progress bar in the UI: two API calls less on a one-file run.
        self._id: UUID | None = best_effort(  # type: ignore[assignment]
            "creating the progress artifact", lambda: create_progress_artifact(
                progress=0.0, key=PROGRESS_KEY, description=f"files finished of {total}")
        ) if total > 1 else None

    #: At most one update every 5 s (each is an API call, and the server's CPU per call is more
    #: than the client's: issue 27's bench); the last file always updates. A bar that moves
    #: every 5 s still tells a person the run goes on.
    MIN_INTERVAL_S = 5.0

    def advance(self, n: int = 1) -> None:
        with self._lock:
            self.done += n
            now = time.monotonic()
            if self._id is not None and (self.done >= self.total
                                         or now - self._last >= self.MIN_INTERVAL_S):
                self._last = now
                progress = round(100.0 * self.done / self.total, 1)
                best_effort("updating the progress", lambda: update_progress_artifact(
                    artifact_id=self._id, progress=progress))

    def say(self, description: str) -> None:
        """Put ``description`` under the bar (what the run waits for now)."""
        if self._id is not None:
            with self._lock:
                progress = round(100.0 * self.done / self.total, 1)
                best_effort("updating the progress", lambda: update_progress_artifact(
                    artifact_id=self._id, progress=progress, description=description))


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
                  ) -> dict[int, Mapping[str, Any]]:
    """The decisions taken on these files during run ``run_id``, as the ledger recorded them.

    Why the ledger: an :class:`Outcome` says *what* happened (``decided-rename``), the ledger row
    also says who decided and when. Rows last touched by another run keep their old decision out of
    this run's table. A ledger that cannot be read leaves the column empty: the report must not fail.
    """
    ids = [o.ledger_id for o in outcomes if o.ledger_id is not None]
    if not ids or not run_id:
        return {}
    out: dict[int, Mapping[str, Any]] = {}
    try:
        with Ledger(ledger_path) as ledger:
            for item_id in ids:
                entry = ledger.get(item_id)
                if entry.decision and entry.flow_run_id == run_id:
                    out[item_id] = entry.decision
    except (LedgerError, sqlite3.Error, SQLAlchemyError, OSError):
        return out
    return out


def outcome_rows(outcomes: Sequence[Outcome]) -> list[dict[str, Any]]:
    """The outcome table a person reads: one row per file, its name as the wiki spells it (the
    local name when it has no title), how it ended and why — narrow enough for the UI at 1280 px,
    where a table artifact gets ~580 px. Who decided and when is in the summary; the source, SHA-1,
    message and link in :func:`detail_rows`."""
    return [{
        "file": shown_name(o.filename) or PurePath(o.source).name or o.source,
        "outcome": o.outcome,
        "reason": o.reason or "",
    } for o in outcomes]


def detail_rows(outcomes: Sequence[Outcome],
                decisions: Mapping[int, Mapping[str, Any]] | None = None) -> list[dict[str, Any]]:
    """Every fact of every file (the details artifact; what a planned import's report reads)."""
    decisions = decisions or {}
    return [{
        "file": PurePath(o.source).name or o.source,
        "outcome": o.outcome,
        "reason": o.reason or "",
        "target": shown_name(o.filename),
        "decision": describe_decision(decisions.get(o.ledger_id)) if o.ledger_id is not None
        else "",
        "message": o.message or "",
        "link": o.url or "",
        "sha1": o.sha1 or "",
        "bytes": o.size if o.size is not None else "",
        "sent": o.bytes_sent,  # by this run: less than the size when it continued a stash
        "source": o.source,
    } for o in outcomes]


def summary_markdown(outcomes: Sequence[Outcome], *, wiki: str, seconds: float,
                     ledger_path: str, pictures: Pictures | None = None,
                     notes: Sequence[str] = (), waiting: bool = False,
                     decisions: Mapping[int, Mapping[str, Any]] | None = None) -> str:
    """Counts, bytes, time, and the items waiting for a decision with the command to resolve them.

    ``pictures`` (published files by name, stashed ones by key; :func:`mwingest.wiki.pictures.for_outcomes`)
    puts each landed file's thumbnail beside its link, and both pictures beside a file waiting
    for review. ``notes``: warnings found before the upload (a red category), listed too.
    ``waiting``: the run waits for people now: what waits, and where to decide, comes first.
    ``decisions``: the ledger's decisions of this run by item id (:func:`run_decisions`): who
    decided what and when."""
    files, stash = pictures or ({}, {})

    def thumb(picture: Picture | None, alt: str) -> str:
        return f" ![{md.text(alt)}]({md.image_url(picture.thumb_url)})" if picture else ""
    counts = Counter(o.outcome for o in outcomes)
    sent = sum(o.bytes_sent for o in outcomes)
    landed = sum(o.size or 0 for o in outcomes if o.outcome == "uploaded")
    no_sdc = [o for o in outcomes if o.reason == STRUCTURED_DATA_FAILED]
    lines = [f"# Ingest into {md.text(wiki)}", ""]
    pending = [o for o in outcomes if o.outcome == NEEDS_REVIEW]
    if waiting and pending:
        lines += [f"## Waiting for a decision ({len(pending)})",
                  "For each file below open its run **review · NAME** (this run's *Subflow Runs* "
                  "tab), then its menu ⋮ → **Resume**, choose a decision and press Resume:", "",
                  *(f"* **review · {md.text(shown_name(o.filename))}** — {md.text(o.message or o.reason)}"
                    for o in pending), ""]
    lines += [
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
        lines += ["", "## Landed", *(f"* [{md.text(shown_name(o.filename))}]({md.url(o.url)})"
                                     + thumb(files.get(_key(o.filename)), o.filename or "")
                                     for o in uploaded[:50])]
    if pending:
        lines += ["", "## Needs review",
                  "Each waits in the wiki's stash (6 h); decide without re-sending its bytes:", ""]
        lines += [f"* {md.code(o.source)} → **{md.text(shown_name(o.filename))}**: "
                  f"{md.text(o.message or o.reason)} — "
                  + md.code(f"mwingest review {shlex.quote(o.ledger_ref or str(o.ledger_id))}"
                            " --decision skip|publish|rename")
                  + thumb(files.get(_key(o.filename)), "on the wiki")
                  + thumb(stash.get(o.filekey or ""), "this file (stashed)")
                  for o in pending]
    decided = [(o, decisions[o.ledger_id]) for o in outcomes
               if decisions and o.ledger_id is not None and o.ledger_id in decisions]
    if decided:
        lines += ["", "## Decisions", *(f"* **{md.text(shown_name(o.filename))}** "
                                        f"({md.code(PurePath(o.source).name)})"
                                        f": {md.text(describe_decision(d))}" for o, d in decided)]
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


def shown_name(name: str | None) -> str:
    """A file's name as a person reads it: the wiki's title, with spaces (``Harbour 1911.jpg``)."""
    return (name or "").replace("_", " ")


def publish_report(outcomes: Sequence[Outcome], *, wiki: str, seconds: float,
                   ledger_path: str, before_review: bool = False,
                   pictures: Pictures | None = None, notes: Sequence[str] = ()) -> None:
    """The table and the summary artifacts of one run: one of each, updated in place.

    ``before_review``: the report of a run that is about to wait for people; its summary starts
    with what waits and where to decide. The final report replaces both artifacts' content (the
    same artifact, not a new version under the key), so a reader never meets a stale copy.
    """
    from prefect.runtime import flow_run

    run_id = flow_run.get_id()
    decisions = run_decisions(ledger_path, outcomes, run_id)
    table = outcome_rows(outcomes)
    details = detail_rows(outcomes, decisions)
    markdown = summary_markdown(outcomes, wiki=wiki, seconds=seconds, ledger_path=ledger_path,
                                pictures=pictures, notes=notes, waiting=before_review,
                                decisions=decisions)
    counts = Counter(o.outcome for o in outcomes)
    table_note = f"one row per file ({len(outcomes)})"
    details_note = f"every fact of every file ({len(outcomes)}): SHA-1, message, link, source"
    summary_note = (f"waits for {counts[NEEDS_REVIEW]} decision(s)" if before_review
                    else "batch summary")
    artifacts = [(TABLE_KEY, json.dumps(table, default=str), table_note,
                  lambda: create_table_artifact(key=TABLE_KEY, table=table,
                                                description=table_note)),
                 (DETAILS_KEY, json.dumps(details, default=str), details_note,
                  lambda: create_table_artifact(key=DETAILS_KEY, table=details,
                                                description=details_note)),
                 (SUMMARY_KEY, markdown, summary_note,
                  lambda: create_markdown_artifact(key=SUMMARY_KEY, markdown=markdown,
                                                   description=summary_note))]
    for key, data, note, create in artifacts:  # each bounded: a lost server skips the rest
        best_effort(f"writing the {key} artifact",
                    lambda k=key, d=data, n=note, c=create: _update(run_id, k, d, n) or c())


def _update(run_id: str | None, key: str, data: str, description: str) -> bool:
    """Replace the content of this run's artifact ``key``; False when the run has none yet."""
    if not run_id:
        return False
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.actions import ArtifactUpdate
    from prefect.client.schemas.filters import (
        ArtifactFilter,
        ArtifactFilterFlowRunId,
        ArtifactFilterKey,
    )

    with get_client(sync_client=True) as client:
        found = client.read_artifacts(artifact_filter=ArtifactFilter(
            flow_run_id=ArtifactFilterFlowRunId(any_=[UUID(str(run_id))]),
            key=ArtifactFilterKey(any_=[key])))
        if not found:
            return False
        for artifact in found:  # one, unless an older version made a copy
            client.update_artifact(artifact.id, ArtifactUpdate(data=data,
                                                               description=description))
    return True


def run_name(sources: Sequence[str], count: int) -> str:
    """A run's name from what it imports: ``import · scans/ · 3 files`` (a folder ends in ``/``,
    a manifest or URL by its last part; more than one source: the first and how many more)."""
    def short(source: str) -> str:
        name = PurePath(source.rstrip("/")).name or source
        return name + "/" if Path(source).is_dir() else name
    what = short(sources[0]) if sources else "files"
    if len(sources) > 1:
        what += f" + {len(sources) - 1} more"
    return f"import · {what} · {count} file{'s' * (count != 1)}"


def name_this_run(sources: Sequence[str], count: int) -> None:
    """Name the current flow run after what it imports (the run list then says which folder or
    manifest each run was); a failure to rename leaves Prefect's name."""
    from prefect.client.orchestration import get_client
    from prefect.runtime import flow_run

    run_id = flow_run.get_id()
    if not run_id:
        return

    def rename() -> None:
        with get_client(sync_client=True) as client:
            client.update_flow_run(UUID(str(run_id)), name=run_name(sources, count))

    best_effort("naming the run", rename)  # a name is not worth failing the batch for
