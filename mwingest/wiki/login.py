"""How a session logs in: bot password (``action=login``), main account (``clientlogin``), OAuth 2.

Why apart from :mod:`mwingest.wiki.session`: a login is a small protocol of its own with answers
to read carefully. "Refused" (a wrong or changed password, an invalidated bot password, a
revoked OAuth token: :class:`LoginError`) must be told apart from "the login's own session was
lost" (the login token belongs to a session the store dropped between two requests:
MediaWiki answers ``Failed`` with "Unable to continue login. Your session most likely timed
out.", ``WrongToken``, or ``badtoken`` to a ``clientlogin``), which a new session cures, and from
"too many attempts" (``login-throttled``), which waiting cures. Every login starts from a clean
session (:func:`mwingest.wiki.relogin.fresh_http`): the old session's cookies, a bot-password
session among them, would make the wiki refuse ("Cannot log in when using
BotPasswordSessionProvider sessions").

The caller holds the session's login lock (:class:`mwingest.wiki.relogin.LoginGate`). The
password is sent in one POST body; nothing here logs it.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any, Protocol

import requests

from mwingest.base.errors import ApiError, LoginError, SessionError, TransientApiError
from mwingest.base.redact import register_secret
from mwingest.wiki.credentials import Credentials
from mwingest.wiki.relogin import fresh_http, login_session_lost


class WikiSession(Protocol):
    """What a login needs of :class:`mwingest.wiki.session.WikiSession` (which imports this
    module, so it is described here rather than imported)."""

    credentials: Credentials
    api_url: str
    http: requests.Session
    maxlag_retries: int
    login_count: int
    user: str | None

    def forget_login(self) -> None: ...

    def logged_in_as(self, user: str | None, csrf: str | None) -> None: ...

    def raw_request(self, method: str, params: Mapping[str, Any]) -> dict[str, Any]: ...

    def pause(self, seconds: float) -> None: ...

log = logging.getLogger("mwingest.wiki.session")

#: How many new sessions one login tries when the wiki keeps losing the login's own session.
LOGIN_SESSION_TRIES = 3
_THROTTLED = ("login-throttled", "too many recent login attempts")


class LoginSessionLost(Exception):  # noqa: N818 - a signal inside this module, never raised out
    """The login's own session was lost (not the credentials' fault): try a new session."""


def log_in(session: WikiSession) -> str:
    """Log ``session`` in from a clean state (no cookies, no tokens); returns the user name.

    Raises :class:`LoginError` when the wiki refuses the credentials, :class:`SessionError`
    ``sessionlost`` when even new sessions kept losing the login (retryable), and transport or
    transient API errors as they come."""
    creds = session.credentials
    mode = creds.effective_login_mode()
    if mode != "oauth" and creds.anonymous:
        raise LoginError("no credentials: set a username and password, or an OAuth token")
    if mode not in ("oauth", "login", "clientlogin"):
        raise LoginError(f"unknown login mode {mode!r}")
    for attempt in range(1, LOGIN_SESSION_TRIES + 1):
        session.forget_login()
        if session.http.cookies or session.login_count:
            session.http = fresh_http(session.http)  # the old session's cookies go with it
        try:
            if mode == "login":
                _botpassword(session)
            elif mode == "clientlogin":
                _clientlogin(session)
            # Who the wiki sees, and the CSRF token every write needs, in one request (OAuth 2:
            # the bearer header authenticates it; no cookie is involved).
            answer = login_request(session, "GET", {"action": "query", "meta": "userinfo|tokens",
                                                    "type": "csrf"})
            if answer["query"]["userinfo"].get("anon"):
                if mode == "oauth":
                    raise LoginError("the wiki sees an anonymous session with this OAuth token")
                # Logged in, and the session already gone again (the store evicted it meanwhile).
                raise LoginSessionLost("the wiki still sees an anonymous session after login")
        except LoginSessionLost as lost:
            if attempt == LOGIN_SESSION_TRIES:
                raise SessionError("sessionlost", f"the wiki lost the login's session {attempt} "
                                   f"times: {lost}", action="login") from None
            log.info("the login's session was lost (%s); starting a new session", lost)
            continue
        info = answer["query"]["userinfo"]
        token = answer["query"].get("tokens", {}).get("csrftoken")
        session.logged_in_as(info.get("name"), token)
        for cookie in session.http.cookies:
            if cookie.value:
                register_secret(cookie.value)
        log.info("logged in to %s as %s (%s)", session.api_url, session.user, mode)
        return session.user or ""
    raise AssertionError("unreachable")  # pragma: no cover


def login_request(session: WikiSession, method: str, params: Mapping[str, Any]) -> dict[str, Any]:
    """A request of the login (or a token fetch): ``maxlag`` waited out, never a re-login."""
    for tries in range(session.maxlag_retries + 1):
        try:
            return session.raw_request(method, params)
        except TransientApiError as exc:
            if exc.code != "maxlag" or tries == session.maxlag_retries:
                raise
            session.pause(min(exc.retry_after or 5.0, 60.0))
        except ApiError as exc:
            if exc.code.startswith("mwoauth-"):  # a revoked or expired OAuth 2 token
                raise LoginError(f"the wiki refused the OAuth token: {exc}",
                                 result=exc.code) from None
            if exc.code == "badtoken" and params.get("action") == "clientlogin":
                raise LoginSessionLost(exc.info or exc.code) from None
            raise
    raise AssertionError("unreachable")  # pragma: no cover


def _login_token(session: WikiSession) -> str:
    answer = login_request(session, "GET", {"action": "query", "meta": "tokens", "type": "login"})
    return answer["query"]["tokens"]["logintoken"]


def _botpassword(session: WikiSession) -> None:
    creds = session.credentials
    answer = login_request(session, "POST", {
        "action": "login", "lgname": creds.username, "lgpassword": creds.password,
        "lgtoken": _login_token(session),
    })
    result = answer.get("login", {})
    outcome, reason = result.get("result"), result.get("reason")
    if outcome == "Success":
        return
    if outcome in ("WrongToken", "NeedToken") or login_session_lost(reason):
        raise LoginSessionLost(f"{outcome}: {reason or ''}")
    _refused(f"login refused for {creds.username}: {reason or outcome}", str(outcome), reason)


def _clientlogin(session: WikiSession) -> None:
    creds = session.credentials
    answer = login_request(session, "POST", {
        "action": "clientlogin", "username": creds.username, "password": creds.password,
        "logintoken": _login_token(session),
        "loginreturnurl": session.api_url,  # required by the module, unused for password logins
    })
    result = answer.get("clientlogin", {})
    status, message = result.get("status"), result.get("message", "")
    if status == "PASS":
        return
    if login_session_lost(message, result.get("messagecode")):
        raise LoginSessionLost(f"{status}: {message}")
    _refused(f"clientlogin for {creds.username} ended {status}: {message}", str(status),
             message, result.get("messagecode"))


def _refused(message: str, result: str, *texts: object) -> None:
    """Raise a refusal; a throttled login is a wait, not a refusal (retryable)."""
    joined = " ".join(str(t) for t in texts if t).lower()
    if any(mark in joined for mark in _THROTTLED):
        raise TransientApiError("login-throttled", message, action="login")
    raise LoginError(message, result=result)


__all__ = ["LOGIN_SESSION_TRIES", "log_in", "login_request"]
