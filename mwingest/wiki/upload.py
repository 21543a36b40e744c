"""``action=upload`` primitives, one request each, and the queries an uploader needs.

Why one request per function: the pipeline above decides what to retry and when; a primitive that
hid retries or chained calls would make a lost answer ambiguous. Each function returns a typed
:class:`UploadResult` or raises a typed :class:`~mwingest.base.errors.ApiError` (spec §4–§6).

API reference: https://www.mediawiki.org/wiki/API:Upload and ``../shared/spec/mediawiki-upload-api.md``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, fields
from enum import StrEnum
from pathlib import Path
from typing import Any, Literal

from mwingest.base.errors import ApiError, PermanentApiError, TransientApiError
from mwingest.base.streams import FilePart
from mwingest.wiki.session import WikiSession

Watchlist = Literal["watch", "preferences", "nochange"]


class ResultKind(StrEnum):
    """``upload.result`` values."""

    SUCCESS = "Success"
    WARNING = "Warning"
    CONTINUE = "Continue"
    POLL = "Poll"


@dataclass(frozen=True)
class UploadWarnings:
    """Every upload warning of spec §5, typed; ``other`` keeps codes this version does not know."""

    exists: str | None = None
    nochange: Mapping[str, Any] | None = None
    duplicateversions: tuple[Mapping[str, Any], ...] = ()
    exists_normalized: str | None = None
    page_exists: str | None = None
    thumb: str | None = None
    thumb_name: str | None = None
    bad_prefix: str | None = None
    badfilename: str | None = None
    duplicate: tuple[str, ...] = ()
    duplicate_archive: str | None = None
    was_deleted: str | None = None
    large_file: tuple[Any, ...] = ()
    filetype_unwanted_type: tuple[Any, ...] = ()
    empty_file: bool = False
    other: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def parse(cls, raw: Mapping[str, Any] | None) -> UploadWarnings:
        """Read ``upload.warnings`` (same shape in formatversion 1 and 2)."""
        if not raw:
            return cls()
        known = {f.name for f in fields(cls)} - {"other"}
        values: dict[str, Any] = {}
        other: dict[str, Any] = {}
        for code, value in raw.items():
            name = code.replace("-", "_")
            if name not in known:
                other[code] = value
            elif name in ("duplicateversions", "duplicate", "large_file", "filetype_unwanted_type"):
                values[name] = tuple(value) if isinstance(value, list | tuple) else (value,)
            elif name == "empty_file":
                values[name] = bool(value)
            elif name == "nochange":
                values[name] = value if isinstance(value, Mapping) else {"value": value}
            else:
                # duplicate-archive is "" when the user may not see the deleted file's name.
                values[name] = "" if value is None else str(value)
        return cls(**values, other=other)

    def codes(self) -> list[str]:
        """The wiki's codes of the warnings present, in the spec's order."""
        out = []
        for f in fields(self):
            if f.name == "other":
                continue
            value = getattr(self, f.name)
            if value not in (None, (), False):
                out.append(f.name.replace("_", "-"))
        return out + list(self.other)

    def __bool__(self) -> bool:
        return bool(self.codes())

    def as_dict(self) -> dict[str, Any]:
        """The warnings as the wiki wrote them (code → value), for ledgers and artifacts."""
        out: dict[str, Any] = {}
        for code in self.codes():
            if code in self.other:
                out[code] = self.other[code]
            else:
                value = getattr(self, code.replace("-", "_"))
                out[code] = list(value) if isinstance(value, tuple) else value
        return out


@dataclass(frozen=True)
class UploadResult:
    """One ``action=upload`` answer."""

    kind: ResultKind
    filename: str | None = None  # DB key of the published file (Success of a publish)
    filekey: str | None = None  # stash key (stash, Warning, Continue, final chunk)
    offset: int | None = None  # next chunk offset (Continue)
    stage: str | None = None  # async stage (Poll / checkstatus)
    warnings: UploadWarnings = field(default_factory=UploadWarnings)
    imageinfo: Mapping[str, Any] = field(default_factory=dict)
    raw: Mapping[str, Any] = field(default_factory=dict, repr=False)

    @classmethod
    def parse(cls, answer: Mapping[str, Any]) -> UploadResult:
        up = answer.get("upload")
        if not isinstance(up, Mapping) or "result" not in up:
            raise TransientApiError("missingresult", "no upload result in the answer",
                                    {"answer_keys": sorted(answer)})
        if up["result"] == "Failure":
            # ``action=edit``'s shape for a captcha request (ConfirmEdit), and for hook refusals
            # some extensions answer this way instead of with an error.
            captcha = up.get("captcha")
            raise PermanentApiError(
                "captcha" if captcha else "upload-failure",
                "the wiki asks for a captcha" if captcha else "the upload answered Failure",
                {k: v for k, v in up.items() if k != "result"}, action="upload")
        offset = up.get("offset")
        return cls(
            kind=ResultKind(up["result"]),
            filename=up.get("filename"),
            filekey=up.get("filekey") or up.get("sessionkey"),
            offset=int(offset) if offset is not None else None,
            stage=up.get("stage"),
            warnings=UploadWarnings.parse(up.get("warnings")),
            imageinfo=up.get("imageinfo") or {},
            raw=up,
        )

    @property
    def sha1(self) -> str | None:
        return self.imageinfo.get("sha1")

    @property
    def size(self) -> int | None:
        size = self.imageinfo.get("size")
        return int(size) if size is not None else None

    @property
    def descriptionurl(self) -> str | None:
        return self.imageinfo.get("descriptionurl")


def _common(filename: str | None, *, comment: str | None = None, text: str | None = None,
            tags: Sequence[str] | None = None, watchlist: Watchlist | None = None,
            watchlistexpiry: str | None = None, ignorewarnings: bool = False,
            stash: bool = False, async_: bool = False) -> dict[str, Any]:
    """Parameters shared by the upload calls. Booleans are left out when false (spec §2)."""
    return {
        "action": "upload", "filename": filename, "comment": comment, "text": text,
        "tags": list(tags) if tags else None, "watchlist": watchlist,
        "watchlistexpiry": watchlistexpiry, "ignorewarnings": ignorewarnings,
        "stash": stash, "async": async_,
    }


def upload_file(session: WikiSession, path: str | Path, filename: str, *,
                comment: str | None = None, text: str | None = None,
                tags: Sequence[str] | None = None, watchlist: Watchlist | None = None,
                watchlistexpiry: str | None = None, ignorewarnings: bool = False,
                stash: bool = False) -> UploadResult:
    """Direct upload (``file=``), streamed from disk. Use for files under the PHP upload limit."""
    params = _common(filename, comment=comment, text=text, tags=tags, watchlist=watchlist,
                     watchlistexpiry=watchlistexpiry, ignorewarnings=ignorewarnings, stash=stash)
    return UploadResult.parse(session.post(params, {"file": FilePart.whole(path, filename)}))


def upload_bytes(session: WikiSession, data: bytes, filename: str, **kwargs: Any) -> UploadResult:
    """Direct upload of in-memory bytes (small generated files, tests)."""
    params = _common(filename, **kwargs)
    return UploadResult.parse(session.post(params, {"file": FilePart(filename, data=data)}))


def upload_from_url(session: WikiSession, url: str, filename: str, *,
                    comment: str | None = None, text: str | None = None,
                    tags: Sequence[str] | None = None, watchlist: Watchlist | None = None,
                    ignorewarnings: bool = False, stash: bool = False) -> UploadResult:
    """Copy upload: the wiki fetches ``url`` itself, synchronously (spec §11).

    Never combined with ``async``: in 1.39 that queues a publish job with an empty key that never
    lands and blocks the user's later URL uploads (spec §2).
    """
    params = _common(filename, comment=comment, text=text, tags=tags, watchlist=watchlist,
                     ignorewarnings=ignorewarnings, stash=stash)
    params["url"] = url
    return UploadResult.parse(session.post(params))


def upload_chunk(session: WikiSession, *, filename: str, filesize: int, offset: int,
                 part: FilePart, filekey: str | None = None,
                 async_: bool = False) -> UploadResult:
    """One chunk of a chunked upload into the stash (spec §7).

    ``ignorewarnings`` is always sent: without it a name warning stops the session for good.
    ``filekey`` is sent only after the first chunk (``filekeynotallowed`` at offset 0).
    """
    params = _common(filename, ignorewarnings=True, stash=True, async_=async_)
    params.update({"filesize": filesize, "offset": offset,
                   "filekey": filekey if offset > 0 else None})
    return UploadResult.parse(session.post(params, {"chunk": part}))


def publish_stash(session: WikiSession, filekey: str, filename: str, *,
                  comment: str | None = None, text: str | None = None,
                  tags: Sequence[str] | None = None, watchlist: Watchlist | None = None,
                  watchlistexpiry: str | None = None, ignorewarnings: bool = False,
                  async_: bool = False, use_sessionkey: bool = False) -> UploadResult:
    """Publish a stashed file under ``filename``: the bytes are not sent again (spec §5).

    ``use_sessionkey`` sends the deprecated ``sessionkey`` alias instead of ``filekey`` (older
    wikis and old scripts use it).
    """
    params = _common(filename, comment=comment, text=text, tags=tags, watchlist=watchlist,
                     watchlistexpiry=watchlistexpiry, ignorewarnings=ignorewarnings,
                     async_=async_)
    params["sessionkey" if use_sessionkey else "filekey"] = filekey
    return UploadResult.parse(session.post(params))


def check_status(session: WikiSession, filekey: str) -> UploadResult:
    """Where an upload session or async job stands (``checkstatus``; no filename, spec §7–§8)."""
    return UploadResult.parse(session.post({"action": "upload", "filekey": filekey,
                                            "checkstatus": True}))


def wait_for_async(session: WikiSession, filekey: str, *, timeout: float = 300.0,
                   interval: float = 2.0, sleep: Callable[[float], None] = time.sleep,
                   clock: Callable[[], float] = time.monotonic) -> UploadResult:
    """Poll ``checkstatus`` until an async assembly/publish leaves ``Poll``, within ``timeout``.

    Async jobs run only when someone runs ``runJobs.php --type AssembleUploadChunks`` /
    ``PublishStashedFile`` (spec §8); without a job runner the poll times out with a transient
    error that keeps the key, so the item can be resumed later.
    """
    deadline = clock() + timeout
    while True:
        result = check_status(session, filekey)
        if result.kind != ResultKind.POLL:
            return result
        if clock() >= deadline:
            raise TransientApiError("async-timeout",
                                    f"the wiki's job for {filekey} is still {result.stage!r} after "
                                    f"{timeout:.0f} s (is a job runner running?)",
                                    {"filekey": filekey, "stage": result.stage})
        sleep(interval)


# --- queries ---------------------------------------------------------------------------------

def find_by_sha1(session: WikiSession, sha1: str) -> list[dict[str, Any]]:
    """Current files on the wiki with this SHA-1 (``list=allimages&aisha1=``, spec §12)."""
    answer = session.get({"action": "query", "list": "allimages", "aisha1": sha1,
                          "aiprop": "sha1|size|timestamp|url|user", "ailimit": "max"})
    return list(answer.get("query", {}).get("allimages", []))


def file_info(session: WikiSession, filename: str, *, history: bool = False) -> dict[str, Any] | None:
    """The file's ``imageinfo`` (latest, or all versions with ``history``); None when missing."""
    answer = session.get({
        "action": "query", "titles": f"File:{filename}", "prop": "imageinfo",
        "iiprop": "sha1|size|mime|url|timestamp|user|comment",
        "iilimit": "max" if history else 1,
    })
    pages = answer.get("query", {}).get("pages", [])
    if not pages or pages[0].get("missing") and not pages[0].get("imageinfo"):
        return None
    page = pages[0]
    infos = page.get("imageinfo") or []
    if not infos:
        return None
    return {"title": page.get("title"), "versions": infos, **infos[0]}


