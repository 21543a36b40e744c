"""Every upload warning the wiki can give by default, provoked on the real wiki (spec §5).

For each warning: the typed field of :class:`~mwingest.wiki.upload.UploadWarnings` carries the wiki's
value, and resolving it works the way spec §5 says — publish the returned ``filekey`` again
(``ignorewarnings``, or a fixed name) without re-sending the bytes — and the wiki then holds the
expected file. ``large-file``, ``filetype-unwanted-type`` and ``empty-file`` need non-default
settings or are unreachable (spec §5), so they are not here.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from typing import Any

import pytest

from mwingest.base.errors import AlreadyThereError
from mwingest.wiki.session import WikiSession
from mwingest.wiki.upload import (
    ResultKind,
    UploadResult,
    file_info,
    find_by_sha1,
    publish_stash,
    stash_info,
    upload_bytes,
)
from tests.integration.wikihelpers import (
    admin_session,
    create_page,
    delete_file,
    jpeg_bytes,
    page_text,
    png_bytes,
    session_for,
    wait_next_second,
)

pytestmark = pytest.mark.wiki


def sha1(data: bytes) -> str:
    return hashlib.sha1(data).hexdigest()  # noqa: S324 - MediaWiki's content hash


@pytest.fixture(scope="module")
def uploader(wiki: Any) -> WikiSession:
    return session_for(wiki)


@pytest.fixture(scope="module")
def admin(wiki: Any) -> WikiSession:
    return admin_session(wiki)


def _warned(result: UploadResult, data: bytes, session: WikiSession) -> str:
    """Common checks on a Warning answer; returns its filekey (the stashed copy of ``data``)."""
    assert result.kind == ResultKind.WARNING, result
    assert result.filekey, "a Warning answer stashes the file and returns its key"
    assert stash_info(session, [result.filekey])[0]["sha1"] == sha1(data)
    return result.filekey


def _versions(session: WikiSession, name: str) -> list[dict[str, Any]]:
    info = file_info(session, name, history=True)
    return list(info["versions"]) if info else []


def test_exists(uploader: WikiSession, unique: Callable[[], str]) -> None:
    name = f"Exists{unique()}.png"
    old, new = png_bytes(), png_bytes()
    upload_bytes(uploader, old, name)

    result = upload_bytes(uploader, new, name)

    key = _warned(result, new, uploader)
    assert result.warnings.exists == name
    assert result.warnings.codes() == ["exists"]
    assert _versions(uploader, name)[0]["sha1"] == sha1(old), "the Warning must not overwrite"
    wait_next_second()
    published = publish_stash(uploader, key, name, ignorewarnings=True)
    assert published.kind == ResultKind.SUCCESS
    assert published.warnings.exists == name  # the ignored warnings are echoed (spec §4)
    versions = _versions(uploader, name)
    assert [v["sha1"] for v in versions] == [sha1(new), sha1(old)]


def test_nochange(uploader: WikiSession, unique: Callable[[], str]) -> None:
    name = f"Nochange{unique()}.png"
    data = png_bytes()
    upload_bytes(uploader, data, name)

    result = upload_bytes(uploader, data, name)

    key = _warned(result, data, uploader)
    assert result.warnings.exists == name
    assert result.warnings.nochange and "timestamp" in result.warnings.nochange
    assert result.warnings.duplicate == ()  # the same-name file is left out of duplicate
    wait_next_second()
    with pytest.raises(AlreadyThereError) as caught:
        publish_stash(uploader, key, name, ignorewarnings=True)
    assert caught.value.code == "fileexists-no-change"
    assert len(_versions(uploader, name)) == 1


def test_duplicateversions(uploader: WikiSession, unique: Callable[[], str]) -> None:
    name = f"Dupversions{unique()}.png"
    a, b = png_bytes(), png_bytes()
    upload_bytes(uploader, a, name)
    wait_next_second()
    assert upload_bytes(uploader, b, name, ignorewarnings=True).kind == ResultKind.SUCCESS

    result = upload_bytes(uploader, a, name)

    key = _warned(result, a, uploader)
    assert result.warnings.exists == name
    assert result.warnings.nochange is None
    assert len(result.warnings.duplicateversions) == 1
    assert "timestamp" in result.warnings.duplicateversions[0]
    wait_next_second()
    assert publish_stash(uploader, key, name, ignorewarnings=True).kind == ResultKind.SUCCESS
    assert [v["sha1"] for v in _versions(uploader, name)] == [sha1(a), sha1(b), sha1(a)]


@pytest.mark.parametrize("other_ext", ["JPG", "jpeg"])
def test_exists_normalized(uploader: WikiSession, unique: Callable[[], str], other_ext: str) -> None:
    stem = f"Norm{unique()}"
    upload_bytes(uploader, jpeg_bytes(), f"{stem}.jpg")
    data = jpeg_bytes()
    name = f"{stem}.{other_ext}"

    result = upload_bytes(uploader, data, name)

    key = _warned(result, data, uploader)
    assert result.warnings.exists_normalized == f"{stem}.jpg"
    assert result.warnings.exists is None
    published = publish_stash(uploader, key, name, ignorewarnings=True)
    assert published.kind == ResultKind.SUCCESS and published.filename == name
    assert file_info(uploader, name)["sha1"] == sha1(data)
    assert file_info(uploader, f"{stem}.jpg")["sha1"] != sha1(data), "a second file, not a version"


def test_page_exists(uploader: WikiSession, unique: Callable[[], str]) -> None:
    name = f"Pageonly{unique()}.png"
    create_page(uploader, f"File:{name}", "written before the file")
    data = png_bytes()

    result = upload_bytes(uploader, data, name, text="ignored: the page exists")

    key = _warned(result, data, uploader)
    assert result.warnings.page_exists == name
    assert file_info(uploader, name) is None
    published = publish_stash(uploader, key, name, ignorewarnings=True, text="ignored too")
    assert published.kind == ResultKind.SUCCESS
    assert file_info(uploader, name)["sha1"] == sha1(data)
    assert page_text(uploader, f"File:{name}") == "written before the file"  # text is for new pages


def test_thumb(uploader: WikiSession, unique: Callable[[], str]) -> None:
    original = f"Orig{unique()}.png"
    upload_bytes(uploader, png_bytes(), original)
    name = f"120px-{original}"
    data = png_bytes()

    result = upload_bytes(uploader, data, name)

    key = _warned(result, data, uploader)
    assert result.warnings.thumb == name
    assert result.warnings.thumb_name is None
    assert publish_stash(uploader, key, name, ignorewarnings=True).filename == name
    assert file_info(uploader, name)["sha1"] == sha1(data)


def test_thumb_name_resolved_by_renaming(uploader: WikiSession, unique: Callable[[], str]) -> None:
    plain = f"Nothumb{unique()}.png"
    name = f"120px-{plain}"
    data = png_bytes()

    result = upload_bytes(uploader, data, name)

    key = _warned(result, data, uploader)
    assert result.warnings.thumb_name == name
    assert result.warnings.thumb is None
    # Fix the name, keep the key: no ignorewarnings needed, the bytes are not re-sent.
    published = publish_stash(uploader, key, plain)
    assert published.kind == ResultKind.SUCCESS and published.filename == plain
    assert file_info(uploader, plain)["sha1"] == sha1(data)
    assert file_info(uploader, name) is None


def test_bad_prefix(uploader: WikiSession, unique: Callable[[], str]) -> None:
    name = f"DSC_{unique()}.jpg"
    data = jpeg_bytes()

    result = upload_bytes(uploader, data, name)

    key = _warned(result, data, uploader)
    assert result.warnings.bad_prefix == name
    assert publish_stash(uploader, key, name, ignorewarnings=True).filename == name
    assert file_info(uploader, name)["sha1"] == sha1(data)


def test_badfilename_gives_the_normalised_name(uploader: WikiSession, unique: Callable[[], str]) -> None:
    token = unique()
    name, normalised = f"a#b{token}.png", f"A-b{token}.png"
    data = png_bytes()

    result = upload_bytes(uploader, data, name)

    key = _warned(result, data, uploader)
    assert result.warnings.badfilename == normalised
    # Publishing under the name the wiki proposed no longer warns.
    published = publish_stash(uploader, key, normalised)
    assert published.kind == ResultKind.SUCCESS and published.filename == normalised
    assert file_info(uploader, normalised)["sha1"] == sha1(data)


def test_duplicate_lists_the_other_names(uploader: WikiSession, unique: Callable[[], str]) -> None:
    first, second, third = (f"Dup{unique()}.png" for _ in range(3))
    data = png_bytes()
    upload_bytes(uploader, data, first)
    upload_bytes(uploader, data, second, ignorewarnings=True)

    result = upload_bytes(uploader, data, third)

    key = _warned(result, data, uploader)
    assert sorted(result.warnings.duplicate) == sorted([first, second])
    assert result.warnings.exists is None
    assert publish_stash(uploader, key, third, ignorewarnings=True).kind == ResultKind.SUCCESS
    assert sorted(r["name"] for r in find_by_sha1(uploader, sha1(data))) == sorted([first, second, third])


def test_duplicate_archive(uploader: WikiSession, admin: WikiSession, unique: Callable[[], str]) -> None:
    deleted, name = f"Gone{unique()}.png", f"Again{unique()}.png"
    data = png_bytes()
    upload_bytes(uploader, data, deleted)
    delete_file(admin, deleted)

    result = upload_bytes(uploader, data, name)

    key = _warned(result, data, uploader)
    assert result.warnings.duplicate_archive == deleted
    assert result.warnings.duplicate == ()  # the deleted file is no current duplicate
    assert publish_stash(uploader, key, name, ignorewarnings=True).kind == ResultKind.SUCCESS
    assert [r["name"] for r in find_by_sha1(uploader, sha1(data))] == [name]


def test_was_deleted(uploader: WikiSession, admin: WikiSession, unique: Callable[[], str]) -> None:
    name = f"Wasdeleted{unique()}.png"
    upload_bytes(uploader, png_bytes(), name)
    delete_file(admin, name)
    data = png_bytes()

    result = upload_bytes(uploader, data, name)

    key = _warned(result, data, uploader)
    assert result.warnings.was_deleted == name
    assert result.warnings.duplicate_archive is None  # other bytes than the deleted file
    assert publish_stash(uploader, key, name, ignorewarnings=True).kind == ResultKind.SUCCESS
    versions = _versions(uploader, name)
    assert [v["sha1"] for v in versions] == [sha1(data)]  # the deleted version stays hidden


def test_several_warnings_at_once(uploader: WikiSession, unique: Callable[[], str]) -> None:
    """A name can break several rules: each warning is reported, and one fix resolves them."""
    token = unique()
    name, normalised = f"120px-a#b{token}.png", f"120px-a-b{token}.png"
    data = png_bytes()

    result = upload_bytes(uploader, data, name)

    key = _warned(result, data, uploader)
    assert result.warnings.badfilename == normalised
    assert result.warnings.thumb_name == normalised
    assert set(result.warnings.codes()) == {"badfilename", "thumb-name"}
    fixed = f"Multi{token}.png"
    assert publish_stash(uploader, key, fixed).filename == fixed
    assert file_info(uploader, fixed)["sha1"] == sha1(data)
