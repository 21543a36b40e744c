"""Step 1 of a file's journey: is it fit to send, and does the wiki or the ledger already have it?

Local files are validated (content, name, size) against the wiki's rules; URLs are checked against
SSRF (every redirect hop) and, in local mode, fetched and validated like files. The ledger says
whether the file is done (skip), in flight (resume its stash key or chunk offset) or new; the
wiki's SHA-1 index says whether the bytes are already there.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from . import names, netsafe
from .chunked import (
    new_state,
)
from .errors import (
    TransportError,
)
from .ingest_base import URL_SHA1, IngestorBase, log
from .items import FAILED, REJECTED, SKIPPED, IngestItem, ItemWork
from .ledger import State
from .policy import Action


class IntakeSteps(IngestorBase):
    """Validation and the ledger/duplicate look-ups that decide whether a file goes up at all."""

    # --- 1. validate ----------------------------------------------------------------------------

    def validate(self, item: IngestItem) -> ItemWork:
        """Check the item locally and against the wiki's rules; register it in the ledger.

        Returns finished work for anything that needs no upload: rejected files, files the ledger
        says are done, files already on the wiki (by SHA-1). A URL is checked (every redirect
        hop) before anything involving it is requested, and fetched here in ``local`` mode.
        """
        work = ItemWork(item=item)
        if item.error:
            return work.end(REJECTED, item.error, item.error_message or item.error)
        wanted = item.filename or _name_from(item.source, item.is_url)
        if item.is_url:
            work = self._prepare_url(work)
            if work.done:
                return work
            if work.copy_upload:
                return self._validate_url(work, wanted)
        try:
            work = self._validate_local(work, wanted)
        except BaseException:
            self.discard_local_copy(work)
            raise
        if work.done:
            self.discard_local_copy(work)
        return work

    def _prepare_url(self, work: ItemWork) -> ItemWork:
        """Check a URL against the network rules (:mod:`mwingest.netsafe`): walk its redirects
        (copy upload) or download it (local mode). Refusals are not written to the ledger, so a
        re-run with a wider allow-list checks again instead of repeating an old rejection."""
        url = work.item.source
        try:
            if self.options.url_mode == "local":
                copy = netsafe.fetch_to_file(url, allow=self.allow,
                                             max_bytes=self.rules.max_upload_size,
                                             timeout=self.options.fetch_timeout)
                return replace(work, local_copy=str(copy))
            return replace(work, final_url=netsafe.resolve_redirects(
                url, self.allow, timeout=self.options.fetch_timeout))
        except netsafe.UnsafeURLError as exc:
            return self.finish(work, REJECTED, "unsafe-url", str(exc))
        except netsafe.FetchError as exc:
            if exc.retryable:  # connection faults, 5xx: the task's retries may fix them
                raise TransportError(str(exc)) from None
            outcome = REJECTED if exc.code == "file-too-large" else FAILED
            return self.finish(work, outcome, exc.code, str(exc))

    def discard_local_copy(self, work: ItemWork) -> None:
        """Delete the temporary copy of a URL fetched in ``local`` mode (call when it is done)."""
        if work.local_copy:
            Path(work.local_copy).unlink(missing_ok=True)

    def _validate_local(self, work: ItemWork, wanted: str) -> ItemWork:
        """Validate the local bytes (a file, or a URL's fetched copy) and register them."""
        from .validate import find_duplicates, validate_file  # Pillow/magic: imported lazily

        item = work.item
        verdict = validate_file(work.path, self.rules, filename=wanted)
        work = replace(work, sha1=verdict.sha1, size=verdict.size)
        if not verdict.ok:
            reason = verdict.reason or "invalid"
            message = next((f.message for f in verdict.findings if f.code == reason), reason)
            if verdict.sha1 is None:  # unreadable: nothing to key the ledger on
                return work.end(REJECTED, reason, message)
            entry = self.ledger.begin(self.wiki, item.source, sha1=verdict.sha1,
                                      size=verdict.size or 0, target=wanted, run_id=self.run_id)
            work = replace(work, ledger_id=entry.id)
            if entry.state is State.REJECTED:
                return work.end(REJECTED, entry.reason, entry.message)
            return self.finish(work, REJECTED, reason, message)
        target = names.sanitise(wanted, self.rules)
        entry = self.ledger.begin(self.wiki, item.source, sha1=verdict.sha1 or URL_SHA1,
                                  size=verdict.size or 0, target=target, run_id=self.run_id)
        work = replace(work, ledger_id=entry.id, target=target)
        resumed = self._from_ledger(work, entry)
        if resumed is not None:
            return resumed
        big = (verdict.size or 0) >= self.options.precheck_min_bytes
        dupes = find_duplicates(self.session, verdict.sha1) if verdict.sha1 and big else []
        if dupes:
            if names.title_key(target) in {names.title_key(d) for d in dupes}:
                self._move(work, State.VALIDATED)
                return self.finish(work, SKIPPED, "already-on-wiki",
                                   f"File:{target} already holds these bytes",
                                   final_name=target)
            if self.options.policy.action_for("duplicate") is Action.SKIP:
                self._move(work, State.VALIDATED)
                return self.finish(work, SKIPPED, "duplicate",
                                   f"the same bytes are already on the wiki as {', '.join(dupes)}",
                                   warnings={"duplicate": dupes})
        self._move(work, State.VALIDATED, params=self._publish_kwargs(work))
        return work

    def _validate_url(self, work: ItemWork, wanted: str) -> ItemWork:
        prediction = names.predict_title(wanted, self.rules)
        try:
            target = names.sanitise(wanted, self.rules) if prediction.extension else None
        except ValueError:  # no usable extension (e.g. .txt): the wiki would refuse it
            target = None
        if not target:
            return work.end(REJECTED, "bad-filename",
                            f"cannot tell a file name from {work.item.source}: give a filename")
        entry = self.ledger.begin(self.wiki, work.item.source, sha1=URL_SHA1, size=0,
                                  target=target, run_id=self.run_id)
        work = replace(work, ledger_id=entry.id, target=target)
        resumed = self._from_ledger(work, entry)
        if resumed is not None:
            return resumed
        self._move(work, State.VALIDATED, params=self._publish_kwargs(work))
        return work

    def _from_ledger(self, work: ItemWork, entry: Any) -> ItemWork | None:
        """Work the ledger already knows: done → skip; stash in flight → resume it."""
        if entry.state in (State.UPLOADED, State.SKIPPED):
            return work.end(SKIPPED, "already-uploaded" if entry.state is State.UPLOADED
                            else entry.reason, f"done in an earlier run ({entry.state})",
                            final_name=entry.final_name)
        if entry.state is State.REJECTED:
            return work.end(REJECTED, entry.reason, entry.message)
        if entry.is_resumable() and entry.state in (State.STASHED, State.NEEDS_REVIEW):
            log.info("%s: resuming from the stash key of an earlier run", work.item.label)
            return replace(work, filekey=entry.filekey,
                           warnings=entry.warnings or {})
        if entry.is_resumable() and entry.state is State.STASHING:
            state = new_state(work.path, work.target or entry.target, entry.sha1,
                              chunk_size=entry.chunk_size or self.options.chunk_size)
            state = replace(state, filekey=entry.filekey, offset=entry.offset)
            log.info("%s: resuming a chunked upload at byte %d", work.item.label, entry.offset)
            return replace(work, chunk=state)
        if entry.state is not State.PENDING:
            self._move(work, State.VALIDATED, "retry", "starting over")
        return None


def _name_from(source: str, is_url: bool) -> str:
    """The default target name: a path's base name, or a URL path's last segment, decoded."""
    if is_url:
        return unquote(urlsplit(source).path.rstrip("/").rsplit("/", 1)[-1])
    return Path(source).name
