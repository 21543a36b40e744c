"""The steps of one file's journey, as plain functions over :class:`ItemWork`: validate → stash →
publish (collecting warnings) → decide → publish again → verify.

Why here and not in the flow: the Prefect tasks only name, retry and observe these steps; the logic
(and the ledger writes that make a re-run safe) lives in the core so it runs and is tested without
Prefect. Every step writes the ledger *before* returning, so a crash between two steps loses at
most the step in flight, and a re-run picks up from the ledger (spec §14, reliability notes).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from . import names, netsafe, upload
from .chunked import (
    ChunkState,
    finish_async,
    new_state,
    resume,
    send_next_chunk,
    upload_chunked,
)
from .errors import (
    AlreadyThereError,
    ApiError,
    InputError,
    ResponseLostError,
    ResyncError,
    TransportError,
)
from .items import FAILED, NEEDS_REVIEW, REJECTED, SKIPPED, UPLOADED, IngestItem, ItemWork
from .ledger import Ledger, State
from .policy import Action, WarningPolicy
from .session import WikiSession
from .siteinfo import WikiRules

log = logging.getLogger("mwingest.pipeline")
URL_SHA1 = "0" * 40  # copy uploads: the wiki fetches the bytes, we never see them
URL_MODES = ("wiki", "local")
MAX_RENAMES = 10


@dataclass(frozen=True)
class IngestOptions:
    """How a batch publishes. No secrets here: this travels as flow parameters."""

    comment: str = "Uploaded with mwingest"
    text: str | None = None  # default page text (an item's own text wins)
    tags: tuple[str, ...] = ()
    watchlist: str | None = None  # watch | preferences | nochange
    chunk_size: int = 8 * 1024 * 1024
    policy: WarningPolicy = field(default_factory=WarningPolicy)
    async_assembly: bool = False
    #: Hosts URL items may reach although they resolve to non-public addresses (plus the env's
    #: ``MWINGEST_ALLOW_HOSTS``); entries as :class:`~mwingest.netsafe.AllowList` reads them.
    allow_hosts: tuple[str, ...] = ()
    #: ``wiki``: copy upload, the wiki fetches the (checked) final URL; ``local``: mwingest
    #: downloads it (pinned, capped at the wiki's size limit) and uploads it like a file.
    url_mode: str = "wiki"
    fetch_timeout: float = 30.0


class Ingestor:
    """Runs the steps for one wiki: a logged-in session, the wiki's rules, the ledger."""

    def __init__(self, session: WikiSession, rules: WikiRules, ledger: Ledger,
                 options: IngestOptions | None = None, *, run_id: str | None = None) -> None:
        self.session = session
        self.rules = rules
        self.ledger = ledger
        self.options = options or IngestOptions()
        self.run_id = run_id
        self.wiki = session.api_url
        if self.options.url_mode not in URL_MODES:
            raise ValueError(f"url_mode must be one of {', '.join(URL_MODES)}, "
                             f"not {self.options.url_mode!r}")
        self.allow = netsafe.AllowList.parse(self.options.allow_hosts)

    # --- ledger helpers ------------------------------------------------------------------------

    def _move(self, work: ItemWork, to: State, reason: str | None = None,
              message: str | None = None, **fields: Any) -> None:
        if work.ledger_id is not None:
            self.ledger.transition(work.ledger_id, to, reason=reason, message=message,
                                   flow_run_id=self.run_id, **fields)

    def finish(self, work: ItemWork, outcome: str, reason: str | None, message: str,
               **changes: Any) -> ItemWork:
        """End an item: outcome in the ledger and in the work; one log line in plain words."""
        work = work.end(outcome, reason, message, **changes)
        fields: dict[str, Any] = {}
        if outcome == UPLOADED:
            fields["final_name"] = work.final_name
        if outcome == NEEDS_REVIEW:
            fields.update(filekey=work.filekey, warnings=dict(work.warnings))
        try:
            current = self.ledger.get(work.ledger_id) if work.ledger_id is not None else None
            if current is not None and current.state.value != outcome:
                self._move(work, State(outcome), reason, message, **fields)
        except Exception as exc:  # the outcome must still be reported
            log.error("ledger write failed for %s: %s", work.item.label, exc)
        level = logging.INFO if outcome in (UPLOADED, SKIPPED) else logging.WARNING
        log.log(level, "%s: %s (%s) %s", work.item.label, outcome, reason, message)
        return work

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
        dupes = find_duplicates(self.session, verdict.sha1) if verdict.sha1 else []
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

    # --- 2. stash --------------------------------------------------------------------------------

    def needs_chunks(self, work: ItemWork) -> bool:
        """Files larger than one chunk go up in chunks; smaller ones in one direct request."""
        return (not work.copy_upload and work.filekey is None
                and (work.chunk is not None or (work.size or 0) > self.options.chunk_size))

    def upload_direct(self, work: ItemWork) -> ItemWork:
        """One request: publish directly *without* ignorewarnings. Success publishes; a warning
        leaves the file in the stash with a key (spec §5), to be decided on like any other."""
        item = work.item
        kwargs = self._publish_kwargs(work)
        assert work.target
        if work.copy_upload and not work.final_url:  # never hand the wiki an unwalked URL
            work = self._prepare_url(work)
            if work.done:
                return work
        try:
            if work.copy_upload:
                result = upload.upload_from_url(self.session, work.final_url or item.source,
                                                work.target, **kwargs)
            else:
                result = upload.upload_file(self.session, work.path, work.target, **kwargs)
        except InputError as exc:
            return self._input_error(work, exc)
        sent = work.bytes_sent + (0 if work.copy_upload else work.size or 0)
        return self._after_publish(replace(work, bytes_sent=sent), result)

    def start_chunks(self, work: ItemWork) -> ItemWork:
        """Prepare the chunk state (fresh, or resumed against the wiki's own offset)."""
        assert work.target and work.sha1
        if work.chunk is not None:
            state = resume(self.session, work.chunk)
        else:
            state = new_state(work.path, work.target, work.sha1,
                              chunk_size=self.options.chunk_size, filesize=work.size)
            self._move(work, State.STASHING)
        return replace(work, chunk=state)

    def send_chunk(self, work: ItemWork) -> ItemWork:
        """Send the next chunk; record the wiki's offset in the ledger before returning."""
        assert work.chunk is not None
        before = work.chunk.bytes_sent
        state: ChunkState = (finish_async(self.session, work.chunk) if work.chunk.polling
                             else send_next_chunk(self.session, work.chunk,
                                                  min_chunk_size=self.rules.min_chunk_size,
                                                  async_=self.options.async_assembly))
        work = replace(work, chunk=state, bytes_sent=work.bytes_sent + state.bytes_sent - before)
        if work.ledger_id is not None and state.filekey and not state.done:
            self.ledger.record_chunk(work.ledger_id, filekey=state.filekey, offset=state.offset,
                                     chunk_size=state.chunk_size)
        if state.done:
            self._move(work, State.STASHED, filekey=state.final_filekey)
            work = replace(work, filekey=state.final_filekey)
        return work

    # --- 3. publish, decide -------------------------------------------------------------------

    def _publish_kwargs(self, work: ItemWork) -> dict[str, Any]:
        opts, item = self.options, work.item
        return {"comment": item.comment or opts.comment, "text": item.text or opts.text,
                "tags": list(item.tags or opts.tags) or None, "watchlist": opts.watchlist}

    def publish(self, work: ItemWork, *, ignorewarnings: bool = False,
                filename: str | None = None, restash: bool = True) -> ItemWork:
        """Publish the stashed key. Without ``ignorewarnings`` this collects the warnings first.

        A key the wiki no longer has (the stash is cleaned 6 h after upload, spec §7) is replaced
        once by stashing the local file again, when it still has the same bytes.
        """
        assert work.filekey
        name = filename or work.target
        assert name
        try:
            result = upload.publish_stash(self.session, work.filekey, name,
                                          ignorewarnings=ignorewarnings,
                                          **self._publish_kwargs(work))
        except ResyncError as exc:
            if exc.code != "uploadstash-file-not-found" or not restash or not self._same_bytes(work):
                raise
            log.warning("%s: the wiki's stash copy is gone; stashing the file again",
                        work.item.label)
            return self.publish(self._restash(work), ignorewarnings=ignorewarnings,
                                filename=filename, restash=False)
        except AlreadyThereError as exc:
            return self.finish(work, SKIPPED, "nochange", exc.info or "already the current version",
                               final_name=name)
        except ResponseLostError:
            # The publish may have happened: look before publishing twice (spec §14.7).
            info = upload.file_info(self.session, name)
            if info and work.sha1 and str(info.get("sha1", "")).lower() == work.sha1:
                return replace(work, published=True, final_name=name,
                               url=info.get("descriptionurl"), target=name)
            raise
        except InputError as exc:
            return self._input_error(work, exc)
        return self._after_publish(replace(work, target=name), result)

    def _same_bytes(self, work: ItemWork) -> bool:
        """The local source still exists with the SHA-1 we validated."""
        from .hashing import sha1_file

        path = Path(work.path)
        return (not work.copy_upload and work.sha1 is not None and path.is_file()
                and sha1_file(path) == work.sha1)

    def _restash(self, work: ItemWork) -> ItemWork:
        """Put the source into the stash again (same bytes) and take the new key."""
        assert work.target and work.sha1
        if (work.size or 0) > self.options.chunk_size:
            state = upload_chunked(self.session, new_state(
                work.path, work.target, work.sha1, chunk_size=self.options.chunk_size),
                min_chunk_size=self.rules.min_chunk_size)
            key, sent = state.final_filekey, state.bytes_sent
        else:
            result = upload.upload_file(self.session, work.path, work.target, stash=True,
                                        ignorewarnings=True)
            key, sent = result.filekey, work.size or 0
        return replace(work, filekey=key, bytes_sent=work.bytes_sent + sent)

    def _after_publish(self, work: ItemWork, result: upload.UploadResult) -> ItemWork:
        if result.kind == upload.ResultKind.SUCCESS and result.filename:
            return replace(work, published=True, final_name=result.filename,
                           url=result.descriptionurl, filekey=None,
                           warnings=result.warnings.as_dict() or work.warnings)
        if result.kind == upload.ResultKind.WARNING:
            self._stashed(work, result.filekey)
            return replace(work, filekey=result.filekey or work.filekey,
                           warnings=result.warnings.as_dict())
        raise ApiError("unexpected-result", f"publish answered {result.kind}")

    def _stashed(self, work: ItemWork, filekey: str | None) -> None:
        if work.ledger_id is None or not filekey:
            return
        entry = self.ledger.get(work.ledger_id)
        if entry.state in (State.VALIDATED, State.STASHING, State.NEEDS_REVIEW):
            self._move(work, State.STASHED, filekey=filekey,
                       stash_created_at=datetime.now(UTC))

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

    # --- 4. verify -------------------------------------------------------------------------------

    def verify(self, work: ItemWork) -> ItemWork:
        """The wiki's current version must have our SHA-1 and size: acceptance is not integrity."""
        assert work.published and work.final_name
        if work.copy_upload and work.sha1 in (None, URL_SHA1):  # the wiki's bytes, not ours
            info = upload.file_info(self.session, work.final_name)
            if info is None:
                return self.finish(work, FAILED, "not-landed", "the file is not on the wiki")
            work = replace(work, sha1=info.get("sha1"), size=info.get("size"))
        else:
            try:
                info = upload.verify_landed(self.session, work.final_name, work.sha1 or "",
                                            work.size)
            except ApiError as exc:
                return self.finish(work, FAILED, exc.code, exc.info)
        return self.finish(work, UPLOADED, "verified" if not work.decision else
                           f"decided-{work.decision['action']}",
                           f"landed as File:{work.final_name} (SHA-1 verified)",
                           url=info.get("descriptionurl") or work.url)


def _name_from(source: str, is_url: bool) -> str:
    """The default target name: a path's base name, or a URL path's last segment, decoded."""
    if is_url:
        return unquote(urlsplit(source).path.rstrip("/").rsplit("/", 1)[-1])
    return Path(source).name


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
