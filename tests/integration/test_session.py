"""WikiSession against the real wiki: the three login methods, what goes on the wire, secrets, and
the errors tied to who is logged in (spec §6 class A, §13), with the session's own recoveries.

One test uses a scripted HTTP server on 127.0.0.1 instead of the wiki: OAuth 2 needs the OAuth
extension, which Debian's MediaWiki package does not ship, so the real wiki cannot issue a token.
That test checks only what the client sends (``Authorization: Bearer``), which is the client's part.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import secrets
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import pytest
import requests

from mwingest.base.errors import (
    ApiError,
    InputError,
    LoginError,
    PermanentApiError,
    RetryClass,
    SessionError,
    TransientApiError,
)
from mwingest.base.streams import FilePart
from mwingest.wiki.credentials import Credentials
from mwingest.wiki.session import WikiSession
from mwingest.wiki.upload import file_info, upload_bytes
from tests.integration.wikihelpers import admin_main_session, admin_session, png_bytes, session_for

pytestmark = pytest.mark.wiki
_BOTPW_RE = re.compile(r"username:'(?P<user>[^']+)' and password:'(?P<password>[^']+)'")
UA_RE = re.compile(r"^mwingest/\d+\.\d+\.\d+ \((?P<contact>[^)]+)\) python-requests/[\d.]+$")


def sha1(data: bytes) -> str:
    return hashlib.sha1(data).hexdigest()  # noqa: S324 - MediaWiki's content hash


def new_session(api_url: str, username: str | None = None, password: str | None = None, *,
                login_mode: str = "auto", contact: str | None = None, oauth_token: str | None = None,
                **session_kwargs: Any) -> WikiSession:
    """A session that is not logged in yet, never through a proxy (the wiki is on loopback)."""
    creds = Credentials(api_url, username, password, oauth_token=oauth_token, login_mode=login_mode,
                        contact=contact)
    http = requests.Session()
    http.trust_env = False
    return WikiSession(creds, http=http, **{"maxlag": None, **session_kwargs})


def check(exc: BaseException, cls: type[ApiError], code: str, retry_class: RetryClass) -> None:
    assert type(exc) is cls, f"{type(exc).__name__}: {exc}"
    assert isinstance(exc, ApiError) and exc.code == code
    assert exc.retry_class is retry_class


def landed(session: WikiSession, filename: str) -> bool:
    return file_info(session, filename) is not None


def sent_requests(session: WikiSession) -> list[tuple[requests.PreparedRequest, requests.Response]]:
    """Record every request the session sends from now on, with the wiki's answer."""
    seen: list[tuple[requests.PreparedRequest, requests.Response]] = []
    session.http.hooks["response"].append(lambda resp, *a, **k: seen.append((resp.request, resp)))
    return seen


def params_of(request: requests.PreparedRequest) -> dict[str, str]:
    """The API parameters of a sent request: query string, form body or multipart fields."""
    params = dict(parse_qsl(urlsplit(request.url or "").query))
    if isinstance(request.body, bytes | str):
        body = request.body.decode() if isinstance(request.body, bytes) else request.body
        params.update(parse_qsl(body))
    elif hasattr(request.body, "fields"):  # requests-toolbelt's streaming MultipartEncoder
        params.update({k: v for k, v in request.body.fields if isinstance(v, str)})
    return params


def api_errors(seen: list[tuple[requests.PreparedRequest, requests.Response]]) -> list[str]:
    return [r.headers["MediaWiki-API-Error"] for _, r in seen if "MediaWiki-API-Error" in r.headers]


def bot_session(wiki: Any, user: str, grants: str) -> WikiSession:
    """Logged in through a new bot password of ``user`` with exactly ``grants`` (spec §13: let
    the script generate the password, one given on its command line does not work on 1.39.17)."""
    out = wiki.run_maintenance("createBotPassword.php", f"--appid=t{secrets.token_hex(6)}",
                               f"--grants={grants}", user)
    match = _BOTPW_RE.search(out.stdout)
    assert match, "createBotPassword.php printed no password"
    session = new_session(wiki.api_url, match["user"], match["password"])
    session.login()
    return session


