"""Every upload error the real 1.39 wiki can be made to give, as typed exceptions (spec §6, §7).

Each test provokes the error on the throwaway wiki, then checks the exception's class, ``code``,
``retry_class`` and the extra data a caller recovers with (``filekey``, ``offset``, ``details``),
and what the wiki holds afterwards: usually that nothing landed, or that the recovery landed the
right bytes. Errors tied to who is logged in (tokens, sessions, grants, blocks, waits) are in
``test_session.py``.

Not produced: ``backend-fail-alreadyexists`` (two versions of one file within the same second: a
race, not a reliable test), ``hookaborted`` (1.39's UploadBase never returns HOOK_ABORTED),
``fileexists-shared-forbidden`` (needs a foreign repository), ``windows-nonascii-filename``
(Windows file systems only).
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from mwingest.base.errors import (
    AlreadyThereError,
    ApiError,
    InputError,
    OversizedRequestError,
    PermanentApiError,
    ResyncError,
    RetryClass,
    TransientApiError,
    reason_code,
)
from mwingest.base.streams import FilePart
from mwingest.wiki.chunked import finish_async, new_state, send_next_chunk, upload_chunked
from mwingest.wiki.session import WikiSession
from mwingest.wiki.upload import (
    check_status,
    file_info,
    publish_stash,
    upload_bytes,
    upload_chunk,
    upload_from_url,
    verify_landed,
)
from tests.integration.wikihelpers import (
    admin_session,
    jpeg_bytes,
    png_bytes,
    png_of_size,
    session_for,
)

pytestmark = pytest.mark.wiki
CHUNK = 1024  # minuploadchunksize: the smallest legal non-final chunk
MiB = 1024 * 1024


def sha1(data: bytes) -> str:
    return hashlib.sha1(data).hexdigest()  # noqa: S324 - MediaWiki's content hash


@pytest.fixture(scope="module")
def uploader(wiki: Any) -> WikiSession:
    return session_for(wiki)


def landed(session: WikiSession, filename: str) -> bool:
    return file_info(session, filename) is not None


def check(exc: BaseException, cls: type[ApiError], code: str, retry_class: RetryClass) -> None:
    """The exact class (not a subclass), the wiki's code and the spec's retry class."""
    assert type(exc) is cls, f"{type(exc).__name__}: {exc}"
    assert isinstance(exc, ApiError) and exc.code == code
    assert exc.retry_class is retry_class


def write(tmp_path: Path, data: bytes) -> Path:
    path = tmp_path / f"{secrets.token_hex(4)}.png"
    path.write_bytes(data)
    return path


# --- content (class P) -------------------------------------------------------------------------

def test_jpeg_named_png_is_a_verification_error(uploader: WikiSession,
                                                unique: Callable[[], str]) -> None:
    name = f"Mismatch-{unique()}.png"
    with pytest.raises(PermanentApiError) as caught:
        upload_bytes(uploader, jpeg_bytes(), name)
    check(caught.value, PermanentApiError, "verification-error", RetryClass.PERMANENT)
    assert caught.value.details == ["filetype-mime-mismatch", "png", "image/jpeg"]
    assert reason_code(caught.value) == "verification-error:filetype-mime-mismatch"
    assert not landed(uploader, name)


@pytest.mark.parametrize(("suffix", "data", "filetype", "blacklisted"), [
    (".txt", b"just some text\n", "txt", None),
    (".php.png", None, "png", ["php"]),  # a prohibited extension anywhere in the name
])
def test_banned_file_types(uploader: WikiSession, unique: Callable[[], str], suffix: str,
                           data: bytes | None, filetype: str, blacklisted: list[str] | None) -> None:
    name = f"Shell-{unique()}{suffix}"
    with pytest.raises(PermanentApiError) as caught:
        upload_bytes(uploader, data or png_bytes(), name)
    check(caught.value, PermanentApiError, "filetype-banned", RetryClass.PERMANENT)
    assert caught.value.data["filetype"] == filetype
    assert "png" in caught.value.data["allowed"] and "txt" not in caught.value.data["allowed"]
    assert caught.value.data.get("blacklisted") == blacklisted
    assert caught.value.filekey is None  # renaming the stash copy cannot help
    assert not landed(uploader, name)


def test_empty_file(uploader: WikiSession, unique: Callable[[], str]) -> None:
    name = f"Empty-{unique()}.png"
    with pytest.raises(PermanentApiError) as caught:
        upload_bytes(uploader, b"", name)
    check(caught.value, PermanentApiError, "empty-file", RetryClass.PERMANENT)
    assert not landed(uploader, name)


def test_same_bytes_again_is_already_there(uploader: WikiSession, unique: Callable[[], str]) -> None:
    data, name = png_bytes(), f"Again-{unique()}.png"
    upload_bytes(uploader, data, name)
    with pytest.raises(AlreadyThereError) as caught:
        upload_bytes(uploader, data, name, ignorewarnings=True)
    check(caught.value, AlreadyThereError, "fileexists-no-change", RetryClass.PERMANENT)
    assert not caught.value.retryable and caught.value.filekey is None
    info = file_info(uploader, name, history=True)
    assert len(info["versions"]) == 1 and info["sha1"] == sha1(data)


# --- names and titles (class F: the FK errors keep the bytes in the stash) ----------------------

def test_illegal_filename_keeps_the_bytes_for_a_renamed_publish(uploader: WikiSession,
                                                                unique: Callable[[], str]) -> None:
    data, token = png_bytes(), unique()
    with pytest.raises(InputError) as caught:
        upload_bytes(uploader, data, f"A~~~b-{token}.png")
    check(caught.value, InputError, "illegal-filename", RetryClass.FIX_INPUT)
    assert caught.value.data["invalidparameter"] == "filename" and caught.value.filekey
    good = f"Renamed-{token}.png"
    result = publish_stash(uploader, caught.value.filekey, good)  # the bytes are not sent again
    assert result.filename == good and result.sha1 == sha1(data)
    assert file_info(uploader, good)["sha1"] == sha1(data)


def test_name_length_is_counted_in_bytes(uploader: WikiSession, unique: Callable[[], str]) -> None:
    token = unique()
    too_long = "a" * (241 - len(token) - 4) + token + ".png"
    assert len(too_long.encode()) == 241
    with pytest.raises(InputError) as caught:
        upload_bytes(uploader, png_bytes(), too_long)
    check(caught.value, InputError, "filename-toolong", RetryClass.FIX_INPUT)
    assert caught.value.filekey
    multibyte = "é" * 118 + token + ".png"  # fewer than 240 characters, more than 240 bytes
    assert len(multibyte) < 240 < len(multibyte.encode())
    with pytest.raises(InputError, match="filename-toolong"):
        upload_bytes(uploader, png_bytes(), multibyte)
    just_fits = "b" * (240 - len(token) - 4) + token + ".png"
    assert upload_bytes(uploader, png_bytes(), just_fits).kind == "Success"


def test_nothing_before_the_extension_is_too_short(uploader: WikiSession) -> None:
    with pytest.raises(InputError) as caught:
        upload_bytes(uploader, png_bytes(), ".png")
    check(caught.value, InputError, "filename-tooshort", RetryClass.FIX_INPUT)
    assert caught.value.filekey


def test_protected_title_is_protectedpage_with_a_filekey(wiki: Any, uploader: WikiSession,
                                                         unique: Callable[[], str]) -> None:
    name, data = f"Protected-{unique()}.png", png_bytes()
    admin_session(wiki).post({"action": "protect", "title": f"File:{name}",
                              "protections": "create=sysop"})
    with pytest.raises(InputError) as caught:
        upload_bytes(uploader, data, name)
    check(caught.value, InputError, "protectedpage", RetryClass.FIX_INPUT)
    other = f"Unprotected-{unique()}.png"
    assert publish_stash(uploader, caught.value.filekey, other).sha1 == sha1(data)
    assert not landed(uploader, name)


# --- client bugs and stash keys (class P / R) ------------------------------------------------

@pytest.mark.parametrize(("params", "part", "code"), [
    ({"filename": "X.png"}, None, "missingparam"),
    ({}, "file", "nofilename"),
    ({"filename": "X.png", "filekey": "1d3z.abc.1.png", "url": "http://127.0.0.1:1/x.png"}, None,
     "invalidparammix"),
    ({"filename": "X.png", "async": True}, "file", "cannot-async-upload-file"),
    ({"filename": "X.png", "watchlist": "unwatch"}, "file", "badvalue"),
    ({"filename": "X.png", "filekey": "nodot"}, None, "invalid-file-key"),
    ({"filename": "X.png", "filesize": 5000, "offset": 0, "filekey": "1d3z.abc.1.png"}, "chunk",
     "filekeynotallowed"),
    ({"filename": "X.png", "filesize": 5000, "offset": CHUNK}, "chunk", "filekeyneeded"),
    ({"filename": "X.png", "filesize": 5000, "offset": 0}, "small-chunk", "chunk-too-small"),
    ({"filename": "X.png", "filesize": 1000, "offset": 0}, "chunk", "invalid-chunk"),
])
def test_client_bugs_are_permanent(uploader: WikiSession, params: dict[str, Any], part: str | None,
                                   code: str) -> None:
    data = png_of_size(2 * CHUNK)
    files = None
    if part == "file":
        files = {"file": FilePart("X.png", data=data)}
    elif part:
        chunk = data[:100] if part == "small-chunk" else data[:CHUNK * 2]
        files = {"chunk": FilePart("X.png", data=chunk)}
        params = {**params, "stash": True, "ignorewarnings": True}
    with pytest.raises(PermanentApiError) as caught:
        uploader.post({"action": "upload", **params}, files)
    check(caught.value, PermanentApiError, code, RetryClass.PERMANENT)


def test_token_in_the_query_string_is_mustpostparams(uploader: WikiSession) -> None:
    with pytest.raises(PermanentApiError) as caught:
        uploader.get({"action": "upload", "filename": "X.png", "token": uploader.csrf_token()})
    check(caught.value, PermanentApiError, "mustpostparams", RetryClass.PERMANENT)


def test_unknown_stash_key_is_resync(uploader: WikiSession, unique: Callable[[], str]) -> None:
    user_id = uploader.get({"action": "query", "meta": "userinfo"})["query"]["userinfo"]["id"]
    made_up = f"{secrets.token_hex(6)}.{secrets.token_hex(3)}.{user_id}.png"
    name = f"Madeup-{unique()}.png"
    with pytest.raises(ResyncError) as caught:
        publish_stash(uploader, made_up, name)
    check(caught.value, ResyncError, "uploadstash-file-not-found", RetryClass.RESYNC)
    assert made_up in caught.value.info
    assert not landed(uploader, name)


def test_checkstatus_without_status_is_missingresult(uploader: WikiSession) -> None:
    key = upload_bytes(uploader, png_bytes(), "Nostatus.png", stash=True).filekey
    assert key
    with pytest.raises(ResyncError) as caught:
        check_status(uploader, key)
    check(caught.value, ResyncError, "missingresult", RetryClass.RESYNC)


def test_another_users_stash_key(wiki: Any, uploader: WikiSession, unique: Callable[[], str]) -> None:
    key = upload_bytes(uploader, png_bytes(), "Mine.png", stash=True).filekey
    assert key
    name = f"Theirs-{unique()}.png"
    with pytest.raises(PermanentApiError) as caught:
        publish_stash(admin_session(wiki), key, name)
    check(caught.value, PermanentApiError, "uploadstash-wrong-owner", RetryClass.PERMANENT)
    assert not landed(uploader, name)


# --- the chunk protocol out of step (class R, spec §7) -------------------------------------------

def test_resent_chunk_is_stashfailed_then_resynced(uploader: WikiSession, unique: Callable[[], str],
                                                   tmp_path: Path) -> None:
    data, name = png_of_size(3 * CHUNK + 500), f"Resync-{unique()}.png"
    path = write(tmp_path, data)
    state = send_next_chunk(uploader, new_state(path, name, sha1(data), chunk_size=CHUNK))
    before_second = state
    state = send_next_chunk(uploader, state)
    assert state.offset == 2 * CHUNK
    chunk_two = FilePart(name, path=path, offset=CHUNK, length=CHUNK)
    with pytest.raises(ResyncError) as caught:  # the same chunk again, as after a lost answer
        upload_chunk(uploader, filename=name, filesize=len(data), offset=CHUNK, part=chunk_two,
                     filekey=state.filekey)
    check(caught.value, ResyncError, "stashfailed", RetryClass.RESYNC)
    assert caught.value.data["offset"] == str(2 * CHUNK)  # a string in the wiki's answer
    assert caught.value.server_offset == 2 * CHUNK
    resynced = send_next_chunk(uploader, before_second)  # the stale state resends chunk 2
    assert (resynced.offset, resynced.filekey, resynced.done) == (2 * CHUNK, state.filekey, False)
    done = upload_chunked(uploader, resynced)
    assert publish_stash(uploader, done.final_filekey or "", name).sha1 == sha1(data)
    verify_landed(uploader, name, sha1(data), len(data))


def test_resent_async_final_chunk_is_polled_not_failed(wiki: Any, uploader: WikiSession,
                                                       unique: Callable[[], str],
                                                       tmp_path: Path) -> None:
    data, name = png_of_size(CHUNK + 700), f"Asyncagain-{unique()}.png"
    path = write(tmp_path, data)
    before_final = send_next_chunk(uploader, new_state(path, name, sha1(data), chunk_size=CHUNK))
    queued = send_next_chunk(uploader, before_final, async_=True)
    assert queued.polling and not queued.done
    last = FilePart(name, path=path, offset=CHUNK, length=len(data) - CHUNK)
    with pytest.raises(ResyncError) as caught:
        upload_chunk(uploader, filename=name, filesize=len(data), offset=CHUNK, part=last,
                     filekey=before_final.filekey, async_=True)
    check(caught.value, ResyncError, "stashfailed", RetryClass.RESYNC)
    assert "already completed" in caught.value.info and caught.value.server_offset is None
    again = send_next_chunk(uploader, before_final, async_=True)  # the answer to the first was lost
    assert again.polling and again.filekey == before_final.filekey and again.restarts == 0
    wiki.run_maintenance("runJobs.php", "--type", "AssembleUploadChunks")
    done = finish_async(uploader, again, timeout=30)
    assert publish_stash(uploader, done.final_filekey or "", name).sha1 == sha1(data)
    verify_landed(uploader, name, sha1(data), len(data))


def test_stash_cleaned_mid_session_restarts_from_zero(wiki_factory: Callable[..., Any],
                                                      unique: Callable[[], str],
                                                      tmp_path: Path) -> None:
    # cleanupUploadStash.php removes rows older than $wgUploadStashMaxAge; -3600 makes every row
    # stale at once. Its own wiki: on the shared one it would empty other tests' stashes.
    variant = wiki_factory(extra_settings="$wgUploadStashMaxAge = -3600;")
    session = session_for(variant)
    data, name = png_of_size(2 * CHUNK + 300), f"Cleaned-{unique()}.png"
    path = write(tmp_path, data)
    state = send_next_chunk(session, new_state(path, name, sha1(data), chunk_size=CHUNK))
    assert state.offset == CHUNK and state.filekey
    variant.run_maintenance("cleanupUploadStash.php")
    assert check_status(session, state.filekey).offset == CHUNK  # the status outlives the row
    with pytest.raises(ResyncError) as caught:
        upload_chunk(session, filename=name, filesize=len(data), offset=CHUNK, filekey=state.filekey,
                     part=FilePart(name, path=path, offset=CHUNK, length=CHUNK))
    check(caught.value, ResyncError, "uploadstash-file-not-found", RetryClass.RESYNC)
    assert caught.value.server_offset is None
    restarted = send_next_chunk(session, state)
    assert (restarted.offset, restarted.filekey, restarted.restarts) == (0, None, 1)
    done = upload_chunked(session, restarted)
    assert publish_stash(session, done.final_filekey or "", name).sha1 == sha1(data)
    verify_landed(session, name, sha1(data), len(data))


# --- bodies over PHP's limits ------------------------------------------------------------------

@pytest.mark.parametrize(("php", "exc_type", "code", "final_chunk"), [
    # Over post_max_size PHP drops the whole body: MediaWiki answers its HTML help page.
    ({"php_upload_max": "1M", "php_post_max": "1M"}, OversizedRequestError, "request-too-large",
     512 * 1024),
    # Over upload_max_filesize only: the file part is dropped and the wiki says badupload.
    ({"php_upload_max": "1M", "php_post_max": "8M"}, PermanentApiError, "badupload", MiB),
])
def test_oversized_body_is_refused_and_chunks_shrink(wiki_factory: Callable[..., Any],
                                                     unique: Callable[[], str], tmp_path: Path,
                                                     php: dict[str, str], exc_type: type[Exception],
                                                     code: str, final_chunk: int) -> None:
    variant = wiki_factory(**php)
    session = session_for(variant)
    data, name = png_bytes(size=(1000, 1000)), f"Oversized-{unique()}.png"
    assert len(data) > 2 * MiB
    with pytest.raises(exc_type) as caught:
        upload_bytes(session, data, name)
    assert type(caught.value) is exc_type and reason_code(caught.value) == code
    assert not getattr(caught.value, "retryable", True)  # the same bytes again cannot pass
    if code == "badupload":
        assert caught.value.data["size"] == MiB  # the limit, not our size
    assert not landed(session, name)
    state = upload_chunked(session, new_state(write(tmp_path, data), name, sha1(data),
                                              chunk_size=4 * MiB))
    assert state.chunk_size == final_chunk
    assert publish_stash(session, state.final_filekey or "", name).sha1 == sha1(data)
    verify_landed(session, name, sha1(data), len(data))


# --- URL uploads and configuration variants ----------------------------------------------------

@pytest.mark.parametrize(("url", "cls", "code", "retry_class"), [
    ("file:///etc/hostname", PermanentApiError, "http-invalid-url", RetryClass.PERMANENT),
    ("http://127.0.0.1:1/x.png", TransientApiError, "http-curl-error", RetryClass.TRANSIENT),
])
def test_copy_upload_fetch_errors(uploader: WikiSession, unique: Callable[[], str], url: str,
                                  cls: type[ApiError], code: str, retry_class: RetryClass) -> None:
    name = f"Url-{unique()}.png"
    with pytest.raises(ApiError) as caught:
        upload_from_url(uploader, url, name)
    check(caught.value, cls, code, retry_class)
    assert not landed(uploader, name)


@pytest.mark.parametrize(("variant_kwargs", "how", "code"), [
    ({"copy_uploads": False}, "url", "copyuploaddisabled"),
    ({"max_upload_size": 1000}, "file", "file-too-large"),
    ({"extra_settings": "$wgEnableUploads = false;"}, "file", "uploaddisabled"),
])
def test_configuration_refusals(wiki_factory: Callable[..., Any], unique: Callable[[], str],
                                variant_kwargs: dict[str, Any], how: str, code: str) -> None:
    session = session_for(wiki_factory(**variant_kwargs))
    name, data = f"Variant-{unique()}.png", png_bytes(size=(24, 24))
    assert len(data) > 1000
    with pytest.raises(PermanentApiError) as caught:
        if how == "url":
            upload_from_url(session, "http://127.0.0.1:1/x.png", name)
        else:
            upload_bytes(session, data, name)
    check(caught.value, PermanentApiError, code, RetryClass.PERMANENT)
    assert not landed(session, name)
    if code == "file-too-large":  # the limit really is the size: a small file passes
        assert upload_bytes(session, png_bytes(size=(2, 2)), f"Small-{unique()}.png").kind == "Success"


def test_read_only_wiki_refuses_even_the_login(wiki_factory: Callable[..., Any]) -> None:
    variant = wiki_factory(extra_settings="$wgReadOnly = 'Database maintenance in progress';")
    with pytest.raises(TransientApiError) as caught:
        session_for(variant)
    check(caught.value, TransientApiError, "readonly", RetryClass.TRANSIENT)
    assert caught.value.data["readonlyreason"] == "Database maintenance in progress"
