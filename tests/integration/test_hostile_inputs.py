"""Imports nobody on the team wrote: hostile URLs and manifest paths, end to end (issue 7).

URLs: every spelling of loopback points at a *canary* server on 127.0.0.1 (and ::1) that records
every request and would serve a valid PNG, so a slip would land a file. The batch runs against
the real wiki in both URL modes; every row must be ``rejected``/``unsafe-url`` and the canary must
hear nothing, neither from mwingest nor from the wiki (whose copy upload has no SSRF guard, spec
§11). A positive control then allow-lists the canary and sees both reach it. Paths: a manifest
with escapes, links out, a NUL byte and a folder, through the real ``mwingest`` CLI.

Network rule: every server here listens on 127.0.0.1 or ::1, outside ports 8000–8999; private,
link-local and public addresses are only checked in tests/unit/test_netsafe.py, never contacted.
"""

from __future__ import annotations

import json
import os
import socket
import tempfile
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from mwingest.job.settings import BatchSettings
from mwingest.ledger.ledger import Ledger, State
from mwingest.wiki import upload
from tests.integration.clihelpers import PROXY_VARS, latest_upload_log_id, mwingest, sha1_of
from tests.integration.wikihelpers import png_bytes, session_for
from tests.prefect_server import seed_env_homes

# --- recording loopback servers ---------------------------------------------------------------------

@dataclass(frozen=True)
class Hit:
    path: str
    host: str
    agent: str
    client: str


@dataclass
class Recorder:
    """A loopback HTTP server's answers (``routes``; else ``default``) and every request it got."""

    routes: dict[str, tuple[int, dict[str, str], bytes]] = field(default_factory=dict)
    default: tuple[int, dict[str, str], bytes] = (404, {}, b"not here")
    hits: list[Hit] = field(default_factory=list)
    port: int = 0
    servers: list[ThreadingHTTPServer] = field(default_factory=list)

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def listen(self, address: str, port: int = 0) -> None:
        """Serve on ``address`` (a second call adds another address, e.g. ``::1``)."""
        recorder = self

        class Handler(BaseHTTPRequestHandler):
            def _answer(self, with_body: bool) -> None:
                recorder.hits.append(Hit(self.path, self.headers.get("Host", ""),
                                         self.headers.get("User-Agent", ""),
                                         self.client_address[0]))
                status, headers, body = recorder.routes.get(self.path, recorder.default)
                self.send_response(status)
                for name, value in {"Content-Length": str(len(body)), **headers}.items():
                    self.send_header(name, value)
                self.end_headers()
                if with_body:
                    self.wfile.write(body)

            def do_GET(self) -> None:  # noqa: N802 - http.server's naming
                self._answer(True)

            def do_HEAD(self) -> None:  # noqa: N802
                self._answer(False)

            def do_POST(self) -> None:  # noqa: N802
                self._answer(True)

            def log_message(self, *args: object) -> None:
                """Quiet."""

        class Server(ThreadingHTTPServer):
            address_family = socket.AF_INET6 if ":" in address else socket.AF_INET
            daemon_threads = True

        server = Server((address, port), Handler)
        self.port = server.server_address[1]
        assert self.port not in range(8000, 9000)
        threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05},
                         daemon=True).start()
        self.servers.append(server)

    def close(self) -> None:
        for server in self.servers:
            server.shutdown()
            server.server_close()


def _free_port_outside_8000s() -> Iterator[int]:
    while True:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        if port not in range(8000, 9000):
            yield port


@pytest.fixture
def canary() -> Iterator[Recorder]:
    """The canary: 127.0.0.1 and, when the host has IPv6 loopback, [::1] on the same port.

    It answers every path with a valid PNG, so any request that reached it could have landed.
    """
    recorder = Recorder(default=(200, {"Content-Type": "image/png"}, png_bytes()))
    for port in _free_port_outside_8000s():
        try:
            recorder.listen("127.0.0.1", port)
        except OSError:
            continue
        try:
            recorder.listen("::1", port)
        except OSError:  # no IPv6 loopback here, or the port is taken on ::1: try another
            if socket.has_ipv6 and _has_ipv6_loopback():
                recorder.close()
                recorder.servers.clear()
                continue
        break
    try:
        yield recorder
    finally:
        recorder.close()


def _has_ipv6_loopback() -> bool:
    try:
        with socket.socket(socket.AF_INET6) as probe:
            probe.bind(("::1", 0))
        return True
    except OSError:
        return False


