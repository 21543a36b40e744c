"""WikiSession's retry and reading rules, and secret redaction, without a wiki.

The wiki is replaced at the one HTTP seam, a ``requests`` transport adapter that answers from a
script: these are answers a real wiki cannot be made to give on demand (a second ``badtoken`` right
after a refresh, a ``Retry-After: 120``, a connection reset). What the real wiki does is covered
by ``tests/integration/test_session.py`` and ``test_upload_errors.py``.
"""

from __future__ import annotations

import json
import logging
import secrets
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qsl, quote, quote_plus, urlsplit

import pytest
import requests
from requests.adapters import BaseAdapter

from mwingest.base.errors import (
    ContactRequiredError,
    LoginError,
    OversizedRequestError,
    ResponseLostError,
    SessionError,
    TransientApiError,
    TransportError,
)
from mwingest.base.redact import MASK, redact, register_secret
from mwingest.wiki.credentials import Credentials
from mwingest.wiki.session import WikiSession, encode_params, user_agent
from mwingest.wiki.upload import upload_bytes

API = "http://wiki.invalid/api.php"  # never resolved: the adapter answers before any socket
Reply = tuple[int, dict[str, str], Any]


def request_params(request: requests.PreparedRequest) -> dict[str, str]:
    """The API parameters of a prepared request: query string, form body or multipart fields."""
    params = dict(parse_qsl(urlsplit(request.url or "").query))
    body = request.body
    if isinstance(body, bytes | str):
        text = body.decode() if isinstance(body, bytes) else body
        params.update(parse_qsl(text))
    elif body is not None and hasattr(body, "fields"):  # requests-toolbelt MultipartEncoder
        params.update({k: v for k, v in body.fields if isinstance(v, str)})
    return params


class ScriptedAdapter(BaseAdapter):
    """A transport that answers every request with ``handler(params, request)``."""

    def __init__(self, handler: Callable[[dict[str, str], requests.PreparedRequest], Reply]) -> None:
        super().__init__()
        self.handler = handler
        self.sent: list[dict[str, str]] = []

    def send(self, request: requests.PreparedRequest, **kwargs: Any) -> requests.Response:
        params = request_params(request)
        self.sent.append(params)
        status, headers, body = self.handler(params, request)
        resp = requests.Response()
        resp.status_code = status
        resp.headers.update(headers)
        resp._content = body if isinstance(body, bytes) else json.dumps(body).encode()
        resp.request = request
        resp.url = request.url or ""
        resp.encoding = "utf-8"
        return resp

    def close(self) -> None:
        """Nothing to release."""


class FakeWiki:
    """Answers login, userinfo and token queries like 1.39 does; writes go to ``on_write``."""

    def __init__(self, on_write: Callable[[dict[str, str]], Reply]) -> None:
        self.on_write = on_write
        self.csrf_fetches = 0
        self.logins = 0

    def __call__(self, params: dict[str, str], request: requests.PreparedRequest) -> Reply:
        meta = set((params.get("meta") or "").split("|"))
        if meta == {"tokens"} and params.get("type") == "login":
            return 200, {}, {"query": {"tokens": {"logintoken": "lt0123+\\"}}}
        if meta & {"tokens", "userinfo"}:  # one or both, as MediaWiki answers a multi-value meta
            query: dict[str, Any] = {}
            if "tokens" in meta:
                self.csrf_fetches += 1
                query["tokens"] = {"csrftoken": f"csrf{self.csrf_fetches:04d}+\\"}
            if "userinfo" in meta:
                query["userinfo"] = {"id": 3, "name": "Uploader"}
            return 200, {}, {"query": query}
        if params.get("action") == "login":
            self.logins += 1
            return 200, {}, {"login": {"result": "Success", "lgusername": "Uploader"}}
        return self.on_write(params)


def make_session(handler: Callable[..., Reply], *, anonymous: bool = False,
                 **kwargs: Any) -> tuple[WikiSession, ScriptedAdapter]:
    adapter = ScriptedAdapter(handler)
    http = requests.Session()
    http.trust_env = False
    http.mount("http://", adapter)
    creds = (Credentials(API) if anonymous
             else Credentials(API, "Uploader@ingest", "bot-password-" + secrets.token_hex(8)))
    return WikiSession(creds, http=http, **kwargs), adapter


def error(code: str, info: str = "", **extra: Any) -> dict[str, Any]:
    return {"error": {"code": code, "info": info, "docref": "See api.php", **extra}}