# --- login methods ---------------------------------------------------------------------------

def test_bot_password_login(wiki: Any) -> None:
    session = new_session(wiki.api_url, wiki.username, wiki.password)
    seen = sent_requests(session)
    assert session.login() == "Uploader"
    assert session.logged_in and session.login_count == 1
    assert [params_of(q)["action"] for q, _ in seen if q.method == "POST"] == ["login"]
    rights = session.get({"action": "query", "meta": "userinfo", "uiprop": "rights"})
    assert "upload" in rights["query"]["userinfo"]["rights"]


def test_clientlogin_with_the_main_account_uploads_as_that_user(wiki: Any,
                                                                unique: Callable[[], str]) -> None:
    session = new_session(wiki.api_url, wiki.admin_username, wiki.admin_password,
                          login_mode="clientlogin")
    seen = sent_requests(session)
    data, name = png_bytes(), f"Clientlogin-{unique()}.png"
    result = upload_bytes(session, data, name)  # logs in lazily on the first write
    assert session.user == "Admin" and session.login_count == 1
    assert "clientlogin" in [params_of(q).get("action") for q, _ in seen]
    assert result.imageinfo["user"] == "Admin" and result.sha1 == sha1(data)
    auto = new_session(wiki.api_url, wiki.admin_username, wiki.admin_password)
    assert auto.credentials.effective_login_mode() == "clientlogin"  # no "@": a main account
    assert auto.login() == "Admin"


@pytest.mark.parametrize(("username_attr", "mode", "result"), [
    ("username", "login", "Failed"),
    ("admin_username", "clientlogin", "FAIL"),
])
def test_wrong_password_is_login_error_without_the_password(
        wiki: Any, caplog: pytest.LogCaptureFixture, username_attr: str, mode: str,
        result: str) -> None:
    caplog.set_level(logging.DEBUG)
    wrong = "Wrong-" + secrets.token_urlsafe(24)
    session = new_session(wiki.api_url, getattr(wiki, username_attr), wrong, login_mode=mode)
    with pytest.raises(LoginError) as caught:
        session.login()
    assert caught.value.result == result
    assert not session.logged_in and session.user is None
    for text in (str(caught.value), repr(caught.value), repr(session), caplog.text):
        assert wrong not in text


# --- what goes on the wire -------------------------------------------------------------------

def test_user_agent_formatversion_and_assert_on_the_wire(wiki: Any, unique: Callable[[], str]) -> None:
    session = new_session(wiki.api_url, wiki.username, wiki.password,
                          contact="mwingest-tests@example.org")
    seen = sent_requests(session)
    upload_bytes(session, png_bytes(), f"Wire-{unique()}.png", ignorewarnings=False)
    # login token, login, who we are with the CSRF token (one request), upload
    assert [params_of(q).get("action") for q, _ in seen] == ["query", "login", "query", "upload"]
    for request, response in seen:
        match = UA_RE.match(request.headers["User-Agent"])
        assert match and match["contact"] == "mwingest-tests@example.org"
        params = params_of(request)
        assert (params["format"], params["formatversion"]) == ("json", "2")
        assert response.headers["Content-Type"].startswith("application/json")
    (upload,) = [p for q, _ in seen if (p := params_of(q)).get("action") == "upload"]
    assert upload["assert"] == "user" and upload["token"].endswith("+\\")
    assert "ignorewarnings" not in upload  # false means absent (spec §2)
    logins = [p for q, _ in seen if (p := params_of(q)).get("action") == "login"]
    assert logins and all("assert" not in p for p in logins)