@pytest.fixture
def files() -> Iterator[Recorder]:
    """An ordinary local file server, the kind a team allow-lists (by host:port)."""
    recorder = Recorder()
    recorder.listen("127.0.0.1")
    try:
        yield recorder
    finally:
        recorder.close()


@pytest.fixture
def creds_env(wiki: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """In-process flow runs: the wiki's bot password in the env, no allow-list from outside."""
    monkeypatch.setenv("MWINGEST_API_URL", wiki.api_url)
    monkeypatch.setenv("MWINGEST_USERNAME", wiki.username)
    monkeypatch.setenv("MWINGEST_PASSWORD", wiki.password)
    monkeypatch.delenv("MWINGEST_ALLOW_HOSTS", raising=False)
    monkeypatch.delenv("PREFECT_API_URL", raising=False)


# --- URLs -------------------------------------------------------------------------------------------

LOOPBACK_SPELLINGS = ("127.0.0.1", "localhost", "[::1]", "2130706433", "0x7f.1",
                      "[::ffff:127.0.0.1]", "0.0.0.0", "017700000001", "127.1")


@pytest.mark.wiki
def test_hostile_urls_are_unsafe_in_both_modes_and_the_canary_hears_nothing(
        wiki, creds_env, prefect_harness, canary, files, tmp_path, unique):
    from flows.ingest import ingest_batch

    session = session_for(wiki)
    u = unique()
    hostile = [f"http://{host}:{canary.port}/Hostile-{n}-{u}.png"
               for n, host in enumerate(LOOPBACK_SPELLINGS)]
    bounce = f"{files.base}/Bounce-{u}.png"  # an allowed host that redirects to the canary
    files.routes[f"/Bounce-{u}.png"] = (
        302, {"Location": f"http://127.0.0.1:{canary.port}/Bounced-{u}.png"}, b"")
    other_schemes = ["file:///etc/passwd", f"ftp://127.0.0.1:{canary.port}/Ftp-{u}.png"]
    sources = [*hostile, bounce, *other_schemes]
    before = latest_upload_log_id(session)

    runs = {mode: ingest_batch(sources=sources, wiki=wiki.api_url, settings=BatchSettings.from_flat(
                      review_timeout_s=0, ledger_path=str(tmp_path / "ledger.sqlite3"),
                      allow_hosts=[f"127.0.0.1:{files.port}"], url_mode=mode))
            for mode in ("wiki", "local")}

    for mode, rows in runs.items():
        got = {r["source"]: (r["outcome"], r["reason"]) for r in rows}
        assert got == {s: ("rejected", "unsafe-url") for s in sources}, mode
        by_source = {r["source"]: r for r in rows}
        assert "--allow-host" in by_source[hostile[0]]["message"]
        assert f"127.0.0.1:{canary.port}/Bounced-{u}.png" in by_source[bounce]["message"]
    assert canary.hits == []  # nobody, neither mwingest nor the wiki, reached the canary
    # The allowed host was asked once per mode (the first hop), its redirect was never followed.
    assert [(h.path, h.agent) for h in files.hits] == [(f"/Bounce-{u}.png", "mwingest")] * 2
    assert latest_upload_log_id(session) == before
    with Ledger(tmp_path / "ledger.sqlite3") as ledger:
        assert all(ledger.item(wiki.api_url, s) is None for s in sources)  # re-checked next run

    # Positive control: allow-listed, the same canary is reached, by the wiki and by mwingest.
    control = f"http://127.0.0.1:{canary.port}/Control-{u}.png"
    [row] = ingest_batch(sources=[control], wiki=wiki.api_url, settings=BatchSettings.from_flat(
                review_timeout_s=0, ledger_path=str(tmp_path / "ledger.sqlite3"),
                allow_hosts=[f"127.0.0.1:{canary.port}"]))
    assert (row["outcome"], row["reason"]) == ("uploaded", "verified"), row
    agents = {h.agent.split("/")[0] for h in canary.hits}
    assert agents == {"mwingest", "MediaWiki"}
    info = upload.file_info(session, row["filename"])
    assert info is not None and info["sha1"] == sha1_of(canary.default[2])


@pytest.mark.wiki
def test_an_allowed_local_url_lands_by_copy_upload_and_by_local_fetch(
        wiki, creds_env, prefect_harness, files, tmp_path, unique, monkeypatch):
    from flows.imports import import_urls
    from flows.ingest import ingest_batch
    from tasks.blocks import MediaWikiCredentials

    session = session_for(wiki)
    u = unique()
    copy_bytes, local_bytes = png_bytes(), png_bytes()
    # A relative redirect on a non-default port: the wiki alone would re-ask port 80 (spec §11);
    # mwingest walks the chain and hands the wiki the final URL.
    files.routes.update({
        f"/hop/Copy-{u}.png": (302, {"Location": f"/files/Copy-{u}.png"}, b""),
        f"/files/Copy-{u}.png": (200, {"Content-Type": "image/png"}, copy_bytes),
        f"/files/Local%20fetch-{u}.png": (200, {"Content-Type": "image/png"}, local_bytes)})
    copy_url = f"{files.base}/hop/Copy-{u}.png"
    local_url = f"{files.base}/files/Local%20fetch-{u}.png"
    ledger_path = tmp_path / "ledger.sqlite3"
    fetch_dir = tmp_path / "fetch-tmp"
    fetch_dir.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(fetch_dir))
    allow = [f"127.0.0.1:{files.port}"]

    [copied] = ingest_batch(sources=[copy_url], wiki=wiki.api_url, settings=BatchSettings.from_flat(
                   review_timeout_s=0, ledger_path=str(ledger_path), allow_hosts=allow))
    settings = BatchSettings.from_flat(allow_hosts=allow, url_mode="local",
                                       ledger_path=str(ledger_path), review_timeout_s=0)
    creds = MediaWikiCredentials(api_url=wiki.api_url, username=wiki.username,
                                 password=wiki.password)
    [fetched] = import_urls(urls=[local_url], credentials=creds, settings=settings)

    assert (copied["source"], copied["outcome"]) == (copy_url, "uploaded"), copied
    assert (fetched["source"], fetched["outcome"]) == (local_url, "uploaded"), fetched
    assert fetched["filename"].replace("_", " ") == f"Local fetch-{u}.png"  # %20 decoded
    for row, data in ((copied, copy_bytes), (fetched, local_bytes)):
        info = upload.file_info(session, row["filename"])
        assert info is not None and info["sha1"] == sha1_of(data) == row["sha1"]
    hop = [h for h in files.hits if h.path.startswith("/hop/")]
    assert [h.agent for h in hop] == ["mwingest"]  # the wiki never saw the redirecting URL
    final = [h.agent.split("/")[0] for h in files.hits if h.path == f"/files/Copy-{u}.png"]
    assert sorted(final) == ["MediaWiki", "mwingest"]  # our check, then the wiki's copy
    local_hits = [h.agent for h in files.hits if h.path.startswith("/files/Local")]
    assert local_hits == ["mwingest"]  # local mode: only mwingest downloaded it
    assert fetched["bytes_sent"] == len(local_bytes) and copied["bytes_sent"] == 0
    with Ledger(ledger_path) as ledger:
        entry = ledger.item(wiki.api_url, local_url)
    assert entry is not None and entry.state is State.UPLOADED
    assert entry.sha1 == sha1_of(local_bytes)  # the URL is the ledger's source, keyed by its bytes
    assert list(fetch_dir.glob("mwingest-fetch-*")) == []  # the temporary copy is gone


