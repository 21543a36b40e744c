"""The steps of one file's journey, as plain functions over :class:`ItemWork`: validate → stash →
publish (collecting warnings) → decide → publish again → verify.

Why here and not in the flow: the Prefect tasks only name, retry and observe these steps; the logic
(and the ledger writes that make a re-run safe) lives in the core so it runs and is tested without
Prefect. Every step writes the ledger *before* returning, so a crash between two steps loses at
most the step in flight, and a re-run picks up from the ledger (spec §14, reliability notes).

This module holds steps 2, 3 and 5 (upload, publish, verify); step 1 (validate) is in
:mod:`mwingest.intake` and step 4 (decide) in :mod:`mwingest.decisions`.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

from . import upload
from .chunked import (
    ChunkState,
    finish_async,
    new_state,
    resume,
    send_next_chunk,
    upload_chunked,
)
from .decisions import DecisionSteps
from .errors import (
    AlreadyThereError,
    ApiError,
    InputError,
    ResponseLostError,
    ResyncError,
)
from .ingest_base import URL_MODES, URL_SHA1, IngestOptions, log
from .intake import IntakeSteps
from .items import FAILED, SKIPPED, UPLOADED, ItemWork
from .ledger import State

__all__ = ["URL_MODES", "URL_SHA1", "IngestOptions", "Ingestor"]


class Ingestor(IntakeSteps, DecisionSteps):
    """Runs the steps for one wiki: a logged-in session, the wiki's rules, the ledger."""

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
                           warnings=result.warnings.as_dict() or work.warnings,
                           landed=dict(result.imageinfo) or None)
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

    # --- 4. verify -------------------------------------------------------------------------------

    def verify(self, work: ItemWork) -> ItemWork:
        """The wiki's current version must have our SHA-1 and size: acceptance is not integrity."""
        assert work.published and work.final_name
        if work.copy_upload and work.sha1 in (None, URL_SHA1):  # the wiki's bytes, not ours
            info = upload.file_info(self.session, work.final_name)
            if info is None:
                return self.finish(work, FAILED, "not-landed", "the file is not on the wiki")
            work = replace(work, sha1=info.get("sha1"), size=info.get("size"))
        elif work.landed and work.landed.get("sha1") and work.landed.get("size") is not None:
            # The publish answer carries the wiki's SHA-1 and size of the stored version: check
            # them without another request (one request per file matters in bulk imports).
            info = dict(work.landed)
            if str(info["sha1"]).lower() != (work.sha1 or "").lower():
                return self.finish(work, FAILED, "sha1-mismatch",
                                   f"File:{work.final_name} has SHA-1 {info['sha1']}, "
                                   f"expected {work.sha1}")
            if work.size is not None and int(info["size"]) != work.size:
                return self.finish(work, FAILED, "size-mismatch",
                                   f"File:{work.final_name} has {info['size']} bytes, "
                                   f"expected {work.size}")
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
