"""The chunk protocol as a step function: send one chunk, return the next state (spec §7).

Why a step function and not a loop: the orchestration layer makes *each chunk* its own retriable
task, and the ledger records the state after each step. The state is a small immutable value
(path, filekey, offset, chunk size) that can be saved, handed to another process, and resumed.

The traps this module exists for:

* A resent chunk is **not idempotent**: the wiki answers ``stashfailed`` with the next offset it
  expects, as a string. We continue from *that* offset, never from our own counter.
* The final chunk's answer carries a **new** filekey; the chunk-session key dies. If that answer is
  lost, the new key is found again in ``list=mystashedfiles`` by SHA-1 before anything is resent.
* Publishing an unfinished session's key publishes only what arrived so far: we only ever hand out
  the key from the final answer, after checking its SHA-1 against ours.
* A body over PHP's limit comes back as HTML: the chunk size is halved and the chunk re-sent.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from mwingest.base.errors import ApiError, OversizedRequestError, PermanentApiError, ResyncError
from mwingest.base.hashing import sha1_file
from mwingest.base.streams import FilePart
from mwingest.wiki.session import WikiSession
from mwingest.wiki.upload import (
    ResultKind,
    check_status,
    my_stashed_files,
    stash_info,
    upload_chunk,
    wait_for_async,
)

log = logging.getLogger("mwingest.wiki.chunked")

DEFAULT_CHUNK_SIZE = 16 * 1024 * 1024  # bench/README.md: 16 MiB beats 5 and 8 by 20 %
MAX_SAME_OFFSET_RESYNCS = 3
MAX_RESTARTS = 2


@dataclass(frozen=True)
class ChunkState:
    """Where one file's chunked upload stands. Plain data: save it, resume it anywhere."""

    path: str
    filename: str
    filesize: int
    sha1: str
    chunk_size: int = DEFAULT_CHUNK_SIZE
    offset: int = 0
    filekey: str | None = None  # the chunk session's key (changes when the upload completes)
    final_filekey: str | None = None  # the assembled file's key: the only one we publish
    polling: bool = False  # async assembly queued: wait with checkstatus
    imageinfo: Mapping[str, Any] = field(default_factory=dict)
    warnings: Mapping[str, Any] = field(default_factory=dict)
    bytes_sent: int = 0  # every byte put on the wire, resends included
    resyncs: int = 0  # consecutive resyncs to the same offset
    restarts: int = 0

    @property
    def done(self) -> bool:
        return self.final_filekey is not None

    @property
    def next_length(self) -> int:
        return max(0, min(self.chunk_size, self.filesize - self.offset))

    @property
    def chunk_number(self) -> int:
        """1-based number of the next chunk (for names such as ``chunk 3/12``)."""
        return self.offset // max(self.chunk_size, 1) + 1

    @property
    def chunk_count(self) -> int:
        return max(1, -(-self.filesize // max(self.chunk_size, 1)))


def new_state(path: str | Path, filename: str, sha1: str, *, chunk_size: int = DEFAULT_CHUNK_SIZE,
              filesize: int | None = None) -> ChunkState:
    """A fresh state for ``path``, to be stashed under the (already valid) ``filename``."""
    size = Path(path).stat().st_size if filesize is None else filesize
    return ChunkState(path=str(path), filename=filename, filesize=size, sha1=sha1,
                      chunk_size=chunk_size)


def send_next_chunk(session: WikiSession, state: ChunkState, *, min_chunk_size: int = 1024,
                    async_: bool = False) -> ChunkState:
    """Send the chunk at ``state.offset`` and return the state after the wiki's answer.

    Protocol faults that the wiki reports (offset out of step, session gone, body too large) are
    absorbed into the returned state; transport faults and permanent errors are raised for the
    caller's retry policy. Calling it again with the same state after a lost answer is safe: the
    wiki's offset check turns the resend into a resync.
    """
    if state.done:
        return state
    length = state.next_length
    part = FilePart(filename=state.filename, path=Path(state.path), offset=state.offset,
                    length=length)
    try:
        result = upload_chunk(session, filename=state.filename, filesize=state.filesize,
                              offset=state.offset, part=part, filekey=state.filekey,
                              async_=async_)
    except ResyncError as exc:
        return _resync(session, state, exc, length)
    except OversizedRequestError:
        return _shrink(state, min_chunk_size, "the chunk was larger than the server accepts")
    except PermanentApiError as exc:
        if exc.code == "badupload" and state.chunk_size > min_chunk_size:
            return _shrink(state, min_chunk_size, exc.info)
        if _chunks_unreadable(exc) and state.offset + length >= state.filesize:
            return _session_lost(session, state, exc, length, f"the wiki cannot read its chunks any "
                                 f"more ({exc.info}; for files this big, async assembly avoids "
                                 f"the web request's time limit)")
        raise
    sent = state.bytes_sent + length
    if result.kind == ResultKind.CONTINUE:
        return replace(state, offset=int(result.offset or 0), filekey=result.filekey or state.filekey,
                       bytes_sent=sent, resyncs=0)
    if result.kind == ResultKind.POLL:
        return replace(state, offset=state.filesize, filekey=result.filekey or state.filekey,
                       polling=True, bytes_sent=sent, resyncs=0)
    if result.kind == ResultKind.SUCCESS:
        return _finished(replace(state, bytes_sent=sent), result.filekey, result.imageinfo,
                         result.warnings.as_dict())
    raise PermanentApiError("unexpected-warning",
                            f"a chunk of {state.filename} answered Warning despite ignorewarnings",
                            {"warnings": result.warnings.as_dict(), "filekey": result.filekey})


def _finished(state: ChunkState, filekey: str | None, imageinfo: Mapping[str, Any],
              warnings: Mapping[str, Any]) -> ChunkState:
    """Accept the assembled file only if its SHA-1 is ours; otherwise start over (bounded)."""
    wiki_sha1 = str(imageinfo.get("sha1", "")).lower()
    if wiki_sha1 and wiki_sha1 != state.sha1.lower():
        if state.restarts >= MAX_RESTARTS:
            raise PermanentApiError("sha1-mismatch",
                                    f"the wiki assembled {state.filename} with SHA-1 {wiki_sha1}, "
                                    f"expected {state.sha1}", {"filekey": filekey})
        log.warning("assembled %s has the wrong SHA-1; restarting the upload", state.filename)
        return _restart(state)
    return replace(state, offset=state.filesize, final_filekey=filekey, polling=False,
                   imageinfo=dict(imageinfo), warnings=dict(warnings), resyncs=0)


def _chunks_unreadable(exc: PermanentApiError) -> bool:
    """The wiki cannot read the chunks it stored (``stashfailed`` with MediaWiki's
    ``backend-fail-read``, "Could not read file"): an assembly killed half-way (PHP's time limit
    on a big synchronous final chunk) consumed or moved them. Resending the last chunk cannot
    help; only a new session can."""
    info = exc.info.lower()
    return exc.code == "stashfailed" and ("could not read file" in info
                                          or "backend-fail-read" in info)


def _session_lost(session: WikiSession, state: ChunkState, exc: ApiError, length: int,
                  why: str) -> ChunkState:
    """The upload session cannot go on: take the assembled file if the stash has it after all
    (the final chunk landed and its answer was lost), else start a new session from 0 (bounded:
    after ``MAX_RESTARTS`` the wiki's error is raised)."""
    found = find_finished_stash(session, state.sha1, state.filesize)
    if found is not None:
        key, info = found
        log.info("found the assembled %s in the stash as %s", state.filename, key)
        return _finished(state, key, info, {})
    if state.restarts >= MAX_RESTARTS:
        raise exc
    log.warning("%s: %s; sending it again from 0", state.filename, why)
    return _restart(replace(state, bytes_sent=state.bytes_sent + length))


def _restart(state: ChunkState) -> ChunkState:
    return replace(state, offset=0, filekey=None, final_filekey=None, polling=False,
                   resyncs=0, restarts=state.restarts + 1)


def _shrink(state: ChunkState, min_chunk_size: int, why: str) -> ChunkState:
    smaller = max(min_chunk_size, state.chunk_size // 2)
    if smaller >= state.chunk_size:
        raise OversizedRequestError(f"{why}; cannot go below {min_chunk_size} bytes", sent=True)
    log.warning("%s; halving the chunk size to %d bytes", why, smaller)
    return replace(state, chunk_size=smaller)


def _resync(session: WikiSession, state: ChunkState, exc: ResyncError, length: int) -> ChunkState:
    server_offset = exc.server_offset
    if server_offset is not None:
        # "Invalid chunk offset": the wiki says where it stands (spec §7).
        if server_offset == state.offset:
            if state.resyncs >= MAX_SAME_OFFSET_RESYNCS:
                raise exc
            return replace(state, resyncs=state.resyncs + 1, bytes_sent=state.bytes_sent + length)
        if not 0 <= server_offset <= state.filesize:
            raise exc
        log.info("resync %s: wiki expects offset %d (we were at %d)", state.filename,
                 server_offset, state.offset)
        return replace(state, offset=server_offset, resyncs=0,
                       bytes_sent=state.bytes_sent + length)
    if "already completed" in exc.info.lower():
        # The async final chunk was queued and its answer lost: poll it, do not resend (spec §7-§8).
        return replace(state, offset=state.filesize, polling=True, resyncs=0,
                       bytes_sent=state.bytes_sent + length)
    # Session gone (published, cleaned up, or the final chunk landed and its answer was lost).
    return _session_lost(session, state, exc, length, f"its upload session is gone ({exc.code})")


def resume(session: WikiSession, state: ChunkState) -> ChunkState:
    """Bring a saved state in line with the wiki before continuing (after a crash or a restart).

    Asks ``checkstatus`` for the saved key; falls back to the user's stash (a finished file with our
    SHA-1) and, failing both, restarts from 0. The status cache outlives the stash row (spec §7),
    so a ``Continue`` is only trusted as far as the next chunk confirms it.
    """
    if state.done:
        return state
    if state.filekey:
        try:
            status = check_status(session, state.filekey)
        except ResyncError:
            status = None
        except PermanentApiError as exc:
            if exc.code not in ("invalid-file-key", "stashfailed", "uploadstash-wrong-owner"):
                raise
            status = None
        if status is not None:
            if status.kind == ResultKind.CONTINUE and status.offset is not None:
                return replace(state, offset=int(status.offset), polling=False, resyncs=0)
            if status.kind == ResultKind.POLL:
                return replace(state, polling=True, offset=state.filesize)
            if status.kind == ResultKind.SUCCESS and status.filekey:
                return _finished(state, status.filekey, status.imageinfo, status.warnings.as_dict())
    found = find_finished_stash(session, state.sha1, state.filesize)
    if found is not None:
        return _finished(state, found[0], found[1], {})
    unfinished = find_unfinished_session(session, state.path)
    if unfinished is not None:
        key, offset = unfinished
        return replace(state, filekey=key, offset=offset, polling=False, resyncs=0)
    return replace(state, offset=0, filekey=None, polling=False, resyncs=0)


def find_finished_stash(session: WikiSession, sha1: str, size: int | None = None
                        ) -> tuple[str, Mapping[str, Any]] | None:
    """The key of an assembled stash file with this SHA-1 (recovers a lost final answer)."""
    rows = [r for r in my_stashed_files(session)
            if r.get("status") == "finished" and (size is None or int(r.get("size", -1)) == size)]
    for row in rows:
        infos = _stash_info_quiet(session, row["filekey"])
        if infos and str(infos[0].get("sha1", "")).lower() == sha1.lower():
            return row["filekey"], infos[0]
    return None


def find_unfinished_session(session: WikiSession, path: str | Path) -> tuple[str, int] | None:
    """A chunk session of this file left by a lost client: (key, offset to continue at).

    ``stashimageinfo`` keeps the first chunk's size and SHA-1 (spec §7), so the file's first
    ``size`` bytes identify the session; ``mystashedfiles`` gives the bytes received so far.
    """
    for row in my_stashed_files(session):
        if row.get("status") != "chunks":
            continue
        infos = _stash_info_quiet(session, row["filekey"])
        if not infos:
            continue
        first_size = int(infos[0].get("size", 0))
        if first_size and sha1_file(path, limit=first_size) == str(infos[0].get("sha1", "")).lower():
            return row["filekey"], int(row.get("size", 0))
    return None


def _stash_info_quiet(session: WikiSession, key: str) -> list[dict[str, Any]]:
    try:
        return stash_info(session, [key])
    except (ResyncError, PermanentApiError):
        return []


def upload_chunked(session: WikiSession, state: ChunkState, *, min_chunk_size: int = 1024,
                   async_: bool = False, poll_timeout: float = 300.0,
                   on_progress: Callable[[ChunkState], None] | None = None) -> ChunkState:
    """Drive :func:`send_next_chunk` to the end (the plain-Python path; flows use one task per chunk).

    Transient faults are *not* retried here: that is the caller's policy (the Prefect task's
    retries, or a loop around this function that calls :func:`resume` first).
    """
    if state.filekey and state.offset and not state.done:
        state = resume(session, state)
    while not state.done:
        if state.polling:
            state = finish_async(session, state, timeout=poll_timeout)
        else:
            state = send_next_chunk(session, state, min_chunk_size=min_chunk_size, async_=async_)
        if on_progress is not None:
            on_progress(state)
    return state


def finish_async(session: WikiSession, state: ChunkState, *, timeout: float = 300.0) -> ChunkState:
    """Wait for an async assembly (``async=1`` on the final chunk) and take the new key."""
    assert state.filekey, "async assembly needs the chunk session key"
    result = wait_for_async(session, state.filekey, timeout=timeout)
    if result.kind != ResultKind.SUCCESS or not result.filekey:
        raise PermanentApiError("stashfailed", f"async assembly of {state.filename} ended "
                                f"{result.kind}", {"filekey": state.filekey})
    return _finished(state, result.filekey, result.imageinfo, result.warnings.as_dict())
