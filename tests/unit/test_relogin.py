"""One re-login per dropped session, however many requests in flight see the drop (issue 31).

The gate is tested alone first (threads, no HTTP), then through :class:`WikiSession` against a
scripted wiki that keeps sessions the way MediaWiki does: a cookie names a session in a store
that can be flushed, a login token belongs to its session. A scripted wiki because these tests
need answers at chosen moments, many threads at once, in milliseconds: a drop while six requests
are in flight, a store flushed between a login token and its login, a refusal right after a
drop. The real wiki's drops (its session store emptied mid-import) are covered by
``tests/integration/test_relogin.py``.
"""

from __future__ import annotations

import http.client
import json
import re
import secrets
import threading
import time
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import pytest
import requests
from requests.adapters import BaseAdapter

from mwingest.base.errors import LoginError, LoginRefusedError, SessionError, reason_code
from mwingest.wiki.credentials import Credentials
from mwingest.wiki.login import log_in
from mwingest.wiki.relogin import LoginGate
from mwingest.wiki.session import WikiSession
from mwingest.wiki.upload import upload_bytes

API = "http://wiki.invalid/api.php"  # never resolved: the adapter answers before any socket
TIMED_OUT = "Unable to continue login. Your session most likely timed out."


# --- the gate alone ------------------------------------------------------------------------------

