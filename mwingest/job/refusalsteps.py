"""The job's steps around an extension's refusal of an upload (:mod:`mwingest.job.refusals`).

A mixin of :class:`mwingest.job.machine.Job`, apart so the machine reads as its states: a direct
upload whose bytes count as sent whatever the wiki answers, the refusal recorded with the wiki's
stash key, the one re-submission of a warning a person decided to publish, and a refused row
opened again when its text changed (from its kept stash copy while the wiki holds it).
"""

from __future__ import annotations

import shlex
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from mwingest.base.errors import ApiError, ResponseLostError
from mwingest.base.items import NEEDS_REVIEW
from mwingest.base.policy import Action
from mwingest.job import refusals
from mwingest.ledger.ledger import LedgerItem, State
from mwingest.wiki import upload

if TYPE_CHECKING:
    from mwingest.job.context import JobContext


class RefusalSteps:
    """What :class:`~mwingest.job.machine.Job` does when an extension refuses its upload."""

    ctx: JobContext
    row: LedgerItem | None
    bytes_sent: int

    # Provided by the job.
    path: Any

    def _row(self) -> LedgerItem:
        raise NotImplementedError

    def _move(self, to: State, reason: str | None = None, message: str | None = None,
              **fields: Any) -> None:
        raise NotImplementedError

    def _params(self) -> dict[str, Any]:
        raise NotImplementedError

    def _input_changed(self, row: LedgerItem) -> bool:
        """A row the wiki refused for its text or its name's rules, sent with other text since."""
        return (row.reason in refusals.INPUT_REFUSALS and row.params is not None
                and row.params != self._params())

    def _reopen(self, row: LedgerItem) -> LedgerItem:
        """The refused row again, from its kept stash copy while the wiki still holds it."""
        stamp = row.stash_created_at
        fresh = bool(row.filekey and stamp and self.ctx.ledger.now() - stamp
                     < self.ctx.stash_max_age - timedelta(minutes=10))
        self.row = self.ctx.ledger.reopen(row.id, "input-changed", run_id=self.ctx.run_id,
                                          keep_stash=fresh)
        if self.row.state is State.STASHED:
            self._move(State.STASHED, "input-changed", "its text changed: publishing the kept "
                       "copy (no bytes re-sent)", params=self._params())
        return self._row()

    def _send_whole(self, name: str, kwargs: dict[str, Any]) -> upload.UploadResult:
        """A direct upload; its bytes count as sent whatever the wiki answers (a refusal too)."""
        row = self._row()
        try:
            result = upload.upload_file(self.ctx.session, self.path, name, **kwargs)
        except (ApiError, ResponseLostError):
            self.bytes_sent += row.size
            raise
        self.bytes_sent += row.size
        return result

    def _refused(self, refusal: refusals.Refusal) -> None:
        """An extension refused the upload: record the wiki's stash key with the outcome, and
        re-submit once a warning a person already decided to publish (module refusals)."""
        row = self._row()
        key = row.filekey or refusal.filekey  # the kept key first: a decision publishes from it
        stash = {"filekey": key, "stash_created_at": row.stash_created_at or self.ctx.ledger.now()
                 } if key else {}
        decision = row.decision
        if (refusal.reason == refusals.ABUSEFILTER_WARNING and decision
                and decision.get("action") == Action.PUBLISH.value and decision.get("by") != "policy"
                and not decision.get("resubmitted")):
            # This login session had not been warned yet: the wiki's confirmation of a warned
            # action is an identical second attempt, which the person has decided on.
            return self._move(State.STASHED, refusal.reason, "warned again; submitting once more, "
                              "as decided", decision={**decision, "resubmitted": True}, **stash)
        if refusal.outcome == NEEDS_REVIEW:
            how = (f"; decide with `mwingest review {shlex.quote(row.ref)} --decision "
                   "publish|skip` (the kept copy is published, no bytes re-sent)")
            return self._move(State.NEEDS_REVIEW, refusal.reason, refusal.message + how,
                              warnings=dict(refusal.warning), decision=None, **stash)
        self._move(State.REJECTED, refusal.reason, refusal.message, **stash)

    def _refused_at_assembly(self, refusal: refusals.Refusal) -> None:
        """An extension refused a chunked file as its chunks were put together (AbuseFilter's
        ``stashupload`` action): every byte was sent, and the wiki keeps no copy (the chunks are
        gone, the key holds nothing to publish), so no key is recorded. A person's ``publish``
        of a warned file sends it again in chunks; that login session's first try is warned
        again, and its one identical second try goes through (:meth:`_publish_or_decide`)."""
        row = self._row()
        decision = row.decision
        if (refusal.reason == refusals.ABUSEFILTER_WARNING and decision
                and decision.get("action") == Action.PUBLISH.value and decision.get("by") != "policy"
                and not decision.get("resubmitted")):
            return self._move(State.VALIDATED, refusal.reason, "warned again as its chunks were "
                              "put together; sending once more, as decided",
                              decision={**decision, "resubmitted": True})
        said = refusal.message + " (when its chunks were put together, after every byte was sent)"
        if refusal.outcome == NEEDS_REVIEW:
            how = (f"; decide with `mwingest review {shlex.quote(row.ref)} --decision "
                   "publish|skip` (publish sends the file again: the wiki kept no copy)")
            return self._move(State.NEEDS_REVIEW, refusal.reason, said + how, filekey=None,
                              warnings=dict(refusal.warning), decision=None)
        self._move(State.REJECTED, refusal.reason, said, filekey=None)

