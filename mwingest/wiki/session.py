"""The one HTTP seam to the wiki: login, tokens, ``assert=user``, maxlag and rate-limit waits.

Why one class owns all of this: every write needs the same care (a CSRF token refreshed on
``badtoken``, ``assert=user`` so a dropped session says so instead of a misleading
``permissiondenied``, one re-login when it did drop — one for all the requests in flight, from a
clean session: :mod:`mwingest.wiki.relogin` — ``Retry-After`` on ``maxlag``), and every
answer needs the same reading (HTTP 200 carries errors; a non-JSON body is a transport fault, spec
§1). Upload logic above this layer then deals only in typed results and typed errors.

Nothing here logs or raises a secret: the password is sent in one POST body and never stored
elsewhere, the CSRF token and cookies stay inside the ``requests.Session``.
"""

from __future__ import annotations

import contextlib
import ipaddress
import logging
import re
import time
from collections.abc import Callable, Mapping
from typing import Any, Protocol
from urllib.parse import urlsplit

import requests

from mwingest import __version__
from mwingest.base.errors import (
    ApiError,
    ContactRequiredError,
    OversizedRequestError,
    ResponseLostError,
    SessionError,
    TransientApiError,
    TransportError,
    api_error,
)
from mwingest.base.redact import redact, register_secret
from mwingest.base.retry import parse_retry_after
from mwingest.base.streams import FilePart
from mwingest.wiki.credentials import ENV_CONTACT, Credentials
from mwingest.wiki.login import log_in, login_request
from mwingest.wiki.pacing import counted_upload
from mwingest.wiki.relogin import DROPPED_CODES, LoginGate

log = logging.getLogger("mwingest.wiki.session")

DEFAULT_TIMEOUT = (15.0, 600.0)  # (connect, read): a chunk assembly can take minutes


#: Host names that can never be a real wiki (RFC 2606 and 6761): no contact needed there.
_RESERVED_SUFFIXES = (".test", ".example", ".invalid", ".localhost", "example.org", "example.com",
                      "example.net")
_CONTACT = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+|https?://\S+|\bUser:\S", re.IGNORECASE)


class Pace(Protocol):
    """What a session asks of shared pacing (:class:`mwingest.wiki.pacing.SharedPace`)."""

    def before_write(self) -> None: ...

    def throttled(self, seconds: float | None, reason: str) -> None: ...


def require_contact(api_url: str, contact: str | None) -> None:
    """Refuse to talk to a real wiki without the operator's contact in the User-Agent.

    Wikimedia's User-Agent policy asks for a way to reach the operator (e-mail, URL or a
    ``User:`` page) and answers anonymous clients with 429. The local test wiki (loopback) and
    reserved example names need none."""
    host = (urlsplit(api_url).hostname or "").lower()
    if host == "localhost" or host.endswith(_RESERVED_SUFFIXES):
        return
    with contextlib.suppress(ValueError):
        if ipaddress.ip_address(host).is_loopback:
            return
    if contact and _CONTACT.search(contact):
        return
    what = f"{contact!r} is not an e-mail, URL or User: page" if contact else "it is not set"
    raise ContactRequiredError(
        f"{ENV_CONTACT} (or the credentials block's contact) must say how to reach you for "
        f"{host}: {what}. Wikimedia's User-Agent policy asks for it, e.g. "
        f"MWINGEST_CONTACT='User:Example' or an e-mail address")


def user_agent(contact: str | None) -> str:
    """A descriptive User-Agent, as Wikimedia's User-Agent policy asks (name/version + contact)."""
    who = contact or "no contact configured; set MWINGEST_CONTACT"
    return f"mwingest/{__version__} ({who}) python-requests/{requests.__version__}"


def encode_params(params: Mapping[str, Any]) -> dict[str, str]:
    """API parameters as strings.

    Booleans need care (spec §2): MediaWiki treats a boolean parameter as true whenever it is
    *present*, so ``False``/``None`` must leave the key out, never send ``"false"`` or ``"0"``.
    Lists become ``a|b|c``.
    """
    out: dict[str, str] = {}
    for key, value in params.items():
        if value is None or value is False:
            continue
        if value is True:
            out[key] = "1"
        elif isinstance(value, list | tuple | set | frozenset):
            out[key] = "|".join(str(v) for v in value)
        else:
            out[key] = str(value)
    return out