def _together(count: int, fn: Callable[[], Any]) -> list[Any]:
    """Run ``fn`` in ``count`` threads started at once; their results (or exceptions)."""
    barrier = threading.Barrier(count)
    results: list[Any] = [None] * count

    def run(n: int) -> None:
        barrier.wait()
        try:
            results[n] = fn()
        except Exception as exc:  # noqa: BLE001 - the test looks at it
            results[n] = exc

    threads = [threading.Thread(target=run, args=(n,)) for n in range(count)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    return results


def test_requests_that_saw_one_drop_share_one_login() -> None:
    gate = LoginGate()
    gate.login(lambda: "Uploader")
    seen = gate.generation
    calls: list[int] = []

    def slow_login() -> str:
        calls.append(1)
        time.sleep(0.1)  # the others arrive while it runs
        return "Uploader"

    results = _together(6, lambda: gate.renew(seen, slow_login, why="assertuserfailed",
                                              where=API))
    assert calls == [1]
    assert results == [seen + 1] * 6
    assert gate.relogins == 1


def test_a_second_drop_is_a_second_login() -> None:
    gate = LoginGate()
    gate.login(lambda: "Uploader")
    logins: list[int] = []
    for _drop in range(2):
        seen = gate.generation
        _together(4, lambda s=seen: gate.renew(s, lambda: logins.append(1) or "U",
                                               why="assertuserfailed", where=API))
    assert len(logins) == 2 and gate.relogins == 2 and gate.generation == 3


def test_a_refused_login_is_remembered_and_raised_to_everyone() -> None:
    gate = LoginGate()
    gate.login(lambda: "Uploader")
    attempts: list[int] = []

    def refused() -> str:
        attempts.append(1)
        raise LoginError("login refused for Uploader@ingest: Incorrect username or password")

    results = _together(5, lambda: gate.renew(gate.generation, refused, why="assertuserfailed",
                                              where=API))
    assert attempts == [1]
    assert all(isinstance(r, LoginRefusedError) for r in results)
    assert results[0] is results[1]  # one error, one message
    assert "Incorrect username or password" in str(results[0])
    assert reason_code(results[0]) == "login-refused"
    with pytest.raises(LoginRefusedError):
        gate.check()


def test_a_transient_fault_during_the_login_is_not_a_refusal() -> None:
    gate = LoginGate()
    gate.login(lambda: "Uploader")
    seen = gate.generation

    def down() -> str:
        raise requests.ConnectionError("Connection refused")

    with pytest.raises(requests.ConnectionError):
        gate.renew(seen, down, why="assertuserfailed", where=API)
    assert gate.refused is None and gate.generation == seen
    assert gate.renew(seen, lambda: "U", why="assertuserfailed", where=API) == seen + 1


# --- through the session, against a wiki that keeps sessions ----------------------------------

class SessionWiki:
    """Sessions as MediaWiki 1.39 keeps them: a cookie names a session in a store (flushable),
    a login token and a CSRF token belong to their session, ``assert=user`` fails without one."""

    def __init__(self, *, login_delay: float = 0.0) -> None:
        self.lock = threading.Lock()
        self.store: dict[str, dict[str, Any]] = {}
        self.login_delay = login_delay
        self.logins = 0  # successful action=login / clientlogin answers
        self.login_requests: list[str | None] = []  # the Cookie header of each login token fetch
        self.refuse = False
        self.lose_next_login = False  # the store loses the session between token and login
        self.oauth_revoked = False
        self.uploaded: list[str] = []

    def drop(self) -> None:
        with self.lock:
            self.store.clear()

    def _session(self, request: requests.PreparedRequest) -> tuple[str, dict[str, Any], bool]:
        match = re.search(r"wikisession=(\w+)", request.headers.get("Cookie", ""))
        with self.lock:
            if match and match[1] in self.store:
                return match[1], self.store[match[1]], False
            sid = secrets.token_hex(8)
            self.store[sid] = {"user": None}
            return sid, self.store[sid], True

    def __call__(self, params: dict[str, str], request: requests.PreparedRequest
                 ) -> tuple[dict[str, Any], str | None]:
        bearer = request.headers.get("Authorization", "").startswith("Bearer ")
        meta = set((params.get("meta") or "").split("|"))
        if bearer:  # OAuth 2: every request is authenticated by its header, no session cookie
            if self.oauth_revoked:
                return {"error": {"code": "mwoauth-invalid-authorization",
                                  "info": "The authorization headers in your request are not "
                                          "valid: Invalid access token"}}, None
            sid, state, new = "oauth", {"user": "Uploader"}, False
        else:
            sid, state, new = self._session(request)
        cookie = f"wikisession={sid}; path=/" if new else None
        action = params.get("action")
        if meta == {"tokens"} and params.get("type") == "login":
            self.login_requests.append(request.headers.get("Cookie"))
            state["logintoken"] = f"lt{sid}+\\"
            return {"query": {"tokens": {"logintoken": state["logintoken"]}}}, cookie
        if action == "login":
            if self.lose_next_login:
                self.lose_next_login = False
                self.drop()
                sid, state, new = self._session(request)
                return {"login": {"result": "Failed", "reason": TIMED_OUT}}, \
                    f"wikisession={sid}; path=/"
            if state["user"] is not None:
                return {"login": {"result": "Aborted", "reason": "Cannot log in when using "
                                  "MediaWiki\\Session\\BotPasswordSessionProvider sessions."}}, None
            if params.get("lgtoken") != state.get("logintoken"):
                return {"login": {"result": "WrongToken"}}, None
            if self.refuse:
                return {"login": {"result": "Failed",
                                  "reason": "Incorrect username or password entered. "
                                            "Please try again."}}, None
            time.sleep(self.login_delay)
            state["user"] = "Uploader"
            with self.lock:
                self.logins += 1
            return {"login": {"result": "Success", "lgusername": "Uploader"}}, cookie
        if meta & {"tokens", "userinfo"}:
            user = state["user"]
            query: dict[str, Any] = {}
            if "tokens" in meta:
                query["tokens"] = {"csrftoken": f"csrf{sid}+\\" if user else "+\\"}
            if "userinfo" in meta:
                query["userinfo"] = ({"id": 3, "name": user} if user
                                     else {"id": 0, "name": "127.0.0.1", "anon": True})
            return {"query": query}, cookie
        if action == "upload":
            if params.get("assert") == "user" and state["user"] is None:
                return {"error": {"code": "assertuserfailed",
                                  "info": "You are no longer logged in"}}, cookie
            if params.get("token") != f"csrf{sid}+\\":
                return {"error": {"code": "badtoken", "info": "Invalid CSRF token."}}, cookie
            with self.lock:
                self.uploaded.append(params["filename"])
            return {"upload": {"result": "Success", "filename": params["filename"]}}, cookie
        return {"error": {"code": "unknown_action", "info": str(params)}}, cookie


class CookieAdapter(BaseAdapter):
    """A transport answering from :class:`SessionWiki`, with real ``Set-Cookie`` headers (so
    ``requests`` keeps cookies in the session's jar as it does for a real wiki)."""

    def __init__(self, wiki: SessionWiki) -> None:
        super().__init__()
        self.wiki = wiki
        self.sent = 0

    def send(self, request: requests.PreparedRequest, **kwargs: Any) -> requests.Response:
        params = dict(parse_qsl(urlsplit(request.url or "").query))
        body = request.body
        if isinstance(body, bytes | str):
            params.update(parse_qsl(body.decode() if isinstance(body, bytes) else body))
        elif body is not None and hasattr(body, "fields"):
            params.update({k: v for k, v in body.fields if isinstance(v, str)})
        self.sent += 1
        answer, cookie = self.wiki(params, request)
        headers = http.client.HTTPMessage()
        if cookie:
            headers["Set-Cookie"] = cookie
        resp = requests.Response()
        resp.status_code = 200
        resp._content = json.dumps(answer).encode()
        resp.raw = SimpleNamespace(_original_response=SimpleNamespace(msg=headers))
        resp.request = request
        resp.url = request.url or ""
        resp.encoding = "utf-8"
        return resp

    def close(self) -> None:
        """Nothing to release."""


def session_on(wiki: SessionWiki, **creds: Any) -> tuple[WikiSession, CookieAdapter]:
    adapter = CookieAdapter(wiki)
    http_session = requests.Session()
    http_session.trust_env = False
    http_session.mount("http://", adapter)
    credentials = Credentials(API, **(creds or {"username": "Uploader@ingest",
                                                 "password": "bot-" + secrets.token_hex(8)}))
    return WikiSession(credentials, http=http_session, maxlag=None), adapter


def _uploads(session: WikiSession, count: int, prefix: str) -> list[Any]:
    names = iter(range(count))
    lock = threading.Lock()

    def one() -> Any:
        with lock:
            n = next(names)
        return upload_bytes(session, b"\x89PNG", f"{prefix}{n}.png").filename

    return _together(count, one)


def test_six_files_in_flight_after_a_drop_wait_for_one_relogin() -> None:
    wiki = SessionWiki(login_delay=0.2)
    session, _ = session_on(wiki)
    session.login()
    wiki.drop()
    results = _uploads(session, 6, "A")
    assert sorted(results) == [f"A{n}.png" for n in range(6)]
    assert wiki.logins == 2 and session.gate.relogins == 1
    # The re-login started from a clean session: its login token was fetched without cookies
    # (an old bot-password session cookie makes MediaWiki refuse: "Cannot log in when using …").
    assert wiki.login_requests == [None, None]


def test_two_drops_cost_two_relogins() -> None:
    wiki = SessionWiki(login_delay=0.05)
    session, _ = session_on(wiki)
    session.login()
    for prefix in ("B", "C"):
        wiki.drop()
        assert all(isinstance(r, str) for r in _uploads(session, 4, prefix))
    assert session.gate.relogins == 2 and wiki.logins == 3
    assert len(wiki.uploaded) == 8


def test_a_refused_relogin_stops_everyone_and_asks_the_wiki_no_more() -> None:
    wiki = SessionWiki(login_delay=0.0)
    session, adapter = session_on(wiki)
    session.login()
    wiki.drop()
    wiki.refuse = True  # the password was changed meanwhile
    results = _uploads(session, 5, "D")
    assert all(isinstance(r, LoginRefusedError) for r in results), results
    assert len(wiki.login_requests) == 2  # the first login, and one refused re-login
    assert "Incorrect username or password" in str(results[0])
    assert session.credentials.password not in str(results[0])
    sent = adapter.sent
    with pytest.raises(LoginRefusedError):
        upload_bytes(session, b"\x89PNG", "Later.png")
    with pytest.raises(LoginRefusedError):
        session.get({"action": "query", "meta": "userinfo"})
    assert adapter.sent == sent  # nothing more was sent
    assert wiki.uploaded == []


def test_a_login_whose_own_session_was_lost_starts_a_new_one() -> None:
    wiki = SessionWiki()
    session, _ = session_on(wiki)
    session.login()
    wiki.drop()
    wiki.lose_next_login = True  # the store is flushed again between login token and login
    assert upload_bytes(session, b"\x89PNG", "E.png").filename == "E.png"
    assert session.gate.relogins == 1 and wiki.logins == 2
    assert len(wiki.login_requests) == 3  # the lost login was tried again from a new session


def test_a_session_lost_right_after_its_login_is_not_a_refusal() -> None:
    wiki = SessionWiki()
    session, _ = session_on(wiki)
    session.login()
    original = wiki.__call__
    lose = [True]

    def lose_once_after_login(params: dict[str, str], request: requests.PreparedRequest) -> Any:
        answer = original(params, request)
        if params.get("action") == "login" and lose and lose.pop():
            wiki.drop()  # evicted again between the login and its userinfo query
        return answer

    session.http.adapters["http://"].wiki = lose_once_after_login  # type: ignore[attr-defined]
    wiki.drop()
    assert upload_bytes(session, b"\x89PNG", "G.png").filename == "G.png"
    assert session.gate.relogins == 1 and session.gate.refused is None
    assert wiki.logins == 3  # the first login, the lost one, the one that held


def test_a_login_that_keeps_losing_its_session_is_retryable_not_refused() -> None:
    wiki = SessionWiki()
    session, _ = session_on(wiki)
    original = wiki.__call__

    def always_lost(params: dict[str, str], request: requests.PreparedRequest) -> Any:
        if params.get("action") == "login":
            return {"login": {"result": "Failed", "reason": TIMED_OUT}}, None
        return original(params, request)

    session.http.adapters["http://"].wiki = always_lost  # type: ignore[attr-defined]
    with pytest.raises(SessionError) as caught:
        session.login()
    assert caught.value.code == "sessionlost" and caught.value.retryable
    assert session.gate.refused is None


def test_oauth_relogin_sends_no_cookies_and_keeps_the_bearer_token() -> None:
    wiki = SessionWiki()
    token = "oauth-" + secrets.token_hex(8)
    session, _ = session_on(wiki, oauth_token=token)
    session.login()
    seen: list[requests.PreparedRequest] = []
    session.http.hooks["response"].append(lambda r, *a, **k: seen.append(r.request))
    session._csrf = "stale+\\"  # a token of a session the wiki no longer knows
    original = wiki.__call__
    answers = iter([{"error": {"code": "badtoken", "info": "Invalid CSRF token."}}] * 2)

    def refuse_twice(params: dict[str, str], request: requests.PreparedRequest) -> Any:
        if params.get("action") == "upload":
            nxt = next(answers, None)
            if nxt is not None:
                return nxt, None
        return original(params, request)

    session.http.adapters["http://"].wiki = refuse_twice  # type: ignore[attr-defined]
    assert upload_bytes(session, b"\x89PNG", "F.png").filename == "F.png"
    assert session.gate.relogins == 1
    assert wiki.login_requests == []  # OAuth 2 never logs in with a password
    assert all(r.headers["Authorization"] == f"Bearer {token}" for r in seen)
    assert not any("Cookie" in r.headers for r in seen)


def test_a_revoked_oauth_token_is_a_refused_relogin() -> None:
    wiki = SessionWiki()
    session, _ = session_on(wiki, oauth_token="oauth-" + secrets.token_hex(8))
    session.login()
    wiki.oauth_revoked = True
    with pytest.raises(LoginRefusedError, match="OAuth token"):
        session.gate.renew(session.generation, lambda: log_in(session), why="assertuserfailed",
                           where=API)