def ok_upload(params: dict[str, str]) -> Reply:
    return 200, {}, {"upload": {"result": "Success", "filename": params.get("filename")}}


def uploads(adapter: ScriptedAdapter) -> list[dict[str, str]]:
    return [p for p in adapter.sent if p.get("action") == "upload"]


# --- parameters and headers ------------------------------------------------------------------

def test_encode_params_leaves_false_out_because_presence_means_true() -> None:
    encoded = encode_params({"ignorewarnings": False, "stash": True, "comment": None,
                             "async": False, "offset": 0, "filesize": 1024,
                             "tags": ["a", "b"], "filename": "X.png"})
    assert encoded == {"stash": "1", "offset": "0", "filesize": "1024", "tags": "a|b",
                       "filename": "X.png"}


def test_the_boolean_trap_on_the_wire() -> None:
    wiki = FakeWiki(ok_upload)
    session, adapter = make_session(wiki)
    upload_bytes(session, b"\x89PNG", "X.png", ignorewarnings=False, stash=False)
    upload_bytes(session, b"\x89PNG", "Y.png", ignorewarnings=True)
    first, second = uploads(adapter)
    assert "ignorewarnings" not in first and "stash" not in first and "async" not in first
    assert second["ignorewarnings"] == "1"


def test_every_request_asks_for_json_formatversion_2_and_writes_assert_user() -> None:
    session, adapter = make_session(FakeWiki(ok_upload))
    upload_bytes(session, b"\x89PNG", "X.png")
    assert adapter.sent  # login, userinfo, token, upload
    for params in adapter.sent:
        assert params["format"] == "json" and params["formatversion"] == "2"
        assert params["maxlag"] == "5"
    (upload,) = uploads(adapter)
    assert upload["assert"] == "user"
    assert upload["token"] == "csrf0001+\\"


def test_user_agent_names_the_tool_its_version_and_a_contact() -> None:
    assert user_agent("ops@example.org").startswith("mwingest/0.1.0 (ops@example.org) python-requests/")
    assert "MWINGEST_CONTACT" in user_agent(None)
    session = WikiSession(Credentials(API, contact="https://example.org/bot"))
    assert session.http.headers["User-Agent"].startswith("mwingest/0.1.0 (https://example.org/bot) ")


# --- session recovery ------------------------------------------------------------------------

def test_badtoken_refreshes_the_token_then_logs_in_again_then_gives_up() -> None:
    wiki = FakeWiki(lambda p: (200, {}, error("badtoken", "Invalid CSRF token.")))
    session, adapter = make_session(wiki)
    with pytest.raises(SessionError) as caught:
        upload_bytes(session, b"\x89PNG", "X.png")
    assert caught.value.code == "badtoken"
    # A fresh token first; refused again, the session itself is gone: one re-login, its token.
    assert [p["token"] for p in uploads(adapter)] == ["csrf0001+\\", "csrf0002+\\",
                                                      "csrf0003+\\"]
    assert session.login_count == 2 and session.gate.relogins == 1


def test_badtoken_once_is_transparent() -> None:
    pending = [error("badtoken", "Invalid CSRF token.")]

    def on_write(params: dict[str, str]) -> Reply:
        return (200, {}, pending.pop()) if pending else ok_upload(params)

    session, adapter = make_session(FakeWiki(on_write))
    assert upload_bytes(session, b"\x89PNG", "X.png").filename == "X.png"
    assert [p["token"] for p in uploads(adapter)] == ["csrf0001+\\", "csrf0002+\\"]


def test_a_dropped_session_logs_in_again_once() -> None:
    wiki = FakeWiki(lambda p: (200, {}, error("assertuserfailed", "You are no longer logged in")))
    session, adapter = make_session(wiki)
    with pytest.raises(SessionError) as caught:
        upload_bytes(session, b"\x89PNG", "X.png")
    assert caught.value.code == "assertuserfailed"
    assert session.login_count == 2 and wiki.logins == 2
    assert len(uploads(adapter)) == 2


def test_anonymous_sessions_do_not_try_to_log_in() -> None:
    wiki = FakeWiki(lambda p: (200, {}, error("mustbeloggedin", "You must be logged in")))
    session, adapter = make_session(wiki, anonymous=True)
    with pytest.raises(SessionError, match="mustbeloggedin"):
        upload_bytes(session, b"\x89PNG", "X.png")
    assert wiki.logins == 0
    (upload,) = uploads(adapter)
    assert "assert" not in upload  # an anonymous session cannot assert=user


# --- waits -----------------------------------------------------------------------------------

