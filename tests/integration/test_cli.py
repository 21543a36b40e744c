"""``mwingest`` end to end: the real command in a subprocess, the real wiki, ephemeral Prefect.

Every CLI call here is a fresh process with its own ephemeral Prefect server (5–20 s each), so the
checks are grouped into few invocations. Assertions are on what the wiki holds afterwards (SHA-1,
page text, tags, untouched neighbours), on the ledger, and on the exact JSON contract of
``--json`` (only JSON lines on stdout, exactly the documented keys), not on log wording.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from mwingest.dev.devwiki import free_port
from mwingest.ledger.ledger import Ledger, State
from mwingest.wiki import upload
from tests.integration.clihelpers import (
    PROXY_VARS,
    latest_upload_log_id,
    mwingest,
    same_name,
    sha1_of,
    upload_log,
)
from tests.integration.wikihelpers import (
    ensure_tag,
    page_text,
    png_bytes,
    png_of_size,
    session_for,
)
from tests.prefect_server import seed_env_homes

pytestmark = pytest.mark.wiki

TAG = "mwingest-cli-test"


@pytest.fixture(scope="module")
def cli_env(wiki: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """The environment of every CLI process: the wiki's bot password, one mwingest home (so one
    local Prefect server, started by the first command and reused by the others, stopped at the
    end), one ledger, no Prefect server URL, no telemetry, no proxies."""
    home = tmp_path_factory.mktemp("cli-home")
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("PREFECT_", "MWINGEST_")) and k.lower() not in PROXY_VARS}
    env.update(MWINGEST_API_URL=wiki.api_url, MWINGEST_USERNAME=wiki.username,
               MWINGEST_PASSWORD=wiki.password, MWINGEST_LEDGER=str(home / "ledger.sqlite3"),
               MWINGEST_HOME=str(home / "mwingest"), PREFECT_HOME=str(home / "prefect"),
               XDG_DATA_HOME=str(home / "xdg"), MWINGEST_SERVER_PORT=str(free_port()),
               DO_NOT_TRACK="1", PREFECT_SERVER_ANALYTICS_ENABLED="false")
    seed_env_homes(env)
    try:
        yield env
    finally:
        mwingest(env, "server", "stop")


@pytest.fixture(scope="module")
def tag(wiki: Any) -> str:
    ensure_tag(wiki, TAG)
    return TAG


# --- errors that must stop before anything starts ---------------------------------------------------

@pytest.mark.parametrize(("args", "override", "says"), [
    (["upload", "{file}", "--bogus"], {}, "--bogus"),
    (["upload", "{file}", "--on-warning", "exists=bogus"], {}, "skip|publish|rename|review|fail"),
    (["review", "1", "--decision", "maybe"], {}, "--decision"),
    (["upload", "{file}", "--wiki", "http://127.0.0.1:1/api.php"], {}, "wiki unreachable"),
    (["upload", "{file}", "--json"], {"MWINGEST_PASSWORD": "not-the-password-42"}, "login refused"),
], ids=["bad-flag", "bad-policy", "bad-decision", "unreachable", "wrong-password"])
def test_usage_and_connection_errors_exit_2_with_one_line(cli_env, tmp_path, args, override, says):
    file = tmp_path / "x.png"
    file.write_bytes(png_bytes())
    env = {**cli_env, **override}

    ran = mwingest(env, *[a.replace("{file}", str(file)) for a in args]).expect(2)

    assert ran.stdout == ""
    assert ran.stderr.count("\n") == 1 and ran.stderr.startswith("mwingest: "), ran.stderr
    assert says in ran.stderr
    assert "Traceback" not in ran.stderr
    assert "temporary server" not in ran.stderr  # stopped before Prefect started
    assert cli_env["MWINGEST_PASSWORD"] not in ran.stderr and "not-the-password-42" not in ran.stderr


# --- upload -----------------------------------------------------------------------------------------

def test_upload_json_with_text_comment_tags_chunks_and_rename(wiki, cli_env, tag, tmp_path, unique):
    session = session_for(wiki)
    u = unique()
    small = tmp_path / f"Cli small {u}.png"
    small.write_bytes(png_bytes())
    big = tmp_path / f"Cli big {u}.png"
    big.write_bytes(png_of_size(200_000))
    taken = tmp_path / f"Cli taken {u}.png"
    taken.write_bytes(png_bytes())
    upload.upload_bytes(session, png_bytes(), taken.name, comment="someone else's file")
    before = upload.file_info(session, taken.name, history=True)
    text = f"Page text from the CLI ({u})."

    ran = mwingest(cli_env, "upload", str(small), str(big), str(taken), "--text", text,
                   "--comment", f"cli comment {u}", "--tags", tag, "--chunk-size", "64KiB",
                   "--on-warning", "exists=rename", "--json").expect(0)

    rows = {Path(r["source"]).name: r for r in ran.rows()}
    assert set(rows) == {small.name, big.name, taken.name}
    for path in (small, big, taken):
        row = rows[path.name]
        assert row["outcome"] == "uploaded", row
        assert (row["sha1"], row["size"], row["filekey"]) == (sha1_of(path), path.stat().st_size, None)
        info = upload.file_info(session, row["filename"])
        assert info is not None and info["sha1"] == sha1_of(path)
        assert row["url"] == info["descriptionurl"]
        assert page_text(session, f"File:{row['filename']}") == text
    assert same_name(rows[small.name]["filename"], small.name)
    log = upload_log(session, small.name)
    assert tag in log["tags"] and log["comment"] == f"cli comment {u}"
    # exists=rename: ours landed under a new name, the other file was not touched.
    assert rows[taken.name]["reason"] == "decided-rename"
    assert not same_name(rows[taken.name]["filename"], taken.name)
    after = upload.file_info(session, taken.name, history=True)
    assert after["sha1"] == before["sha1"] and len(after["versions"]) == 1
    # --chunk-size went through: the big file went up in 64 KiB chunks.
    with Ledger(cli_env["MWINGEST_LEDGER"]) as ledger:
        entry = ledger.item(wiki.api_url, big)
    assert entry is not None and entry.state is State.UPLOADED and entry.chunk_size == 64 * 1024


@pytest.fixture
def file_server() -> Iterator[SimpleNamespace]:
    """A loopback HTTP server (outside 8000–8999) that serves one PNG for any path."""
    served = SimpleNamespace(data=png_bytes(), hits=[])

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - http.server's naming
            served.hits.append(self.path)
            self.send_response(200)
            self.send_header("Content-Type", "image/png")
            self.send_header("Content-Length", str(len(served.data)))
            self.end_headers()
            self.wfile.write(served.data)

        def log_message(self, *args: Any) -> None:
            """Quiet."""

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    assert server.server_address[1] not in range(8000, 9000)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    served.base = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        yield served
    finally:
        server.shutdown()
        server.server_close()


def test_upload_url_with_filename(wiki, cli_env, file_server, unique):
    session = session_for(wiki)
    u = unique()
    url = f"{file_server.base}/export?item={u}"  # no file name in the URL: --filename gives it
    name = f"Cli fetched {u}.png"

    host = file_server.base.split("://", 1)[1]  # 127.0.0.1:PORT: loopback needs allow-listing
    ran = mwingest(cli_env, "upload", url, "--filename", name, "--text", f"From a URL {u}",
                   "--allow-host", host, "--json").expect(0)

    [row] = ran.rows()
    assert (row["source"], row["outcome"]) == (url, "uploaded")
    assert same_name(row["filename"], name)
    # Our redirect check (headers only), then the wiki's copy upload.
    assert file_server.hits == [f"/export?item={u}"] * 2
    info = upload.file_info(session, name)
    assert info is not None and info["sha1"] == sha1_of(file_server.data) == row["sha1"]
    assert page_text(session, f"File:{name}") == f"From a URL {u}"


# --- import: manifests with good and bad rows ---------------------------------------------------

TEMPLATE = "== {title} ==\nPhotographed by {author}.\n[[Category:CLI imports]]\n"


@pytest.fixture(scope="module")
def csv_import(wiki, cli_env, tag, tmp_path_factory) -> SimpleNamespace:
    """One CSV import with good rows, bad rows and one name clash (left needs-review)."""
    session = session_for(wiki)
    u = os.urandom(3).hex()
    root = tmp_path_factory.mktemp("csv-import")
    batch = root / "batch"
    (batch / "img").mkdir(parents=True)
    files = {key: batch / "img" / f"{key} {u}.png" for key in ("one", "two", "clash", "three")}
    for path in files.values():
        path.write_bytes(png_bytes())
    (root / f"outside {u}.png").write_bytes(png_bytes())
    clash_name = f"Cli clash {u}.png"
    upload.upload_bytes(session, png_bytes(), clash_name, comment="already there")
    template = root / "page.txt"
    template.write_text(TEMPLATE, encoding="utf-8")
    manifest = batch / "manifest.csv"
    manifest.write_text(
        "source,filename,title,author,tags\n"
        f"img/one {u}.png,Cli csv one {u}.png,Harbour,Ann Lee,{tag}\n"  # 2: uploaded, tagged
        f"img/two {u}.png,,Quay,Bo,\n"  # 3: uploaded under its own name
        f",Cli orphan {u}.png,X,Y,\n"  # 4: no source
        f"img/missing {u}.png,,X,Y,\n"  # 5: not there
        f"../outside {u}.png,,X,Y,\n"  # 6: escapes the manifest's folder
        f"img/clash {u}.png,{clash_name},Clash,Cy,\n"  # 7: name taken → needs-review
        f"img/three {u}.png,,X,Y,,surplus\n",  # 8: more fields than the header
        encoding="utf-8")
    clash_before = upload.file_info(session, clash_name, history=True)
    ran = mwingest(cli_env, "import", str(manifest), "--text-template", str(template),
                   "--comment", f"csv import {u}", "--json")
    return SimpleNamespace(ran=ran, files=files, manifest=manifest, clash_name=clash_name,
                           clash_before=clash_before, u=u)


def _rejected_by_line(rows: list[dict[str, Any]], manifest_name: str) -> dict[int, dict[str, Any]]:
    out = {}
    for row in rows:
        if row["outcome"] == "rejected":
            line = int(row["message"].split(f"{manifest_name} line ")[1].split(":")[0])
            out[line] = row
    return out


def test_import_csv_lands_good_rows_and_rejects_bad_ones_by_line(wiki, csv_import, tag):
    session = session_for(wiki)
    ran, files, u = csv_import.ran.expect(1), csv_import.files, csv_import.u
    rows = ran.rows()
    by_source = {r["source"]: r for r in rows}
    assert len(rows) == 7

    one, two = by_source[str(files["one"])], by_source[str(files["two"])]
    assert (one["outcome"], two["outcome"]) == ("uploaded", "uploaded")
    assert same_name(one["filename"], f"Cli csv one {u}.png")
    assert same_name(two["filename"], f"Two {u}.png")  # the wiki capitalises the first letter
    for row, title, author in ((one, "Harbour", "Ann Lee"), (two, "Quay", "Bo")):
        assert upload.file_info(session, row["filename"])["sha1"] == row["sha1"]
        expected = TEMPLATE.format(title=title, author=author)
        assert page_text(session, f"File:{row['filename']}") == expected.rstrip()
    assert tag in upload_log(session, one["filename"])["tags"]
    assert upload_log(session, two["filename"])["comment"] == f"csv import {u}"

    rejected = _rejected_by_line(rows, "manifest.csv")
    assert {line: row["reason"] for line, row in rejected.items()} == {
        4: "bad-manifest-row", 5: "not-found", 6: "unsafe-path", 8: "bad-manifest-row"}
    assert upload.file_info(session, f"Cli orphan {u}.png") is None
    assert upload.file_info(session, f"Outside {u}.png") is None

    clash = by_source[str(files["clash"])]
    assert (clash["outcome"], clash["reason"]) == ("needs-review", "exists")
    assert clash["filekey"] and clash["url"] is None
    after = upload.file_info(session, csv_import.clash_name, history=True)
    assert after["sha1"] == csv_import.clash_before["sha1"] and len(after["versions"]) == 1


def test_import_jsonl_with_template_and_bad_lines(wiki, cli_env, tag, tmp_path, unique):
    session = session_for(wiki)
    u = unique()
    (tmp_path / "pics").mkdir()
    good = tmp_path / "pics" / f"j {u}.png"
    good.write_bytes(png_bytes())
    template = tmp_path / "page.txt"
    template.write_text("{title} ({year})", encoding="utf-8")
    manifest = tmp_path / "pics" / "rows.jsonl"
    manifest.write_text(
        json.dumps({"source": good.name, "filename": f"Cli jsonl {u}.png", "title": "Pier",
                    "year": 1911, "tags": [tag]}) + "\n"  # 1
        + "{not json\n"  # 2
        + "[1, 2]\n"  # 3
        + json.dumps({"filename": "No source.png"}) + "\n"  # 4
        + json.dumps({"source": "../../../etc/hostname"}) + "\n"  # 5
        + json.dumps({"source": good.name, "filename": f"Cli nodate {u}.png", "title": "X"}) + "\n",
        encoding="utf-8")

    ran = mwingest(cli_env, "import", str(manifest), "--text-template", str(template),
                   "--json").expect(1)

    rows = ran.rows()
    [landed] = [r for r in rows if r["outcome"] == "uploaded"]
    assert same_name(landed["filename"], f"Cli jsonl {u}.png") and landed["sha1"] == sha1_of(good)
    assert page_text(session, f"File:{landed['filename']}") == "Pier (1911)"
    assert tag in upload_log(session, landed["filename"])["tags"]
    rejected = _rejected_by_line(rows, "rows.jsonl")
    assert {line: row["reason"] for line, row in rejected.items()} == {
        2: "bad-manifest-row", 3: "bad-manifest-row", 4: "bad-manifest-row", 5: "unsafe-path",
        6: "template-field-missing"}
    assert "year" in rejected[6]["message"]
    assert upload.file_info(session, f"Cli nodate {u}.png") is None


# --- status and review --------------------------------------------------------------------------

def test_status_then_review_rename_resolves_the_waiting_item(wiki, cli_env, csv_import, unique):
    session = session_for(wiki)
    clash_file = csv_import.files["clash"]
    [waiting_row] = [r for r in csv_import.ran.rows() if r["outcome"] == "needs-review"]

    listed = mwingest(cli_env, "status", "--json").expect(0)
    status_rows = [json.loads(line) for line in listed.stdout.splitlines()]
    [item] = [r for r in status_rows if r["source"] == str(clash_file)]
    assert (item["state"], item["reason"], item["filekey"]) == (
        "needs-review", "exists", waiting_row["filekey"])
    text = mwingest(cli_env, "status").expect(0).stdout
    assert f"{item['ref']}  needs-review" in text and "mwingest review" in text

    new_name = f"Cli resolved {unique()}.png"  # by the reference that means the same on any machine
    ran = mwingest(cli_env, "review", item["ref"], "--decision", "rename", "--filename",
                   new_name, "--json").expect(0)

    [row] = ran.rows()
    assert (row["outcome"], row["source"]) == ("uploaded", str(clash_file))
    assert same_name(row["filename"], new_name)
    info = upload.file_info(session, new_name)
    assert info is not None and info["sha1"] == sha1_of(clash_file)
    old = upload.file_info(session, csv_import.clash_name, history=True)
    assert old["sha1"] == csv_import.clash_before["sha1"] and len(old["versions"]) == 1
    with Ledger(cli_env["MWINGEST_LEDGER"]) as ledger:
        entry = ledger.get(item["id"])
    assert entry.state is State.UPLOADED and same_name(entry.final_name, new_name)
    again = mwingest(cli_env, "review", str(item["id"]), "--decision", "skip").expect(2)
    assert "not needs-review" in again.stderr


# --- check: validation only ---------------------------------------------------------------------

def test_check_folder_sends_no_bytes(wiki, cli_env, tmp_path, unique):
    session = session_for(wiki)
    u = unique()
    folder = tmp_path / "check"
    folder.mkdir()
    good = folder / f"Check good {u}.png"
    good.write_bytes(png_bytes())
    (folder / f"Check empty {u}.png").write_bytes(b"")
    (folder / f"Check page {u}.jpg").write_bytes(b"<html><body><script>alert(1)</script></body></html>")
    (folder / f"Check note {u}.txt").write_text("not a media file", encoding="utf-8")
    dup_bytes = png_bytes()
    upload.upload_bytes(session, dup_bytes, f"Check original {u}.png")
    (folder / f"Check dup {u}.png").write_bytes(dup_bytes)
    last_upload = latest_upload_log_id(session)

    ran = mwingest(cli_env, "check", str(folder), "--json").expect(1)
    table = mwingest(cli_env, "check", str(folder)).expect(1)

    got = {Path(r["source"]).name: (r["outcome"], r["reason"]) for r in ran.rows()}
    assert got == {
        good.name: ("ok", None),
        f"Check empty {u}.png": ("rejected", "empty-file"),
        f"Check page {u}.jpg": ("rejected", "script-content"),
        f"Check note {u}.txt": ("rejected", "filetype-not-allowed"),
        f"Check dup {u}.png": ("ok", "duplicate-on-wiki"),
    }
    assert "temporary server" not in ran.stderr  # no Prefect run for a check
    assert latest_upload_log_id(session) == last_upload  # nothing was uploaded
    assert upload.file_info(session, good.name) is None
    assert "empty-file" in table.stdout and "rejected" in table.stdout


# --- the demo (the Python API: test_python_api.py) ------------------------------------------

@pytest.mark.slow
def test_demo_command_finishes_as_expected(cli_env):
    env = {k: v for k, v in cli_env.items() if not k.startswith("MWINGEST_")}
    env["MWINGEST_LEDGER"] = str(Path(cli_env["MWINGEST_LEDGER"]).with_name("demo-dir") / "l.sqlite3")
    for kept in ("MWINGEST_HOME", "MWINGEST_SERVER_PORT"):  # the module's server, stopped at its end
        env[kept] = cli_env[kept]

    ran = mwingest(env, "demo").expect(0)

    assert "demo finished as expected" in ran.stdout
    assert "local Prefect server's UI at http://127.0.0.1:" in ran.stdout
