"""The error tree against the spec's error table (§6, §7, §11): class, retry class, reason code.

The expected classes are written out here from the spec, not read back from ``errors.KNOWN_CODES``:
a table compared with itself could never fail.
"""

from __future__ import annotations

import pickle

import pytest

from mwingest.base.errors import (
    AlreadyThereError,
    ApiError,
    InputError,
    LoginError,
    MWIngestError,
    OversizedRequestError,
    PermanentApiError,
    ResponseLostError,
    ResyncError,
    RetryClass,
    SessionError,
    TransientApiError,
    TransportError,
    api_error,
    classify,
    is_retryable,
    reason_code,
)

T, A, F, P, R = (RetryClass.TRANSIENT, RetryClass.SESSION, RetryClass.FIX_INPUT,
                 RetryClass.PERMANENT, RetryClass.RESYNC)

#: Every code of the spec's §6 table (and the URL codes of §11) with the class the spec gives.
SPEC_TABLE: dict[str, RetryClass] = {
    "badtoken": A, "mustbeloggedin": A, "assertuserfailed": A, "assertnameduserfailed": A,
    "notloggedin": A,
    "permissiondenied": P, "cantcreate": P, "blocked": P, "uploaddisabled": P,
    "fileexists-forbidden": F, "fileexists-shared-forbidden": F,
    "ratelimited": T, "readonly": T, "maxlag": T,
    "illegal-filename": F, "filename-tooshort": F, "filename-toolong": F, "filetype-missing": F,
    "windows-nonascii-filename": F,
    "verification-error": P, "empty-file": P, "file-too-large": P, "badupload": P,
    "fileexists-no-change": P,
    "backend-fail-alreadyexists": T, "hookaborted": P,
    "uploadstash-file-not-found": R, "uploadstash-wrong-owner": P, "invalid-file-key": P,
    "missingresult": R, "publishfailed": T,
    "filekeyneeded": P, "filekeynotallowed": P, "invalid-chunk": P, "chunk-too-small": P,
    "uploadstash-bad-path": T, "uploadstash-exception": T, "backend-fail-internal": T,
    "copyuploaddisabled": P, "copyuploadbaddomain": P, "copyuploadbadurl": P,
    "http-invalid-url": P, "http-timed-out": T, "http-curl-error": T,
    "upload-too-many-redirects": P,
    "internal_api_error_DBQueryError": T,
    "missingparam": P, "nofilename": P, "invalidparammix": P, "badvalue": P,
    "mustpostparams": P, "cannot-async-upload-file": P,
    # Rows where the spec allows two classes ("P (or F: other name)", "F/P"): the code's choice.
    "protectedpage": F, "filetype-banned": P,
}

#: Where mwingest deliberately differs from the spec's table, and why.
DEVIATIONS: dict[str, RetryClass] = {
    # Spec: P (client bug). The caller fixes it by dropping or creating the tag: an input fix.
    "badtags": F,
    # Spec: internal errors are "T (few tries), then P". This one is deterministic (another
    # user's key, spec §12), so retrying cannot help.
    "internal_api_error_UploadStashWrongOwnerException": P,
}

EXPECTED_TYPE = {T: TransientApiError, A: SessionError, F: InputError, P: PermanentApiError,
                 R: ResyncError}


@pytest.mark.parametrize(("code", "expected"), sorted({**SPEC_TABLE, **DEVIATIONS}.items()))
def test_every_spec_code_gets_its_retry_class_and_exception_type(code: str,
                                                                 expected: RetryClass) -> None:
    assert classify(code) is expected
    exc = api_error(code, "some info", {"k": "v"}, action="upload")
    assert exc.retry_class is expected
    assert isinstance(exc, EXPECTED_TYPE[expected])
    assert (exc.code, exc.info, exc.data, exc.action) == (code, "some info", {"k": "v"}, "upload")
    assert exc.retryable is (expected in (T, A, R))
    assert is_retryable(exc) is exc.retryable


def test_fileexists_no_change_is_already_there_and_final() -> None:
    exc = api_error("fileexists-no-change", "The upload is an exact duplicate …")
    assert type(exc) is AlreadyThereError
    assert isinstance(exc, PermanentApiError)
    assert not is_retryable(exc)


@pytest.mark.parametrize(("info", "data", "expected"), [
    # Resent or skipped chunk: the wiki names the offset it expects, as a string (spec §7).
    ("Invalid chunk offset", {"offset": "2048"}, R),
    # Status cache lost: ask the stash / restart.
    ("No chunked upload session with this key.", {}, R),
    # Async final chunk already queued: poll checkstatus instead of resending.
    ("Chunked upload is already completed, check status for details.", {}, R),
    # Verification failed at assembly: the content is bad, no resend can help.
    ("This file did not pass file verification.", {}, P),
    ("Something new", {}, P),
])
def test_stashfailed_is_read_by_its_info_and_data(info: str, data: dict[str, str],
                                                   expected: RetryClass) -> None:
    assert classify("stashfailed", info, data) is expected
    assert api_error("stashfailed", info, data).retry_class is expected


