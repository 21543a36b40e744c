"""One exception tree for everything the wiki (or the wire) can say no with.

Why a tree grouped by *what the caller can do*, not by HTTP status: MediaWiki answers HTTP 200 for
errors too (spec §1), and what matters to a pipeline is whether a retry can help. Each class carries
its retry class from the spec's §6, and :func:`is_retryable` is the one predicate the orchestration
layer hands to Prefect's ``retry_condition_fn``: the core never runs a second retry loop over the
same failure::

    MWIngestError
    ├── TransportError            T  connection refused/reset, timeout, non-JSON body
    │   └── ResponseLostError     T  the request may have been processed (read timeout, reset after send)
    └── ApiError                     the wiki answered {"error": {...}}
        ├── TransientApiError     T  ratelimited, maxlag, readonly, backend-fail-*, stash storage
        ├── SessionError          A  badtoken, assert(user|bot)failed, mustbeloggedin, notloggedin
        ├── InputError            F  illegal-filename, filename-toolong, fileexists-forbidden, ...
        ├── PermanentApiError     P  permissiondenied, verification-error, empty-file, ...
        │   └── AlreadyThereError P  fileexists-no-change: the same bytes are the current version
        └── ResyncError           R  stashfailed offset, uploadstash-file-not-found, missingresult
    LoginError                       the wiki refused the credentials (never retried)
    └── LoginRefusedError            ... when logging in again mid-batch: the whole batch stops
    BatchStoppedError                no file can go on (a refused re-login, the ledger's disk full)
    SourceChangedError               the local file changed while it was being sent

Messages never contain secrets: the session strips tokens and passwords before an error is built.
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum
from typing import Any


class RetryClass(StrEnum):
    """What a caller can do about an error (spec §6)."""

    TRANSIENT = "transient"  # T: retry the same request with backoff
    SESSION = "session"  # A: log in again / refresh the token, then retry
    FIX_INPUT = "fix-input"  # F: change the input (e.g. another filename), then retry
    PERMANENT = "permanent"  # P: do not retry
    RESYNC = "resync"  # R: ask the server where the chunk protocol stands


class MWIngestError(Exception):
    """Base of every error mwingest raises on purpose."""

    retry_class: RetryClass = RetryClass.PERMANENT

    @property
    def retryable(self) -> bool:
        """True when repeating the step (after backoff or a resync) can succeed."""
        return self.retry_class in (RetryClass.TRANSIENT, RetryClass.RESYNC, RetryClass.SESSION)


class TransportError(MWIngestError):
    """The request did not get a usable answer: connection fault, timeout, HTML instead of JSON."""

    retry_class = RetryClass.TRANSIENT

    def __init__(self, message: str, *, sent: bool = False, status: int | None = None,
                 retry_after: float | None = None) -> None:
        super().__init__(message)
        #: False when the request surely never reached the wiki (connect error): resend freely.
        self.sent = sent
        self.status = status
        #: ``Retry-After`` of an HTTP 429/503 answer, in seconds.
        self.retry_after = retry_after

    def __reduce__(self) -> tuple[Any, ...]:
        # Keep ``sent``/``status`` across pickling (Prefect persists task exceptions).
        return (_rebuild_transport_error, (type(self), str(self), self.sent, self.status,
                                           self.retry_after))


class ResponseLostError(TransportError):
    """The request left, the answer did not come back: the wiki may have acted on it.

    For a chunk that means *resync before resending* (ask the stash offset); for a publish,
    look the file up by name and SHA-1 before publishing again (spec §14.7).
    """

    def __init__(self, message: str, *, status: int | None = None, sent: bool = True,
                 retry_after: float | None = None) -> None:
        super().__init__(message, sent=True, status=status, retry_after=retry_after)


class OversizedRequestError(TransportError):
    """The body was over PHP's ``post_max_size``: PHP dropped it and MediaWiki sent its HTML help page.

    Retrying the same bytes cannot help; a smaller chunk can (the chunk loop halves its size).
    """

    retry_class = RetryClass.FIX_INPUT


class SourceChangedError(MWIngestError, ValueError):
    """The file ended before the byte range being sent: it changed during the upload.

    Not an ``OSError`` on purpose: urllib3 wraps OSErrors raised while it sends a body into
    connection errors, which the session would report as a retryable lost answer. No retry can
    help; the SHA-1 we announced is no longer the file's.
    """


class ContactRequiredError(MWIngestError, ValueError):
    """No usable operator contact for the User-Agent of a real wiki (Wikimedia answers such
    clients with 429, and its operators have nobody to write to)."""


class WriteCapUnavailableError(MWIngestError):
    """The shared cap of writes in flight (a Prefect global concurrency limit) could not be
    reached for longer than its budget: no write is sent without it, so the file stops here and
    a re-run continues it."""


class LoginError(MWIngestError):
    """The wiki refused the credentials, or login needs an interactive step (2FA)."""

    def __init__(self, message: str, *, result: str = "Failed") -> None:
        super().__init__(message)
        self.result = result

    def __reduce__(self) -> tuple[Any, ...]:
        return (_rebuild_login_error, (str(self), self.result))


class BatchStoppedError(MWIngestError):
    """Something every file of the batch needs is gone: the batch stops at once with one message.

    Why a class of its own: each file that meets it would otherwise end ``failed`` with the same
    reason, one line each, while the batch went on to meet it again with every file left. The
    files keep their ledger rows as they stood, the flow says why once, the command exits 2 with
    that line (no traceback). ``reason`` is the code a file stopped by it carries.
    """

    reason = "batch-stopped"


class LoginRefusedError(LoginError, BatchStoppedError):
    """The wiki refused to log in *again* after it dropped the session mid-batch (a changed
    password, an invalidated bot password, a revoked grant or OAuth token).

    No file of the batch can go on with these credentials, so the batch stops at once with this
    one message (the CLI exits 2) instead of one ``login-failed`` row per remaining file; files in
    flight keep their ledger rows as they were (stash key, offset, intent) for the next run.
    """

    reason = "login-refused"

    def __reduce__(self) -> tuple[Any, ...]:
        return (_rebuild_login_refused, (str(self), self.result))


def _rebuild_login_refused(message: str, result: str) -> LoginRefusedError:
    return LoginRefusedError(message, result=result)


def _rebuild_transport_error(cls: type[TransportError], message: str, sent: bool,
                             status: int | None, retry_after: float | None = None) -> TransportError:
    return cls(message, sent=sent, status=status, retry_after=retry_after)


def _rebuild_login_error(message: str, result: str) -> LoginError:
    return LoginError(message, result=result)


class ApiError(MWIngestError):
    """The wiki answered ``{"error": {"code": ..., "info": ...}}``.

    ``data`` keeps the extra keys the wiki sent (``filekey``, ``offset``, ``details``,
    ``blacklisted``, ``stasherrors`` …) so callers can recover without a second request.
    """

    def __init__(self, code: str, info: str = "", data: Mapping[str, Any] | None = None,
                 *, action: str = "") -> None:
        self.code = code
        self.info = info
        self.data: dict[str, Any] = dict(data or {})
        self.action = action
        super().__init__(f"{code}: {info}" if info else code)

    @property
    def filekey(self) -> str | None:
        """The stash key a recoverable (FK) error carries: publish it again with a new name."""
        return self.data.get("filekey") or self.data.get("sessionkey") or None

    @property
    def details(self) -> list[Any]:
        """``verification-error`` details, e.g. ``["filetype-mime-mismatch", "png", "image/jpeg"]``."""
        raw = self.data.get("details")
        return list(raw) if isinstance(raw, list | tuple) else []

    def __reduce__(self) -> tuple[Any, ...]:
        # Keep code/info/data across pickling (Prefect persists task exceptions).
        return (_rebuild_api_error, (type(self), self.code, self.info, self.data, self.action))


def _rebuild_api_error(cls: type[ApiError], code: str, info: str, data: dict[str, Any],
                       action: str) -> ApiError:
    return cls(code, info, data, action=action)


class TransientApiError(ApiError):
    """The wiki is busy, lagged, read-only or its storage hiccuped: wait and retry."""

    retry_class = RetryClass.TRANSIENT

    @property
    def retry_after(self) -> float | None:
        """Seconds the wiki asked us to wait (``Retry-After`` header), when it said so."""
        value = self.data.get("retry-after")
        try:
            return float(value) if value is not None else None
        except (TypeError, ValueError):
            return None


class SessionError(ApiError):
    """The session or its CSRF token is gone: re-login / refresh the token and retry once."""

    retry_class = RetryClass.SESSION


class InputError(ApiError):
    """The input must change (usually the filename) before a retry can succeed."""

    retry_class = RetryClass.FIX_INPUT


class PermanentApiError(ApiError):
    """Retrying cannot help for this file on this wiki (rights, content, configuration)."""

    retry_class = RetryClass.PERMANENT


class AlreadyThereError(PermanentApiError):
    """``fileexists-no-change``: the current version already has these bytes. Success for an ingest."""


class ResyncError(ApiError):
    """The chunk protocol is out of step: ask the server's offset (or restart the session)."""

    retry_class = RetryClass.RESYNC

    @property
    def server_offset(self) -> int | None:
        """The next offset the wiki expects (``stashfailed`` sends it as a *string*)."""
        value = self.data.get("offset")
        try:
            return int(value) if value is not None else None
        except (TypeError, ValueError):
            return None


