"""Step 1 of a file's journey: admit it to the ledger (validate, look for the bytes on the wiki,
or continue an earlier run's row where the wiki stands).

A mixin of :class:`mwingest.job.machine.Job`, apart so that the machine module holds the states
and their moves, and each group of steps reads on its own page. The rules of the machine hold
here too: every step ends with the ledger row saying what happened (``_move``), and a file the
ledger cannot take (a refusal before its row exists, a row another run holds) ends with a
verdict instead.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from mwingest.base.items import FAILED, REJECTED, SKIPPED
from mwingest.base.options import URL_SHA1
from mwingest.base.policy import Action
from mwingest.job import intake, structured
from mwingest.ledger.ledger import LedgerItem, RowLeasedError, State
from mwingest.wiki import names

if TYPE_CHECKING:
    from mwingest.base.items import IngestItem
    from mwingest.job.context import JobContext

log = logging.getLogger("mwingest.job.machine")


class Admission:
    """Validation, the duplicate pre-check and the resume of an unfinished row."""

    ctx: JobContext
    item: IngestItem
    row: LedgerItem | None
    local_copy: str | None
    final_url: str | None

    # Provided by the job (mwingest.job.machine.Job).
    def _move(self, to: State, reason: str | None = None, message: str | None = None,
              **fields: Any) -> None:
        raise NotImplementedError

    def _verdict(self, outcome: str, reason: str, message: str) -> None:
        raise NotImplementedError

    def _params(self) -> dict[str, Any]:
        raise NotImplementedError

    def _validate(self) -> None:
        ctx = self.ctx
        checked = intake.check(self.item, ctx.rules, ctx.options, ctx.allow)
        self.local_copy, self.final_url = checked.local_copy, checked.final_url
        if not checked.ok and (not checked.record or checked.sha1 is None):
            return self._verdict(checked.outcome or REJECTED, checked.reason or "invalid",
                                 checked.message or "")
        assert checked.sha1 and checked.target
        try:
            # A new row is validated in the same transaction (one commit less per file).
            row = ctx.ledger.begin(ctx.wiki, self.item.source, sha1=checked.sha1,
                                   size=checked.size, target=checked.target, run_id=ctx.run_id,
                                   lease=ctx.lease, account=ctx.account, key=self.item.key,
                                   params=self._params() if checked.ok else None)
        except RowLeasedError as exc:
            self.row = exc.row
            return self._verdict(FAILED, "leased", "another run is working on this file "
                                 f"({exc.row.state}); try again when it has finished")
        self.row = row  # leased to this run (begin took the lease): Job.held reads it from the row
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
        if row.state is State.PENDING:  # a row an earlier run left before validating it
            self._move(State.VALIDATED, params=self._params())
            self._precheck(checked)
            return
        if _just_made(row):
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
            state = row.failed_from or State.VALIDATED
        fresh = row.is_resumable(self.ctx.ledger.now(), max_age=self.ctx.stash_max_age)
        fields: dict[str, Any] = {}
        if state is State.NEEDS_REVIEW and row.filekey is None and row.params == self._params():
            # Nothing kept to decide on again (refused as its chunks were put together): sending
            # it again would only be a blind retry of a warning a person is to answer.
            log.info("%s: still waits for a decision (mwingest review)", self.item.label)
            return
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


def _just_made(row: LedgerItem) -> bool:
    """The row this ``begin`` inserted (and validated): every row ``begin`` finds unfinished has
    its ``attempts`` counted up past 1, and a finished one is never ``validated``."""
    return row.state is State.VALIDATED and row.attempts == 1 and row.reason is None