def test_stashfailed_offset_comes_back_as_an_int() -> None:
    exc = api_error("stashfailed", "Invalid chunk offset", {"offset": "2048"})
    assert isinstance(exc, ResyncError)
    assert exc.server_offset == 2048
    assert api_error("stashfailed", "Invalid chunk offset", {"offset": "junk"}).server_offset is None


@pytest.mark.parametrize(("info", "cls"), [
    ("There was a problem during the HTTP request: 404 Not Found", PermanentApiError),
    ("There was a problem during the HTTP request: 503 Service Unavailable", TransientApiError),
])
def test_http_bad_status_depends_on_the_remote_status(info: str, cls: type[ApiError]) -> None:
    assert type(api_error("http-bad-status", info)) is cls


@pytest.mark.parametrize(("code", "expected"), [
    ("backend-fail-stat", T), ("http-something-new", T), ("internal_api_error_Whatever", T),
    ("some-code-nobody-knows", P),
])
def test_code_families_and_unknown_codes(code: str, expected: RetryClass) -> None:
    assert classify(code) is expected


def test_extra_data_is_reachable_through_properties() -> None:
    fk = api_error("illegal-filename", "The filename is not allowed.",
                   {"sessionkey": "1d3z.abc.1.png", "invalidparameter": "filename"})
    assert fk.filekey == "1d3z.abc.1.png"  # the deprecated alias still finds the key
    assert api_error("empty-file").filekey is None
    ver = api_error("verification-error", "…", {"details": ["filetype-mime-mismatch", "png",
                                                            "image/jpeg"]})
    assert ver.details == ["filetype-mime-mismatch", "png", "image/jpeg"]
    lag = api_error("maxlag", "Waiting for a database server", {"retry-after": "5"})
    assert isinstance(lag, TransientApiError)
    assert lag.retry_after == 5.0
    assert api_error("ratelimited").retry_after is None


@pytest.mark.parametrize("exc", [
    api_error("stashfailed", "Invalid chunk offset", {"offset": "2048"}, action="upload"),
    api_error("illegal-filename", "The filename is not allowed.",
              {"filekey": "1d3z.abc.1.png", "filename": "A~~~b.png"}, action="upload"),
    api_error("fileexists-no-change", "duplicate", {"stasherrors": [{"code": "x"}]}),
    api_error("maxlag", "lagged", {"retry-after": "5", "lag": -1}),
])
def test_pickling_keeps_type_code_info_and_data(exc: ApiError) -> None:
    # Prefect persists task exceptions; a retry predicate must see the same error afterwards.
    back = pickle.loads(pickle.dumps(exc))
    assert type(back) is type(exc)
    assert (back.code, back.info, back.data, back.action) == (exc.code, exc.info, exc.data,
                                                              exc.action)
    assert back.retry_class is exc.retry_class
    assert str(back) == str(exc)


def test_transport_errors_and_their_retry_classes() -> None:
    never_sent = TransportError("refused")
    assert never_sent.retry_class is T and never_sent.sent is False
    lost = ResponseLostError("read timeout")
    assert lost.sent is True and is_retryable(lost)
    big = OversizedRequestError("HTML instead of JSON", sent=True)
    assert big.retry_class is F and not is_retryable(big)  # a smaller chunk helps, a resend not


@pytest.mark.parametrize(("exc", "code"), [
    (api_error("verification-error", "…", {"details": ["filetype-mime-mismatch", "png"]}),
     "verification-error:filetype-mime-mismatch"),
    (api_error("verification-error", "…"), "verification-error"),
    (api_error("ratelimited"), "ratelimited"),
    (OversizedRequestError("html"), "request-too-large"),
    (ResponseLostError("lost"), "response-lost"),
    (TransportError("refused"), "transport-error"),
    (LoginError("bad password"), "login-failed"),
    (ValueError("x"), "ValueError"),
])
def test_reason_codes_are_stable(exc: BaseException, code: str) -> None:
    assert reason_code(exc) == code


@pytest.mark.parametrize("exc", [ValueError("bug"), OSError("disk"), KeyError("k")])
def test_foreign_exceptions_are_never_retried(exc: BaseException) -> None:
    assert is_retryable(exc) is False


def test_login_errors_are_not_retried() -> None:
    exc = LoginError("login refused for Bot@app: Incorrect username or password", result="Failed")
    assert isinstance(exc, MWIngestError)
    assert exc.result == "Failed"
    assert not is_retryable(exc)