# --- paths: the CLI end to end -----------------------------------------------------------------------

@pytest.fixture
def cli_env(wiki: Any, tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """A CLI process's environment: bot password, own Prefect home and ledger, no allow-list."""
    home = tmp_path_factory.mktemp("hostile-cli")
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("PREFECT_", "MWINGEST_")) and k.lower() not in PROXY_VARS}
    env.update(MWINGEST_API_URL=wiki.api_url, MWINGEST_USERNAME=wiki.username,
               MWINGEST_PASSWORD=wiki.password, MWINGEST_LEDGER=str(home / "ledger.sqlite3"),
               PREFECT_HOME=str(home / "prefect"), XDG_DATA_HOME=str(home / "xdg"),
               MWINGEST_PREFECT="ephemeral",  # nothing left running after a function's test
               DO_NOT_TRACK="1", PREFECT_SERVER_ANALYTICS_ENABLED="false")
    return seed_env_homes(env)


def _refused_by_line(rows: list[dict[str, Any]], manifest: str = "rows.jsonl") -> dict[int, str]:
    """Reason by manifest line, for the rows refused while the manifest was read (their message
    names the line); URL rows are refused later, by the pipeline, and are looked up by source."""
    out = {}
    for row in rows:
        if row["outcome"] == "rejected" and f"{manifest} line " in (row["message"] or ""):
            out[int(row["message"].split(f"{manifest} line ")[1].split(":")[0])] = row["reason"]
    return out


