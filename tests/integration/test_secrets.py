"""Canary secrets: a full import at DEBUG, with failures during login and during chunk uploads,
leaves no trace of the password or the session cookie anywhere it writes.

Three imports run as separate processes, the way a data team runs them, each against the real wiki
through ``tests/faultproxy.py`` and a real ``prefect server`` whose ``PREFECT_HOME`` (SQLite database
included) is a temp dir of this module:

1. a wrong password (itself a secret, with characters that URL-encoding and JSON change): the run
   fails with a login error;
2. the right password, but the proxy loses the wiki's answer to the login POST (the wiki logged us
   in; we never hear it): the run fails;
3. the right password; the proxy loses the answer to one file's chunk 2 (retried, lands) and answers
   ``permissiondenied`` to another file's chunk 2 (a scripted answer: a real wiki cannot be made to
   refuse one chunk mid-session on demand): the run completes with one failed file.

Every process logs at DEBUG (root, ``mwingest``, ``urllib3``; Prefect's own loggers through
``PREFECT_LOGGING_LEVEL``), and ``mwingest``/``urllib3`` records also go to the Prefect API. Then we
search stdout, stderr, every file under the temp dir (ledger and its WAL, the Prefect home and its
database, read as bytes), every row of both SQLite databases, and the flow runs, task runs, logs and
artifacts read back through the Prefect client, for the raw, URL-encoded, JSON-escaped and base64
forms of both passwords, of every session cookie value and of every CSRF token the proxy saw.
"""

from __future__ import annotations

import base64
import gzip
import json
import os
import re
import sqlite3
import stat
import subprocess
import sys
import uuid
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote, quote_plus

import pytest

from mwingest.wiki import upload
from tests.faultproxy import FaultProxy, RequestHead, chunk_posts
from tests.integration.wikihelpers import png_of_size, session_for
from tests.prefect_server import PrefectServer, start_server, stop_group

pytestmark = pytest.mark.wiki

REPO = Path(__file__).resolve().parents[2]
CHUNK = 64 * 1024
#: Wrong, but shaped to make every encoding differ from the raw text.
_SECRET_NAME = re.compile(r"pass|token|cookie|secret|auth", re.IGNORECASE)
WRONG_PASSWORD = "canary Wr0ng/pässwörd+&=%?#\"x"  # noqa: S105 - a deliberately wrong test value

_CHILD = r"""
import json, logging, sys, traceback

config = json.loads(open(sys.argv[1], encoding="utf-8").read())
from flows.ingest import ingest_batch  # imports Prefect, which configures logging

for name in ("", "mwingest", "urllib3"):
    logging.getLogger(name).setLevel(logging.DEBUG)
state = ingest_batch(sources=config["sources"], wiki=config["wiki"], return_state=True,
                     settings={"concurrency": 1, "chunk_size_mb": config["chunk_size_mb"],
                               "review_timeout_s": 0, "ledger_path": config["ledger"],
                               "retry_budget_s": config.get("retry_budget_s", 150)})
summary = {"flow_run_id": str(state.state_details.flow_run_id), "state": state.type.value}
try:
    summary["outcomes"] = state.result()
except Exception as exc:
    summary["error"] = f"{type(exc).__name__}: {exc}"
    traceback.print_exception(exc)  # a traceback on stderr must be clean too
print("RESULT " + json.dumps(summary), flush=True)
"""


@dataclass
class Run:
    """One import process: what it printed and what it reported."""

    label: str
    stdout: bytes
    stderr: bytes
    result: dict[str, Any]


@dataclass
class Imports:
    """Everything the three imports left behind, and the secrets to look for."""

    root: Path
    server: PrefectServer
    ledger: Path
    files: dict[str, Path]
    runs: dict[str, Run] = field(default_factory=dict)
    cookies: dict[str, set[str]] = field(default_factory=dict)
    tokens: set[str] = field(default_factory=set)
    faulted: dict[str, int] = field(default_factory=dict)
    readback: dict[str, Any] = field(default_factory=dict)


# --- needles ------------------------------------------------------------------------------------------

