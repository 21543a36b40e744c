"""The block's logo: copied into each UI bundle a server made, and used only where a server
serves exactly our file (never a URL on another host)."""

from __future__ import annotations

from pathlib import Path

from mwingest.runtime import uilogo

API = "http://127.0.0.1:4312/api"


def test_the_logo_goes_into_each_bundle_the_server_made(tmp_path: Path) -> None:
    assert not uilogo.place(tmp_path)  # no bundle yet: nothing the server could serve
    (tmp_path / "v1").mkdir()
    (tmp_path / "v2").mkdir()
    (tmp_path / "v2" / uilogo.NAME).write_bytes(b"an older logo")
    assert uilogo.place(tmp_path)
    for bundle in ("v1", "v2"):
        assert (tmp_path / bundle / uilogo.NAME).read_bytes() == uilogo.LOGO.read_bytes()
    assert sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*")) == [
        "v1", f"v1/{uilogo.NAME}", "v2", f"v2/{uilogo.NAME}"]  # no temporary file left


def test_the_url_is_the_server_s_own_only_when_it_serves_our_file() -> None:
    ours = uilogo.LOGO.read_bytes()
    asked: list[str] = []

    def serving(status: int, kind: str, body: bytes):
        def get(url: str) -> tuple[int, str, bytes]:
            asked.append(url)
            return status, kind, body
        return get

    assert uilogo.served_url(API, serving(200, "image/png", ours)) == (
        f"http://127.0.0.1:4312/{uilogo.NAME}")
    assert asked == [f"http://127.0.0.1:4312/{uilogo.NAME}"]
    # A server without it answers with the UI's index page (a single-page app) or 404.
    assert uilogo.served_url(API, serving(200, "text/html; charset=utf-8", b"<html>")) is None
    assert uilogo.served_url(API, serving(404, "application/json", b"{}")) is None
    assert uilogo.served_url(API, serving(200, "image/png", b"another logo")) is None

    def down(url: str) -> tuple[int, str, bytes]:
        raise OSError("connection refused")

    assert uilogo.served_url(API, down) is None
