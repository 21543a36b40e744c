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

import ipaddress
import os
import socket
import tempfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urljoin, urlsplit

from .errors import MWIngestError, RetryClass

ENV_ALLOW_HOSTS = "MWINGEST_ALLOW_HOSTS"
MAX_REDIRECTS = 5
Resolver = Callable[[str, int], list[str]]


class UnsafeURLError(MWIngestError, ValueError):
    """The URL points where mwingest must not go (reason ``unsafe-url``)."""

    retry_class = RetryClass.PERMANENT


class FetchError(MWIngestError):
    """Downloading a URL failed (HTTP status, size over the limit, timeout)."""

    retry_class = RetryClass.PERMANENT

    def __init__(self, message: str, *, transient: bool = False) -> None:
        super().__init__(message)
        if transient:
            self.retry_class = RetryClass.TRANSIENT


def system_resolver(host: str, port: int) -> list[str]:
    """Every address ``host`` resolves to (``getaddrinfo`` also reads ``2130706433``, ``0x7f.1``)."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise UnsafeURLError(f"cannot resolve {host!r}: {exc.strerror}") from None
    return sorted({str(info[4][0]) for info in infos})


def address_problem(address: str) -> str | None:
    """Why an IP address is off limits, or None for a public address."""
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address):
        mapped = ip.ipv4_mapped or ip.sixtofour
        if mapped is not None:
            return address_problem(str(mapped))
    for attr, name in (("is_unspecified", "unspecified"), ("is_loopback", "loopback"),
                       ("is_link_local", "link-local"), ("is_multicast", "multicast"),
                       ("is_private", "private"), ("is_reserved", "reserved")):
        if getattr(ip, attr):
            return f"{name} address {ip}"
    if not ip.is_global:
        return f"non-global address {ip}"
    return None


@dataclass(frozen=True)
class AllowList:
    """Hosts that may be fetched even when they resolve to a non-public address."""

    entries: tuple[str, ...] = ()

    @classmethod
    def parse(cls, value: str | Iterable[str] | None = None, *, env: bool = True) -> AllowList:
        """From a comma-separated string or a list, plus ``MWINGEST_ALLOW_HOSTS`` when ``env``."""
        items: list[str] = []
        if isinstance(value, str):
            items += value.split(",")
        elif value:
            items += list(value)
        if env and os.environ.get(ENV_ALLOW_HOSTS):
            items += os.environ[ENV_ALLOW_HOSTS].split(",")
        return cls(tuple(sorted({i.strip().lower().strip("[]") for i in items if i.strip()})))

    def allows(self, host: str, port: int) -> bool:
        host = host.lower().strip("[]").rstrip(".")
        for entry in self.entries:
            if entry.startswith("*."):
                if host.endswith(entry[1:]):
                    return True
            elif ":" in entry and not _is_ipv6(entry):
                name, _, wanted = entry.rpartition(":")
                if name.strip("[]") == host and wanted == str(port):
                    return True
            elif entry == host:
                return True
        return False


def _is_ipv6(text: str) -> bool:
    try:
        return isinstance(ipaddress.ip_address(text), ipaddress.IPv6Address)
    except ValueError:
        return False


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


def fetch_to_file(url: str, *, allow: AllowList | None = None, max_bytes: int,
                  timeout: float = 30.0, directory: str | Path | None = None,
                  user_agent: str = "mwingest", resolver: Resolver = system_resolver) -> Path:
    """Download ``url`` into a temporary file, safely: every redirect hop (at most 5) is checked,
    the connection goes to the address that was checked (no second DNS answer), the size is capped
    at ``max_bytes`` and each read has a timeout. The caller deletes the file."""
    import urllib3

    current = url
    for _hop in range(MAX_REDIRECTS + 1):
        checked = check_url(current, allow, resolver)
        parts = urlsplit(current)
        address = checked.addresses[0]
        kwargs: dict[str, object] = {"timeout": urllib3.Timeout(connect=timeout, read=timeout),
                                     "retries": False, "maxsize": 1}
        if parts.scheme.lower() == "https":
            pool: urllib3.HTTPConnectionPool = urllib3.HTTPSConnectionPool(
                address, checked.port, server_hostname=checked.host,
                assert_hostname=checked.host, **kwargs)  # type: ignore[arg-type]
        else:
            pool = urllib3.HTTPConnectionPool(address, checked.port, **kwargs)  # type: ignore[arg-type]
        path = parts.path or "/"
        if parts.query:
            path += "?" + parts.query
        host_header = checked.host if parts.port is None else f"{checked.host}:{parts.port}"
        try:
            response = pool.urlopen("GET", path, headers={"Host": host_header,
                                                          "User-Agent": user_agent},
                                    redirect=False, preload_content=False)
        except urllib3.exceptions.HTTPError as exc:
            raise FetchError(f"cannot fetch {current}: {type(exc).__name__}", transient=True) from None
        try:
            if response.status in (301, 302, 303, 307, 308):
                location = response.headers.get("Location")
                if not location:
                    raise FetchError(f"{current} redirects without a Location")
                current = urljoin(current, location)
                continue
            if response.status != 200:
                raise FetchError(f"{current} answered HTTP {response.status}",
                                 transient=response.status >= 500)
            declared = response.headers.get("Content-Length")
            if declared and declared.isdigit() and int(declared) > max_bytes:
                raise FetchError(f"{current} is {declared} bytes, over the limit of {max_bytes}")
            return _save(response, max_bytes, directory, current)
        finally:
            response.release_conn()
            pool.close()
    raise FetchError(f"{url}: more than {MAX_REDIRECTS} redirects")


def _save(response: object, max_bytes: int, directory: str | Path | None, url: str) -> Path:
    fd, name = tempfile.mkstemp(prefix="mwingest-fetch-", dir=directory)
    total = 0
    try:
        with os.fdopen(fd, "wb") as out:
            for block in response.stream(1 << 20):  # type: ignore[attr-defined]
                total += len(block)
                if total > max_bytes:
                    raise FetchError(f"{url} is larger than the limit of {max_bytes} bytes")
                out.write(block)
    except BaseException:
        Path(name).unlink(missing_ok=True)
        raise
    return Path(name)