@pytest.mark.wiki
def test_hostile_manifest_rows_are_refused_and_root_and_allow_host_widen_on_request(
        wiki, cli_env, canary, files, tmp_path, unique):
    session = session_for(wiki)
    u = unique()
    area, elsewhere = tmp_path / "area", tmp_path / "elsewhere"
    batch = area / "batch"
    (batch / "img").mkdir(parents=True)
    elsewhere.mkdir()
    good, good2 = batch / "img" / f"Hostile good {u}.png", batch / "img" / f"Hostile good2 {u}.png"
    outside = area / f"Hostile outside {u}.png"  # outside the manifest's folder, inside area
    outside_abs = area / f"Hostile outside abs {u}.png"
    secret = elsewhere / f"Hostile secret {u}.png"  # outside everything
    for path in (good, good2, outside, outside_abs, secret):
        path.write_bytes(png_bytes())
    (batch / "img" / f"link {u}.png").symlink_to(secret)
    (batch / "img" / "linkdir").symlink_to(elsewhere, target_is_directory=True)
    (batch / "img" / f"folder {u}.png").mkdir()
    fetched_bytes = png_bytes()
    files.routes[f"/Hostile fetched {u}.png".replace(" ", "%20")] = (200, {}, fetched_bytes)
    fetch_url = f"{files.base}/Hostile%20fetched%20{u}.png"
    canary_url = f"http://127.0.0.1:{canary.port}/Hostile canary {u}.png".replace(" ", "%20")
    rows = [
        {"source": f"img/{good.name}"},  # 1 lands
        {"source": f"../{outside.name}"},  # 2 escape; lands with --root area
        {"source": str(outside_abs)},  # 3 absolute outside; lands with --root area
        {"source": f"img/link {u}.png"},  # 4 symlink out of every root
        {"source": f"img/linkdir/{secret.name}"},  # 5 through a linked folder
        {"source": f"img/bad\x00{u}.png"},  # 6 NUL byte
        {"source": f"img/folder {u}.png"},  # 7 a directory given as a file
        {"source": f"img/{good2.name}"},  # 8 lands
        {"source": "file:///etc/passwd"},  # 9 another scheme
        {"source": canary_url},  # 10 loopback, never allowed
        {"source": fetch_url},  # 11 refused until allow-listed, then fetched locally
    ]
    manifest = batch / "rows.jsonl"
    manifest.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")

    strict = mwingest(cli_env, "import", str(manifest), "--json")
    widened = mwingest(cli_env, "import", str(manifest), "--json", "--root", str(area),
                       "--allow-host", f"127.0.0.1:{files.port}", "--fetch", "local")

    assert strict.returncode == 1, strict.stderr[-3000:]
    first = strict.rows()
    landed = {r["source"]: r for r in first if r["outcome"] == "uploaded"}
    assert set(landed) == {str(good), str(good2)}
    assert _refused_by_line(first) == {2: "unsafe-path", 3: "unsafe-path", 4: "unsafe-path",
                                       5: "unsafe-path", 6: "unsafe-path", 7: "unsafe-path",
                                       9: "unsafe-url"}
    url_rows = {r["source"]: (r["outcome"], r["reason"]) for r in first
                if r["source"] in (canary_url, fetch_url)}
    assert url_rows == {canary_url: ("rejected", "unsafe-url"),
                        fetch_url: ("rejected", "unsafe-url")}
    assert len(first) == len(rows)
    for path in (good, good2):
        info = upload.file_info(session, landed[str(path)]["filename"])
        assert info is not None and info["sha1"] == sha1_of(path)

    assert widened.returncode == 1, widened.stderr[-3000:]
    second = {r["source"]: r for r in widened.rows()}
    for path in (outside, outside_abs):
        row = second[str(path)]
        assert row["outcome"] == "uploaded", row
        assert upload.file_info(session, row["filename"])["sha1"] == sha1_of(path)
    assert (second[fetch_url]["outcome"], second[fetch_url]["sha1"]) == (
        "uploaded", sha1_of(fetched_bytes))
    assert {second[str(p)]["outcome"] for p in (good, good2)} == {"skipped"}
    assert _refused_by_line(list(second.values())) == {
        4: "unsafe-path", 5: "unsafe-path", 6: "unsafe-path", 7: "unsafe-path", 9: "unsafe-url"}
    assert (second[canary_url]["outcome"], second[canary_url]["reason"]) == (
        "rejected", "unsafe-url")

    assert canary.hits == []
    assert [h.agent for h in files.hits] == ["mwingest"]  # only the widened run's local fetch
    assert upload.file_info(session, f"Hostile fetched {u}.png")["sha1"] == sha1_of(fetched_bytes)
    assert upload.file_info(session, secret.name) is None
