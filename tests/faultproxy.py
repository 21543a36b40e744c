"""A fault-injecting HTTP/1.1 reverse proxy in front of the real test wiki (issue 2 §4).

Why a proxy and not a fake transport: the fault must hit the *real* client stack (requests,
urllib3, our session's error mapping) while the *real* wiki acts on the request, or does not, so a
test can assert server facts afterwards (stash offset, SHA-1, version count), as tusd's end-to-end
tests do. Faults are chosen per request after its head has been read:

* ``refuse_before``: close the connection (RST) without forwarding. The wiki never sees the request;
  the client sees a broken connection and cannot tell whether it was processed.
* ``drop_after``: forward the whole request, read the wiki's whole answer, then close (RST) without
  sending it. The wiki acted; the answer is lost.
* ``stall``: forward nothing, hold the connection ``stall_seconds`` (a client read timeout fires
  first if it is shorter), then close.
* ``hold``: wait ``stall_seconds`` before forwarding, then pass the request on as usual (a slow
  write: the wiki acts only after the wait).
* ``unavailable``: drain the body, forward nothing, answer 503 (a Prefect server whose SQLite
  database is locked answers so).
* ``html``: drain the body, forward nothing, answer an HTML page with HTTP 200, as MediaWiki does
  when PHP dropped a body over ``post_max_size`` (spec §1).

:meth:`FaultProxy.fail_script` gives each matching request its own mode. The proxy also records every
cookie value and CSRF token it forwards (:class:`ProxyStats`), so a secrets test knows what to search for.

:meth:`FaultProxy.refuse_connections` closes the listening socket so the kernel refuses connects:
the only fault after which a client *knows* its request never left.

Every answer carries ``Connection: close`` and each connection carries one request, so "the Nth
request" is well defined and a refused connect can never be dodged by a pooled connection. Bodies
stream through in 256 KiB blocks: per connection at most the 64 KiB head kept for matching plus one
block are in memory, whatever the body size. Chunked request bodies are not supported (411): our
client always sends ``Content-Length``. Upstream must be a loopback address.
"""

from __future__ import annotations

import contextlib
import http.client
import random
import socket
import struct
import threading
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import BinaryIO, Literal
from urllib.parse import urlsplit

from tests.faultmatch import (  # noqa: F401 - re-exported: the tests import them from here
    RequestHead,
    action_is,
    chunk_posts,
    file_posts,
    publish_posts,
    upload_posts,
)

Mode = Literal["refuse_before", "drop_after", "stall", "html", "permission_denied", "unavailable",
               "hold"]
MODES: tuple[Mode, ...] = ("refuse_before", "drop_after", "stall", "html", "permission_denied",
                           "unavailable", "hold")
HEAD_BYTES = 64 * 1024
BLOCK = 256 * 1024
_HOP_HEADERS = {"connection", "keep-alive", "proxy-connection", "proxy-authenticate",
                "proxy-authorization", "te", "trailer", "transfer-encoding", "upgrade", "host"}
_LOOPBACK = {"127.0.0.1", "localhost", "::1"}
_HTML_PAGE = (b"<!DOCTYPE html>\n<html><head><title>MediaWiki API help</title></head>"
              b"<body><p>faultproxy: the request body was dropped.</p></body></html>\n")
#: A permanent API error in the wiki's real shape (spec §6), for the one answer a real wiki cannot be
#: made to give in the middle of a chunk session on demand.
_PERMISSION_DENIED = (b'{"error":{"code":"permissiondenied","info":"You are not allowed to execute '
                      b'the action you have requested.","docref":"faultproxy"}}')
@dataclass(frozen=True)
class Exchange:
    """One request as the proxy saw it (for assertions and failure messages)."""

    method: str
    action: str | None
    offset: str | None
    chunk: bool
    fault: Mode | None
    status: int | None


