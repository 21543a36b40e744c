"""One re-login per dropped session, however many requests in flight notice the drop.

Why a lock and a generation counter: a session store that evicts (a full cache, a flush, a
restart) drops the session under every file in flight at once. Each of their next requests is
refused (``assertuserfailed``), and if each started its own login they would undo one another's:
a login token fetched by one thread belongs to a session another thread's login has just
replaced ("Unable to continue login. Your session most likely timed out."). So every login
happens under one lock and bumps :attr:`LoginGate.generation`. A request remembers the
generation it was sent with; when it finds the session dropped it asks :meth:`LoginGate.renew`
with that number. The first to ask logs in again; the others wait on the lock, see the number has
moved on, and simply repeat their request with the new session.

And why a refusal is remembered: when the login itself is refused (a changed password, a revoked
bot password or grant), no file of the batch can go on. :meth:`LoginGate.renew` keeps the
:class:`~mwingest.base.errors.LoginRefusedError` and raises it to every caller from then on,
without asking the wiki again, so the batch stops at once with one message instead of one
refused login per remaining file.

What a "clean session" is (:func:`fresh_http`): the same connection pools, headers (User-Agent,
an OAuth 2 bearer token) and hooks, but a new, empty cookie jar in a new ``requests.Session``
object. A new object and not ``cookies.clear()``: answers still in flight on the old session
write their ``Set-Cookie`` into the old object's jar, never into the new login's.
"""

from __future__ import annotations

import copy
import logging
import threading
from collections.abc import Callable

import requests

from mwingest.base.errors import LoginError, LoginRefusedError

log = logging.getLogger("mwingest.wiki.session")

#: Error codes that mean "the wiki no longer knows this session's user" (spec §13): log in again.
DROPPED_CODES = frozenset({"assertuserfailed", "assertbotfailed", "assertnameduserfailed",
                           "mustbeloggedin", "notloggedin"})

#: What a login answer says when the login's own session was lost between the login token and
#: the login (MediaWiki 1.39: ``authpage-cannot-login-continue``, ``authmanager-authn-not-in-
#: progress``; ``api-login-fail-badsessionprovider`` when an old bot-password session cookie was
#: still sent): start a new session and log in again, it is not the credentials' fault.
LOST_LOGIN_MARKERS = ("session most likely timed out", "authpage-cannot-login-continue",
                      "authmanager-authn-not-in-progress", "cannot log in when using",
                      "badsessionprovider", "sessionlost")


def login_session_lost(*texts: object) -> bool:
    """True when a login answer (its result, reason, message or message code) says the login's
    session was lost rather than the credentials refused."""
    joined = " ".join(str(t) for t in texts if t).lower()
    return any(marker in joined for marker in LOST_LOGIN_MARKERS)


def fresh_http(old: requests.Session) -> requests.Session:
    """A new ``requests.Session`` like ``old`` (adapters, headers, hooks, proxies, TLS settings)
    with an empty cookie jar: the old session's cookies are thrown away."""
    new = copy.copy(old)  # a shallow copy keeps a subclass and its settings
    new.cookies = requests.cookies.RequestsCookieJar()
    new.headers = old.headers.copy()
    return new


class LoginGate:
    """The one place a session logs in: a lock, a generation counter, a remembered refusal."""

    def __init__(self, lock: threading.RLock | None = None) -> None:
        #: Held while logging in and while fetching tokens (re-entrant: a login fetches tokens).
        self.lock = lock or threading.RLock()
        #: Bumped by every successful login; a request sent with an older one sees a renewal.
        self.generation = 0
        #: Logins after the first (one per dropped session), for logs, tests and reports.
        self.relogins = 0
        #: Set once the wiki refused a re-login: every later request raises it.
        self.refused: LoginRefusedError | None = None

    def check(self) -> None:
        """Raise the remembered refusal, if the wiki refused a re-login."""
        if self.refused is not None:
            raise self.refused

    def login(self, do_login: Callable[[], str]) -> str:
        """A first (or explicit) login under the lock; bumps the generation."""
        with self.lock:
            self.check()
            user = do_login()
            self.generation += 1
            return user

    def renew(self, seen: int, do_login: Callable[[], str], *, why: str, where: str) -> int:
        """Log in again for a request sent with generation ``seen`` that found the session gone,
        unless another request has done so since; returns the generation to repeat with.

        A :class:`LoginError` from ``do_login`` (the credentials refused) becomes the remembered
        :class:`LoginRefusedError`; transient faults and a lost login session are raised as they
        are (the caller's retry policy repeats the request, which asks again)."""
        with self.lock:
            self.check()
            if self.generation != seen:
                return self.generation  # another request already logged in again
            number = self.relogins + 1
            log.warning("session dropped (%s); logging in again to %s (re-login %d)", why, where,
                        number)
            try:
                do_login()
            except LoginRefusedError as exc:
                self.refused = exc
                raise
            except LoginError as exc:
                self.refused = LoginRefusedError(
                    f"the wiki refused to log in again after the session dropped ({why}): {exc}",
                    result=exc.result)
                raise self.refused from None
            self.generation += 1
            self.relogins = number
            log.info("logged in again to %s (re-login %d)", where, number)
            return self.generation


__all__ = ["DROPPED_CODES", "LoginGate", "fresh_http", "login_session_lost"]
