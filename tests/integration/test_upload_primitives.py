"""Every ``action=upload`` primitive against the real throwaway wiki (spec §2, §4, §7, §8, §11).

Each test asserts what the *wiki* then holds — the file's SHA-1, its version count, the page text,
the stash offset — not just the answer to the request: an answer can say ``Success`` while the
wrong bytes landed (spec §7, publishing an unfinished session).
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Callable, Iterator
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from mwingest.base.errors import InputError
from mwingest.wiki.chunked import finish_async, new_state, send_next_chunk, upload_chunked
from mwingest.wiki.session import WikiSession
from mwingest.wiki.upload import (
    ResultKind,
    check_status,
    file_info,
    find_by_sha1,
    publish_stash,
    stash_info,
    upload_bytes,
    upload_file,
    upload_from_url,
    wait_for_async,
)
from tests.integration.wikihelpers import (
    ensure_tag,
    extra_bot_session,
    page_text,
    png_bytes,
    png_of_size,
    session_for,
    wait_next_second,
)

pytestmark = pytest.mark.wiki

CHUNK = 1024  # the wiki's minuploadchunksize: the smallest legal non-final chunk (spec §7)
TAG = "mwingest-test"


def sha1(data: bytes) -> str:
    return hashlib.sha1(data).hexdigest()  # noqa: S324 - MediaWiki's content hash


@pytest.fixture(scope="module")
def uploader(wiki: Any) -> WikiSession:
    """One logged-in Uploader session for the module (the stash belongs to the user anyway)."""
    return session_for(wiki)


def _write(tmp_path: Path, name: str, data: bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


# --- direct upload and stash -------------------------------------------------------------------


def test_direct_upload_lands_bytes_text_and_comment(uploader: WikiSession, unique: Callable[[], str],
                                                    tmp_path: Path) -> None:
    name = f"Direct{unique()}.png"
    data = png_bytes(size=(16, 16))
    path = _write(tmp_path, "direct.png", data)

    result = upload_file(uploader, path, name, comment="first upload", text="== Direct ==\nbody")

    assert result.kind == ResultKind.SUCCESS
    assert result.filename == name
    assert result.sha1 == sha1(data)
    info = file_info(uploader, name)
    assert info is not None
    assert info["sha1"] == sha1(data)
    assert info["size"] == len(data)
    assert info["comment"] == "first upload"
    assert page_text(uploader, f"File:{name}") == "== Direct ==\nbody"
    assert [row["name"] for row in find_by_sha1(uploader, sha1(data))] == [name]


def test_stash_then_publish_does_not_resend_bytes(uploader: WikiSession, unique: Callable[[], str],
                                                  tmp_path: Path) -> None:
    name = f"Stashed{unique()}.png"
    data = png_bytes(size=(64, 64))  # ~12 KB of noise: far bigger than any publish request
    stashed = upload_file(uploader, _write(tmp_path, "s.png", data), name, stash=True)

    assert stashed.kind == ResultKind.SUCCESS
    assert stashed.filekey and stashed.filename is None
    assert file_info(uploader, name) is None, "stash=1 must not publish"
    assert stash_info(uploader, [stashed.filekey])[0]["sha1"] == sha1(data)

    bodies: list[int] = []

    def record(resp: Any, *args: Any, **kwargs: Any) -> None:
        body = resp.request.body
        bodies.append(len(body) if isinstance(body, bytes | str) else -1)

    uploader.http.hooks["response"].append(record)
    try:
        published = publish_stash(uploader, stashed.filekey, name, comment="from stash",
                                  text="stash text")
    finally:
        uploader.http.hooks["response"].remove(record)

    assert published.kind == ResultKind.SUCCESS and published.filename == name
    # The publish is a plain form POST (not multipart) far smaller than the file: no bytes re-sent.
    assert bodies and all(0 <= size < len(data) // 4 for size in bodies)
    assert file_info(uploader, name)["sha1"] == sha1(data)
    assert page_text(uploader, f"File:{name}") == "stash text"


def test_publish_with_deprecated_sessionkey(uploader: WikiSession, unique: Callable[[], str]) -> None:
    name = f"Sessionkey{unique()}.png"
    data = png_bytes()
    stashed = upload_bytes(uploader, data, name, stash=True)
    assert stashed.filekey

    published = publish_stash(uploader, stashed.filekey, name, text="via sessionkey",
                              use_sessionkey=True)

    assert published.kind == ResultKind.SUCCESS
    assert file_info(uploader, name)["sha1"] == sha1(data)
    assert page_text(uploader, f"File:{name}") == "via sessionkey"


# --- copy upload ------------------------------------------------------------------------------


class _RecordingHandler(SimpleHTTPRequestHandler):
    """Serves a directory quietly and records the paths asked for (to prove the wiki fetched)."""

    requested: list[str] = []

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        type(self).requested.append(self.path)


@pytest.fixture
def file_server(tmp_path: Path) -> Iterator[tuple[str, Path, list[str]]]:
    """An ``http.server`` on 127.0.0.1 serving ``tmp_path`` (port outside 8000–8999)."""
    handler = type("Handler", (_RecordingHandler,), {"requested": []})
    server = None
    for _ in range(20):
        candidate = ThreadingHTTPServer(("127.0.0.1", 0), partial(handler, directory=str(tmp_path)))
        if not 8000 <= candidate.server_address[1] <= 8999:
            server = candidate
            break
        candidate.server_close()
    assert server is not None, "no free port outside 8000-8999"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", tmp_path, handler.requested
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


def test_upload_from_url_lands_the_served_bytes(uploader: WikiSession, unique: Callable[[], str],
                                                file_server: tuple[str, Path, list[str]]) -> None:
    base, root, requested = file_server
    data = png_bytes(size=(12, 12))
    (root / "served.png").write_bytes(data)
    name = f"FromUrl{unique()}.png"

    result = upload_from_url(uploader, f"{base}/served.png", name, text="copied")

    assert result.kind == ResultKind.SUCCESS and result.filename == name
    assert "/served.png" in requested, "the wiki itself must have fetched the file"
    assert file_info(uploader, name)["sha1"] == sha1(data)
    assert page_text(uploader, f"File:{name}") == "copied"


# --- chunked ----------------------------------------------------------------------------------


@pytest.mark.parametrize("size", [
    CHUNK - 1,  # one (final) chunk
    CHUNK,  # exactly one chunk
    CHUNK + 1,  # a final chunk of a single byte
    3 * CHUNK - 1,
    3 * CHUNK,  # ends exactly on a boundary
    3 * CHUNK + 1,
])
def test_chunked_upload_at_chunk_boundaries(uploader: WikiSession, unique: Callable[[], str],
                                            tmp_path: Path, size: int) -> None:
    name = f"Chunked{unique()}.png"
    data = png_of_size(size)
    path = _write(tmp_path, "c.png", data)
    steps: list[int] = []

    state = upload_chunked(uploader, new_state(path, name, sha1(data), chunk_size=CHUNK),
                           on_progress=lambda s: steps.append(s.offset))

    assert state.done and state.final_filekey
    assert len(steps) == -(-size // CHUNK)  # one request per chunk, none resent
    assert steps[-1] == size and state.bytes_sent == size
    assert stash_info(uploader, [state.final_filekey])[0]["sha1"] == sha1(data)
    published = publish_stash(uploader, state.final_filekey, name, text="chunked")
    assert published.kind == ResultKind.SUCCESS
    info = file_info(uploader, name)
    assert info["sha1"] == sha1(data) and info["size"] == size


def test_check_status_mid_upload_reports_the_offset(wiki: Any, uploader: WikiSession,
                                                     unique: Callable[[], str], tmp_path: Path) -> None:
    name = f"Midway{unique()}.png"
    data = png_of_size(4 * CHUNK + 100)
    state = new_state(_write(tmp_path, "m.png", data), name, sha1(data), chunk_size=CHUNK)
    state = send_next_chunk(uploader, state)
    state = send_next_chunk(uploader, state)
    assert state.filekey and state.offset == 2 * CHUNK

    # Asked from a fresh login: the status belongs to the user, not to the HTTP session (spec §7).
    status = check_status(session_for(wiki), state.filekey)

    assert status.kind == ResultKind.CONTINUE
    assert status.offset == 2 * CHUNK
    assert status.stage == "uploading"
    # upload_chunked resumes from the wiki's offset (checkstatus) and completes the file.
    state = upload_chunked(uploader, state)
    assert state.bytes_sent == len(data)
    publish_stash(uploader, state.final_filekey, name)
    assert file_info(uploader, name)["sha1"] == sha1(data)


def test_async_final_chunk_is_assembled_by_the_job(wiki: Any, uploader: WikiSession,
                                                   unique: Callable[[], str], tmp_path: Path) -> None:
    name = f"AsyncChunk{unique()}.png"
    data = png_of_size(2 * CHUNK + 10)
    state = new_state(_write(tmp_path, "a.png", data), name, sha1(data), chunk_size=CHUNK)
    while not state.polling and not state.done:
        state = send_next_chunk(uploader, state, async_=True)

    assert state.polling and not state.done, "async final chunk must queue, not assemble"
    queued = check_status(uploader, state.filekey)
    assert queued.kind == ResultKind.POLL and queued.stage == "queued"

    wiki.run_maintenance("runJobs.php", "--type", "AssembleUploadChunks")
    state = finish_async(uploader, state, timeout=30)

    assert state.done and state.final_filekey != state.filekey  # assembly gives a new key
    assert stash_info(uploader, [state.final_filekey])[0]["sha1"] == sha1(data)
    publish_stash(uploader, state.final_filekey, name)
    assert file_info(uploader, name)["sha1"] == sha1(data)


def test_async_publish_lands_after_the_job_runs(wiki: Any, uploader: WikiSession,
                                                unique: Callable[[], str]) -> None:
    name = f"AsyncPublish{unique()}.png"
    data = png_bytes()
    key = upload_bytes(uploader, data, name, stash=True).filekey
    assert key

    queued = publish_stash(uploader, key, name, text="async text", async_=True)

    assert queued.kind == ResultKind.POLL and queued.stage == "queued"
    assert check_status(uploader, key).kind == ResultKind.POLL
    assert file_info(uploader, name) is None, "nothing lands before the job runs"
    wiki.run_maintenance("runJobs.php", "--type", "PublishStashedFile")
    done = wait_for_async(uploader, key, timeout=30, interval=0.5)
    assert done.kind == ResultKind.SUCCESS and done.filename == name
    assert file_info(uploader, name)["sha1"] == sha1(data)
    assert page_text(uploader, f"File:{name}") == "async text"


# --- parameters -------------------------------------------------------------------------------


def test_ignorewarnings_false_does_not_overwrite(uploader: WikiSession, unique: Callable[[], str]) -> None:
    """The boolean trap (spec §2): ``ignorewarnings=False`` must leave the key out entirely."""
    name = f"Trap{unique()}.png"
    first = png_bytes()
    upload_bytes(uploader, first, name)
    wait_next_second()

    second = upload_bytes(uploader, png_bytes(), name, ignorewarnings=False)

    assert second.kind == ResultKind.WARNING and second.warnings.exists == name
    info = file_info(uploader, name, history=True)
    assert len(info["versions"]) == 1
    assert info["sha1"] == sha1(first)


def _tags_of_upload(session: WikiSession, name: str) -> tuple[list[str], list[str]]:
    """Tags on the upload log entry and on the file page's revision."""
    logs = session.get({"action": "query", "list": "logevents", "letype": "upload",
                        "letitle": f"File:{name}", "leprop": "tags"})["query"]["logevents"]
    page = session.get({"action": "query", "titles": f"File:{name}", "prop": "revisions",
                        "rvprop": "tags"})["query"]["pages"][0]
    return logs[0]["tags"], page["revisions"][0]["tags"]


