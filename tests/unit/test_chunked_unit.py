"""The chunk protocol's state logic, with a scripted stand-in for the wiki (unit tier).

A fake session is allowed here, and only here: these tests need answers a real wiki cannot be made
to give on demand (the same offset refused four times, a wrong SHA-1 after assembly, a session that
disappears on every attempt). Every canned answer is copied from spec §7, and errors are raised the
way the real session raises them (``api_error``), so the code under test sees what it would see
from MediaWiki 1.39. The integration tests in ``tests/integration/test_chunked_faults.py`` cover
the same paths against the real wiki wherever the wiki can be made to take them.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

import pytest

from mwingest.base.errors import (
    OversizedRequestError,
    PermanentApiError,
    ResponseLostError,
    ResyncError,
    api_error,
)
from mwingest.wiki.chunked import (
    MAX_RESTARTS,
    MAX_SAME_OFFSET_RESYNCS,
    ChunkState,
    find_finished_stash,
    find_unfinished_session,
    new_state,
    resume,
    send_next_chunk,
    upload_chunked,
)

CHUNK = 1024
SIZE = 3000  # chunks of 1024, 1024 and 952 bytes
Answer = Mapping[str, Any] | BaseException | Callable[[dict[str, Any]], Mapping[str, Any]]


class ScriptedWiki:
    """Answers each request with the next scripted answer; records what was sent.

    Has the two methods the chunk code calls on a :class:`~mwingest.wiki.session.WikiSession`.
    """

    def __init__(self, *answers: Answer) -> None:
        self.answers = list(answers)
        self.calls: list[dict[str, Any]] = []

    def post(self, params: Mapping[str, Any], files: Mapping[str, Any] | None = None,
             **_: Any) -> dict[str, Any]:
        call: dict[str, Any] = {"method": "POST", **params}
        if files:
            body = files["chunk"].open()
            call["chunk"] = body if isinstance(body, bytes) else body.read()
            if not isinstance(body, bytes):
                body.close()
        return self._answer(call)

    def get(self, params: Mapping[str, Any]) -> dict[str, Any]:
        return self._answer({"method": "GET", **params})

    def _answer(self, call: dict[str, Any]) -> dict[str, Any]:
        self.calls.append(call)
        assert self.answers, f"unscripted request: {call}"
        answer = self.answers.pop(0)
        if isinstance(answer, BaseException):
            raise answer
        if callable(answer):
            answer = answer(call)
        if "error" in answer:
            err = dict(answer["error"])
            raise api_error(err.pop("code"), err.pop("info", ""), err, action=str(call.get("action")))
        return dict(answer)


def cont(offset: int, key: str = "K1.png") -> dict[str, Any]:
    return {"upload": {"result": "Continue", "offset": offset, "filekey": key}}


def success(sha1: str, key: str = "FINAL.png", size: int = SIZE) -> dict[str, Any]:
    return {"upload": {"result": "Success", "filekey": key,
                       "imageinfo": {"size": size, "sha1": sha1, "mime": "image/png"}}}


def bad_offset(offset: int) -> dict[str, Any]:
    # The offset comes back as a STRING (spec §7).
    return {"error": {"code": "stashfailed", "info": "Invalid chunk offset", "offset": str(offset)}}


NOT_FOUND = {"error": {"code": "uploadstash-file-not-found",
                       "info": 'Key "K1.png" not found in stash.'}}


def stash_rows(*rows: dict[str, Any]) -> dict[str, Any]:
    return {"batchcomplete": True, "query": {"mystashedfiles": list(rows)}}


def stash_info(sha1: str, size: int) -> dict[str, Any]:
    return {"batchcomplete": True, "query": {"stashimageinfo": [{"size": size, "sha1": sha1}]}}


@pytest.fixture
def data() -> bytes:
    return bytes((i * 7) % 251 for i in range(SIZE))


@pytest.fixture
def path(tmp_path: Path, data: bytes) -> Path:
    file = tmp_path / "f.png"
    file.write_bytes(data)
    return file


@pytest.fixture
def sha1(data: bytes) -> str:
    return hashlib.sha1(data).hexdigest()  # noqa: S324 - MediaWiki's content hash


@pytest.fixture
def state(path: Path, sha1: str) -> ChunkState:
    return new_state(path, "F.png", sha1, chunk_size=CHUNK)


def at(state: ChunkState, offset: int, key: str | None = "K1.png") -> ChunkState:
    return replace(state, offset=offset, filekey=key)


# --- the happy path and what is sent ---------------------------------------------------------

def test_chunks_carry_the_protocols_parameters(state: ChunkState, data: bytes, sha1: str) -> None:
    wiki = ScriptedWiki(cont(1024), cont(2048), success(sha1))
    done = upload_chunked(wiki, state)  # type: ignore[arg-type]
    first, second, last = wiki.calls
    assert "filekey" not in first or first["filekey"] is None  # filekeynotallowed at offset 0
    assert second["filekey"] == last["filekey"] == "K1.png"
    assert [c["offset"] for c in wiki.calls] == [0, 1024, 2048]
    assert all(c["filesize"] == SIZE and c["ignorewarnings"] and c["stash"] for c in wiki.calls)
    assert b"".join(c["chunk"] for c in wiki.calls) == data
    assert (done.final_filekey, done.bytes_sent, done.offset) == ("FINAL.png", SIZE, SIZE)


def test_continue_takes_the_wikis_offset_not_our_counter(state: ChunkState) -> None:
    wiki = ScriptedWiki(cont(512))  # odd, but the wiki's word is what counts (tus: server offset)
    assert send_next_chunk(wiki, state).offset == 512  # type: ignore[arg-type]


def test_a_done_state_sends_nothing(state: ChunkState) -> None:
    wiki = ScriptedWiki()
    done = replace(state, final_filekey="FINAL.png", offset=SIZE)
    assert send_next_chunk(wiki, done) is done  # type: ignore[arg-type]
    assert wiki.calls == []


def test_state_survives_a_json_round_trip(state: ChunkState, sha1: str) -> None:
    after = send_next_chunk(ScriptedWiki(cont(1024)), state)  # type: ignore[arg-type]
    assert ChunkState(**json.loads(json.dumps(asdict(after)))) == after


@pytest.mark.parametrize(("filesize", "count", "numbers", "lengths"), [
    (1, 1, [1], [1]),
    (1024, 1, [1], [1024]),
    (1025, 2, [1, 2], [1024, 1]),
    (2 * 1024 + 1, 3, [1, 2, 3], [1024, 1024, 1]),
])
def test_chunk_numbers_and_lengths(state: ChunkState, filesize: int, count: int,
                                   numbers: list[int], lengths: list[int]) -> None:
    base = replace(state, filesize=filesize)
    assert base.chunk_count == count
    offsets = [i * CHUNK for i in range(count)]
    assert [replace(base, offset=o).chunk_number for o in offsets] == numbers
    assert [replace(base, offset=o).next_length for o in offsets] == lengths
    assert replace(base, offset=filesize).next_length == 0


# --- resync after a lost answer (stashfailed + offset) -----------------------------------------

@pytest.mark.parametrize(("ours", "wikis"), [
    (1024, 2048),  # our earlier send landed, its answer was lost: carry on after it
    (2048, 1024),  # a stale record ran ahead of the wiki: go back to where the wiki is
])
def test_stashfailed_offset_moves_to_the_wikis_offset(state: ChunkState, ours: int, wikis: int) -> None:
    wiki = ScriptedWiki(bad_offset(wikis))
    before = at(state, ours)
    after = send_next_chunk(wiki, before)  # type: ignore[arg-type]
    assert (after.offset, after.filekey, after.resyncs) == (wikis, "K1.png", 0)
    assert after.bytes_sent == before.next_length  # the refused bytes were on the wire all the same


def test_lost_answer_then_resend_completes(state: ChunkState, sha1: str) -> None:
    wiki = ScriptedWiki(cont(1024), ResponseLostError("answer lost"), bad_offset(2048), success(sha1))
    first = send_next_chunk(wiki, state)  # type: ignore[arg-type]
    with pytest.raises(ResponseLostError):
        send_next_chunk(wiki, first)  # type: ignore[arg-type]
    resynced = send_next_chunk(wiki, first)  # type: ignore[arg-type]
    assert resynced.offset == 2048
    done = send_next_chunk(wiki, resynced)  # type: ignore[arg-type]
    assert done.done and [c["offset"] for c in wiki.calls] == [0, 1024, 1024, 2048]


def test_same_offset_resyncs_are_bounded(state: ChunkState) -> None:
    wiki = ScriptedWiki(*[bad_offset(1024)] * (MAX_SAME_OFFSET_RESYNCS + 1))
    current = at(state, 1024)
    for expected in range(1, MAX_SAME_OFFSET_RESYNCS + 1):
        current = send_next_chunk(wiki, current)  # type: ignore[arg-type]
        assert (current.offset, current.resyncs) == (1024, expected)
    with pytest.raises(ResyncError):
        send_next_chunk(wiki, current)  # type: ignore[arg-type]


def test_progress_resets_the_same_offset_count(state: ChunkState) -> None:
    wiki = ScriptedWiki(bad_offset(1024), cont(2048))
    once = send_next_chunk(wiki, at(state, 1024))  # type: ignore[arg-type]
    assert once.resyncs == 1
    assert send_next_chunk(wiki, once).resyncs == 0  # type: ignore[arg-type]


def test_offset_outside_the_file_is_not_believed(state: ChunkState) -> None:
    wiki = ScriptedWiki(bad_offset(SIZE + 1))
    with pytest.raises(ResyncError):
        send_next_chunk(wiki, at(state, 1024))  # type: ignore[arg-type]


# --- session gone: find the assembled file, or restart (bounded) -----------------------------

def test_session_gone_after_the_final_chunk_finds_the_assembled_file(state: ChunkState, sha1: str) -> None:
    wiki = ScriptedWiki(
        NOT_FOUND,
        stash_rows({"filekey": "OTHER.png", "status": "finished", "size": SIZE},
                   {"filekey": "SMALL.png", "status": "finished", "size": 10},
                   {"filekey": "K9.png", "status": "chunks", "size": SIZE},
                   {"filekey": "MINE.png", "status": "finished", "size": SIZE}),
        stash_info("0" * 40, SIZE),  # OTHER.png: same size, other bytes
        stash_info(sha1, SIZE),  # MINE.png
    )
    done = send_next_chunk(wiki, at(state, 2048))  # type: ignore[arg-type]
    assert (done.final_filekey, done.restarts, done.offset) == ("MINE.png", 0, SIZE)
    assert [c.get("siifilekey") for c in wiki.calls[2:]] == [["OTHER.png"], ["MINE.png"]]


def test_session_gone_restarts_from_zero_a_bounded_number_of_times(state: ChunkState) -> None:
    current = at(state, 2048)
    for restarts in range(1, MAX_RESTARTS + 1):
        current = send_next_chunk(ScriptedWiki(NOT_FOUND, stash_rows()), current)  # type: ignore[arg-type]
        assert (current.offset, current.filekey, current.restarts) == (0, None, restarts)
        current = at(current, 2048)
    with pytest.raises(ResyncError) as caught:
        send_next_chunk(ScriptedWiki(NOT_FOUND, stash_rows()), current)  # type: ignore[arg-type]
    assert caught.value.code == "uploadstash-file-not-found"


UNREADABLE = {"error": {"code": "stashfailed", "info": 'Could not read file '
                         '"mwstore://local-backend/local-temp/a/a2/1d4ppb5bmxqo.gbw6tc.3.png.0".'}}


def test_unreadable_chunks_at_assembly_start_a_new_session(state: ChunkState) -> None:
    """A killed synchronous assembly leaves a session whose chunks the wiki cannot read: every
    resend of the last chunk would fail the same way, so a new session starts from 0."""
    last = at(state, SIZE - CHUNK)
    restarted = send_next_chunk(ScriptedWiki(UNREADABLE, stash_rows()), last)  # type: ignore[arg-type]
    assert (restarted.offset, restarted.filekey, restarted.restarts) == (0, None, 1)
    with pytest.raises(PermanentApiError):  # not at the last chunk: not this case
        send_next_chunk(ScriptedWiki(UNREADABLE), at(state, 0))  # type: ignore[arg-type]
    worn = replace(last, restarts=MAX_RESTARTS)
    with pytest.raises(PermanentApiError):
        send_next_chunk(ScriptedWiki(UNREADABLE, stash_rows()), worn)  # type: ignore[arg-type]


# --- assembly: acceptance is not integrity --------------------------------------------------

def test_wrong_sha1_after_assembly_restarts_then_fails(state: ChunkState) -> None:
    wrong = "f" * 40
    final = at(state, 2048)
    restarted = send_next_chunk(ScriptedWiki(success(wrong)), final)  # type: ignore[arg-type]
    assert (restarted.offset, restarted.filekey, restarted.final_filekey, restarted.restarts) == (
        0, None, None, 1)
    exhausted = replace(final, restarts=MAX_RESTARTS)
    with pytest.raises(PermanentApiError) as caught:
        send_next_chunk(ScriptedWiki(success(wrong)), exhausted)  # type: ignore[arg-type]
    assert caught.value.code == "sha1-mismatch"


def test_right_sha1_after_assembly_is_done(state: ChunkState, sha1: str) -> None:
    done = send_next_chunk(ScriptedWiki(success(sha1.upper())), at(state, 2048))  # type: ignore[arg-type]
    assert done.done and done.final_filekey == "FINAL.png" and done.imageinfo["size"] == SIZE


def test_async_final_chunk_waits_for_the_poll(state: ChunkState) -> None:
    wiki = ScriptedWiki({"upload": {"result": "Poll", "stage": "queued", "filekey": "K1.png"}})
    polling = send_next_chunk(wiki, at(state, 2048), async_=True)  # type: ignore[arg-type]
    assert polling.polling and polling.offset == SIZE and not polling.done
    assert wiki.calls[0]["async"] is True


def test_a_warning_answer_on_a_chunk_is_an_error(state: ChunkState) -> None:
    wiki = ScriptedWiki({"upload": {"result": "Warning", "warnings": {"exists": "F.png"},
                                    "filekey": "K2.png"}})
    with pytest.raises(PermanentApiError) as caught:
        send_next_chunk(wiki, state)  # type: ignore[arg-type]
    assert caught.value.code == "unexpected-warning"


# --- oversized bodies -----------------------------------------------------------------------

def test_oversized_body_halves_the_chunk_down_to_the_minimum(state: ChunkState) -> None:
    big = replace(state, chunk_size=4096)
    too_big = OversizedRequestError("HTML instead of JSON", sent=True)
    halved = send_next_chunk(ScriptedWiki(too_big), big, min_chunk_size=1024)  # type: ignore[arg-type]
    assert (halved.chunk_size, halved.offset) == (2048, 0)
    halved = send_next_chunk(ScriptedWiki(too_big), halved, min_chunk_size=1024)  # type: ignore[arg-type]
    assert halved.chunk_size == 1024
    with pytest.raises(OversizedRequestError):
        send_next_chunk(ScriptedWiki(too_big), halved, min_chunk_size=1024)  # type: ignore[arg-type]


def test_badupload_halves_the_chunk_too(state: ChunkState) -> None:
    wiki = ScriptedWiki({"error": {"code": "badupload", "info": "File upload param chunk is not a "
                                   "file upload; be sure to use multipart/form-data"}})
    assert send_next_chunk(wiki, replace(state, chunk_size=2048)).chunk_size == 1024  # type: ignore[arg-type]


# --- resume and the stash look-ups ----------------------------------------------------------

def test_resume_takes_checkstatus_offset(state: ChunkState) -> None:
    wiki = ScriptedWiki({"upload": {"result": "Continue", "stage": "uploading", "offset": 2048}})
    resumed = resume(wiki, at(state, 1024))  # type: ignore[arg-type]
    assert resumed.offset == 2048
    assert wiki.calls[0]["checkstatus"] is True and wiki.calls[0]["filekey"] == "K1.png"


def test_resume_after_sync_assembly_finds_the_stash_file(state: ChunkState, sha1: str) -> None:
    wiki = ScriptedWiki(
        {"error": {"code": "missingresult", "info": "No result in status data."}},
        stash_rows({"filekey": "MINE.png", "status": "finished", "size": SIZE}),
        stash_info(sha1, SIZE),
    )
    resumed = resume(wiki, at(state, 2048))  # type: ignore[arg-type]
    assert resumed.final_filekey == "MINE.png"


def test_resume_with_nothing_on_the_wiki_starts_over(state: ChunkState) -> None:
    wiki = ScriptedWiki({"error": {"code": "missingresult", "info": "No result in status data."}},
                        stash_rows(), stash_rows())
    resumed = resume(wiki, at(state, 2048))  # type: ignore[arg-type]
    assert (resumed.offset, resumed.filekey) == (0, None)


def test_unfinished_session_is_found_by_its_first_chunk(path: Path, data: bytes) -> None:
    first = hashlib.sha1(data[:CHUNK]).hexdigest()  # noqa: S324
    wiki = ScriptedWiki(
        stash_rows({"filekey": "DONE.png", "status": "finished", "size": SIZE},
                   {"filekey": "ELSE.png", "status": "chunks", "size": 2048},
                   {"filekey": "MINE.png", "status": "chunks", "size": 2048}),
        stash_info("0" * 40, CHUNK),
        stash_info(first, CHUNK),
    )
    assert find_unfinished_session(wiki, path) == ("MINE.png", 2048)  # type: ignore[arg-type]


def test_finished_stash_lookup_ignores_unreadable_rows(sha1: str) -> None:
    gone = {"error": {"code": "uploadstash-file-not-found", "info": "gone"}}
    wiki = ScriptedWiki(stash_rows({"filekey": "GONE.png", "status": "finished", "size": SIZE},
                                   {"filekey": "MINE.png", "status": "finished", "size": SIZE}),
                        gone, stash_info(sha1, SIZE))
    found = find_finished_stash(wiki, sha1, SIZE)  # type: ignore[arg-type]
    assert found is not None and found[0] == "MINE.png"
