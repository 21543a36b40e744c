"""What a person sees while ``mwingest`` runs: a live display on a terminal, plain lines elsewhere.

The terminal is a real pseudo-terminal (``pty``), so rich draws as it would for a person; the
files go to the real wiki through the local Prefect server (started by the first command of the
module, stopped at its end), and what landed is checked on the wiki.
"""

from __future__ import annotations

import os
import pty
import re
import select
import subprocess
import sys
import time
from pathlib import Path

import pytest

from mwingest.wiki import upload
from tests.integration.clihelpers import mwingest, sha1_of
from tests.integration.test_cli import cli_env  # noqa: F401 - a fixture
from tests.integration.wikihelpers import png_bytes, png_of_size, session_for

pytestmark = pytest.mark.wiki
_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


def _on_a_terminal(env: dict[str, str], *args: str, timeout: float = 300) -> tuple[int, str]:
    """Run ``mwingest args`` with stdin, stdout and stderr on a pseudo-terminal; (exit, screen text)."""
    leader, follower = pty.openpty()
    proc = subprocess.Popen([sys.executable, "-m", "mwingest.cli.app", *args],
                            env={**env, "TERM": "xterm-256color", "COLUMNS": "120"},
                            stdin=follower, stdout=follower, stderr=follower, close_fds=True)
    os.close(follower)
    chunks: list[bytes] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ready, _, _ = select.select([leader], [], [], 0.2)
        if ready:
            try:
                data = os.read(leader, 65536)
            except OSError:  # the other side closed: the process is gone
                break
            if not data:
                break
            chunks.append(data)
        elif proc.poll() is not None:
            break
    os.close(leader)
    code = proc.wait(timeout=30)
    return code, _ANSI.sub("", b"".join(chunks).decode("utf-8", "replace"))


def test_terminal_shows_bytes_per_file_in_flight_then_the_table(wiki, cli_env, tmp_path, unique):  # noqa: F811
    u = unique()
    big = tmp_path / f"Console big {u}.png"
    big.write_bytes(png_of_size(700_000))
    small = tmp_path / f"Console small {u}.png"
    small.write_bytes(png_bytes())

    code, screen = _on_a_terminal(cli_env, "upload", str(big), str(small), "--chunk-size", "64KiB",
                                  "--concurrency", "1")

    assert code == 0, screen
    # The batch line counts bytes and files; the big file had a line of its own with its bytes
    # while its chunks went up (drawn several times, growing).
    assert re.search(r"batch .*\d/2 files", screen), screen
    big_lines = [line for line in screen.splitlines() if big.name[:30] in line and "kB" in line]
    assert len({re.search(r"(\d+(\.\d+)?)/", line).group(1) for line in big_lines
                if re.search(r"(\d+(\.\d+)?)/", line)}) >= 2, big_lines
    # Then the summary and the outcome table; no Prefect INFO lines on the console.
    assert "2 files in" in screen and "2 uploaded" in screen
    assert "Finished in state" not in screen and "Beginning flow run" not in screen
    session = session_for(wiki)
    for path in (big, small):
        info = upload.file_info(session, path.name)
        assert info is not None and info["sha1"] == sha1_of(path)


def test_without_a_terminal_one_line_per_file_and_a_summary(wiki, cli_env, tmp_path, unique):  # noqa: F811
    u = unique()
    good = tmp_path / f"Plain good {u}.png"
    good.write_bytes(png_bytes())
    bad = tmp_path / f"Plain bad {u}.jpg"
    bad.write_bytes(b"<html><script>alert(1)</script></html>")

    ran = mwingest(cli_env, "upload", str(good), str(bad)).expect(1)

    lines = ran.stdout.splitlines()
    assert len(lines) == 3, ran.stdout  # one per file, then the summary
    assert sorted(line.split()[0] for line in lines[:2]) == ["rejected", "uploaded"]
    assert lines[2].startswith("2 files in") and "1 uploaded" in lines[2] and "1 rejected" in lines[2]
    # Prefect's own lines stay in the run's history; the refusal is not repeated on stderr.
    assert "Finished in state" not in ran.stderr and "Task run" not in ran.stderr
    assert "script" not in ran.stderr, ran.stderr
    verbose = mwingest(cli_env, "-v", "upload", str(good)).expect(0)
    assert "Finished in state" in verbose.stderr  # -v brings Prefect's lines back
    info = upload.file_info(session_for(wiki), good.name)
    assert info is not None and info["sha1"] == sha1_of(Path(good))