def test_tags_land_on_log_and_revision(wiki: Any, uploader: WikiSession,
                                       unique: Callable[[], str]) -> None:
    ensure_tag(wiki, TAG)
    name = f"Tagged{unique()}.png"

    result = upload_bytes(uploader, png_bytes(), name, tags=[TAG])

    assert result.kind == ResultKind.SUCCESS
    log_tags, revision_tags = _tags_of_upload(uploader, name)
    assert TAG in log_tags and TAG in revision_tags


def test_unknown_tag_is_badtags(uploader: WikiSession, unique: Callable[[], str]) -> None:
    name = f"Badtag{unique()}.png"
    with pytest.raises(InputError) as caught:
        upload_bytes(uploader, png_bytes(), name, tags=[f"nosuchtag-{unique()}"])
    assert caught.value.code == "badtags"
    assert file_info(uploader, name) is None


def _watched(session: WikiSession, name: str) -> bool:
    page = session.get({"action": "query", "titles": f"File:{name}", "prop": "info",
                        "inprop": "watched"})["query"]["pages"][0]
    return bool(page.get("watched"))


def test_watchlist_watch_puts_the_file_on_the_watchlist(wiki: Any, uploader: WikiSession,
                                                        unique: Callable[[], str]) -> None:
    watched, unwatched = f"Watched{unique()}.png", f"Unwatched{unique()}.png"

    upload_bytes(uploader, png_bytes(), watched, watchlist="watch")
    upload_bytes(uploader, png_bytes(), unwatched, watchlist="nochange")

    # The Uploader's grants have no viewmywatchlist (the API would say "not watched" to it), so
    # look through a second bot password of the same user that may read the watchlist.
    viewer = extra_bot_session(wiki, uploader.user or "Uploader", "basic,viewmywatchlist")
    assert _watched(viewer, watched)
    assert not _watched(viewer, unwatched), "control: nochange must not watch"
