"""``kill -9`` in the middle of a chunked upload: the re-run resumes from the wiki's offset.

A child process runs the real batch flow (ephemeral Prefect) on a generated 64 MiB file and is
SIGKILLed once the ledger shows several chunks stored. The re-run (this process, Prefect test
harness) must send at most the rest of the file plus the chunk that was in flight, and the wiki
must hold the file once, with our SHA-1.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import signal
import subprocess
import sys
import textwrap
import time
import wave
from pathlib import Path

import pytest

from mwingest.job.settings import BatchSettings
from mwingest.ledger.ledger import Ledger, State
from mwingest.wiki import upload
from tests.integration.wikihelpers import session_for

pytestmark = [pytest.mark.wiki, pytest.mark.slow]

MIB = 1024 * 1024
CHUNK_MB = 4


def _wav(path: Path, size: int, seed: int) -> None:
    rng = random.Random(seed)
    frames = (size - 44) // 4
    with wave.open(str(path), "wb") as out:
        out.setnchannels(2)
        out.setsampwidth(2)
        out.setframerate(44100)
        for start in range(0, frames, MIB):
            out.writeframes(rng.randbytes(min(MIB, frames - start) * 4))


CHILD = textwrap.dedent("""
    import json, sys
    from flows.ingest import ingest_batch
    out = ingest_batch(sources=[sys.argv[1]], settings={
        "chunk_size_mb": float(sys.argv[2]), "review_timeout_s": 0, "ledger_path": sys.argv[3]})
    print(json.dumps(out))
""")


def test_sigkill_mid_chunked_upload_then_rerun_resumes(wiki, prefect_harness, tmp_path, unique,
                                                       monkeypatch):
    from flows.ingest import ingest_batch

    u = unique()
    big = tmp_path / f"Crash test {u}.wav"
    _wav(big, 64 * MIB, seed=hash(u) & 0xFFFF)
    size = big.stat().st_size
    sha1 = hashlib.sha1(big.read_bytes()).hexdigest()  # noqa: S324
    ledger_path = tmp_path / "ledger.sqlite3"
    from prefect.settings import PREFECT_API_URL

    # The child talks to this session's Prefect test server: no ephemeral server start in it.
    env = {**os.environ, "MWINGEST_API_URL": wiki.api_url, "MWINGEST_USERNAME": wiki.username,
           "MWINGEST_PASSWORD": wiki.password, "PREFECT_HOME": str(tmp_path / "prefect-child"),
           "PREFECT_API_URL": str(PREFECT_API_URL.value()),
           "DO_NOT_TRACK": "1", "PREFECT_SERVER_ANALYTICS_ENABLED": "false"}
    child = subprocess.Popen([sys.executable, "-c", CHILD, str(big), str(CHUNK_MB), str(ledger_path)],
                             env=env, cwd=Path(__file__).resolve().parents[2],
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                             start_new_session=True)
    killed_at = 0
    try:
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline and child.poll() is None:
            if ledger_path.exists():
                with Ledger(ledger_path) as led:
                    rows = led.items(states=[State.STASHING])
                if rows and rows[0].offset >= 5 * CHUNK_MB * MIB:
                    killed_at = rows[0].offset
                    os.killpg(child.pid, signal.SIGKILL)
                    break
            time.sleep(0.05)
    finally:
        if child.poll() is None and not killed_at:
            os.killpg(child.pid, signal.SIGKILL)
        child.wait(timeout=30)
    assert killed_at, "the child never reached 5 chunks: " + (child.stdout.read() or b"").decode()[-2000:]
    assert child.returncode == -signal.SIGKILL
    session = session_for(wiki)
    assert upload.file_info(session, big.name) is None  # nothing published yet

    with Ledger(ledger_path) as led:
        with led._write() as conn:
            assert conn.exec_driver_sql("PRAGMA integrity_check").scalar() == "ok"
        (row,) = led.items()
        assert row.state is State.STASHING and row.filekey and row.offset == killed_at

    monkeypatch.setenv("MWINGEST_API_URL", wiki.api_url)
    monkeypatch.setenv("MWINGEST_USERNAME", wiki.username)
    monkeypatch.setenv("MWINGEST_PASSWORD", wiki.password)
    monkeypatch.delenv("PREFECT_API_URL", raising=False)
    (outcome,) = ingest_batch(sources=[str(big)], settings=BatchSettings.from_flat(chunk_size_mb=CHUNK_MB,
                     review_timeout_s=0, ledger_path=str(ledger_path)))
    assert outcome["outcome"] == "uploaded", json.dumps(outcome)
    print(f"killed at offset {killed_at} of {size}; re-run sent {outcome['bytes_sent']} bytes")
    # At most the rest of the file plus the chunk that was in flight when the child died.
    assert outcome["bytes_sent"] <= size - killed_at + CHUNK_MB * MIB
    assert outcome["bytes_sent"] < size
    info = upload.file_info(session, outcome["filename"], history=True)
    assert info["sha1"] == sha1 and int(info["size"]) == size
    assert len(info["versions"]) == 1