def _b64_cores(raw: bytes) -> set[str]:
    """What any base64 text containing ``raw`` must contain, whatever its alignment in the input."""
    cores = set()
    for pad in range(3):
        for encode in (base64.b64encode, base64.urlsafe_b64encode):
            text = encode(b"\0" * pad + raw).decode()
            cores.add(text[(0, 2, 3)[pad]:((pad + len(raw)) * 8) // 6])
    return cores


def needles(secret: str, label: str) -> dict[bytes, str]:
    """The spellings ``secret`` could take in a log, a URL, a JSON document or a header."""
    forms = {"raw": secret, "quote": quote(secret, safe=""), "quote/": quote(secret),
             "quote_plus": quote_plus(secret, safe=""), "json": json.dumps(secret)[1:-1],
             "json-utf8": json.dumps(secret, ensure_ascii=False)[1:-1]}
    spellings = [(text.encode(), how) for how, text in forms.items()]
    spellings += [(text.lower().encode(), f"{how}, lower-case escapes")
                  for how, text in forms.items() if "%" in text]
    for how, raw in (("utf-8", secret.encode()), ("latin-1", secret.encode("latin-1", "ignore"))):
        spellings += [(core.encode(), f"base64 of {how}") for core in sorted(_b64_cores(raw))]
    found: dict[bytes, str] = {}
    for needle, how in spellings:  # a form equal to an earlier one keeps the earlier name
        found.setdefault(needle, f"{label} ({how})")
    assert all(len(n) >= 12 for n in found), "too short to search without false hits"
    return found


def hits(haystack: bytes, wanted: dict[bytes, str]) -> list[str]:
    return sorted({label for needle, label in wanted.items() if needle in haystack})


def _expand(blob: bytes) -> list[bytes]:
    """The blob, plus its inflated form when it is gzip or zlib data (Prefect may compress)."""
    out = [blob]
    for inflate in (gzip.decompress, zlib.decompress):
        try:
            out.append(inflate(blob))
        except (OSError, zlib.error, EOFError):
            continue
    return out


def sqlite_rows(path: Path) -> Iterator[tuple[str, bytes]]:
    """Every value of every row of every table, as bytes, labelled ``table.column``."""
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        tables = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")]
        for table in tables:
            cursor = conn.execute(f'SELECT * FROM "{table}"')  # noqa: S608 - names from the schema
            columns = [d[0] for d in cursor.description]
            for row in cursor:
                for column, value in zip(columns, row, strict=True):
                    if value is None:
                        continue
                    blob = value if isinstance(value, bytes) else str(value).encode()
                    for form in _expand(blob):
                        yield f"{table}.{column}", form
    finally:
        conn.close()


# --- the imports ----------------------------------------------------------------------------------------

def _child_env(server: PrefectServer, root: Path, api_url: str, username: str,
               password: str) -> dict[str, str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "MWINGEST_"))}
    return {
        **base, **server.env,
        "PYTHONPATH": str(REPO),
        "XDG_DATA_HOME": str(root / "xdg"),
        "PREFECT_LOGGING_LEVEL": "DEBUG",
        "PREFECT_LOGGING_EXTRA_LOGGERS": "mwingest,urllib3",
        "PREFECT_LOGGING_TO_API_WHEN_MISSING_FLOW": "ignore",
        "MWINGEST_API_URL": api_url,
        "MWINGEST_USERNAME": username,
        "MWINGEST_PASSWORD": password,
    }


def _run_import(imports: Imports, label: str, proxy: FaultProxy, api_url: str, username: str,
                password: str, **settings: Any) -> Run:
    config = imports.root / f"{label}.json"
    config.write_text(json.dumps({
        "sources": [str(imports.files["folder"])], "wiki": proxy.url_for(api_url),
        "chunk_size_mb": CHUNK / (1024 * 1024), "ledger": str(imports.ledger), **settings}))
    done = subprocess.run([sys.executable, "-c", _CHILD, str(config)], cwd=REPO, capture_output=True,
                          env=_child_env(imports.server, imports.root, proxy.url_for(api_url),
                                         username, password), timeout=600, check=False)
    outputs = imports.root / "outputs"  # kept for a post-mortem, and scanned like every file
    outputs.mkdir(exist_ok=True)
    (outputs / f"{label}.stdout").write_bytes(done.stdout)
    (outputs / f"{label}.stderr").write_bytes(done.stderr)
    lines = [ln for ln in done.stdout.decode(errors="replace").splitlines() if ln.startswith("RESULT ")]
    assert done.returncode == 0 and lines, (done.returncode, done.stderr[-4000:].decode(errors="replace"))
    return Run(label, done.stdout, done.stderr, json.loads(lines[-1].removeprefix("RESULT ")))


def _first_chunk2_per_file() -> Any:
    """Match chunk 2 of each file, once: its resend after a lost answer must pass."""
    seen: set[str] = set()

    def match(head: RequestHead) -> bool:
        if not chunk_posts(head) or head.param("offset") != str(CHUNK):
            return False
        name = head.param("filename") or ""
        if name in seen:
            return False
        seen.add(name)
        return True

    return match


def _is_login_post(head: RequestHead) -> bool:
    return head.method == "POST" and head.param("action") == "login"