@pytest.fixture
def scripted_oauth_wiki() -> Iterator[tuple[str, list[dict[str, Any]]]]:
    """A stand-in api.php on 127.0.0.1 (port outside 8000-8999) that records what it receives."""
    received: list[dict[str, Any]] = []

    class Handler(BaseHTTPRequestHandler):
        def _answer(self, params: dict[str, str]) -> None:
            received.append({"method": self.command, "headers": dict(self.headers), "params": params})
            meta = set((params.get("meta") or "").split("|"))
            if meta & {"userinfo", "tokens"}:  # one or both, as MediaWiki answers them
                body: dict[str, Any] = {"query": {}}
                if "userinfo" in meta:
                    body["query"]["userinfo"] = {"id": 9, "name": "OAuthBot"}
                if "tokens" in meta:
                    body["query"]["tokens"] = {"csrftoken": "0a1b2c3d4e5f+\\"}
            else:
                body = {"upload": {"result": "Success", "filename": "Oauth.png",
                                   "imageinfo": {"sha1": "0" * 40, "user": "OAuthBot"}}}
            raw = json.dumps(body).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(raw)))
            self.end_headers()
            self.wfile.write(raw)

        def do_GET(self) -> None:  # noqa: N802 - http.server's naming
            self._answer(dict(parse_qsl(urlsplit(self.path).query)))

        def do_POST(self) -> None:  # noqa: N802
            self.rfile.read(int(self.headers.get("Content-Length", 0)))
            self._answer({"action": "upload"})

        def log_message(self, *args: Any) -> None:
            """Quiet: the test reads ``received``."""

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    while 8000 <= server.server_address[1] <= 8999:
        server.server_close()
        server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/api.php", received
    finally:
        server.shutdown()
        server.server_close()