def stash_info(session: WikiSession, filekeys: Iterable[str]) -> list[dict[str, Any]]:
    """SHA-1, size and MIME of stashed files (``prop=stashimageinfo``)."""
    keys = list(filekeys)
    if not keys:
        return []
    answer = session.get({"action": "query", "prop": "stashimageinfo", "siifilekey": keys,
                          "siiprop": "sha1|size|mime|timestamp"})
    return list(answer.get("query", {}).get("stashimageinfo", []))


def my_stashed_files(session: WikiSession) -> list[dict[str, Any]]:
    """The user's stash rows (``list=mystashedfiles``): ``filekey``, ``status``, ``size`` (spec §7)."""
    rows: list[dict[str, Any]] = []
    params: dict[str, Any] = {"action": "query", "list": "mystashedfiles",
                              "msfprop": "size|type", "msflimit": "max"}
    while True:
        answer = session.get(params)
        rows.extend(answer.get("query", {}).get("mystashedfiles", []))
        cont = answer.get("continue")
        if not cont:
            return rows
        params = {**params, **cont}


def verify_landed(session: WikiSession, filename: str, sha1: str, size: int | None = None
                  ) -> dict[str, Any]:
    """Check that ``File:filename``'s current version has our SHA-1 (and size): acceptance is not
    integrity. Raises :class:`PermanentApiError` ``sha1-mismatch`` / ``not-landed`` otherwise."""
    info = file_info(session, filename)
    if info is None:
        raise PermanentApiError("not-landed", f"File:{filename} does not exist after publishing")
    if str(info.get("sha1", "")).lower() != sha1.lower():
        raise PermanentApiError("sha1-mismatch",
                                f"File:{filename} has SHA-1 {info.get('sha1')}, expected {sha1}",
                                {"wiki_sha1": info.get("sha1"), "sha1": sha1})
    if size is not None and int(info.get("size", -1)) != size:
        raise PermanentApiError("size-mismatch",
                                f"File:{filename} has {info.get('size')} bytes, expected {size}")
    return info


__all__ = [
    "ApiError", "ResultKind", "UploadResult", "UploadWarnings", "check_status", "file_info",
    "find_by_sha1", "my_stashed_files", "publish_stash", "stash_info", "upload_bytes",
    "upload_chunk", "upload_file", "upload_from_url", "verify_landed", "wait_for_async",
]