def test_maxlag_honours_retry_after_capped_and_bounded() -> None:
    waits: list[float] = []
    session, adapter = make_session(
        lambda p, r: (200, {"Retry-After": "120"}, error("maxlag", "lagged", lag=7)),
        anonymous=True, maxlag_retries=3, sleep=waits.append)
    with pytest.raises(TransientApiError) as caught:
        session.get({"action": "query", "meta": "siteinfo"})
    assert caught.value.code == "maxlag"
    assert caught.value.retry_after == 120.0
    assert waits == [60.0, 60.0, 60.0]  # the cap: never sleep minutes on one header
    assert len(adapter.sent) == 4


def test_ratelimited_waits_within_its_budget() -> None:
    waits: list[float] = []
    wiki = FakeWiki(lambda p: (200, {}, error("ratelimited", "You've exceeded your rate limit.")))
    session, adapter = make_session(wiki, ratelimit_wait=10, ratelimit_budget=25,
                                    sleep=waits.append)
    with pytest.raises(TransientApiError, match="ratelimited"):
        upload_bytes(session, b"\x89PNG", "X.png")
    assert waits == [10, 10]
    assert len(uploads(adapter)) == 3


def test_ratelimited_with_shared_pacing_pauses_every_worker_and_tries_again() -> None:
    """A scripted wiki: the throwaway one refuses on demand only with a lowered limit
    (tests/integration/test_pacing.py does that); here the session's side alone."""
    answers = [error("ratelimited", "You've exceeded your rate limit.")] * 2

    def on_write(params: dict[str, str]) -> Reply:
        return (200, {}, answers.pop(0)) if answers else ok_upload(params)

    class Pace:
        asked, told = 0, []

        def before_write(self) -> None:
            self.asked += 1

        def throttled(self, seconds: float | None, reason: str) -> None:
            self.told.append((seconds, reason))

    waits: list[float] = []
    session, adapter = make_session(FakeWiki(on_write), sleep=waits.append)
    session.pace = pace = Pace()
    upload_bytes(session, b"\x89PNG", "X.png")
    assert pace.told == [(None, "ratelimited")] * 2  # the pace decides how long, for everyone
    assert pace.asked == 3 and waits == []  # each try waits in the pace, not in the session
    assert len(uploads(adapter)) == 3


# --- reading answers -------------------------------------------------------------------------

HTML = b"<!DOCTYPE html>\n<html><head><title>MediaWiki API help</title></head><body>...</body></html>"


def test_html_to_an_upload_means_the_body_was_too_large() -> None:
    wiki = FakeWiki(lambda p: (200, {"Content-Type": "text/html"}, HTML))
    session, _ = make_session(wiki)
    with pytest.raises(OversizedRequestError) as caught:
        upload_bytes(session, b"\x89PNG" * 100, "X.png")
    assert caught.value.sent is True and caught.value.status == 200


@pytest.mark.parametrize(("status", "body"), [(200, HTML), (502, b"Bad gateway"), (200, b"[1, 2]")])
def test_non_json_or_odd_json_to_a_read_is_a_lost_response(status: int, body: bytes) -> None:
    session, _ = make_session(lambda p, r: (status, {}, body), anonymous=True)
    with pytest.raises(ResponseLostError):
        session.get({"action": "query", "meta": "siteinfo"})


def test_error_extras_are_kept_and_secrets_in_info_masked() -> None:
    secret = "tok-" + secrets.token_hex(8)
    register_secret(secret)
    session, _ = make_session(
        lambda p, r: (200, {}, error("internal_api_error_X", f"failed with {secret}", errorclass="X")),
        anonymous=True)
    with pytest.raises(TransientApiError) as caught:
        session.get({"action": "query"})
    assert secret not in str(caught.value) and MASK in caught.value.info
    assert caught.value.data == {"errorclass": "X"}  # docref dropped, extras kept


@pytest.mark.parametrize(("raised", "expected", "sent"), [
    (requests.ConnectionError("NewConnectionError: [Errno 111] Connection refused"), TransportError,
     False),
    (requests.ConnectionError("Connection aborted: RemoteDisconnected"), ResponseLostError, True),
    (requests.ReadTimeout("read timed out"), ResponseLostError, True),
    (requests.ConnectTimeout("connect timed out"), TransportError, False),
])
def test_transport_faults_say_whether_the_request_left(raised: Exception,
                                                       expected: type[TransportError],
                                                       sent: bool) -> None:
    def handler(params: dict[str, str], request: requests.PreparedRequest) -> Reply:
        raise raised

    session, _ = make_session(handler, anonymous=True)
    with pytest.raises(TransportError) as caught:
        session.get({"action": "query"})
    assert type(caught.value) is expected
    assert caught.value.sent is sent


