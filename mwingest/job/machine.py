"""One file's journey as a state machine whose state is its ledger row.

Why one object and not steps that hand flags to each other: a file's life used to live in three
places (ledger state, flags on the work item, the chunk state), so a run that died between two of
them could not tell what the wiki had done. Here the ledger row *is* the state::

    pending ─▶ validated ─▶ stashing(filekey, offset) ─▶ stashed(filekey[, warnings, decision])
                   │                                        │        ▲ (a warning, a new name)
                   └──────────────(direct upload)──────▶ publishing(intent) ─▶ published ─▶ uploaded
                                                                  (structured data: ─▶ describing ─▶)
    any of them ─▶ needs-review | skipped | rejected | failed (failed keeps key, offset, intent)

:meth:`Job.step` advances a job by **at most one wiki write** and writes its result to the ledger
before it returns. Before a write whose effect may be lost (a publish, a rename) the row records
the *intent*; a job that finds itself in ``publishing`` asks the wiki whether it landed
(:mod:`mwingest.job.recovery`) before sending anything. A chunk session's key and offset are recorded
after every chunk and checked against the wiki's (``checkstatus``, the user's stash) when a job is
rebuilt from the ledger. Resume is the same loop, started from the row.

After the verified landing, a batch with structured data (captions, statements on the file's
MediaInfo entity) goes ``published ─▶ describing(intent) ─▶ uploaded`` (:mod:`mwingest.job.structured`:
one ``wbeditentity`` per attempt, each attempt reading the entity first); a failure there keeps
the landing: ``uploaded`` with reason ``structured-data-failed``, taken up again by a re-run.

The job holds no flags besides the row: whether this run holds the lease is the row's lease
owner (:attr:`Job.held`), where a failed file failed is the row's ``failed_from``; the chunk
state, the fetched URL and the bytes sent are caches of the current run, rebuilt from the row
when missing. ``verdict`` is not the file's state but this run's answer where it leaves the row
as it is (a file refused before the ledger knew it, a row another run holds, a file finished in
an earlier run, a batch stop). This module holds the states, the
step function and the moves; the steps of each stage read on their own page, as mixins of
:class:`Job`: :mod:`~mwingest.job.admission` (validate, pre-check, resume),
:mod:`~mwingest.job.publishing` (publish, decide, recover a lost answer) and
:mod:`~mwingest.job.refusalsteps` (an extension's refusal).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from mwingest.base.errors import (
    BatchStoppedError,
    PermanentApiError,
    reason_code,
)
from mwingest.base.items import (
    FAILED,
    NEEDS_REVIEW,
    REJECTED,
    SKIPPED,
    IngestItem,
    Outcome,
    shown_title,
)
from mwingest.base.options import URL_SHA1
from mwingest.base.policy import Action
from mwingest.job import decisions, intake, leasekeeper, refusals, structured
from mwingest.job.admission import Admission
from mwingest.job.context import JobContext
from mwingest.job.publishing import Publishing
from mwingest.job.refusalsteps import RefusalSteps
from mwingest.ledger.ledger import OUTCOMES, LedgerItem, RowLeasedError, State
from mwingest.wiki import chunked, upload

__all__ = ["Job", "JobContext"]
log = logging.getLogger("mwingest.job.machine")
#: Marks a log record that states a file's outcome: a console that prints outcomes itself (the
#: CLI) leaves these out, so each outcome is shown once.
OUTCOME_LOG = {"mwingest_outcome": True}


class Job(Admission, Publishing, RefusalSteps):
    """One file on one wiki. Call :meth:`step` until :attr:`done`; :meth:`outcome` says how it ended."""

    def __init__(self, ctx: JobContext, item: IngestItem, row: LedgerItem | None = None) -> None:
        self.ctx, self.item, self.row = ctx, item, row
        #: An outcome the row does not carry: a refusal before the ledger knew the file, a row
        #: another run holds, a file finished in an earlier run (its row stays as it was).
        self.verdict: tuple[str, str, str] | None = None
        self.local_copy: str | None = None  # local mode: the fetched URL's temporary file
        self.final_url: str | None = None  # copy upload: the checked end of the redirects
        self.chunk: chunked.ChunkState | None = None
        self.bytes_sent = 0
        self.landed: dict[str, Any] = {}  # the wiki's imageinfo of our version, once known
        self._renewed = datetime.now(UTC)  # this process's renewal timer, not the file's state

    @classmethod
    def from_ledger(cls, ctx: JobContext, item_id: int) -> Job:
        """A job rebuilt from its row alone (a late review decision, another worker's row)."""
        row = ctx.ledger.get(item_id)
        params = row.params or {}
        key = row.ident.removeprefix("manifest:") if row.ident.startswith("manifest:") else None
        item = IngestItem(source=row.source, filename=row.target, text=params.get("text"),
                          comment=params.get("comment"), tags=tuple(params.get("tags") or ()),
                          key=key, sdc=json.dumps(params["sdc"]) if params.get("sdc") else None)
        job = cls(ctx, item, row)
        if not job._take():
            job._verdict(FAILED, "leased", "another run is working on this file")
        return job

    # --- where it stands -------------------------------------------------------------------------
    @property
    def state(self) -> State | None:
        return self.row.state if self.row is not None else None

    @property
    def held(self) -> bool:
        """This run holds the row's lease: read from the row, which every claim re-reads and
        every move to an outcome (the ledger ends the lease) or release hands back."""
        return self.row is not None and self.row.lease_owner == self.ctx.owner

    @property
    def done(self) -> bool:
        return self.verdict is not None or (self.row is not None and self.row.state in OUTCOMES)

    @property
    def next_is_chunk(self) -> bool:
        """The next step sends (or waits for) one chunk: the flow runs it as its own task."""
        return not self.done and self.state is State.STASHING

    @property
    def copy_upload(self) -> bool:
        return self.item.is_url and self.ctx.options.url_mode == "wiki"

    @property
    def path(self) -> str:
        return self.local_copy or self.item.source

    @property
    def progress(self) -> tuple[int, int]:
        """(bytes the wiki holds, size): the offset while chunks go in, all once sent."""
        row = self.row
        if row is None or row.sha1 == URL_SHA1:
            return 0, 0
        if self.state is State.STASHING:
            return (self.chunk.offset if self.chunk is not None else row.offset or 0), row.size
        if self.done or self.state in (State.STASHED, State.PUBLISHING, State.PUBLISHED,
                                       State.DESCRIBING):
            return row.size, row.size
        return 0, row.size

    def label(self) -> str:
        if self.chunk is not None and not self.chunk.done:
            return f"chunk {self.chunk.chunk_number}/{self.chunk.chunk_count}"
        if self.state is State.STASHING:
            return "chunk (resume)"
        return str(self.state or "validate")

    def outcome(self) -> Outcome:
        """How the file ended (or stands), in the vocabulary of every report."""
        row = self.row
        outcome, reason, message = self.verdict or (
            (row.state.value, row.reason, row.message) if row else (FAILED, "unfinished", None))
        sha1 = self.landed.get("sha1") or (row.sha1 if row else None)
        return Outcome(
            source=self.item.source,
            # A refused file has no name on the wiki to show (the one it asked for is in the row).
            filename=None if outcome == REJECTED else (
                (row.final_name or row.target) if row else intake.default_name(self.item)),
            outcome=outcome, reason=reason, message=message,
            sha1=None if sha1 == URL_SHA1 else sha1,
            size=(row.size or None) if row and row.sha1 != URL_SHA1 else self.landed.get("size"),
            url=self.landed.get("descriptionurl"),
            # Where the wiki keeps the bytes of a file that did not land (its stash key).
            filekey=row.filekey if row and outcome in (NEEDS_REVIEW, REJECTED, FAILED) else None,
            bytes_sent=self.bytes_sent, ledger_id=row.id if row else None,
            ledger_ref=row.ref if row else None)

    # --- the step function ---------------------------------------------------------------------
    def step(self) -> None:
        """Advance by at most one wiki write; the ledger holds the result when this returns.

        Transient faults are raised (the caller's retry policy repeats the step, which starts by
        finding out what the wiki did); a permanent one is recorded as ``failed`` and raised.
        """
        if self.done:
            return
        handler: Callable[[], None] = {
            None: self._validate, State.PENDING: self._validate, State.VALIDATED: self._send,
            State.STASHING: self._chunk, State.STASHED: self._publish_or_decide,
            State.PUBLISHING: self._recover_publish, State.PUBLISHED: self._verify,
            State.DESCRIBING: lambda: structured.describe(self),
        }[self.state]
        self._renew()
        if not self.done:
            if self.row is None or not self.held:
                handler()
            else:  # a chunk or a publish may outlast the lease: keep it while the step runs
                row_id = self.row.id
                with leasekeeper.kept(lambda: self.ctx.claim(row_id), self.ctx.lease_ttl,
                                      on_lost=self._lost_lease, label=self.item.label):
                    handler()
        if self.done:
            self.finish()

    def run(self, retry: Callable[[Callable[[], None]], None] | None = None) -> Outcome:
        """Drive the job to its end in this thread (plain Python; flows run chunks as tasks)."""
        try:
            while not self.done:
                (retry or (lambda f: f()))(self.step)
        except Exception as exc:  # noqa: BLE001 - one file's failure never stops the batch
            self.fail(exc)
        finally:
            self.finish()
        return self.outcome()

    def fail(self, exc: BaseException) -> None:
        """End the file ``failed`` with the error's reason; the row keeps key, offset and intent."""
        if self.done:
            return
        if isinstance(exc, BatchStoppedError):  # the batch stops, the flow says so once: the row
            self.verdict = (FAILED, reason_code(exc), str(exc))  # stays (key, offset, intent)
            return None
        if self.row is None:
            return self._verdict(FAILED, reason_code(exc), str(exc))
        if isinstance(exc, RowLeasedError):  # taken over: the row is the other run's to write
            self.row = exc.row
            return self._verdict(FAILED, "leased", "another run took this file over")
        try:
            if self.state is State.DESCRIBING:  # the file landed: it stays uploaded, and says so
                return structured.fail(self, exc)
            self._move(State.FAILED, reason_code(exc), str(exc))
        except Exception as ledger_exc:  # noqa: BLE001 - never silent: the outcome says it
            log.error("%s: the ledger could not record the failure (%s): %s", self.item.label,
                      exc, ledger_exc)
            self._verdict(FAILED, "ledger-error", f"{exc}; and the ledger failed: {ledger_exc}")

    def finish(self) -> None:
        """Free what this run held: the lease, a fetched URL's temporary copy (the wiki has it),
        and all of the wiki's answer but what the outcome reports (a batch keeps every job)."""
        if self.done:
            self.chunk = None
            self.landed = {k: v for k, v in self.landed.items()
                           if k in ("sha1", "size", "descriptionurl")}
        if self.local_copy:
            Path(self.local_copy).unlink(missing_ok=True)
            self.local_copy = None
        if self.row is not None and self.done and self.held:
            try:
                self.ctx.ledger.release(self.row.id, self.ctx.owner)
                self.row = replace(self.row, lease_owner=None, lease_until=None)  # what it wrote
            except BatchStoppedError:  # the ledger's disk is full: the flow says so once
                pass
            except Exception as exc:  # noqa: BLE001 - a lease runs out by itself
                log.error("%s: could not release the ledger lease: %s", self.item.label, exc)

    def decide(self, action: Action | str, *, new_name: str | None = None, by: str = "reviewer",
               note: str | None = None) -> None:
        """Record a person's (or the policy's) decision on a warned file; the next steps carry it out."""
        action = Action(action)
        if action is Action.REVIEW:
            return
        if self.state not in (State.NEEDS_REVIEW, State.STASHED):
            raise ValueError(f"ledger item {self.row and self.row.id} is {self.state}, "
                             "not waiting for a decision")
        if self.row is not None and not self._take():
            return self._verdict(FAILED, "leased", "another run is working on this file")
        self.verdict = None
        self._move(State.STASHED, "decided", f"{action} by {by}",
                   decision=decisions.record(action, name=new_name, by=by, note=note))

    # --- 2. send the bytes -------------------------------------------------------------------------
    def _send(self) -> None:
        row = self._row()
        if not self.copy_upload and row.size > self.ctx.options.chunk_size:
            self._move(State.STASHING, chunk_size=self.ctx.options.chunk_size)
            self.chunk = chunked.new_state(self.path, row.target, row.sha1,
                                           chunk_size=self.ctx.options.chunk_size,
                                           filesize=row.size)
            return
        self._publish(row.target, ignorewarnings=False, op="upload")

    def _chunk(self) -> None:
        row, session = self._row(), self.ctx.session
        if self.chunk is None:  # rebuilt from the ledger: ask the wiki where it stands
            state = chunked.new_state(self.path, row.target, row.sha1,
                                      chunk_size=row.chunk_size or self.ctx.options.chunk_size,
                                      filesize=row.size)
            self.chunk = chunked.resume(session, replace(state, filekey=row.filekey,
                                                         offset=row.offset))
            if not self.chunk.done:
                log.info("%s: the wiki holds %d of %d bytes", self.item.label, self.chunk.offset,
                         row.size)
                return self._record_chunk()
        elif self.chunk.polling:
            self.chunk = chunked.finish_async(session, self.chunk)
        else:
            before = self.chunk.bytes_sent
            try:
                self.chunk = chunked.send_next_chunk(session, self.chunk,
                                                     min_chunk_size=self.ctx.rules.min_chunk_size,
                                                     async_=self.ctx.options.async_assembly)
            except PermanentApiError as exc:  # refused as the chunks were put together?
                refusal = refusals.classify(exc, row.target)
                if refusal is None:
                    raise
                self.bytes_sent += row.size - self.chunk.offset  # the last chunk arrived
                return self._refused_at_assembly(refusal)
            self.bytes_sent += self.chunk.bytes_sent - before
        if self.chunk.done:
            self._move(State.STASHED, filekey=self.chunk.final_filekey,
                       stash_created_at=self.ctx.ledger.now(), warnings=None)
        else:
            self._record_chunk()

    def _record_chunk(self) -> None:
        assert self.chunk is not None and self.row is not None
        if self.chunk.filekey:
            self.ctx.ledger.record_chunk(self.row.id, filekey=self.chunk.filekey,
                                         offset=self.chunk.offset, chunk_size=self.chunk.chunk_size,
                                         owner=self.ctx.owner if self.held else None)
            self.row = self.ctx.ledger.get(self.row.id)

    # --- 4. verify -------------------------------------------------------------------------------
    def _verify(self) -> None:
        row = self._row()
        info = upload.file_info(self.ctx.session, row.final_name or row.target)
        if info is None:
            return self._move(State.FAILED, "not-landed", f"File:{row.final_name} does not exist "
                              "after publishing")
        self.landed = info
        self._check_landed(row.final_name or row.target, info)

    def _check_landed(self, name: str, info: dict[str, Any]) -> None:
        """Acceptance is not integrity: the wiki's current version must have our SHA-1 and size."""
        row = self._row()
        if row.sha1 != URL_SHA1:
            if str(info.get("sha1", "")).lower() != row.sha1:
                return self._move(State.FAILED, "sha1-mismatch", f"File:{name} has SHA-1 "
                                  f"{info.get('sha1')}, expected {row.sha1}", final_name=name)
            if info.get("size") is not None and int(info["size"]) != row.size:
                return self._move(State.FAILED, "size-mismatch", f"File:{name} has "
                                  f"{info['size']} bytes, expected {row.size}", final_name=name)
        reason = f"decided-{row.decision['action']}" if row.decision else "verified"
        if structured.wanted(row):  # captions and statements next (mwingest.job.structured)
            return self._move(State.DESCRIBING, reason, f"landed as File:{shown_title(name)} "
                              "(SHA-1 verified); writing its structured data", final_name=name)
        self._move(State.UPLOADED, reason,
                   f"landed as File:{shown_title(name)} (SHA-1 verified)", final_name=name)

    # --- helpers ---------------------------------------------------------------------------------
    def _row(self) -> LedgerItem:
        assert self.row is not None, "the job has no ledger row yet"
        return self.row

    def _move(self, to: State, reason: str | None = None, message: str | None = None,
              **fields: Any) -> None:
        row = self._row()
        self.row = self.ctx.ledger.transition(row.id, to, reason=reason, message=message,
                                              flow_run_id=self.ctx.run_id,
                                              owner=self.ctx.owner if self.held else None,
                                              **fields)
        if to in OUTCOMES:  # the ledger ended the lease with the move: the row says so
            level = logging.INFO if to in (State.UPLOADED, State.SKIPPED) else logging.WARNING
            log.log(level, "%s: %s (%s) %s", self.item.label, to, reason, message or "",
                    extra=OUTCOME_LOG)

    def _verdict(self, outcome: str, reason: str, message: str) -> None:
        self.verdict = (outcome, reason, message)
        level = logging.INFO if outcome == SKIPPED else logging.WARNING
        log.log(level, "%s: %s (%s) %s", self.item.label, outcome, reason, message,
                extra=OUTCOME_LOG)

    def _take(self) -> bool:
        """Claim the row's lease; the row is read again, so :attr:`held` says what the ledger holds."""
        assert self.row is not None
        claimed = self.ctx.claim(self.row.id)
        self.row = self.ctx.ledger.get(self.row.id)
        return claimed and self.held

    def _lost_lease(self) -> None:
        """Another run took the row over mid-step: the ledger refuses this run's next write."""
        log.warning("%s: another run took this file over during a step", self.item.label)

    def _renew(self) -> None:
        """Keep the lease while working (every third of its lifetime)."""
        if self.row is None or datetime.now(UTC) - self._renewed < self.ctx.lease_ttl / 3:
            return
        self._renewed = datetime.now(UTC)
        if not self._take():
            self._verdict(FAILED, "leased", "another run took this file over")

    def _params(self) -> dict[str, Any]:
        opts, item = self.ctx.options, self.item
        return {"comment": item.comment or opts.comment, "text": item.text or opts.text,
                "tags": list(item.tags or opts.tags) or None, "watchlist": opts.watchlist,
                **structured.params_of(item.sdc)}

    def _same_bytes(self) -> bool:
        from mwingest.base.hashing import sha1_file

        path = Path(self.path)
        return (not self.copy_upload and self.row is not None and path.is_file()
                and sha1_file(path) == self.row.sha1)