def test_oauth_token_is_sent_as_bearer_on_every_request(
        scripted_oauth_wiki: tuple[str, list[dict[str, Any]]],
        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    api_url, received = scripted_oauth_wiki
    token = "oauth2-" + secrets.token_urlsafe(32)
    session = new_session(api_url, oauth_token=token)
    result = upload_bytes(session, png_bytes(), "Oauth.png")
    assert result.filename == "Oauth.png" and session.user == "OAuthBot"
    assert [r["method"] for r in received] == ["GET", "POST"]  # userinfo with the token, upload
    for request in received:
        assert request["headers"]["Authorization"] == f"Bearer {token}"
        assert not {"lgpassword", "password"} & set(request["params"])  # no password login
    assert token not in repr(session) and token not in repr(session.credentials)
    assert token not in caplog.text


# --- secrets ---------------------------------------------------------------------------------

def test_no_secret_in_reprs_or_debug_logs(wiki: Any, caplog: pytest.LogCaptureFixture,
                                          unique: Callable[[], str]) -> None:
    caplog.set_level(logging.DEBUG)  # the session's own lines and urllib3's
    session = new_session(wiki.api_url, wiki.username, wiki.password)
    upload_bytes(session, png_bytes(), f"Secret-{unique()}.png")
    secrets_now = [wiki.password, session.csrf_token().rstrip("+\\")]
    secrets_now += [c.value for c in session.http.cookies
                    if c.value and ("session" in c.name.lower() or "token" in c.name.lower())]
    assert len(secrets_now) >= 3, "expected a session cookie"
    assert any(r.name == "mwingest.wiki.session" and r.levelno == logging.DEBUG for r in caplog.records)
    shown = [caplog.text, repr(session), str(session), repr(session.credentials),
             *(r.getMessage() for r in caplog.records)]
    for secret in secrets_now:
        assert not any(secret in text for text in shown)


# --- class A: the session recovers by itself, once --------------------------------------------

def test_stale_token_is_refreshed_transparently(wiki: Any, unique: Callable[[], str]) -> None:
    session = session_for(wiki)
    session.csrf_token()
    session._csrf = "0123456789abcdef0123456789abcdef+\\"  # a token from before a re-login
    seen = sent_requests(session)
    data, name = png_bytes(), f"Badtoken-{unique()}.png"
    assert upload_bytes(session, data, name).sha1 == sha1(data)
    assert api_errors(seen) == ["badtoken"]  # the wiki did refuse the stale token, once
    fetched = [p for q, _ in seen if (p := params_of(q)).get("meta") == "tokens"]
    assert len(fetched) == 1  # and a fresh token was fetched
    assert session.login_count == 1
    assert file_info(session, name)["sha1"] == sha1(data)


def test_raw_request_with_a_bad_token_is_session_error(wiki: Any, unique: Callable[[], str]) -> None:
    session, name = session_for(wiki), f"Badtoken-raw-{unique()}.png"
    with pytest.raises(SessionError) as caught:
        # write=False: the session adds no token of its own, so the bad one is what the wiki sees.
        session.post({"action": "upload", "filename": name, "token": "bad+\\"},
                     {"file": FilePart(name, data=png_bytes())}, write=False)
    check(caught.value, SessionError, "badtoken", RetryClass.SESSION)
    assert caught.value.retryable
    assert not landed(session, name)


def test_session_dropped_behind_our_back_logs_in_again_once(wiki: Any,
                                                            unique: Callable[[], str]) -> None:
    session = session_for(wiki)
    logout = session.http.post(wiki.api_url, data={"action": "logout", "format": "json",
                                                   "token": session.csrf_token()}, timeout=30)
    assert logout.json() == {}
    assert session.get({"action": "query", "meta": "userinfo"})["query"]["userinfo"].get("anon")
    seen = sent_requests(session)
    data, name = png_bytes(), f"Relogin-{unique()}.png"
    result = upload_bytes(session, data, name)
    assert api_errors(seen) == ["assertuserfailed"]  # assert=user made the drop visible (§13)
    assert session.login_count == 2
    assert result.imageinfo["user"] == "Uploader"
    assert file_info(session, name)["sha1"] == sha1(data)


def test_anonymous_upload_must_be_logged_in(wiki: Any, unique: Callable[[], str]) -> None:
    anonymous, name = new_session(wiki.api_url), f"Anon-{unique()}.png"
    with pytest.raises(SessionError) as caught:
        upload_bytes(anonymous, png_bytes(), name)
    check(caught.value, SessionError, "mustbeloggedin", RetryClass.SESSION)
    assert anonymous.login_count == 0  # nothing to log in with: no loop
    assert not landed(anonymous, name)


def test_stash_is_for_logged_in_users_only(wiki: Any) -> None:
    key = upload_bytes(session_for(wiki), png_bytes(), "Stashed.png", stash=True).filekey
    with pytest.raises(SessionError) as caught:
        new_session(wiki.api_url).get({"action": "query", "prop": "stashimageinfo",
                                       "siifilekey": key})
    check(caught.value, SessionError, "notloggedin", RetryClass.SESSION)


# --- class T: waits ----------------------------------------------------------------------------

def test_maxlag_waits_retry_after_then_gives_up(wiki: Any, unique: Callable[[], str]) -> None:
    waits: list[float] = []
    session = new_session(wiki.api_url, wiki.username, wiki.password, maxlag_retries=2,
                          sleep=waits.append)
    session.login()
    session.csrf_token()  # cached now: the lagged request below is the upload itself
    # SQLite reports a lag of -1, so only maxlag <= -2 trips (spec §6).
    session.maxlag = -2
    seen = sent_requests(session)
    name = f"Lagged-{unique()}.png"
    with pytest.raises(TransientApiError) as caught:
        upload_bytes(session, png_bytes(), name)
    assert [params_of(q).get("action") for q, _ in seen] == ["upload"] * 3  # 1 + 2 retries
    check(caught.value, TransientApiError, "maxlag", RetryClass.TRANSIENT)
    assert caught.value.retry_after == 5.0 and caught.value.data["lag"] == -1
    assert waits == [5.0, 5.0]
    session.maxlag = None
    assert not landed(session, name)


def test_ratelimited_waits_and_retries_within_its_budget(wiki_factory: Callable[..., Any],
                                                         unique: Callable[[], str]) -> None:
    variant = wiki_factory(rate_limits={"upload": {"user": [1, 5]}})  # 1 upload per 5 s
    waits: list[float] = []

    def sleep(seconds: float) -> None:
        waits.append(seconds)
        time.sleep(seconds)

    patient = new_session(variant.api_url, variant.username, variant.password,
                          ratelimit_wait=6.0, ratelimit_budget=30.0, sleep=sleep)
    impatient = new_session(variant.api_url, variant.username, variant.password, ratelimit_budget=0)
    for session in (patient, impatient):  # log in first: the uploads below follow each other closely
        session.login()
    first, second, third = (f"Rate-{unique()}.png" for _ in range(3))
    upload_bytes(patient, png_bytes(), first)
    with pytest.raises(TransientApiError) as caught:  # the same user, within the same 5 s
        upload_bytes(impatient, png_bytes(), second)
    check(caught.value, TransientApiError, "ratelimited", RetryClass.TRANSIENT)
    assert not waits and not landed(impatient, second)
    assert upload_bytes(impatient, png_bytes(), second, stash=True).filekey  # stash: not limited
    upload_bytes(patient, png_bytes(), third)  # over the limit: waits, then passes
    assert waits and set(waits) == {6.0}
    assert landed(patient, first) and landed(patient, third)


# --- class P: rights ---------------------------------------------------------------------------

@pytest.mark.parametrize(("grants", "code"), [
    ("basic,uploadfile", "permissiondenied"),  # no edit right
    ("basic,uploadfile,editpage", "cantcreate"),  # no createpage (an FK error)
])
def test_bot_password_grants_limit_uploads(wiki: Any, unique: Callable[[], str], grants: str,
                                           code: str) -> None:
    limited, name = bot_session(wiki, "Uploader", grants), f"Grants-{unique()}.png"
    with pytest.raises(PermanentApiError) as caught:
        upload_bytes(limited, png_bytes(), name)
    check(caught.value, PermanentApiError, code, RetryClass.PERMANENT)
    assert not caught.value.retryable
    assert bool(caught.value.filekey) is (code == "cantcreate")
    assert not landed(limited, name)


def test_overwriting_without_reupload_is_fileexists_forbidden(wiki: Any,
                                                              unique: Callable[[], str]) -> None:
    name, original = f"Others-{unique()}.png", png_bytes()
    upload_bytes(admin_session(wiki), original, name)
    limited = bot_session(wiki, "Uploader", "basic,uploadfile,createeditmovepage")
    with pytest.raises(InputError) as caught:
        upload_bytes(limited, png_bytes(), name, ignorewarnings=True)
    check(caught.value, InputError, "fileexists-forbidden", RetryClass.FIX_INPUT)
    assert caught.value.filekey and caught.value.data["invalidparameter"] == "filename"
    info = file_info(limited, name, history=True)
    assert info["sha1"] == sha1(original) and len(info["versions"]) == 1


def test_blocked_user_is_refused(wiki: Any, unique: Callable[[], str]) -> None:
    user = f"Blockee{unique()}"
    wiki.run_maintenance("createAndPromote.php", user, secrets.token_hex(16))
    blockee = bot_session(wiki, user, "basic,uploadeditmovefile,createeditmovepage")
    admin_main_session(wiki).post({"action": "block", "user": user, "expiry": "1 hour",
                                   "reason": "mwingest test"})
    name = f"Blocked-{unique()}.png"
    with pytest.raises(PermanentApiError) as caught:
        upload_bytes(blockee, png_bytes(), name)
    check(caught.value, PermanentApiError, "blocked", RetryClass.PERMANENT)
    assert caught.value.data["blockinfo"]["blockedby"] == "Admin"
    assert not landed(blockee, name)