def _read_back(server: PrefectServer, flow_run_ids: list[str]) -> dict[str, Any]:
    """Flow runs, task runs, logs and artifacts of the imports, through the Prefect client."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import (
        ArtifactFilter,
        ArtifactFilterFlowRunId,
        FlowRunFilter,
        FlowRunFilterId,
        LogFilter,
        LogFilterFlowRunId,
    )
    from prefect.settings import PREFECT_API_URL, temporary_settings

    ids = [uuid.UUID(i) for i in flow_run_ids]
    out: dict[str, Any] = {"flow_runs": [], "task_runs": [], "logs": [], "artifacts": []}
    with temporary_settings(updates={PREFECT_API_URL: server.api_url}), \
            get_client(sync_client=True) as client:
        for run_id in ids:
            out["flow_runs"].append(client.read_flow_run(run_id).model_dump(mode="json"))
        runs = FlowRunFilter(id=FlowRunFilterId(any_=ids))
        out["task_runs"] = [t.model_dump(mode="json") for t in client.read_task_runs(flow_run_filter=runs)]
        out["artifacts"] = [a.model_dump(mode="json") for a in client.read_artifacts(
            artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=ids)))]
        offset = 0
        while batch := client.read_logs(log_filter=LogFilter(flow_run_id=LogFilterFlowRunId(any_=ids)),
                                        limit=200, offset=offset):
            out["logs"] += [log.model_dump(mode="json") for log in batch]
            offset += len(batch)
    return out


@pytest.fixture(scope="module")
def imports(wiki, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Imports]:
    root = tmp_path_factory.mktemp("secrets")
    folder = root / "batch"
    folder.mkdir()
    token = os.urandom(3).hex()
    files = {"folder": folder}
    for key, name, size in (("lost", f"1 Lost answer {token}.png", 300_000),
                            ("refused", f"2 Refused chunk {token}.png", 300_000),
                            ("small", f"3 Small {token}.png", 2_000)):
        files[key] = folder / name
        files[key].write_bytes(png_of_size(size))
    server = start_server(root / "prefect-home")
    result = Imports(root=root, server=server, ledger=root / "ledger" / "ledger.sqlite3", files=files)
    try:
        with FaultProxy(wiki.api_url) as proxy:
            result.runs["wrong-password"] = _run_import(result, "wrong-password", proxy, wiki.api_url,
                                                        wiki.username, WRONG_PASSWORD)
            # Every login answer lost, with a short retry budget: the run must end failed (a
            # single lost login is ridden out, see test_flow_faults) with the error in its state.
            proxy.fail_rate(1.0, ("drop_after",), match=_is_login_post)
            result.runs["lost-login"] = _run_import(result, "lost-login", proxy, wiki.api_url,
                                                    wiki.username, wiki.password,
                                                    retry_budget_s=3)
            lost_logins = proxy.stats.faulted["drop_after"]
            proxy.fail_script({1: "drop_after", 2: "permission_denied"}, match=_first_chunk2_per_file())
            result.runs["chunk-faults"] = _run_import(result, "chunk-faults", proxy, wiki.api_url,
                                                      wiki.username, wiki.password)
            result.cookies, result.tokens = proxy.stats.cookies, proxy.stats.tokens
            result.faulted = dict(proxy.stats.faulted)
            result.faulted["drop_after"] -= lost_logins - 1  # count the lost logins as one
        result.readback = _read_back(server, [r.result["flow_run_id"] for r in result.runs.values()])
    finally:
        assert server.process is not None
        stop_group(server.process)  # quiesce the database before it is read as bytes
    yield result


@pytest.fixture(scope="module")
def secrets_to_find(wiki, imports: Imports) -> dict[bytes, str]:
    wanted = needles(wiki.password, "password") | needles(WRONG_PASSWORD, "wrong password")
    sessions = {name: values for name, values in imports.cookies.items()
                if name.lower().endswith(("_session", "token"))}
    assert sessions, f"the proxy saw no session cookie (saw {sorted(imports.cookies)})"
    for name, values in sessions.items():
        for value in values:
            if value != "deleted":
                wanted |= needles(value, f"cookie {name}")
    assert imports.tokens, "the proxy saw no CSRF token"
    for csrf in imports.tokens:
        wanted |= needles(csrf.removesuffix("+\\"), "CSRF token")
    return wanted


# --- the runs did what the test needs ------------------------------------------------------------------

def test_the_three_imports_failed_and_succeeded_as_planned(wiki, imports: Imports) -> None:
    wrong, lost, good = (imports.runs[k].result for k in ("wrong-password", "lost-login", "chunk-faults"))
    assert wrong["state"] == "FAILED" and wrong["error"].startswith("LoginError"), wrong
    assert lost["state"] == "FAILED" and lost["error"].startswith("ResponseLostError"), lost
    assert good["state"] == "COMPLETED", good
    by_name = {Path(o["source"]).name: o for o in good["outcomes"]}
    files = imports.files
    assert (by_name[files["refused"].name]["outcome"], by_name[files["refused"].name]["reason"]) == (
        "failed", "permissiondenied")
    session = session_for(wiki)
    for key in ("lost", "small"):
        outcome = by_name[files[key].name]
        assert outcome["outcome"] == "uploaded", outcome
        info = upload.file_info(session, outcome["filename"])
        assert info is not None and info["sha1"] == outcome["sha1"]
    assert imports.faulted == {"drop_after": 2, "permission_denied": 1}


def test_debug_logging_really_was_on(imports: Imports) -> None:
    """Positive control: the login request and the uploads were logged at DEBUG, to stderr and to
    Prefect's database, so a clean search below means something."""
    for run in imports.runs.values():
        assert b"lgpassword=***" in run.stderr, run.label
    assert b"DEBUG" in imports.runs["chunk-faults"].stderr
    api_logs = " ".join(log["message"] for log in imports.readback["logs"])
    assert "lgpassword=***" in api_logs and "POST upload" in api_logs


