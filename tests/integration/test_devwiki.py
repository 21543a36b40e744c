"""The throwaway wiki really is the wiki the spec describes (spec §1, §7, §11, §13).

Plain ``requests`` on purpose: these tests check the harness, so they must not depend on
mwingest's own client.
"""

from __future__ import annotations

import hashlib
import os
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import requests

from mwingest.dev import devwiki
from mwingest.dev.devwiki import DevWikiError, group_alive, start_wiki

pytestmark = pytest.mark.wiki

EXTRA_EXTENSIONS = {"svg", "pdf", "tif", "tiff", "webp", "ogg", "ogv", "webm", "mp3", "wav"}


def _session() -> requests.Session:
    http = requests.Session()
    http.trust_env = False  # the wiki is on loopback: never through a proxy
    return http


def _api(http: requests.Session, api_url: str, *, post: bool = False, files: Any = None,
         **params: Any) -> dict[str, Any]:
    params = {"format": "json", "formatversion": "2", **params}
    if post:
        answer = http.post(api_url, data=params, files=files, timeout=60)
    else:
        answer = http.get(api_url, params=params, timeout=60)
    answer.raise_for_status()
    return answer.json()


def _login_token(http: requests.Session, api_url: str) -> str:
    return _api(http, api_url, action="query", meta="tokens", type="login")["query"]["tokens"]["logintoken"]


def _login(api_url: str, username: str, password: str) -> requests.Session:
    """``action=login`` with a bot password; returns the logged-in session."""
    http = _session()
    token = _login_token(http, api_url)
    result = _api(http, api_url, post=True, action="login", lgname=username, lgpassword=password,
                  lgtoken=token)
    assert result["login"]["result"] == "Success", result["login"].get("reason")
    return http


def _csrf(http: requests.Session, api_url: str) -> str:
    return _api(http, api_url, action="query", meta="tokens")["query"]["tokens"]["csrftoken"]


def _upload(http: requests.Session, api_url: str, name: str, data: bytes, **params: Any) -> dict[str, Any]:
    """A direct upload (``file=``); the file part carries a filename, as the API requires (§1)."""
    return _api(http, api_url, post=True, action="upload", filename=name, token=_csrf(http, api_url),
                ignorewarnings=1, files={"file": (name, data, "application/octet-stream")}, **params)


def test_siteinfo_has_the_spec_upload_settings(wiki: Any) -> None:
    query = _api(_session(), wiki.api_url, action="query", meta="siteinfo",
                 siprop="general|fileextensions")["query"]
    assert query["general"]["generator"].startswith("MediaWiki 1.39")
    assert query["general"]["uploadsenabled"] is True
    assert query["general"]["maxuploadsize"] == 5 * 1024**3
    extensions = {entry["ext"] for entry in query["fileextensions"]}
    assert EXTRA_EXTENSIONS | {"png", "jpg"} <= extensions


def test_bot_password_logs_in_as_plain_user_with_upload_rights(wiki: Any) -> None:
    http = _login(wiki.api_url, wiki.username, wiki.password)
    info = _api(http, wiki.api_url, action="query", meta="userinfo", uiprop="rights|groups")
    info = info["query"]["userinfo"]
    assert info["name"] == wiki.username.split("@")[0]
    assert "sysop" not in info["groups"]
    assert {"upload", "reupload", "upload_by_url", "edit", "createpage"} <= set(info["rights"])


def test_bot_password_from_the_command_line_is_refused_when_wrong(wiki: Any) -> None:
    """Guards the credentials: a wrong bot password must fail, or the login test proves nothing."""
    http = _session()
    token = _login_token(http, wiki.api_url)
    result = _api(http, wiki.api_url, post=True, action="login", lgname=wiki.username,
                  lgpassword="x" * 32, lgtoken=token)
    assert result["login"]["result"] == "Failed"


def test_admin_clientlogin_and_admin_bot_password(wiki: Any) -> None:
    if not wiki.admin_password:
        pytest.skip("no admin credentials for this wiki")
    http = _session()
    token = _login_token(http, wiki.api_url)
    result = _api(http, wiki.api_url, post=True, action="clientlogin", username=wiki.admin_username,
                  password=wiki.admin_password, logintoken=token, loginreturnurl=wiki.index_url)
    assert result["clientlogin"]["status"] == "PASS"
    groups = _api(http, wiki.api_url, action="query", meta="userinfo", uiprop="groups")["query"]["userinfo"]
    assert {"sysop", "bureaucrat"} <= set(groups["groups"])
    bot = _login(wiki.api_url, wiki.admin_bot_username, wiki.admin_bot_password)
    rights = _api(bot, wiki.api_url, action="query", meta="userinfo", uiprop="rights")["query"]["userinfo"]
    assert {"delete", "upload"} <= set(rights["rights"])


def test_direct_upload_then_imageinfo_sha1_and_served_bytes(wiki: Any, unique: Callable[[], str],
                                                            make_png: Callable[..., bytes]) -> None:
    http = _login(wiki.api_url, wiki.username, wiki.password)
    data, name = make_png(), f"Devwiki direct {unique()}.png"
    result = _upload(http, wiki.api_url, name, data, comment="devwiki test")
    assert result["upload"]["result"] == "Success", result
    pages = _api(http, wiki.api_url, action="query", titles=f"File:{name}", prop="imageinfo",
                 iiprop="sha1|size|url")["query"]["pages"]
    info = pages[0]["imageinfo"][0]
    assert info["sha1"] == hashlib.sha1(data).hexdigest()
    assert info["size"] == len(data)
    # The router serves /images/ from the wiki's own directory.
    assert _session().get(info["url"], timeout=30).content == data
    if wiki.root is not None:
        assert any(p.read_bytes() == data for p in (wiki.root / "images").rglob("*.png"))


