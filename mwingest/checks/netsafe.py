"""URLs from other people's manifests must not reach our own network (SSRF).

Why here and not trusted to the wiki: MediaWiki's copy upload fetches whatever it is given,
loopback included (spec §11), so a manifest row ``http://169.254.169.254/…`` would make the wiki
read a cloud metadata service. Every URL is checked before the wiki sees it, and when mwingest
downloads a URL itself it checks every redirect hop and connects only to the address it checked.

Refused, in every spelling (``[::1]``, ``0.0.0.0``, ``2130706433``, ``0x7f.1``, IPv4-mapped IPv6):
loopback, private, link-local, multicast, reserved and unspecified addresses, and every scheme but
http/https. An allow-list (``host``, ``host:port`` or ``*.domain``; env ``MWINGEST_ALLOW_HOSTS``)
opens exceptions, e.g. for a local test server.
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import socket
import tempfile
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urljoin, urlsplit

from mwingest.base.errors import MWIngestError, RetryClass

ENV_ALLOW_HOSTS = "MWINGEST_ALLOW_HOSTS"
MAX_REDIRECTS = 5
Resolver = Callable[[str, int], list[str]]
#: NAT64 prefixes (RFC 6052 well-known, RFC 8215 local use): the last 32 bits are an IPv4 address.
_NAT64 = (ipaddress.IPv6Network("64:ff9b::/96"), ipaddress.IPv6Network("64:ff9b:1::/48"))


class UnsafeURLError(MWIngestError, ValueError):
    """The URL points where mwingest must not go (reason ``unsafe-url``)."""

    retry_class = RetryClass.PERMANENT


class FetchError(MWIngestError):
    """Downloading a URL failed (HTTP status, size over the limit, timeout).

    ``code`` is the outcome's reason code; the words match the wiki's own for the same fault
    (``http-bad-status``, ``file-too-large``, spec §11), so both fetch modes report alike.
    """

    retry_class = RetryClass.PERMANENT

    def __init__(self, message: str, *, transient: bool = False, code: str = "fetch-failed") -> None:
        super().__init__(message)
        self.code = code
        if transient:
            self.retry_class = RetryClass.TRANSIENT


def system_resolver(host: str, port: int) -> list[str]:
    """Every address ``host`` resolves to (``getaddrinfo`` also reads ``2130706433``, ``0x7f.1``)."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise UnsafeURLError(f"cannot resolve {host!r}: {exc.strerror}") from None
    except (UnicodeError, ValueError) as exc:  # NUL bytes, over-long IDNA labels
        raise UnsafeURLError(f"cannot resolve {host!r}: {exc}") from None
    return sorted({str(info[4][0]) for info in infos})


def address_problem(address: str) -> str | None:
    """Why an IP address is off limits, or None for a public address."""
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address):
        # IPv6 spellings that carry an IPv4 address a gateway or the kernel will reach.
        mapped = ip.ipv4_mapped or ip.sixtofour
        if mapped is None and any(ip in net for net in _NAT64):
            mapped = ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
        if mapped is not None:
            return address_problem(str(mapped))
    for attr, name in (("is_unspecified", "unspecified"), ("is_loopback", "loopback"),
                       ("is_link_local", "link-local"), ("is_multicast", "multicast"),
                       ("is_reserved", "reserved"), ("is_private", "private")):
        if getattr(ip, attr):
            return f"{name} address {ip}"
    if not ip.is_global:
        return f"non-global address {ip}"
    return None


@dataclass(frozen=True)
class AllowList:
    """Hosts that may be fetched even when they resolve to a non-public address.

    Entries: ``host`` (any port), ``host:port``, ``*.domain`` (its subdomains, not the domain
    itself), ``*.domain:port``, IPv6 literals as ``::1`` or ``[::1]:8443``. Names match as
    written: allowing ``127.0.0.1`` does not allow ``2130706433`` or ``localhost``.
    """

    entries: tuple[str, ...] = ()

    @classmethod
    def parse(cls, value: str | Iterable[str] | None = None, *, env: bool = True) -> AllowList:
        """From a comma-separated string or a list, plus ``MWINGEST_ALLOW_HOSTS`` when ``env``."""
        items: list[str] = []
        if isinstance(value, str):
            items += value.split(",")
        elif value:
            for entry in value:  # a list may hold "a,b" too (a repeated CLI flag, a form field)
                items += str(entry).split(",")
        if env and os.environ.get(ENV_ALLOW_HOSTS):
            items += os.environ[ENV_ALLOW_HOSTS].split(",")
        return cls(tuple(sorted({_normalise_entry(i) for i in items if i.strip()})))

    def allows(self, host: str, port: int) -> bool:
        """True when ``host`` (as written in the URL) on ``port`` matches an entry."""
        host = _canonical_host(host)
        for entry in self.entries:
            name, wanted = _split_entry(entry)
            if wanted is not None and wanted != port:
                continue
            if name.startswith("*."):
                if host.endswith(name[1:]):
                    return True
            elif name == host:
                return True
        return False