def test_the_search_would_find_them(wiki, secrets_to_find: dict[bytes, str]) -> None:
    """Positive control for the search itself: each encoding is recognised."""
    secret = WRONG_PASSWORD
    samples = [secret.encode(), quote(secret, safe="").encode(), quote_plus(secret).encode(),
               json.dumps({"p": secret}).encode(), base64.b64encode(b"user:" + secret.encode()),
               f"Cookie: x={wiki.password}".encode()]
    for sample in samples:
        assert hits(b"..." + sample + b"...", secrets_to_find), sample


# --- zero hits ----------------------------------------------------------------------------------------------

def test_stdout_and_stderr_hold_no_secret(imports: Imports, secrets_to_find: dict[bytes, str]) -> None:
    found = {f"{run.label} {stream}": hits(data, secrets_to_find)
             for run in imports.runs.values()
             for stream, data in (("stdout", run.stdout), ("stderr", run.stderr))}
    assert {k: v for k, v in found.items() if v} == {}


def test_no_file_written_holds_a_secret(imports: Imports, secrets_to_find: dict[bytes, str]) -> None:
    """Ledger and its WAL, the Prefect home (database, server log, results), anything else."""
    scanned = []
    found = {}
    for path in sorted(p for p in imports.root.rglob("*") if p.is_file()):
        scanned.append(path.relative_to(imports.root).as_posix())
        for blob in _expand(path.read_bytes()):
            if labels := hits(blob, secrets_to_find):
                found[scanned[-1]] = labels
    assert "prefect-home/prefect.db" in scanned and "ledger/ledger.sqlite3" in scanned, scanned
    assert found == {}


def test_no_database_row_holds_a_secret(imports: Imports, secrets_to_find: dict[bytes, str]) -> None:
    databases = [imports.server.home / "prefect.db", imports.ledger]
    found: dict[str, list[str]] = {}
    rows = 0
    for database in databases:
        for where, blob in sqlite_rows(database):
            rows += 1
            if labels := hits(blob, secrets_to_find):
                found.setdefault(f"{database.name}:{where}", []).extend(labels)
    assert rows > 100
    assert found == {}


def test_prefect_records_hold_no_secret(imports: Imports, secrets_to_find: dict[bytes, str]) -> None:
    """Flow run parameters, task runs, logs and artifacts, as the Prefect client returns them."""
    readback = imports.readback
    assert {a["key"] for a in readback["artifacts"]} >= {"ingest-outcomes", "ingest-summary"}
    for flow_run in readback["flow_runs"]:
        params = flow_run["parameters"]
        assert params["sources"] and not [k for k in params if _SECRET_NAME.search(k)], params
        assert not hits(json.dumps(params).encode(), secrets_to_find), params
    found = {kind: set(hits(json.dumps(records, ensure_ascii=False).encode(), secrets_to_find))
             | set(hits(json.dumps(records).encode(), secrets_to_find))
             for kind, records in readback.items()}
    assert {k: v for k, v in found.items() if v} == {}


def test_the_ledger_is_private(imports: Imports) -> None:
    for path in imports.ledger.parent.iterdir():
        if path.name.startswith(imports.ledger.name):
            assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
    assert stat.S_IMODE(imports.ledger.stat().st_mode) == 0o600