# --- login and secrets -----------------------------------------------------------------------

def test_refused_login_raises_login_error_without_the_password() -> None:
    def handler(params: dict[str, str], request: requests.PreparedRequest) -> Reply:
        if params.get("action") == "login":
            return 200, {}, {"login": {"result": "Failed",
                                       "reason": "Incorrect username or password entered."}}
        return FakeWiki(ok_upload)(params, request)

    session, _ = make_session(handler)
    password = session.credentials.password
    assert password
    with pytest.raises(LoginError) as caught:
        session.login()
    assert caught.value.result == "Failed"
    assert password not in str(caught.value) and password not in repr(caught.value)
    assert not session.logged_in


def test_secrets_stay_out_of_debug_logs_and_reprs(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    session, _ = make_session(FakeWiki(ok_upload))
    password = session.credentials.password
    assert password
    upload_bytes(session, b"\x89PNG", "X.png")
    assert "lgpassword=***" in caplog.text and "token=***" in caplog.text
    for secret in (password, "csrf0001"):
        assert secret not in caplog.text
        assert secret not in repr(session) and secret not in repr(session.credentials)


def test_redact_masks_raw_and_url_encoded_forms() -> None:
    secret = "p@ss w/rd+" + secrets.token_hex(6)
    register_secret(secret)
    text = f"raw={secret} url={quote(secret, safe='')} form={quote_plus(secret)}"
    masked = redact(text)
    assert masked == f"raw={MASK} url={MASK} form={MASK}"
    assert quote(secret, safe="") != quote_plus(secret)  # the test really covers two encodings


def test_redact_ignores_tiny_secrets_and_empty_text() -> None:
    register_secret("abc")  # too short to mask without wrecking ordinary text
    assert redact("abc def") == "abc def"
    assert redact("") == ""


def test_credentials_repr_and_modes() -> None:
    password, token = "pw-" + secrets.token_hex(8), "oauth-" + secrets.token_hex(8)
    bot = Credentials(API, "Uploader@ingest", password)
    main = Credentials(API, "Admin", password)
    oauth = Credentials(API, oauth_token=token)
    assert (bot.effective_login_mode(), main.effective_login_mode(),
            oauth.effective_login_mode()) == ("login", "clientlogin", "oauth")
    assert Credentials(API).anonymous and not oauth.anonymous
    for creds in (bot, main, oauth):
        assert password not in repr(creds) and token not in repr(creds) and token not in str(creds)
    env = {"MWINGEST_API_URL": API, "MWINGEST_USERNAME": "U@a", "MWINGEST_PASSWORD": password,
           "MWINGEST_CONTACT": "ops@example.org"}
    from_env = Credentials.from_env(env)
    assert (from_env.username, from_env.password, from_env.contact) == ("U@a", password,
                                                                        "ops@example.org")
    with pytest.raises(ValueError, match="MWINGEST_API_URL"):
        Credentials.from_env({})


@pytest.mark.parametrize(("api_url", "contact"), [
    ("https://commons.wikimedia.org/w/api.php", None),
    ("https://commons.wikimedia.org/w/api.php", "me"),
    ("https://wiki.museum.example.net.au/api.php", "   "),
])
def test_a_real_wiki_needs_the_operators_contact_before_any_request(api_url, contact):
    http = requests.Session()
    http.get = http.post = None  # type: ignore[assignment] - any request would fail loudly
    with pytest.raises(ContactRequiredError, match="MWINGEST_CONTACT"):
        WikiSession(Credentials(api_url=api_url, contact=contact), http=http)


@pytest.mark.parametrize(("api_url", "contact"), [
    ("https://commons.wikimedia.org/w/api.php", "User:Example"),
    ("https://commons.wikimedia.org/w/api.php", "archive-team@museum.example.org"),
    ("https://wiki.museum.org/api.php", "https://museum.org/contact"),
    ("http://127.0.0.1:8123/api.php", None),
    ("http://localhost/w/api.php", None),
    ("http://[::1]:9000/api.php", None),
    ("https://wiki.example.org/w/api.php", None),
])
def test_a_contact_or_a_local_test_wiki_is_enough(api_url, contact):
    session = WikiSession(Credentials(api_url=api_url, contact=contact))
    assert (contact or "no contact configured") in session.http.headers["User-Agent"]