def _canonical_host(host: str) -> str:
    """Lower case, no brackets or trailing dot; IP literals in their compressed form."""
    host = host.strip().lower().strip("[]").rstrip(".")
    try:
        return str(ipaddress.ip_address(host))
    except ValueError:
        return host


def _split_entry(entry: str) -> tuple[str, int | None]:
    """``host[:port]`` → (host, port); a bare IPv6 literal has no port (write ``[v6]:port``)."""
    if entry.startswith("["):
        name, _, rest = entry[1:].partition("]")
        port = rest[1:] if rest.startswith(":") else None
    elif entry.count(":") == 1:
        name, _, port = entry.partition(":")
    else:
        name, port = entry, None
    if port is not None and not (port.isdigit() and 0 < int(port) < 65536):
        raise ValueError(f"allow-list entry {entry!r}: the port must be a number (host:port)")
    return _canonical_host(name), int(port) if port is not None else None


def _normalise_entry(entry: str) -> str:
    name, port = _split_entry(entry.strip().lower())
    if port is None:
        return name
    return f"[{name}]:{port}" if ":" in name else f"{name}:{port}"


@dataclass(frozen=True)
class CheckedURL:
    """A URL that passed the check, with the addresses that were checked."""

    url: str
    host: str
    port: int
    addresses: tuple[str, ...]
    allowed_by_list: bool


def check_url(url: str, allow: AllowList | None = None,
              resolver: Resolver = system_resolver) -> CheckedURL:
    """Refuse a URL unless it is http(s) and every address its host resolves to is public (or
    the host is on the allow-list). Raises :class:`UnsafeURLError` naming why."""
    allow = allow or AllowList()
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise UnsafeURLError(f"malformed URL {url!r}: {exc}") from None
    if parts.scheme.lower() not in ("http", "https"):
        raise UnsafeURLError(f"only http and https URLs are fetched, not {parts.scheme or 'none'!r}")
    host = (parts.hostname or "").rstrip(".")
    if not host:
        raise UnsafeURLError(f"no host in {url!r}")
    if parts.username or parts.password:
        raise UnsafeURLError("URLs with credentials in them are refused")
    port = port or (443 if parts.scheme.lower() == "https" else 80)
    addresses = tuple(resolver(host, port))
    if not addresses:
        raise UnsafeURLError(f"{host!r} resolves to no address")
    if allow.allows(host, port):
        return CheckedURL(url, host, port, addresses, True)
    for address in addresses:
        problem = address_problem(address)
        if problem:
            raise UnsafeURLError(f"{url} leads to a forbidden {problem}; add the host to the allow-list "
                                 f"(--allow-host / {ENV_ALLOW_HOSTS}) if it is really meant")
    return CheckedURL(url, host, port, addresses, False)


def resolve_redirects(url: str, allow: AllowList | None = None, *, timeout: float = 30.0,
                      user_agent: str = "mwingest", resolver: Resolver = system_resolver) -> str:
    """The URL at the end of ``url``'s redirect chain, every hop checked before it is requested.

    Why: the wiki follows absolute redirects itself (up to 5, spec §11) without any address
    check, so a harmless-looking URL could bounce the wiki to ``127.0.0.1``. We walk the chain
    first (GET, body never read, connection pinned to the checked address) and hand the wiki the
    final URL, which answered without redirecting. Raises :class:`UnsafeURLError` for an unsafe
    hop, :class:`FetchError` when the chain cannot be walked (transient for connection faults).

    What no client can prevent: the server (or its DNS) answering the wiki differently from us.
    A URL whose server is not trusted is safer with a local fetch (``url_mode="local"``).
    """
    final, pool, response = _follow(url, allow, timeout=timeout, user_agent=user_agent,
                                    resolver=resolver)
    response.close()
    pool.close()
    return final


class _Deadline:
    """A download's total time: at the deadline every socket it opened is shut down, which
    wakes a read that is blocked on a server trickling its answer (headers or body)."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.at = time.monotonic() + seconds
        self._sockets: list[socket.socket] = []
        self._lock = threading.Lock()
        self._timer = threading.Timer(max(0.0, seconds), self._cut)
        self._timer.daemon = True
        self._timer.start()

    def remaining(self) -> float:
        return self.at - time.monotonic()

    def passed(self) -> bool:
        return self.remaining() <= 0

    def watch(self, pool: Any) -> None:
        """Record every socket ``pool``'s connections open (urllib3 makes them on demand)."""
        deadline, base = self, pool.ConnectionCls

        class Watched(base):  # type: ignore[misc, valid-type]
            def connect(self) -> None:
                super().connect()
                with deadline._lock:
                    deadline._sockets.append(self.sock)
                if deadline.passed():
                    deadline._cut()

        pool.ConnectionCls = Watched

    def _cut(self) -> None:
        with self._lock:
            for sock in self._sockets:
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)

    def cancel(self) -> None:
        self._timer.cancel()

    def error(self, url: str) -> FetchError:
        return FetchError(f"{url}: not downloaded within {self.seconds:g} s (the whole download "
                          "has a deadline)", code="fetch-deadline")