def test_checkstatus_after_first_chunk_across_workers_and_sessions(
        wiki: Any, unique: Callable[[], str], make_png: Callable[..., bytes]) -> None:
    """The chunk status lives in the object cache (§7): every worker and a new login must see it."""
    http = _login(wiki.api_url, wiki.username, wiki.password)
    data, name = make_png(64, 64), f"Devwiki chunk {unique()}.png"
    assert len(data) > 2048
    first = _api(http, wiki.api_url, post=True, action="upload", filename=name, filesize=len(data),
                 offset=0, ignorewarnings=1, token=_csrf(http, wiki.api_url),
                 files={"chunk": (name, data[:1024], "application/octet-stream")})["upload"]
    assert first["result"] == "Continue" and first["offset"] == 1024, first
    other = _login(wiki.api_url, wiki.username, wiki.password)
    for session in (http, other, http, other, http, other):  # 4 workers: spread over several
        status = _api(session, wiki.api_url, post=True, action="upload", filekey=first["filekey"],
                      checkstatus=1, token=_csrf(session, wiki.api_url))["upload"]
        assert status["result"] == "Continue" and status["offset"] == 1024, status


def test_copy_upload_from_loopback_works_by_default(wiki: Any, unique: Callable[[], str],
                                                    make_png: Callable[..., bytes], tmp_path: Path) -> None:
    data, name = make_png(), f"Devwiki url {unique()}.png"
    (tmp_path / "source.png").write_bytes(data)
    with _file_server(tmp_path) as base_url:
        http = _login(wiki.api_url, wiki.username, wiki.password)
        result = _api(http, wiki.api_url, post=True, action="upload", filename=name,
                      url=f"{base_url}/source.png", ignorewarnings=1, token=_csrf(http, wiki.api_url))
    assert result["upload"]["result"] == "Success", result
    assert result["upload"]["imageinfo"]["sha1"] == hashlib.sha1(data).hexdigest()


def test_variant_without_copy_uploads_says_copyuploaddisabled(wiki_factory: Callable[..., Any]) -> None:
    variant = wiki_factory(copy_uploads=False)
    http = _login(variant.api_url, variant.username, variant.password)
    # Port 9 (discard) is never contacted: the feature check comes first.
    result = _api(http, variant.api_url, post=True, action="upload", filename="Never.png",
                  url="http://127.0.0.1:9/never.png", token=_csrf(http, variant.api_url))
    assert result["error"]["code"] == "copyuploaddisabled"


def test_variant_rate_limits_and_set_setting(wiki_factory: Callable[..., Any], unique: Callable[[], str],
                                             make_png: Callable[..., bytes]) -> None:
    variant = wiki_factory(rate_limits={"upload": {"user": [1, 600]}}, max_upload_size=100_000)
    http = _login(variant.api_url, variant.username, variant.password)
    assert _upload(http, variant.api_url, f"Rl {unique()}.png", make_png())["upload"]["result"] == "Success"
    second = _upload(http, variant.api_url, f"Rl {unique()}.png", make_png())
    assert second["error"]["code"] == "ratelimited"
    for size in (4321, 4322):  # twice within a second: PHP's opcache must not keep the first
        variant.set_setting(f"$wgMaxUploadSize = {size};")
        general = _api(http, variant.api_url, action="query", meta="siteinfo")["query"]["general"]
        assert general["maxuploadsize"] == size


def test_run_maintenance_runs_against_this_wiki(wiki_factory: Callable[..., Any]) -> None:
    variant = wiki_factory(copy_uploads=False)
    stats = variant.run_maintenance("showSiteStats.php")
    assert "Number of users" in stats.stdout and stats.returncode == 0
    with pytest.raises(DevWikiError) as caught:
        variant.run_maintenance("noSuchScript.php")
    assert caught.value.result is not None and caught.value.result.returncode != 0
    assert variant.run_maintenance("noSuchScript.php", check=False).returncode != 0


def test_stop_kills_the_process_group_and_removes_the_directory() -> None:
    if os.environ.get("MWINGEST_TEST_API_URL"):
        pytest.skip("uses a local throwaway wiki")
    wiki = start_wiki(workers=2)
    pgid, root, api_url = wiki.pgid, wiki.root, wiki.api_url
    assert pgid is not None and group_alive(pgid) and root.is_dir()
    assert wiki.password not in repr(wiki) and wiki.admin_password not in repr(wiki)
    wiki.stop()
    assert not group_alive(pgid)
    assert not root.exists()
    with pytest.raises(requests.ConnectionError):
        _session().get(api_url, timeout=5)


class _QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        """Keep the test output clean."""


@contextmanager
def _file_server(directory: Path) -> Iterator[str]:
    """Serve *directory* on a loopback port (ephemeral, so outside 8000–8999) for copy uploads."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), partial(_QuietHandler, directory=str(directory)))
    assert not 8000 <= server.server_address[1] <= 8999
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_missing_packages_without_root_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    """Faked: this machine has the packages and runs as root, so both facts are patched."""
    monkeypatch.setattr(devwiki, "_missing_parts", lambda: ["mediawiki", "php-intl"])
    monkeypatch.setattr(devwiki.os, "geteuid", lambda: 1000)
    with pytest.raises(DevWikiError, match="mediawiki, php-intl.*apt-get install -y mediawiki php-cli"):
        devwiki.ensure_packages()


def test_rate_limits_render_as_php() -> None:
    rendered = devwiki.php_literal({"upload": {"user": [2, 60]}, "it's": True, "n": None})
    assert rendered == "['upload' => ['user' => [2, 60]], 'it\\'s' => true, 'n' => null]"