# --- code → class (spec §6, §7, §11) -------------------------------------------------------------

_TRANSIENT = {
    "ratelimited", "readonly", "maxlag", "backend-fail-alreadyexists", "publishfailed",
    "uploadstash-bad-path", "uploadstash-exception", "http-timed-out", "http-curl-error",
    "internal_api_error_DBQueryError", "internal_api_error_DBConnectionError",
}
_SESSION = {"badtoken", "mustbeloggedin", "assertuserfailed", "assertbotfailed",
            "assertnameduserfailed", "notloggedin", "sessionlost"}
_FIX_INPUT = {
    "illegal-filename", "filename-tooshort", "filename-toolong", "filetype-missing",
    "fileexists-forbidden", "fileexists-shared-forbidden", "windows-nonascii-filename",
    "protectedpage", "badtags",
}
_RESYNC = {"uploadstash-file-not-found", "missingresult"}
_PERMANENT = {
    "permissiondenied", "cantcreate", "blocked", "autoblocked", "uploaddisabled", "filetype-banned",
    "verification-error", "empty-file", "file-too-large", "badupload", "hookaborted",
    "uploadstash-wrong-owner", "invalid-file-key", "filekeyneeded", "filekeynotallowed",
    "invalid-chunk", "chunk-too-small", "missingparam", "nofilename", "invalidparammix",
    "badvalue", "mustpostparams", "cannot-async-upload-file", "copyuploaddisabled",
    "copyuploadbaddomain", "copyuploadbadurl", "http-invalid-url", "http-bad-status",
    "upload-too-many-redirects", "readapidenied", "writeapidenied", "filetype-badmime",
    "invalidsha1hash", "invalidsha1base36hash", "internal_api_error_UploadStashWrongOwnerException",
}