def fetch_to_file(url: str, *, allow: AllowList | None = None, max_bytes: int,
                  timeout: float = 30.0, deadline: float = 900.0,
                  directory: str | Path | None = None,
                  user_agent: str = "mwingest", resolver: Resolver = system_resolver) -> Path:
    """Download ``url`` into a temporary file, safely: every redirect hop (at most 5) is checked,
    the connection goes to the address that was checked (no second DNS answer), the size is capped
    at ``max_bytes``, each connect and read has ``timeout`` and the whole download ``deadline``
    seconds (``fetch-deadline``, not retried: a trickling server must not hold a worker). The
    caller deletes the file."""
    limit = _Deadline(deadline)
    try:
        final, pool, response = _follow(url, allow, timeout=timeout, user_agent=user_agent,
                                        resolver=resolver, deadline=limit)
        try:
            if response.status != 200:
                raise FetchError(f"{final} answered HTTP {response.status}",
                                 transient=response.status >= 500, code="http-bad-status")
            declared = response.headers.get("Content-Length")
            if declared and declared.isdigit() and int(declared) > max_bytes:
                raise FetchError(f"{final} is {declared} bytes, over the limit of {max_bytes}",
                                 code="file-too-large")
            return _save(response, max_bytes, directory, final, limit)
        finally:
            with contextlib.suppress(Exception):
                response.release_conn()
            pool.close()
    except FetchError as exc:
        if limit.passed() and exc.code != "file-too-large":
            raise limit.error(url) from None
        raise
    finally:
        limit.cancel()


def _follow(url: str, allow: AllowList | None, *, timeout: float, user_agent: str,
            resolver: Resolver, deadline: _Deadline | None = None) -> tuple[str, Any, Any]:
    """GET ``url`` hop by hop until an answer that is not a redirect: (final URL, pool, response).

    Each hop is checked with :func:`check_url` *before* its request and the connection goes to
    the address that was checked. The caller reads (or not) and closes the response and pool.
    """
    current = url
    for _hop in range(MAX_REDIRECTS + 1):
        checked = check_url(current, allow, resolver)
        if deadline is not None and deadline.passed():
            raise deadline.error(url)
        pool, response = _pinned_get(checked, timeout=timeout, user_agent=user_agent,
                                     deadline=deadline)
        if response.status not in (301, 302, 303, 307, 308):
            return current, pool, response
        location = response.headers.get("Location")
        response.close()
        pool.close()
        if not location:
            raise FetchError(f"{current} redirects without a Location", code="http-bad-status")
        current = urljoin(current, location.strip())
    raise FetchError(f"{url}: more than {MAX_REDIRECTS} redirects", code="too-many-redirects")


def _pinned_get(checked: CheckedURL, *, timeout: float, user_agent: str,
                deadline: _Deadline | None = None) -> tuple[Any, Any]:
    """A GET of ``checked.url`` sent to ``checked.addresses[0]`` (no new DNS lookup), with the
    URL's own host in the Host header and, for https, in SNI and the certificate check."""
    import urllib3

    parts = urlsplit(checked.url)
    if deadline is not None:
        timeout = max(0.001, min(timeout, deadline.remaining()))
    kwargs: dict[str, Any] = {"timeout": urllib3.Timeout(connect=timeout, read=timeout),
                              "retries": False, "maxsize": 1}
    address = checked.addresses[0]
    if parts.scheme.lower() == "https":
        pool: Any = urllib3.HTTPSConnectionPool(address, checked.port,
                                                server_hostname=checked.host,
                                                assert_hostname=checked.host, **kwargs)
    else:
        pool = urllib3.HTTPConnectionPool(address, checked.port, **kwargs)
    if deadline is not None:
        deadline.watch(pool)
    path = parts.path or "/"
    if parts.query:
        path += "?" + parts.query
    host = f"[{checked.host}]" if ":" in checked.host else checked.host
    host_header = host if parts.port is None else f"{host}:{parts.port}"
    try:
        response = pool.urlopen("GET", path, headers={"Host": host_header,
                                                      "User-Agent": user_agent},
                                redirect=False, preload_content=False)
    except urllib3.exceptions.HTTPError as exc:
        pool.close()
        raise FetchError(f"cannot fetch {checked.url}: {type(exc).__name__}", transient=True,
                         code="http-curl-error") from None
    return pool, response


def _save(response: Any, max_bytes: int, directory: str | Path | None, url: str,
          deadline: _Deadline) -> Path:
    import urllib3

    fd, name = tempfile.mkstemp(prefix="mwingest-fetch-", dir=directory)
    total = 0
    try:
        with os.fdopen(fd, "wb") as out:
            while True:
                if deadline.passed():
                    raise deadline.error(url)
                try:
                    block = response.read1(1 << 20)  # what has come: a trickle is seen as one
                except (urllib3.exceptions.HTTPError, OSError) as exc:
                    raise FetchError(f"cannot fetch {url}: {type(exc).__name__}", transient=True,
                                     code="http-curl-error") from None
                if not block:
                    break
                total += len(block)
                if total > max_bytes:
                    raise FetchError(f"{url} is larger than the limit of {max_bytes} bytes",
                                     code="file-too-large")
                out.write(block)
    except BaseException:
        Path(name).unlink(missing_ok=True)
        raise
    return Path(name)
