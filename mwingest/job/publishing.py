"""Step 3 of a file's journey: publish it (from the stash, from a URL, or whole in one request),
or carry out what the policy or a person decided about its warnings.

A mixin of :class:`mwingest.job.machine.Job`. Each publish is the one wiki write whose effect can
be lost with its answer, so the row records the *intent* first (``publishing``), and a job that
finds a row in ``publishing`` asks the wiki whether it landed before it sends anything again
(:func:`mwingest.job.recovery.find_landed`).
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mwingest.base.errors import AlreadyThereError, ApiError, InputError, PermanentApiError, ResyncError
from mwingest.base.items import FAILED
from mwingest.base.policy import Action
from mwingest.job import decisions, intake, refusals
from mwingest.job.recovery import find_landed
from mwingest.ledger.ledger import LedgerItem, State
from mwingest.wiki import names, upload

if TYPE_CHECKING:
    from mwingest.base.items import IngestItem
    from mwingest.job.context import JobContext

log = logging.getLogger("mwingest.job.machine")
#: Codes for a name the wiki refused that its sanitised form may cure (tried once, same stash key).
_RENAMEABLE = ("illegal-filename", "filename-toolong", "filetype-missing", "filename-tooshort")


class Publishing:
    """The publish, its intent, the wiki's answer, and the recovery of a lost answer."""

    ctx: JobContext
    item: IngestItem
    row: LedgerItem | None
    final_url: str | None
    landed: dict[str, Any]

    # Provided by the job (mwingest.job.machine.Job).
    path: Any
    copy_upload: Any

    def _row(self) -> LedgerItem:
        raise NotImplementedError

    def _move(self, to: State, reason: str | None = None, message: str | None = None,
              **fields: Any) -> None:
        raise NotImplementedError

    def _params(self) -> dict[str, Any]:
        raise NotImplementedError

    def _same_bytes(self) -> bool:
        raise NotImplementedError

    def _check_landed(self, name: str, info: dict[str, Any]) -> None:
        raise NotImplementedError

    def decide(self, action: Action | str, *, new_name: str | None = None, by: str = "reviewer",
               note: str | None = None) -> None:
        raise NotImplementedError

    def _publish_or_decide(self) -> None:
        """A stashed file: publish it, or carry out what the policy or a person decided."""
        row = self._row()
        if (row.filekey is None and row.decision and not self.copy_upload
                and row.size > self.ctx.options.chunk_size):
            # Decided on a file the wiki kept no copy of (refused as its chunks were put
            # together): it goes up again in chunks, the decision kept for the publish.
            return self._move(State.VALIDATED, "send-again", "the wiki kept no copy; sending "
                              "it again in chunks", decision=dict(row.decision))
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