#: Every error code whose class the spec states, for tests and documentation.
KNOWN_CODES: dict[str, RetryClass] = {
    **{c: RetryClass.TRANSIENT for c in _TRANSIENT},
    **{c: RetryClass.SESSION for c in _SESSION},
    **{c: RetryClass.FIX_INPUT for c in _FIX_INPUT},
    **{c: RetryClass.RESYNC for c in _RESYNC},
    **{c: RetryClass.PERMANENT for c in _PERMANENT},
    "fileexists-no-change": RetryClass.PERMANENT,
    "stashfailed": RetryClass.RESYNC,
}

_CLASS_FOR = {
    RetryClass.TRANSIENT: TransientApiError,
    RetryClass.SESSION: SessionError,
    RetryClass.FIX_INPUT: InputError,
    RetryClass.PERMANENT: PermanentApiError,
    RetryClass.RESYNC: ResyncError,
}


def classify(code: str, info: str = "", data: Mapping[str, Any] | None = None) -> RetryClass:
    """The retry class of an API error code, looking at ``info``/``data`` where the code is ambiguous."""
    data = data or {}
    if code == "stashfailed":
        # Three meanings (spec §7): offset resync, "already completed", verification at assembly.
        if data.get("offset") is not None or "offset" in info.lower():
            return RetryClass.RESYNC
        if "did not pass file verification" in info:
            return RetryClass.PERMANENT
        if "no chunked upload session" in info.lower():
            return RetryClass.RESYNC
        if "already completed" in info.lower():
            # A resent async final chunk: the wiki is assembling it; checkstatus says how far.
            return RetryClass.RESYNC
        return RetryClass.PERMANENT
    if code in KNOWN_CODES:
        return KNOWN_CODES[code]
    if code.startswith("backend-fail-"):
        return RetryClass.TRANSIENT
    if code.startswith("http-") and code != "http-invalid-url":
        # 5xx answers from the remote host are transient; http-bad-status carries a 4xx/5xx text.
        return RetryClass.TRANSIENT
    if code.startswith("internal_api_error_"):
        return RetryClass.TRANSIENT  # a few tries; the task's retry bound makes it permanent
    # Unknown codes: treat as permanent for this file. Retrying an unknown refusal thousands of
    # times in a bulk import does more harm than stopping with its code.
    return RetryClass.PERMANENT


def api_error(code: str, info: str = "", data: Mapping[str, Any] | None = None,
              *, action: str = "") -> ApiError:
    """Build the typed exception for an error answer."""
    data = dict(data or {})
    if code == "fileexists-no-change":
        return AlreadyThereError(code, info, data, action=action)
    if code == "http-bad-status":
        # "… 404 Not Found" is permanent; a 5xx from the remote host may pass.
        status = next((int(t) for t in info.split() if t.isdigit() and len(t) == 3), 0)
        cls = TransientApiError if status >= 500 else PermanentApiError
        return cls(code, info, data, action=action)
    return _CLASS_FOR[classify(code, info, data)](code, info, data, action=action)


def is_retryable(exc: BaseException) -> bool:
    """The one retry predicate: True for transient faults and protocol resyncs.

    Unknown (non-mwingest) exceptions are not retried: they are bugs or local I/O errors, and a
    retry would hide them.
    """
    if isinstance(exc, MWIngestError):
        return exc.retryable
    return False


def reason_code(exc: BaseException) -> str:
    """A stable reason code for ledgers and outcome tables (the API code, or a transport class)."""
    if isinstance(exc, ApiError):
        if exc.code == "verification-error" and exc.details:
            return f"verification-error:{exc.details[0]}"
        return exc.code
    if isinstance(exc, OversizedRequestError):
        return "request-too-large"
    if isinstance(exc, ResponseLostError):
        return "response-lost"
    if isinstance(exc, TransportError):
        return "transport-error"
    if isinstance(exc, BatchStoppedError):
        return exc.reason
    if isinstance(exc, LoginError):
        return "login-failed"
    if isinstance(exc, SourceChangedError):
        return "source-changed"
    if isinstance(exc, WriteCapUnavailableError):
        return "write-cap-unavailable"
    return type(exc).__name__
