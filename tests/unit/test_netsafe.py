"""URL checks against SSRF (:mod:`mwingest.checks.netsafe`): addresses, spellings, schemes, allow-list,
and the pinned, capped fetch.

Network rule for this file: private, link-local and public addresses are only ever *checked*
(``address_problem``, or ``check_url`` with a fake resolver): nothing here opens a connection to
them. The loopback spellings go through the system resolver, which reads numeric hosts and
``localhost`` without sending a packet. The fetch tests talk only to servers on 127.0.0.1 / ::1.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from mwingest.checks.netsafe import (
    ENV_ALLOW_HOSTS,
    AllowList,
    FetchError,
    UnsafeURLError,
    address_problem,
    check_url,
    fetch_to_file,
    resolve_redirects,
    system_resolver,
)

# --- addresses -------------------------------------------------------------------------------------

@pytest.mark.parametrize(("address", "kind"), [
    ("127.0.0.1", "loopback"), ("127.255.255.254", "loopback"), ("::1", "loopback"),
    ("0.0.0.0", "unspecified"), ("::", "unspecified"),
    ("169.254.169.254", "link-local"), ("fe80::1", "link-local"), ("fe80::1%eth0", "link-local"),
    ("10.0.0.1", "private"), ("10.255.255.255", "private"), ("172.16.0.1", "private"),
    ("172.31.255.254", "private"), ("192.168.1.1", "private"), ("fc00::1", "private"),
    ("fd12:3456::1", "private"),
    ("224.0.0.1", "multicast"), ("239.255.255.250", "multicast"), ("ff02::1", "multicast"),
    ("240.0.0.1", "reserved"), ("255.255.255.255", "reserved"),
    ("100.64.0.1", "non-global"), ("100.127.255.254", "non-global"),  # CGNAT
    ("192.0.2.10", "private"), ("198.18.0.1", "private"), ("0.1.2.3", "private"),
    ("2001:db8::1", "private"),
    # IPv6 spellings of IPv4 addresses are judged by the IPv4 address they carry.
    ("::ffff:127.0.0.1", "loopback"), ("::ffff:169.254.169.254", "link-local"),
    ("::ffff:10.1.2.3", "private"), ("2002:7f00:1::", "loopback"), ("64:ff9b::7f00:1", "loopback"),
    ("64:ff9b::a9fe:a9fe", "link-local"),
])
def test_non_public_addresses_are_refused_naming_why(address, kind):
    problem = address_problem(address)

    assert problem is not None and problem.startswith(kind), problem


@pytest.mark.parametrize("address", [
    "93.184.216.34", "8.8.8.8", "1.1.1.1", "2606:4700:4700::1111", "2a00:1450:4001::200e",
    "::ffff:93.184.216.34", "64:ff9b::808:808",
])
def test_public_addresses_pass(address):
    assert address_problem(address) is None


# --- loopback in every spelling, through the real resolver (no packet leaves) --------------------

@pytest.mark.parametrize("host", [
    "127.0.0.1", "localhost", "LOCALHOST.", "[::1]", "2130706433", "0x7f.1", "0x7f000001",
    "017700000001", "127.1", "[::ffff:127.0.0.1]", "0.0.0.0", "0", "[::]", "[0:0:0:0:0:0:0:1]",
])
def test_every_loopback_spelling_is_refused(host):
    with pytest.raises(UnsafeURLError, match="loopback|unspecified"):
        check_url(f"http://{host}:8181/x.png")


def test_a_refusal_says_how_to_allow_the_host():
    with pytest.raises(UnsafeURLError) as caught:
        check_url("http://127.0.0.1:8181/x.png")

    assert "--allow-host" in str(caught.value) and ENV_ALLOW_HOSTS in str(caught.value)


def test_an_unresolvable_host_is_refused_not_raised_raw():
    with pytest.raises(UnsafeURLError, match="cannot resolve"):
        system_resolver("files\x00.example.org", 80)  # NUL: refused before any lookup


# --- names through a fake resolver -----------------------------------------------------------------

@dataclass
class FakeDNS:
    """A resolver from a table; records every lookup (so tests see what was resolved)."""

    table: dict[str, list[str]]
    asked: list[tuple[str, int]] = field(default_factory=list)

    def __call__(self, host: str, port: int) -> list[str]:
        self.asked.append((host, port))
        return list(self.table.get(host.lower(), []))


DNS = {
    "media.example.org": ["93.184.216.34"],
    "v6.example.org": ["2606:4700:4700::1111"],
    "both.example.org": ["93.184.216.34", "2606:4700:4700::1111"],
    "split.example.org": ["93.184.216.34", "10.0.0.5"],  # one public, one private: refused
    "metadata.example.org": ["169.254.169.254"],
    "intranet.example.org": ["192.168.10.20"],
    "mapped.example.org": ["::ffff:10.0.0.1"],
    "cgnat.example.org": ["100.64.3.4"],
    "files.lab.internal": ["10.20.30.40"],
}


@pytest.mark.parametrize("url", [
    "http://media.example.org/a.png", "https://media.example.org/a.png?x=1#frag",
    "HTTPS://MEDIA.example.org:8443/a.png", "http://v6.example.org/a.png",
    "http://both.example.org/a.png",
])
def test_public_names_pass_with_the_addresses_that_were_checked(url):
    dns = FakeDNS(DNS)

    checked = check_url(url, resolver=dns)

    assert checked.addresses == tuple(DNS[checked.host.lower()])
    assert not checked.allowed_by_list
    assert dns.asked == [(checked.host, checked.port)]


@pytest.mark.parametrize(("url", "why"), [
    ("http://split.example.org/a.png", "private address 10.0.0.5"),
    ("http://metadata.example.org/latest/meta-data/", "link-local address 169.254.169.254"),
    ("http://intranet.example.org/a.png", "private address 192.168.10.20"),
    ("http://mapped.example.org/a.png", "private address 10.0.0.1"),
    ("http://cgnat.example.org/a.png", "non-global address 100.64.3.4"),
    ("http://nowhere.example.org/a.png", "resolves to no address"),
])
def test_names_leading_to_non_public_addresses_are_refused(url, why):
    with pytest.raises(UnsafeURLError, match=why):
        check_url(url, resolver=FakeDNS(DNS))


@pytest.mark.parametrize("host", [
    "169.254.169.254", "10.0.0.1", "172.16.0.1", "192.168.0.1", "[fc00::1]", "[fe80::1]",
    "224.0.0.1", "[ff02::1]", "240.0.0.1", "100.64.0.1",
])
def test_literal_non_public_addresses_are_refused(host):
    literal = FakeDNS({host.strip("[]"): [host.strip("[]")]})

    with pytest.raises(UnsafeURLError, match="forbidden"):
        check_url(f"http://{host}/x.png", resolver=literal)


# --- schemes and URL shapes: refused before any lookup ---------------------------------------------

@pytest.mark.parametrize(("url", "why"), [
    ("file:///etc/passwd", "not 'file'"),
    ("ftp://media.example.org/a.png", "not 'ftp'"),
    ("gopher://media.example.org:70/_x", "not 'gopher'"),
    ("javascript:alert(1)", "not 'javascript'"),
    ("data:image/png;base64,iVBORw0KGgo=", "not 'data'"),
    ("//media.example.org/a.png", "not 'none'"),  # protocol-relative
    ("media.example.org/a.png", "not 'none'"),
    ("http:///a.png", "no host"),
    ("http://:80/a.png", "no host"),
    ("http://user:secret@media.example.org/a.png", "credentials"),
    ("http://user@media.example.org/a.png", "credentials"),
    ("http://media.example.org:99999/a.png", "malformed"),
    ("http://[::1/a.png", "malformed"),
])
def test_other_schemes_and_odd_urls_are_refused_without_a_lookup(url, why):
    dns = FakeDNS(DNS)

    with pytest.raises(UnsafeURLError, match=why) as caught:
        check_url(url, resolver=dns)

    assert dns.asked == []
    assert "secret" not in str(caught.value)


# --- the allow-list ---------------------------------------------------------------------------------

LOCAL = FakeDNS({"files.lab.internal": ["10.20.30.40"], "a.lab.internal": ["10.1.1.1"],
                 "lab.internal": ["10.1.1.2"], "evillab.internal": ["10.1.1.3"],
                 "127.0.0.1": ["127.0.0.1"], "::1": ["::1"], "localhost": ["127.0.0.1"]})


@pytest.mark.parametrize(("entries", "url", "allowed"), [
    (["files.lab.internal"], "http://files.lab.internal/a.png", True),
    (["files.lab.internal"], "http://files.lab.internal:9443/a.png", True),  # any port
    (["FILES.Lab.Internal."], "http://files.lab.internal/a.png", True),
    (["files.lab.internal:8080"], "http://files.lab.internal:8080/a.png", True),
    (["files.lab.internal:8080"], "http://files.lab.internal:8081/a.png", False),
    (["files.lab.internal:80"], "http://files.lab.internal/a.png", True),  # default port
    (["files.lab.internal:80"], "https://files.lab.internal/a.png", False),  # 443
    (["*.lab.internal"], "http://a.lab.internal/a.png", True),
    (["*.lab.internal"], "http://files.lab.internal/a.png", True),
    (["*.lab.internal"], "http://lab.internal/a.png", False),  # subdomains only
    (["*.lab.internal"], "http://evillab.internal/a.png", False),
    (["*.lab.internal:8080"], "http://a.lab.internal:8080/a.png", True),
    (["*.lab.internal:8080"], "http://a.lab.internal:9090/a.png", False),
    (["127.0.0.1:7001"], "http://127.0.0.1:7001/a.png", True),
    (["127.0.0.1:7001"], "http://localhost:7001/a.png", False),  # names match as written
    (["::1"], "http://[::1]:7001/a.png", True),
    (["[::1]"], "http://[::1]:7001/a.png", True),
    (["[::1]:7001"], "http://[::1]:7001/a.png", True),
    (["[::1]:7001"], "http://[::1]:7002/a.png", False),
    (["[0:0::1]:7001"], "http://[::1]:7001/a.png", True),  # IPv6 compared in canonical form
    (["other.lab.internal, files.lab.internal:8080"], "http://files.lab.internal:8080/a", True),
    ([], "http://files.lab.internal/a.png", False),
])
def test_allow_list_semantics(entries, url, allowed):
    allow = AllowList.parse(entries, env=False)

    if allowed:
        assert check_url(url, allow, LOCAL).allowed_by_list
    else:
        with pytest.raises(UnsafeURLError):
            check_url(url, allow, LOCAL)


def test_allow_list_reads_a_comma_string_and_the_environment(monkeypatch):
    monkeypatch.setenv(ENV_ALLOW_HOSTS, " files.lab.internal:8080 ,*.cdn.lab.internal")

    allow = AllowList.parse("127.0.0.1:7001, [::1]:7002")

    assert allow.entries == ("*.cdn.lab.internal", "127.0.0.1:7001", "[::1]:7002",
                             "files.lab.internal:8080")
    assert AllowList.parse("127.0.0.1:7001", env=False).entries == ("127.0.0.1:7001",)
    monkeypatch.delenv(ENV_ALLOW_HOSTS)
    assert AllowList.parse().entries == ()


@pytest.mark.parametrize("entry", ["files.lab.internal:http", "127.0.0.1:0", "[::1]:70000",
                                   "host:"])
def test_a_malformed_allow_list_port_is_an_error_not_any_port(entry):
    with pytest.raises(ValueError, match="port"):
        AllowList.parse([entry], env=False)


def test_an_allowed_name_does_not_open_other_names_on_the_same_address():
    allow = AllowList.parse(["files.lab.internal"], env=False)
    dns = FakeDNS({"files.lab.internal": ["10.20.30.40"], "alias.example.org": ["10.20.30.40"]})

    with pytest.raises(UnsafeURLError, match="10.20.30.40"):
        check_url("http://alias.example.org/a.png", allow, dns)


# --- fetching: only loopback servers, reached through the allow-list -------------------------------

@dataclass
class Served:
    """What a local test server answers per path, and every request it received."""

    routes: dict[str, tuple[int, dict[str, str], bytes]] = field(default_factory=dict)
    hits: list[tuple[str, str, str]] = field(default_factory=list)  # (path, Host, User-Agent)
    port: int = 0


def _server(served: Served, family: socket.AddressFamily, address: str, port: int = 0
            ) -> ThreadingHTTPServer:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - http.server's naming
            served.hits.append((self.path, self.headers.get("Host", ""),
                                self.headers.get("User-Agent", "")))
            status, headers, body = served.routes.get(self.path, (404, {}, b"not here"))
            self.send_response(status)
            for name, value in {"Content-Length": str(len(body)), **headers}.items():
                if value:
                    self.send_header(name, value)
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            """Quiet."""

    class Server(ThreadingHTTPServer):
        address_family = family
        daemon_threads = True

    server = Server((address, port), Handler)
    served.port = server.server_address[1]
    assert served.port not in range(8000, 9000)
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05},
                     daemon=True).start()
    return server


@pytest.fixture
def local() -> Iterator[Callable[..., Served]]:
    """``local(address="127.0.0.1") -> Served``: a recording server on a loopback address."""
    servers: list[ThreadingHTTPServer] = []

    def start(address: str = "127.0.0.1") -> Served:
        served = Served()
        family = socket.AF_INET6 if ":" in address else socket.AF_INET
        try:
            servers.append(_server(served, family, address))
        except OSError as exc:
            pytest.skip(f"cannot listen on {address}: {exc}")
        return served

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


def _allow(*served: Served, host: str = "127.0.0.1") -> AllowList:
    return AllowList.parse([f"{host}:{s.port}" for s in served], env=False)


def test_fetch_follows_checked_redirects_and_saves_the_bytes(local, tmp_path):
    files = local()
    body = b"\x89PNG fake but fine" * 100
    files.routes.update({"/start": (302, {"Location": "/middle?x=1"}, b""),
                         "/middle?x=1": (301, {"Location": f"http://127.0.0.1:{files.port}/a.png"},
                                         b""),
                         "/a.png": (200, {}, body)})

    path = fetch_to_file(f"http://127.0.0.1:{files.port}/start", allow=_allow(files),
                         max_bytes=10_000, directory=tmp_path)

    assert path.read_bytes() == body and path.parent == tmp_path
    assert [h[0] for h in files.hits] == ["/start", "/middle?x=1", "/a.png"]
    assert {h[2] for h in files.hits} == {"mwingest"}


def test_a_redirect_to_a_host_not_allowed_is_refused_before_it_is_requested(local, tmp_path):
    files, canary = local(), local()
    files.routes["/go"] = (302, {"Location": f"http://127.0.0.1:{canary.port}/secret"}, b"")
    url = f"http://127.0.0.1:{files.port}/go"

    with pytest.raises(UnsafeURLError, match=f"127.0.0.1:{canary.port}/secret"):
        fetch_to_file(url, allow=_allow(files), max_bytes=1000, directory=tmp_path)
    with pytest.raises(UnsafeURLError):
        resolve_redirects(url, _allow(files))

    assert canary.hits == []
    assert [h[0] for h in files.hits] == ["/go", "/go"]
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("location", ["file:///etc/passwd", "ftp://127.0.0.1/x",
                                      "http://169.254.169.254/latest/meta-data/",
                                      "http://[::ffff:127.0.0.1]:1/x", "//0x7f.1:1/x"])
def test_a_redirect_to_another_scheme_or_a_forbidden_address_is_refused(local, location):
    files = local()
    files.routes["/go"] = (302, {"Location": location}, b"")

    with pytest.raises(UnsafeURLError):
        resolve_redirects(f"http://127.0.0.1:{files.port}/go", _allow(files))


def test_resolve_redirects_returns_the_final_url_without_reading_it(local):
    files = local()
    files.routes.update({"/hop": (307, {"Location": "/files/B.png"}, b""),
                         "/files/B.png": (200, {}, b"B" * 100_000)})

    final = resolve_redirects(f"http://127.0.0.1:{files.port}/hop", _allow(files))

    assert final == f"http://127.0.0.1:{files.port}/files/B.png"
    assert [h[0] for h in files.hits] == ["/hop", "/files/B.png"]


def test_more_than_five_redirects_fail(local, tmp_path):
    files = local()
    for n in range(7):
        files.routes[f"/r{n}"] = (302, {"Location": f"/r{n + 1}"}, b"")

    with pytest.raises(FetchError) as caught:
        fetch_to_file(f"http://127.0.0.1:{files.port}/r0", allow=_allow(files), max_bytes=10,
                      directory=tmp_path)

    assert caught.value.code == "too-many-redirects" and not caught.value.retryable
    assert len(files.hits) == 6  # the first request and five redirects, no seventh


@pytest.mark.parametrize("declared", [True, False])
def test_the_size_cap_holds_with_and_without_a_content_length(local, tmp_path, declared):
    files = local()
    files.routes["/big"] = (200, {} if declared else {"Content-Length": ""}, b"z" * 5000)

    with pytest.raises(FetchError) as caught:
        fetch_to_file(f"http://127.0.0.1:{files.port}/big", allow=_allow(files), max_bytes=4096,
                      directory=tmp_path)

    assert caught.value.code == "file-too-large"
    assert list(tmp_path.iterdir()) == []  # no partial file left behind


def test_http_errors_are_fetch_errors_5xx_transient(local, tmp_path):
    files = local()
    files.routes["/gone"] = (404, {}, b"no")
    files.routes["/down"] = (503, {}, b"later")
    base = f"http://127.0.0.1:{files.port}"

    with pytest.raises(FetchError) as gone:
        fetch_to_file(f"{base}/gone", allow=_allow(files), max_bytes=100, directory=tmp_path)
    with pytest.raises(FetchError) as down:
        fetch_to_file(f"{base}/down", allow=_allow(files), max_bytes=100, directory=tmp_path)

    assert (gone.value.code, gone.value.retryable) == ("http-bad-status", False)
    assert (down.value.code, down.value.retryable) == ("http-bad-status", True)


def test_a_refused_connection_is_a_transient_fetch_error():
    dead = socket.socket()
    dead.bind(("127.0.0.1", 0))  # bound, never listening: connections are refused
    port = dead.getsockname()[1]
    try:
        with pytest.raises(FetchError) as caught:
            resolve_redirects(f"http://127.0.0.1:{port}/x",
                              AllowList.parse([f"127.0.0.1:{port}"], env=False))
    finally:
        dead.close()

    assert caught.value.retryable and caught.value.code == "http-curl-error"


def test_the_connection_goes_to_the_checked_address_with_the_names_host_header(local, tmp_path):
    """A made-up name resolves (in our resolver only) to the loopback server: the fetch must
    connect to that checked address, never ask the system DNS again, and say the name in Host."""
    files = local()
    files.routes["/a.png"] = (200, {}, b"pinned")
    dns = FakeDNS({"pinned.lab.internal": ["127.0.0.1"]})
    allow = AllowList.parse([f"pinned.lab.internal:{files.port}"], env=False)

    path = fetch_to_file(f"http://pinned.lab.internal:{files.port}/a.png", allow=allow,
                         max_bytes=100, directory=tmp_path, resolver=dns)

    assert path.read_bytes() == b"pinned"
    assert files.hits == [("/a.png", f"pinned.lab.internal:{files.port}", "mwingest")]
    assert dns.asked == [("pinned.lab.internal", files.port)]


def test_ipv6_loopback_fetch_when_allowed(local, tmp_path):
    files = local("::1")
    files.routes["/six.png"] = (200, {}, b"six")

    path = fetch_to_file(f"http://[::1]:{files.port}/six.png",
                         allow=_allow(files, host="[::1]"), max_bytes=100, directory=tmp_path)

    assert path.read_bytes() == b"six"
    assert files.hits[0][1] == f"[::1]:{files.port}"


def test_nothing_is_requested_without_the_allow_list(local, tmp_path):
    files = local()
    files.routes["/a.png"] = (200, {}, b"x")

    for spelling in ("127.0.0.1", "localhost", "2130706433", "0x7f.1", "[::ffff:127.0.0.1]",
                     "0.0.0.0"):
        url = f"http://{spelling}:{files.port}/a.png"
        with pytest.raises(UnsafeURLError):
            fetch_to_file(url, max_bytes=100, directory=tmp_path)
        with pytest.raises(UnsafeURLError):
            resolve_redirects(url)

    assert files.hits == []
    assert list(Path(tmp_path).iterdir()) == []


def _trickler(stage: str) -> tuple[socket.socket, threading.Thread]:
    """A server that sends its answer one byte at a time, each byte well within the per-read
    timeout (``stage``: the headers or the body trickle), as a slow-loris server would."""
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    stop = threading.Event()

    def serve() -> None:
        with contextlib.suppress(OSError):
            conn, _ = listener.accept()
            with conn:
                conn.recv(65536)
                head = b"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\nX-Slow: "
                body = b"x" * 100000
                if stage == "body":
                    conn.sendall(head + b"1\r\n\r\n")
                    data = body
                else:
                    conn.sendall(b"HTTP/1.1 200 OK\r\n")
                    data = b"X-Slow: " + b"y" * 100000
                for byte in data:
                    if stop.wait(0.2):
                        return
                    conn.sendall(bytes([byte]))

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    thread.stop = stop  # type: ignore[attr-defined]
    return listener, thread


@pytest.mark.parametrize("stage", ["headers", "body"])
def test_a_trickling_server_meets_the_downloads_total_deadline(stage, tmp_path):
    """Every byte comes within the 5 s read timeout, so only the total deadline (1 s here) can
    end the download: it ends as ``fetch-deadline`` (not retried) and leaves no file behind."""
    listener, thread = _trickler(stage)
    port = listener.getsockname()[1]
    try:
        with pytest.raises(FetchError) as caught:
            fetch_to_file(f"http://127.0.0.1:{port}/slow", max_bytes=1 << 20, timeout=5.0,
                          deadline=1.0, directory=tmp_path,
                          allow=AllowList.parse([f"127.0.0.1:{port}"], env=False))
        assert caught.value.code == "fetch-deadline" and not caught.value.retryable
        assert list(tmp_path.iterdir()) == []
    finally:
        thread.stop.set()  # type: ignore[attr-defined]
        listener.close()
        thread.join(timeout=10)
