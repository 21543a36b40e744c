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

The job holds no flags besides the row: the chunk state, the fetched URL and the bytes sent are
caches of the current run, rebuilt from the row when missing. (One module for the whole machine,
a little over the usual size: its states read best side by side.)
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
    AlreadyThereError,
    ApiError,
    InputError,
    LoginRefusedError,
    PermanentApiError,
    ResyncError,
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
from mwingest.job import decisions, intake, refusals, structured
from mwingest.job.context import JobContext
from mwingest.job.recovery import find_landed
from mwingest.job.refusalsteps import RefusalSteps
from mwingest.ledger.ledger import OUTCOMES, LedgerItem, RowLeasedError, State
from mwingest.wiki import chunked, names, upload

__all__ = ["Job", "JobContext"]
log = logging.getLogger("mwingest.job.machine")
#: Marks a log record that states a file's outcome: a console that prints outcomes itself (the
#: CLI) leaves these out, so each outcome is shown once.
OUTCOME_LOG = {"mwingest_outcome": True}
_RENAMEABLE = ("illegal-filename", "filename-toolong", "filetype-missing", "filename-tooshort")


class Job(RefusalSteps):
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
        self._renewed = datetime.now(UTC)
        self._leased = False

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
        job._leased = ctx.claim(row.id)
        if not job._leased:
            job._verdict(FAILED, "leased", "another run is working on this file")
        return job

    # --- where it stands -------------------------------------------------------------------------
    @property
    def state(self) -> State | None:
        return self.row.state if self.row is not None else None

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
        if isinstance(exc, LoginRefusedError):  # the batch stops, the flow says so once: the
            self.verdict = (FAILED, reason_code(exc), str(exc))  # row stays (key, offset, intent)
            return None
        if self.row is None:
            return self._verdict(FAILED, reason_code(exc), str(exc))
        if isinstance(exc, RowLeasedError):  # taken over: the row is the other run's to write
            self._leased = False
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
        if self.row is not None and self.done and self._leased:
            self._leased = False
            try:
                self.ctx.ledger.release(self.row.id, self.ctx.owner)
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
        if self.row is not None:
            self._leased = self.ctx.claim(self.row.id)
            if not self._leased:
                return self._verdict(FAILED, "leased", "another run is working on this file")
        self.verdict = None
        self._move(State.STASHED, "decided", f"{action} by {by}",
                   decision=decisions.record(action, name=new_name, by=by, note=note))

    # --- 1. validate -----------------------------------------------------------------------------
    def _validate(self) -> None:
        ctx = self.ctx
        checked = intake.check(self.item, ctx.rules, ctx.options, ctx.allow)
        self.local_copy, self.final_url = checked.local_copy, checked.final_url
        if not checked.ok and (not checked.record or checked.sha1 is None):
            return self._verdict(checked.outcome or REJECTED, checked.reason or "invalid",
                                 checked.message or "")
        assert checked.sha1 and checked.target
        try:
            row = ctx.ledger.begin(ctx.wiki, self.item.source, sha1=checked.sha1,
                                   size=checked.size, target=checked.target, run_id=ctx.run_id,
                                   lease=ctx.lease, account=ctx.account, key=self.item.key)
        except RowLeasedError as exc:
            self.row = exc.row
            return self._verdict(FAILED, "leased", "another run is working on this file "
                                 f"({exc.row.state}); try again when it has finished")
        self.row, self._leased = row, True
        if not checked.ok:
            if row.state in (State.UPLOADED, State.SKIPPED, State.PUBLISHED):
                return self._verdict(REJECTED, checked.reason or "invalid", checked.message or "")
            if row.state is not State.REJECTED:
                self._move(State.REJECTED, checked.reason, checked.message)
            return
        if structured.again(row, self._params()):
            return self._move(State.DESCRIBING, "resume", "writing its structured data",
                              params=self._params())
        if row.state in (State.UPLOADED, State.SKIPPED):
            why = "already-uploaded" if row.state is State.UPLOADED else row.reason or "skipped"
            return self._verdict(SKIPPED, why, f"done in an earlier run ({row.state})")
        if row.state is State.REJECTED and self._input_changed(row):
            row = self._reopen(row)
            if row.state is State.STASHED:
                return
        if row.state is State.REJECTED:  # its bytes are not sent again while nothing changed
            return self._verdict(REJECTED, row.reason or "rejected", row.message or "")
        if row.state is State.PENDING:
            self._move(State.VALIDATED, params=self._params())
            self._precheck(checked)
            return
        self._resume(row)

    def _precheck(self, checked: intake.Checked) -> None:
        """Big new files: are the bytes already on the wiki? (a small one costs about as much to send)"""
        from mwingest.checks.validate import find_duplicates  # Pillow/magic: imported lazily

        if checked.size < self.ctx.options.precheck_min_bytes or checked.sha1 == URL_SHA1:
            return
        dupes = find_duplicates(self.ctx.session, checked.sha1 or "")
        if names.title_key(checked.target or "") in {names.title_key(d) for d in dupes}:
            self._move(State.SKIPPED, "already-on-wiki", f"File:{checked.target} already holds "
                       "these bytes", final_name=checked.target)
        elif dupes and self.ctx.options.policy.action_for("duplicate") is Action.SKIP:
            self._move(State.SKIPPED, "duplicate", "the same bytes are already on the wiki as "
                       + ", ".join(dupes), warnings={"duplicate": dupes})

    def _resume(self, row: LedgerItem) -> None:
        """An unfinished row from an earlier run: continue where the wiki stands."""
        state = row.state
        if state is State.FAILED:
            state = self.ctx.ledger.failed_from(row.id) or State.VALIDATED
        fresh = row.is_resumable(max_age=self.ctx.stash_max_age)
        fields: dict[str, Any] = {}
        if state is State.NEEDS_REVIEW:  # decide again: this run's policy may publish or rename
            state, fields = State.STASHED, {"decision": None}
        if (state is State.STASHED and not fresh) or (
                state is State.STASHING and row.filekey and not fresh):
            state = State.VALIDATED  # the wiki has dropped that stash row (or soon will)
        # A chunk session whose key was never recorded (the first answer was lost) may still be
        # on the wiki: resuming asks the user's stash for it before sending from byte 0.
        if state in (State.PUBLISHING, State.PUBLISHED, State.STASHING, State.STASHED,
                     State.DESCRIBING):
            log.info("%s: continuing from %s (an earlier run stopped there)", self.item.label, state)
            if (state in (State.STASHING, State.STASHED) or state is State.DESCRIBING
                    and self.item.sdc) and row.params != self._params():
                # Nothing published yet: the row keeps this run's text, comment and tags, so a
                # later decision (``mwingest review``) publishes them, not an earlier run's.
                fields["params"] = self._params()
            if row.state is not state or "params" in fields:
                self._move(state, "resume", f"continuing from {state}", **fields)
        else:
            self._move(State.VALIDATED, "retry", "starting over", params=self._params())

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
            self.chunk = chunked.send_next_chunk(session, self.chunk,
                                                 min_chunk_size=self.ctx.rules.min_chunk_size,
                                                 async_=self.ctx.options.async_assembly)
            self.bytes_sent += self.chunk.bytes_sent - before
        if self.chunk.done:
            self._move(State.STASHED, filekey=self.chunk.final_filekey,
                       stash_created_at=datetime.now(UTC), warnings=None)
        else:
            self._record_chunk()

    def _record_chunk(self) -> None:
        assert self.chunk is not None and self.row is not None
        if self.chunk.filekey:
            self.ctx.ledger.record_chunk(self.row.id, filekey=self.chunk.filekey,
                                         offset=self.chunk.offset, chunk_size=self.chunk.chunk_size,
                                         owner=self.ctx.owner if self._leased else None)
            self.row = self.ctx.ledger.get(self.row.id)

    # --- 3. publish, decide ----------------------------------------------------------------------
    def _publish_or_decide(self) -> None:
        """A stashed file: publish it, or carry out what the policy or a person decided."""
        row = self._row()
        move = decisions.next_move(row, self.ctx.options.policy, self.ctx.rules,
                                   is_free=lambda n: upload.file_info(self.ctx.session, n) is None)
        if move.action is not None:
            return self.decide(move.action, by="policy")
        if move.name is None:
            return self._move(State(move.outcome or FAILED), move.reason, move.message)
        self._publish(move.name, ignorewarnings=move.ignorewarnings, decision=move.decision)

    def _publish(self, name: str, *, ignorewarnings: bool, op: str = "publish",
                 decision: dict[str, Any] | None = None) -> None:
        """Record the intent, send the one write, record what the wiki answered."""
        row = self._row()
        intent = {"op": op, "name": name, "ignorewarnings": ignorewarnings,
                  "at": datetime.now(UTC).isoformat(timespec="seconds")}
        fields: dict[str, Any] = {"intent": intent}
        if decision is not None:
            fields["decision"] = decision
        self._move(State.PUBLISHING, **fields)
        self._write(row.filekey, intent)

    def _write(self, filekey: str | None, intent: dict[str, Any]) -> None:
        row, session, name = self._row(), self.ctx.session, str(intent["name"])
        kwargs = {**self._params(), "ignorewarnings": bool(intent.get("ignorewarnings"))}
        kwargs.pop("sdc", None)  # written after the landing, not with the upload
        try:
            if filekey:
                result = upload.publish_stash(session, filekey, name, **kwargs)
            elif self.copy_upload:
                if not self.final_url:  # never hand the wiki an unwalked URL
                    walked = intake.walk_url(self.item.source, self.ctx.options, self.ctx.rules,
                                             self.ctx.allow)
                    if not walked.ok:
                        return self._move(State(walked.outcome or FAILED), walked.reason,
                                          walked.message)
                    self.final_url = walked.final_url
                result = upload.upload_from_url(session, self.final_url or self.item.source, name,
                                                **kwargs)
            else:
                if not Path(self.path).is_file():
                    return self._move(State.FAILED, "source-missing", f"{self.path} is gone")
                result = self._send_whole(name, kwargs)
        except AlreadyThereError as exc:
            return self._move(State.SKIPPED, "nochange", exc.info or "already the current version",
                              final_name=name)
        except ResyncError as exc:
            if exc.code != "uploadstash-file-not-found" or not self._same_bytes():
                raise
            log.warning("%s: the wiki's stash copy is gone; sending the file again", self.item.label)
            decision = dict(row.decision) if row.decision else None
            if decision and decision.get("tried"):  # that name was never tried: the key was gone
                decision["tried"] = decision["tried"][:-1]
            return self._move(State.VALIDATED, "stash-gone", "the stash copy expired; sending again",
                              decision=decision)
        except InputError as exc:
            key = exc.filekey or filekey
            clean = names.sanitise(name, self.ctx.rules) if exc.code in _RENAMEABLE else name
            if key and clean != name:  # a name the wiki refused with a key: its sanitised form
                return self._move(State.STASHED, exc.code, f"trying File:{clean}",
                                  filekey=key, target=clean, warnings=None)
            return self._move(State.FAILED if key else State.REJECTED, exc.code, exc.info,
                              filekey=key)
        except PermanentApiError as exc:  # an extension's refusal (AbuseFilter, blacklists …)?
            refusal = refusals.classify(exc, name)
            if refusal is None:
                raise
            return self._refused(refusal)
        self._answered(result, name)

    def _answered(self, result: upload.UploadResult, name: str) -> None:
        row = self._row()
        if result.kind is upload.ResultKind.WARNING:
            return self._move(State.STASHED, "warned", ", ".join(result.warnings.codes()),
                              filekey=result.filekey or row.filekey,
                              warnings=result.warnings.as_dict())
        if result.kind is not upload.ResultKind.SUCCESS or not result.filename:
            raise ApiError("unexpected-result", f"publish answered {result.kind}")
        self.landed = dict(result.imageinfo)
        if self.landed.get("sha1") and self.landed.get("size") is not None:
            return self._check_landed(result.filename, self.landed)
        self._move(State.PUBLISHED, final_name=result.filename)

    def _recover_publish(self) -> None:
        """A publish may have landed while its answer (or the run) was lost: look before resending."""
        row = self._row()
        intent = row.intent or {}
        known = (row.warnings or {}).get("duplicate") or []
        renamed = (row.decision or {}).get("action") == Action.RENAME.value
        found = find_landed(self.ctx.session, intent, row.sha1, known, any_name=renamed)
        if found is not None:
            log.info("%s: the earlier publish landed as File:%s", self.item.label, found["name"])
            self.landed = found
            return self._check_landed(found["name"], found)
        self._write(row.filekey, dict(intent))

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
                                              owner=self.ctx.owner if self._leased else None,
                                              **fields)
        if to in OUTCOMES:
            self._leased = False  # the ledger ended the lease with the move
            level = logging.INFO if to in (State.UPLOADED, State.SKIPPED) else logging.WARNING
            log.log(level, "%s: %s (%s) %s", self.item.label, to, reason, message or "",
                    extra=OUTCOME_LOG)

    def _verdict(self, outcome: str, reason: str, message: str) -> None:
        self.verdict = (outcome, reason, message)
        level = logging.INFO if outcome == SKIPPED else logging.WARNING
        log.log(level, "%s: %s (%s) %s", self.item.label, outcome, reason, message,
                extra=OUTCOME_LOG)

    def _renew(self) -> None:
        """Keep the lease while working (every third of its lifetime)."""
        if self.row is None or datetime.now(UTC) - self._renewed < self.ctx.lease_ttl / 3:
            return
        self._renewed = datetime.now(UTC)
        if not self.ctx.claim(self.row.id):
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
