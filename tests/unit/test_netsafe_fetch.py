"""The pinned, capped fetch of :mod:`mwingest.checks.netsafe`: redirects checked before they are
followed, the size cap, the total deadline, the connection to the checked address.

Network rule: only servers on 127.0.0.1 / ::1 that the tests start, reached through the allow-list.
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
    AllowList,
    FetchError,
    UnsafeURLError,
    fetch_to_file,
    resolve_redirects,
)
from tests.unit.test_netsafe import FakeDNS


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
