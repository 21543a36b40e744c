"""The crash-point matrix: a run killed (``kill -9``) right after the wiki acted on each kind of
write is finished by the same command again — one revision, SHA-1 verified, at most one chunk sent
again.

A child process runs the real batch flow through ``tests/faultproxy.py``. The proxy forwards the
chosen request, lets the real wiki act and answer, then kills the child's process group before the
answer reaches it: exactly "the wiki did it, the run never knew". The same command then runs again
(without faults) and must finish the file from what the ledger recorded and what the wiki holds.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
from collections.abc import Callable
from pathlib import Path

import pytest

from mwingest.ledger.ledger import Ledger
from mwingest.wiki import upload
from tests.faultproxy import FaultProxy, RequestHead, chunk_posts, file_posts, publish_posts
from tests.integration.wikihelpers import png_of_size, session_for

pytestmark = [pytest.mark.wiki, pytest.mark.slow]

CHUNK = 64 * 1024
CHILD = textwrap.dedent("""
    import json, sys
    from flows.ingest import ingest_batch
    out = ingest_batch(sources=[sys.argv[1]], settings={
        "chunk_size_mb": float(sys.argv[2]), "review_timeout_s": 0, "ledger_path": sys.argv[3],
        "on_warning": json.loads(sys.argv[4]), "async_assembly": sys.argv[5] == "1"})
    print("OUTCOMES " + json.dumps(out))
""")
#: crash point → (file size, proxy match, nth matching request, policy, a file already there)
POINTS: dict[str, tuple[int, Callable[[RequestHead], bool], int, dict[str, str], bool]] = {
    "first chunk": (3 * CHUNK - 5000, chunk_posts, 1, {}, False),
    "middle chunk": (3 * CHUNK - 5000, chunk_posts, 2, {}, False),
    "final chunk": (3 * CHUNK - 5000, chunk_posts, 3, {}, False),
    "final chunk, async assembly": (3 * CHUNK - 5000, chunk_posts, 3, {}, False),
    "publish": (3 * CHUNK - 5000, publish_posts, 1, {}, False),
    "direct upload": (20_000, file_posts, 1, {}, False),
    "publish under a new name": (20_000, publish_posts, 1, {"exists": "rename"}, True),
    "a decision (new version)": (20_000, publish_posts, 1, {"exists": "publish"}, True),
}


def _env(api_url: str, wiki, tmp_path: Path) -> dict[str, str]:
    from prefect.settings import PREFECT_API_URL

    return {**os.environ, "MWINGEST_API_URL": api_url, "MWINGEST_USERNAME": wiki.username,
            "MWINGEST_PASSWORD": wiki.password, "PREFECT_HOME": str(tmp_path / "prefect-child"),
            "PREFECT_API_URL": str(PREFECT_API_URL.value()), "DO_NOT_TRACK": "1",
            "PREFECT_SERVER_ANALYTICS_ENABLED": "false"}


def _command(path: Path, ledger: Path, policy: dict[str, str], async_: bool) -> list[str]:
    return [sys.executable, "-c", CHILD, str(path), str(CHUNK / 1024 / 1024), str(ledger),
            json.dumps(policy), "1" if async_ else "0"]


def _job_runner(wiki, stop: threading.Event) -> None:
    """The wiki's job runner for async assembly (``runJobs.php``), every second until stopped."""
    while not stop.wait(1.0):
        wiki.run_maintenance("runJobs.php", "--type", "AssembleUploadChunks")


@pytest.mark.parametrize("point", list(POINTS))
def test_a_run_killed_after_the_wiki_acted_is_finished_by_the_same_command(
        point, wiki, prefect_harness, tmp_path, unique):
    size, match, nth, policy, clash = POINTS[point]
    async_ = "async" in point
    if async_ and not hasattr(wiki, "run_maintenance"):
        pytest.skip("async assembly needs the throwaway wiki's job runner")
    path = tmp_path / f"Crash {unique()}.png"
    path.write_bytes(png_of_size(size))
    sha1 = hashlib.sha1(path.read_bytes()).hexdigest()  # noqa: S324
    session = session_for(wiki)
    if clash:  # someone else's file under our name: the publish warns `exists`
        upload.upload_bytes(session, png_of_size(size + 7), path.name, ignorewarnings=True)
    ledger = tmp_path / "ledger.sqlite3"
    root = Path(__file__).resolve().parents[2]
    with FaultProxy(wiki.api_url) as proxy:
        env = _env(proxy.url_for(wiki.api_url), wiki, tmp_path)
        child = subprocess.Popen(_command(path, ledger, policy, async_), env=env, cwd=root,
                                 stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                 start_new_session=True)
        proxy.on_drop = lambda _head: os.killpg(child.pid, signal.SIGKILL)
        proxy.fail_nth(nth, "drop_after", match=match)
        out, _ = child.communicate(timeout=300)
        assert child.returncode == -signal.SIGKILL, out.decode()[-3000:]
        proxy.on_drop = None
        proxy.clear()
        bytes_before = proxy.stats.bytes_forwarded
        stop = threading.Event()
        runner = threading.Thread(target=_job_runner, args=(wiki, stop), daemon=True)
        if async_:  # the assembly job was queued by the killed run; a job runner comes by later
            runner.start()
        try:
            again = subprocess.run(_command(path, ledger, policy, async_), env=env, cwd=root,
                                   capture_output=True, timeout=300, check=False)
        finally:
            stop.set()
            if async_:
                runner.join(timeout=60)
        resent = proxy.stats.bytes_forwarded - bytes_before
    log = again.stdout.decode() + again.stderr.decode()
    assert again.returncode == 0, log[-3000:]
    (outcome,) = json.loads(log.split("OUTCOMES ", 1)[1].splitlines()[0])
    assert outcome["outcome"] == "uploaded", outcome
    info = upload.file_info(session, outcome["filename"], history=True)
    assert info["sha1"] == sha1
    assert len(info["versions"]) == (2 if clash and policy["exists"] == "publish" else 1)
    ours = upload.find_by_sha1(session, sha1)
    assert len(ours) == 1, ours  # one copy of our bytes on the wiki, under one name
    if match is chunk_posts:  # the wiki holds chunks 1..nth: the rest, plus at most one chunk
        assert outcome["bytes_sent"] <= size - min(nth * CHUNK, size) + CHUNK, outcome
    elif point in ("publish", "direct upload"):
        assert outcome["bytes_sent"] == 0 and resent < 20_000, outcome  # nothing sent again
    with Ledger(ledger) as led:
        (row,) = led.items()
        assert row.state.value == "uploaded" and row.lease_owner is None
    print(f"{point}: re-run sent {outcome['bytes_sent']} file bytes, {resent} request bytes")
