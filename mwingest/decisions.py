"""Step 4 of a file's journey: what to do about the warnings its publish gave.

The policy (or a person) decides skip / publish / rename / review / fail; each decision is carried
out from the stash key, so the bytes are not sent again, and recorded in the ledger with who took
it and when. A ``needs-review`` item can be picked up later from the ledger alone.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from . import names, upload
from .errors import (
    InputError,
)
from .ingest_base import MAX_RENAMES, IngestorBase
from .items import FAILED, NEEDS_REVIEW, REJECTED, SKIPPED, IngestItem, ItemWork
from .ledger import State
from .policy import Action


class DecisionSteps(IngestorBase):
    """Decisions on warned files, and the renames they lead to."""

    def _input_error(self, work: ItemWork, exc: InputError) -> ItemWork:
        """A name the wiki refused with a key (FK errors): rename once to a sanitised name."""
        key = exc.filekey or work.filekey
        if key and work.target and exc.code in ("illegal-filename", "filename-toolong",
                                                "filetype-missing", "filename-tooshort"):
            clean = names.sanitise(work.target, self.rules)
            if clean != work.target:
                return self.publish(replace(work, filekey=key), filename=clean)
        return self.finish(replace(work, filekey=key), FAILED if key else REJECTED, exc.code,
                           exc.info)

    def decide(self, work: ItemWork) -> Action:
        """The policy's action for the warnings the publish gave (none → publish)."""
        return self.options.policy.decide(work.warnings.keys()).action

    def apply(self, work: ItemWork, action: Action | str, *, new_name: str | None = None,
              by: str = "policy", note: str | None = None) -> ItemWork:
        """Carry out a decision on a warned file, from its stash key (bytes are not re-sent)."""
        action = Action(action)
        decision = self.options.policy.decide(work.warnings.keys())
        code = decision.code or "warning"
        # The ledger wants a name on every rename; the first free one is chosen below.
        name = new_name or ("(first free name)" if action is Action.RENAME else None)
        record = {"action": action.value, "name": name, "by": by, "note": note,
                  "at": datetime.now(UTC).isoformat(timespec="seconds")}
        work = replace(work, decision=record)
        if work.ledger_id is not None and action is not Action.REVIEW:
            entry = self.ledger.get(work.ledger_id)
            if entry.state is State.NEEDS_REVIEW:
                self._move(work, State.STASHED, "decided", f"{action} by {by}", decision=record)
        if action is Action.SKIP:
            return self.finish(work, SKIPPED, code, _explain(code, work.warnings))
        if action is Action.FAIL:
            return self.finish(work, FAILED, code, _explain(code, work.warnings))
        if action is Action.REVIEW:
            return self.finish(work, NEEDS_REVIEW, code,
                               f"{_explain(code, work.warnings)}; decide with "
                               f"`mwingest review {work.ledger_id} --decision skip|publish|rename`")
        if action is Action.PUBLISH:
            return self.publish(work, ignorewarnings=True)
        return self._rename(work, new_name)

    def _rename(self, work: ItemWork, new_name: str | None) -> ItemWork:
        base = work.warnings.get("badfilename") or work.target or "File"
        candidates = ([names.sanitise(new_name, self.rules)] if new_name else
                      [names.sanitise(names.unique_variant(base, n), self.rules)
                       for n in range(2, 2 + MAX_RENAMES)])
        for candidate in candidates:
            if not new_name and upload.file_info(self.session, candidate) is not None:
                continue
            attempt = self.publish(replace(work, warnings={}), filename=candidate)
            if attempt.done or attempt.published:
                return attempt
            if new_name:  # a human's name that still warns goes back to review
                return replace(attempt, target=candidate)
            if set(attempt.warnings) <= {"duplicate", "badfilename"}:
                return self.publish(attempt, ignorewarnings=True, filename=candidate)
        return self.finish(work, NEEDS_REVIEW, "rename-failed",
                           "no free name found; choose one with `mwingest review`")

    def from_ledger(self, item_id: int) -> ItemWork:
        """Rebuild a ``needs-review`` item's work from the ledger, to carry out a late decision."""
        entry = self.ledger.get(item_id)
        if entry.state is not State.NEEDS_REVIEW:
            raise ValueError(f"ledger item {item_id} is {entry.state}, not needs-review")
        params = entry.params or {}
        item = IngestItem(source=entry.source, filename=entry.target, text=params.get("text"),
                          comment=params.get("comment"), tags=tuple(params.get("tags") or ()))
        return ItemWork(item=item, ledger_id=entry.id, target=entry.target, sha1=entry.sha1,
                        size=entry.size, filekey=entry.filekey, warnings=entry.warnings or {})


def _explain(code: str, warnings: Any) -> str:
    value = warnings.get(code) if hasattr(warnings, "get") else None
    texts = {
        "exists": "a file with this name already exists on the wiki",
        "nochange": "the wiki already has these bytes as the current version",
        "duplicate": "the same bytes are already on the wiki under another name",
        "duplicateversions": "these bytes are an older version of the file",
        "duplicate-archive": "a deleted file had these bytes",
        "was-deleted": "a file with this name was deleted before",
        "exists-normalized": "a file with a similar name exists",
        "page-exists": "a description page with this name exists without a file",
        "thumb": "the name looks like a thumbnail of an existing file",
        "thumb-name": "the name looks like a thumbnail",
        "bad-prefix": "the name starts with a camera prefix",
        "badfilename": "the wiki would change the name",
    }
    text = texts.get(code, f"the wiki warned {code}")
    return f"{text} ({code}: {value})" if value not in (None, "", [], True) else f"{text} ({code})"