class WikiSession:
    """A logged-in (or anonymous) connection to one wiki's ``api.php``.

    Thread-safe enough for a pool of upload workers: requests share the cookie jar, and logins and
    token refreshes are serialised by one lock (:class:`~mwingest.wiki.relogin.LoginGate`); a
    request goes out with the generation, cookies and token of one login, taken together.
    """

    def __init__(
        self,
        credentials: Credentials | str,
        *,
        http: requests.Session | None = None,
        timeout: tuple[float, float] = DEFAULT_TIMEOUT,
        maxlag: int | None = 5,
        maxlag_retries: int = 5,
        ratelimit_wait: float = 60.0,
        ratelimit_budget: float = 600.0,
        ratelimit_tries: int = 5,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.credentials = (credentials if isinstance(credentials, Credentials)
                            else Credentials(api_url=credentials))
        self.api_url = self.credentials.api_url
        require_contact(self.api_url, self.credentials.contact)
        self.http = http or requests.Session()
        self.http.headers["User-Agent"] = user_agent(self.credentials.contact)
        if self.credentials.oauth_token:
            self.http.headers["Authorization"] = f"Bearer {self.credentials.oauth_token}"
        self.timeout = timeout
        self.maxlag = maxlag
        self.maxlag_retries = maxlag_retries
        self.ratelimit_wait = ratelimit_wait
        self.ratelimit_budget = ratelimit_budget
        #: With shared pacing: how often one write is refused (``ratelimited``) and tried again
        #: after the account's pause before its error is raised.
        self.ratelimit_tries = ratelimit_tries
        self._sleep = sleep
        #: Shared pacing (:class:`mwingest.wiki.pacing.SharedPace`): asked before each upload the
        #: wiki counts, told of every throttle. None: this session paces itself alone.
        self.pace: Pace | None = None
        #: Wraps every write request: a cap of writes in flight across processes (the flows
        #: put a Prefect global concurrency limit here). The default holds nothing.
        self.write_slot: Callable[[], contextlib.AbstractContextManager[Any]] = contextlib.nullcontext
        #: The one place logins happen: a lock, a generation counter, a remembered refusal.
        self.gate = LoginGate()
        self._csrf: str | None = None
        self.logged_in = False
        self.user: str | None = None
        self.login_count = 0

    def __repr__(self) -> str:
        return f"WikiSession({self.api_url!r}, user={self.user!r})"

    # --- login -------------------------------------------------------------------------------

    @property
    def generation(self) -> int:
        """How many logins this session has done: a request remembers it when sent."""
        return self.gate.generation

    def login(self) -> str:
        """Log in from a clean session (no cookies, no tokens): :func:`mwingest.wiki.login.log_in`.
        Returns the wiki's user name; raises LoginError when the wiki refuses the credentials."""
        return self.gate.login(lambda: log_in(self))

    def forget_login(self) -> None:
        """Before a login: no token and no user until the wiki says so again."""
        self._csrf = None
        self.logged_in = False

    def logged_in_as(self, user: str | None, csrf: str | None) -> None:
        """After a login: who the wiki sees, and its CSRF token."""
        if csrf and csrf != "+\\":
            register_secret(csrf)
            self._csrf = csrf
        self.user = user
        self.logged_in = True
        self.login_count += 1

    def raw_request(self, method: str, params: Mapping[str, Any]) -> dict[str, Any]:
        """One request as it is: no token, no re-login, no waits (the login's own requests)."""
        return self._request(method, params)

    def pause(self, seconds: float) -> None:
        self._sleep(seconds)

    def ensure_login(self) -> None:
        """Log in once, lazily (constructors never touch the network)."""
        self.gate.check()
        if not self.logged_in and not self.credentials.anonymous:
            with self.gate.lock:
                if not self.logged_in:
                    self.login()

    # --- tokens ------------------------------------------------------------------------------

    def csrf_token(self, *, refresh: bool = False) -> str:
        """The CSRF token, fetched once per login and again after ``badtoken``."""
        with self.gate.lock:
            if refresh or self._csrf is None:
                answer = login_request(self, "GET", {"action": "query", "meta": "tokens",
                                                     "type": "csrf"})
                self._csrf = answer["query"]["tokens"]["csrftoken"]
                if self._csrf and self._csrf != "+\\":
                    register_secret(self._csrf)
            return self._csrf

    def _sent_with(self, write: bool) -> tuple[int, requests.Session, str | None]:
        """The generation, HTTP session and token a request goes out with, taken together."""
        with self.gate.lock:
            token = self.csrf_token() if write else None
            return self.gate.generation, self.http, token

    def _forget_token(self, token: str | None) -> None:
        """After ``badtoken``: the next request fetches a new one (once, for all threads)."""
        with self.gate.lock:
            if self._csrf == token:
                self._csrf = None

    # --- requests ----------------------------------------------------------------------------

    def get(self, params: Mapping[str, Any]) -> dict[str, Any]:
        """A read request. Waits on ``maxlag``; logs in again once if the session dropped."""
        return self._call("GET", params, None, write=False)

    def post(self, params: Mapping[str, Any], files: Mapping[str, FilePart] | None = None,
             *, write: bool = True, timeout: tuple[float, float] | None = None) -> dict[str, Any]:
        """A write request with token and ``assert=user``; files are streamed as multipart."""
        return self._call("POST", params, files, write=write, timeout=timeout)

    def _call(self, method: str, params: Mapping[str, Any], files: Mapping[str, FilePart] | None,
              *, write: bool, timeout: tuple[float, float] | None = None) -> dict[str, Any]:
        self.gate.check()
        if write:
            self.ensure_login()
        relogged = token_refreshed = False
        lag_tries = refusals = 0
        waited = 0.0
        while True:
            generation, http, token = self._sent_with(write)
            full = dict(params)
            if write:
                full["token"] = token
                if self.logged_in:
                    full["assert"] = "user"
            try:
                if not write:
                    return self._request(method, full, files, timeout=timeout, http=http)
                if self.pace is not None and counted_upload(params):
                    self.pace.before_write()
                with self.write_slot():
                    return self._request(method, full, files, timeout=timeout, http=http)
            except SessionError as exc:
                if exc.code == "badtoken" and not token_refreshed:
                    token_refreshed = True
                    self._forget_token(token)
                    continue
                # A token refused again right after a fresh one: the session itself is gone.
                dropped = exc.code in DROPPED_CODES or exc.code == "badtoken"
                if dropped and not relogged and not self.credentials.anonymous:
                    relogged = True
                    self.gate.renew(generation, lambda: log_in(self), why=exc.code,
                                    where=self.api_url)
                    continue
                raise
            except TransientApiError as exc:
                if self.pace is not None and write and (exc.retry_after or exc.code == "ratelimited"):
                    # Every worker of the account waits; a refusal without Retry-After is
                    # paused for as long as the account's limits say (read again first).
                    self.pace.throttled(exc.retry_after, exc.code)
                    if exc.code == "ratelimited" and refusals < self.ratelimit_tries:
                        refusals += 1
                        log.warning("rate limited by the wiki; every worker of the account "
                                    "pauses, then resumes at the paced rate")
                        continue  # the pace holds this write until the pause ends
                if exc.code == "maxlag" and lag_tries < self.maxlag_retries:
                    lag_tries += 1
                    self._sleep(min(exc.retry_after or 5.0, 60.0))
                    continue
                if exc.code == "ratelimited" and waited + self.ratelimit_wait <= self.ratelimit_budget:
                    log.warning("rate limited by the wiki; waiting %.0f s", self.ratelimit_wait)
                    waited += self.ratelimit_wait
                    self._sleep(self.ratelimit_wait)
                    continue
                raise
            except TransportError as exc:  # 429/503 with Retry-After: every worker waits it out
                if self.pace is not None and write and exc.retry_after:
                    self.pace.throttled(exc.retry_after, f"http-{exc.status}")
                raise

    def _request(self, method: str, params: Mapping[str, Any],
                 files: Mapping[str, FilePart] | None = None,
                 *, timeout: tuple[float, float] | None = None,
                 http: requests.Session | None = None) -> dict[str, Any]:
        """One HTTP request, its answer parsed and errors raised as typed exceptions; ``http``:
        the session (cookies) the request was prepared with, the current one by default."""
        http = http or self.http
        data = encode_params({**params, "format": "json", "formatversion": "2"})
        if self.maxlag is not None:
            data.setdefault("maxlag", str(self.maxlag))
        action = data.get("action", "")
        log.debug("%s %s %s", method, action, redact(_describe(data)))
        try:
            if method == "GET":
                resp = http.get(self.api_url, params=data, timeout=timeout or self.timeout)
            elif files:
                resp = self._post_multipart(http, data, files, timeout or self.timeout)
            else:
                resp = http.post(self.api_url, data=data, timeout=timeout or self.timeout)
        except requests.ConnectTimeout as exc:
            raise TransportError(f"could not connect to {self.api_url}: {type(exc).__name__}") from None
        except requests.exceptions.SSLError as exc:
            # A TLS fault can strike after the request left (a renegotiation, a reset mid-body):
            # the wiki may have acted, so it is a lost answer, never "surely not sent".
            raise ResponseLostError(f"TLS failure talking to {self.api_url} ({action}): "
                                    f"{type(exc).__name__}") from None
        except requests.ConnectionError as exc:
            if _never_sent(exc):
                raise TransportError(f"could not connect to {self.api_url}: "
                                     f"{type(exc).__name__}") from None
            raise ResponseLostError(f"connection to {self.api_url} broke before the answer "
                                    f"({action}): {type(exc).__name__}") from None
        except requests.Timeout:
            raise ResponseLostError(f"no answer from {self.api_url} in time ({action})") from None
        return self._read_answer(resp, action, bool(files))

    def _post_multipart(self, http: requests.Session, data: dict[str, str],
                        files: Mapping[str, FilePart],
                        timeout: tuple[float, float]) -> requests.Response:
        # Imported here: requests-toolbelt costs import time and only uploads need it.
        from requests_toolbelt.multipart.encoder import MultipartEncoder

        fields: list[tuple[str, Any]] = list(data.items())
        opened = []
        for name, part in files.items():
            body = part.open()
            opened.append(body)
            # The file part MUST carry filename= (spec §1) or the wiki answers badupload.
            fields.append((name, (part.filename or "file", body, part.content_type)))
        encoder = MultipartEncoder(fields=fields)
        try:
            return http.post(self.api_url, data=encoder, timeout=timeout,
                                  headers={"Content-Type": encoder.content_type})
        finally:
            for body in opened:
                close = getattr(body, "close", None)
                if close:
                    close()

    def _read_answer(self, resp: requests.Response, action: str, multipart: bool) -> dict[str, Any]:
        try:
            body = resp.json()
        except ValueError:
            text = resp.text[:400].lower()
            if multipart and "<html" in text:
                # PHP dropped a body over post_max_size; MediaWiki then shows its help page.
                raise OversizedRequestError(
                    f"the wiki answered HTML instead of JSON to an upload ({action}): the request "
                    f"was probably larger than the server's post_max_size", sent=True,
                    status=resp.status_code) from None
            wait = parse_retry_after(resp.headers.get("Retry-After"))
            raise ResponseLostError(f"the wiki answered HTTP {resp.status_code} with a non-JSON "
                                    f"body to {action}", status=resp.status_code,
                                    retry_after=wait) from None
        if not isinstance(body, dict):
            raise ResponseLostError(f"unexpected JSON answer to {action}")
        if "error" in body:
            err = dict(body["error"])
            code = str(err.pop("code", "unknown"))
            info = redact(str(err.pop("info", "")))
            err.pop("docref", None)
            err.pop("*", None)
            if resp.headers.get("Retry-After"):
                err["retry-after"] = resp.headers["Retry-After"]
            raise api_error(code, info, err, action=action)
        return body


def _never_sent(exc: requests.ConnectionError) -> bool:
    """True when the connection failed before the request left (refused, DNS)."""
    text = repr(exc.args)
    return any(s in text for s in ("NewConnectionError", "Connection refused",
                                   "Name or service not known", "nodename nor servname"))


def _describe(data: Mapping[str, str]) -> str:
    """Request parameters for a DEBUG line, with secrets and long values left out."""
    hidden = {"token", "lgpassword", "password", "lgtoken", "logintoken", "text"}
    return " ".join(f"{k}={'***' if k in hidden else v[:80]}" for k, v in data.items())


__all__ = ["ApiError", "WikiSession", "encode_params", "user_agent"]