@dataclass
class ProxyStats:
    """Counters since the proxy started."""

    requests: int = 0
    forwarded: int = 0
    faulted: Counter[str] = field(default_factory=Counter)
    bytes_forwarded: int = 0  # request body bytes sent to the wiki
    exchanges: list[Exchange] = field(default_factory=list)
    #: Every cookie value seen, by cookie name (``Cookie`` request and ``Set-Cookie`` answer headers),
    #: and every CSRF ``token`` parameter: what a secrets test must never find anywhere else.
    cookies: dict[str, set[str]] = field(default_factory=dict)
    tokens: set[str] = field(default_factory=set)


@dataclass
class _Plan:
    match: Callable[[RequestHead], bool]
    nth: dict[int, Mode]
    rate: float = 0.0
    modes: tuple[Mode, ...] = ()
    rng: random.Random = field(default_factory=random.Random)
    matched: int = 0


class FaultProxy:
    """``with FaultProxy(wiki.api_url) as proxy: WikiSession(proxy.url_for(wiki.api_url))``."""

    def __init__(self, upstream: str, *, stall_seconds: float = 5.0,
                 upstream_timeout: float = 600.0) -> None:
        parts = urlsplit(upstream)
        if parts.hostname not in _LOOPBACK:
            raise ValueError(f"faultproxy only forwards to loopback, not {parts.hostname!r}")
        self.upstream_host = parts.hostname
        self.upstream_port = parts.port or 80
        self.stall_seconds = stall_seconds
        self.upstream_timeout = upstream_timeout
        self.port = 0
        self.stats = ProxyStats()
        #: Called after a ``drop_after`` request was answered by the wiki and before the client's
        #: connection is reset: a crash test kills its client here ("the wiki acted, then the
        #: process died").
        self.on_drop: Callable[[RequestHead], None] | None = None
        self._plan: _Plan | None = None
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._refusing = threading.Event()
        self._state_changed = threading.Condition()
        self._listening = False
        self._listener: socket.socket | None = None
        self._acceptor: threading.Thread | None = None
        self._handlers: list[threading.Thread] = []

    def start(self) -> FaultProxy:
        self._listener = self._bind()
        self.port = self._listener.getsockname()[1]
        self._listening = True
        self._acceptor = threading.Thread(target=self._accept_loop, name="faultproxy", daemon=True)
        self._acceptor.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._acceptor is not None:
            self._acceptor.join(timeout=5)
        for thread in list(self._handlers):
            thread.join(timeout=5)

    def __enter__(self) -> FaultProxy:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def url_for(self, upstream_url: str) -> str:
        """The same URL (path and query) through the proxy."""
        parts = urlsplit(upstream_url)
        return parts._replace(netloc=f"127.0.0.1:{self.port}").geturl()

    def fail_nth(self, nth: int | Iterable[int], mode: Mode,
                 *, match: Callable[[RequestHead], bool] = chunk_posts) -> None:
        """Fault the ``nth`` (1-based, counted from now) requests that ``match``; pass the rest."""
        numbers = [nth] if isinstance(nth, int) else list(nth)
        self._set_plan(_Plan(match=match, nth=dict.fromkeys(numbers, mode)))

    def fail_script(self, modes: Mapping[int, Mode],
                    *, match: Callable[[RequestHead], bool] = chunk_posts) -> None:
        """Fault the ``n``-th matching request (1-based, from now) with ``modes[n]``; pass the rest."""
        self._set_plan(_Plan(match=match, nth=dict(modes)))

    def fail_rate(self, rate: float, modes: Iterable[Mode] = ("refuse_before", "drop_after"),
                  *, match: Callable[[RequestHead], bool] = upload_posts, seed: int = 0) -> None:
        """Fault a fraction ``rate`` of the matching requests, the mode drawn from ``modes``."""
        self._set_plan(_Plan(match=match, nth={}, rate=rate, modes=tuple(modes),
                             rng=random.Random(seed)))

    def clear(self) -> None:
        """Stop injecting faults; everything is forwarded."""
        self._set_plan(None)

    @contextlib.contextmanager
    def refuse_connections(self) -> Iterator[None]:
        """Close the listening socket for the block: connects fail with ECONNREFUSED."""
        self._refusing.set()
        self._wait_listening(False)
        try:
            yield
        finally:
            self._refusing.clear()
            self._wait_listening(True)

    def _set_plan(self, plan: _Plan | None) -> None:
        for mode in (*(plan.nth.values() if plan else ()), *(plan.modes if plan else ())):
            if mode not in MODES:
                raise ValueError(f"unknown fault mode {mode!r}")
        with self._lock:
            self._plan = plan

    def _bind(self) -> socket.socket:
        """Listen on 127.0.0.1: the same port again after a refusal, else any port outside 8000-8999."""
        for _ in range(50):
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind(("127.0.0.1", self.port))
            if self.port or not 8000 <= sock.getsockname()[1] <= 8999:
                sock.listen(64)
                sock.settimeout(0.05)
                return sock
            sock.close()
        raise RuntimeError("no free port outside 8000-8999")

    def _wait_listening(self, wanted: bool) -> None:
        with self._state_changed:
            if not self._state_changed.wait_for(lambda: self._listening == wanted, timeout=10):
                raise RuntimeError("faultproxy: the listener did not change state")

    def _set_listening(self, value: bool) -> None:
        with self._state_changed:
            self._listening = value
            self._state_changed.notify_all()

    def _accept_loop(self) -> None:
        """The only thread that touches the listening socket (closing it under accept() is unsafe)."""
        try:
            while not self._stop.is_set():
                if self._refusing.is_set() == (self._listener is not None):
                    if self._listener is not None:
                        self._listener.close()
                        self._listener = None
                        self._set_listening(False)
                    else:
                        self._listener = self._bind()
                        self._set_listening(True)
                if self._listener is None:
                    self._stop.wait(0.02)
                    continue
                try:
                    client, _ = self._listener.accept()
                except TimeoutError:
                    continue
                thread = threading.Thread(target=self._handle, args=(client,), daemon=True)
                self._handlers = [t for t in self._handlers if t.is_alive()] + [thread]
                thread.start()
        finally:
            if self._listener is not None:
                self._listener.close()
                self._listener = None

    def _handle(self, client: socket.socket) -> None:
        client.settimeout(self.upstream_timeout)
        rfile = client.makefile("rb")
        try:
            head = self._read_head(rfile)
            if head is None:
                return
            if head.headers.get("Transfer-Encoding"):
                self._answer(client, 411, b"chunked request bodies are not supported\n", "text/plain")
                return
            self._note_secrets([pair for header in head.headers.get_all("Cookie") or []
                                for pair in header.split(";")], head.param("token"))
            mode = self._decide(head)
            status = self._exchange(client, rfile, head, mode)
            with self._lock:
                self.stats.exchanges.append(Exchange(
                    head.method, head.param("action"), head.param("offset"),
                    head.has_part("chunk"), mode, status))
        except OSError:
            pass  # the client went away; nothing to tell anyone
        finally:
            rfile.close()
            client.close()

    def _note_secrets(self, cookie_pairs: Iterable[str], token: str | None = None) -> None:
        """Remember cookie values (``name=value`` pairs) and a CSRF token."""
        with self._lock:
            for pair in cookie_pairs:
                name, sep, value = pair.strip().partition("=")
                if sep and value:
                    self.stats.cookies.setdefault(name, set()).add(value)
            if token and token != "+\\":
                self.stats.tokens.add(token)

    def _read_head(self, rfile: BinaryIO) -> RequestHead | None:
        line = rfile.readline(65537)
        if not line.strip():
            return None
        method, target, _version = line.decode("latin-1").split(" ", 2)
        headers = http.client.parse_headers(rfile)  # type: ignore[arg-type]
        length = int(headers.get("Content-Length", 0) or 0)
        return RequestHead(method, target, headers, rfile.read(min(length, HEAD_BYTES)), length)

    def _decide(self, head: RequestHead) -> Mode | None:
        with self._lock:
            self.stats.requests += 1
            plan = self._plan
            if plan is None or not plan.match(head):
                return None
            plan.matched += 1
            mode = plan.nth.get(plan.matched)
            if mode is None and plan.rate and plan.rng.random() < plan.rate:
                mode = plan.rng.choice(plan.modes)
            if mode is not None:
                self.stats.faulted[mode] += 1
            return mode

    def _exchange(self, client: socket.socket, rfile: BinaryIO, head: RequestHead,
                  mode: Mode | None) -> int | None:
        """Carry out one request under ``mode``; returns the HTTP status the client got, if any."""
        if mode == "refuse_before":
            _reset(client)
            return None
        if mode == "stall":
            self._stop.wait(self.stall_seconds)
            _reset(client)
            return None
        if mode == "html":
            _drain(rfile, head.content_length - len(head.body_head))
            self._answer(client, 200, _HTML_PAGE, "text/html; charset=utf-8")
            return 200
        if mode == "unavailable":  # a busy Prefect server's answer (its SQLite database locked)
            _drain(rfile, head.content_length - len(head.body_head))
            self._answer(client, 503, b'{"exception_message":"database is locked"}',
                         "application/json")
            return 503
        if mode == "permission_denied":
            _drain(rfile, head.content_length - len(head.body_head))
            self._answer(client, 200, _PERMISSION_DENIED, "application/json; charset=utf-8")
            return 200
        if mode == "hold":
            self._stop.wait(self.stall_seconds)
        upstream = http.client.HTTPConnection(self.upstream_host, self.upstream_port,
                                              timeout=self.upstream_timeout)
        try:
            response = self._forward(upstream, rfile, head)
            if mode == "drop_after":
                while response.read(BLOCK):
                    pass  # let the wiki finish writing its answer, then lose it
                if self.on_drop is not None:
                    self.on_drop(head)
                _reset(client)
                return None
            self._relay(client, response)
            return response.status
        finally:
            upstream.close()

    def _forward(self, upstream: http.client.HTTPConnection, rfile: BinaryIO,
                 head: RequestHead) -> http.client.HTTPResponse:
        upstream.putrequest(head.method, head.target, skip_host=True, skip_accept_encoding=True)
        upstream.putheader("Host", f"{self.upstream_host}:{self.upstream_port}")
        for name, value in head.headers.items():
            if name.lower() not in _HOP_HEADERS:
                upstream.putheader(name, value)
        upstream.putheader("Connection", "close")
        upstream.endheaders(head.body_head or None)
        sent = len(head.body_head)
        left = head.content_length - sent
        while left > 0:
            block = rfile.read(min(BLOCK, left))
            if not block:
                raise ConnectionError("the client closed before its body was complete")
            upstream.send(block)
            left -= len(block)
            sent += len(block)
        with self._lock:
            self.stats.forwarded += 1
            self.stats.bytes_forwarded += sent
        response = upstream.getresponse()
        self._note_secrets(h.split(";", 1)[0] for h in response.headers.get_all("Set-Cookie") or [])
        return response

    def _relay(self, client: socket.socket, response: http.client.HTTPResponse) -> None:
        lines = [f"HTTP/1.1 {response.status} {response.reason}"]
        lines += [f"{k}: {v}" for k, v in response.getheaders() if k.lower() not in _HOP_HEADERS]
        lines.append("Connection: close")
        client.sendall(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))
        while block := response.read(BLOCK):
            client.sendall(block)

    def _answer(self, client: socket.socket, status: int, body: bytes, ctype: str) -> None:
        reason = http.client.responses.get(status, "")
        client.sendall(f"HTTP/1.1 {status} {reason}\r\nContent-Type: {ctype}\r\n"
                       f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode() + body)


def _drain(rfile: BinaryIO, left: int) -> None:
    while left > 0:
        block = rfile.read(min(BLOCK, left))
        if not block:
            return
        left -= len(block)


def _reset(client: socket.socket) -> None:
    """Close with RST (SO_LINGER 0), so the client sees a broken connection, not a clean end."""
    with contextlib.suppress(OSError):
        client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    client.close()


__all__ = ["MODES", "Exchange", "FaultProxy", "Mode", "ProxyStats", "RequestHead", "chunk_posts",
           "upload_posts"]
