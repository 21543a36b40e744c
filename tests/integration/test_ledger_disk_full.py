"""A full disk under the SQLite ledger mid-import (issue 24): the batch stops cleanly, the ledger
stays intact, and once space is freed the same command finishes it, every file once.

The disk is real: the ledger lives on a tmpfs of its own (``mount`` needs root: CI runs the
suite as root, elsewhere the test is skipped), filled to its last byte by a filler file once a
few files are on the wiki and a chunked one is midway, so the ledger's next commit gets ENOSPC
on its write-ahead log (SQLite: "database or disk is full"). The wiki is the real throwaway one
and the command the real ``mwingest import`` with its local Prefect server; the mwingest home
(Prefect's state) stays on the ordinary disk: a full disk under Prefect is another matter.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import sqlite3
import subprocess
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from mwingest.ledger.ledger import Ledger, LedgerFullError
from tests.faultproxy import FaultProxy, chunk_posts
from tests.integration.test_relogin import (
    MiB,
    Script,
    _files,
    cli_env,
    ledger_rows,
    run_cli,
    sha1_of,
    stop_local_server,
)
from tests.integration.wikihelpers import session_for
from tests.prefect_server import seed_env_homes

#: The disk under the ledger: room for the run's first writes (schema, a few files), not more
#: than a filler file can take at once.
TMPFS_SIZE = "4m"
#: States whose row recorded the intent of the wiki write (or its result) before the write.
RECORDED = {"publishing", "published", "uploaded"}


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A tmpfs of its own for the ledger, unmounted afterwards (lazily, should anything still
    hold a file there)."""
    mount = tmp_path / "small-disk"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={TMPFS_SIZE},mode=0700", "tmpfs",
                           str(mount)], capture_output=True, text=True, check=False)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here (root needed; CI runs as root): "
                    f"{done.stderr.strip() or done.returncode}")
    try:
        yield mount
    finally:
        if subprocess.run(["umount", str(mount)], capture_output=True, check=False).returncode:
            subprocess.run(["umount", "-l", str(mount)], capture_output=True, check=False)


@pytest.fixture
def home(tmp_path: Path) -> Iterator[Path]:
    """The commands' mwingest home on the ordinary disk (one local Prefect server, stopped at
    the end, before the small disk is unmounted)."""
    path = tmp_path / "home"
    path.mkdir()
    try:
        yield path
    finally:
        stop_local_server(path)


def fill(disk: Path) -> int:
    """Write a filler file until the disk refuses another byte; its size. Unbuffered writes,
    each smaller than the last, so the last page of the file system goes too."""
    fd = os.open(disk / "filler", os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        for block in (1 << 20, 1 << 16, 1 << 12, 1 << 9, 1):
            with contextlib.suppress(OSError):
                while True:
                    os.write(fd, b"\xff" * block)
    finally:
        os.close(fd)
    assert os.statvfs(disk).f_bfree == 0
    return (disk / "filler").stat().st_size


def on_wiki(session: Any, names: list[str]) -> dict[str, list[dict[str, Any]]]:
    """Every version of each file (``prop=imageinfo&iilimit=max``), asked in one request: a
    file is missing from the answer when the wiki has no such file."""
    answer = session.get({"action": "query", "titles": "|".join(f"File:{n}" for n in names),
                          "prop": "imageinfo", "iiprop": "sha1", "iilimit": "max"})
    return {page["title"].removeprefix("File:").replace(" ", "_"): page["imageinfo"]
            for page in answer["query"]["pages"] if page.get("imageinfo")}


def assert_once(versions: dict[str, list[dict[str, Any]]], name: str, data: bytes) -> None:
    """``name`` is on the wiki with these bytes, in one version: it landed once."""
    assert [v["sha1"] for v in versions.get(name.replace(" ", "_"), [])] == [sha1_of(data)], (
        name, versions.get(name.replace(" ", "_")))


def integrity(ledger: Path) -> str:
    db = sqlite3.connect(f"file:{ledger}?mode=ro", uri=True, timeout=5)
    try:
        return str(db.execute("PRAGMA integrity_check").fetchone()[0])
    finally:
        db.close()


def test_a_full_ledger_disk_stops_the_batch_and_a_rerun_finishes_it_each_file_once(
        wiki: Any, small_disk: Path, home: Path, tmp_path: Path) -> None:
    tag = secrets.token_hex(3)
    big = f"A-{tag}-big.png"  # sorts first: mid-chunks when the disk fills
    files = _files(tmp_path / "batch", 10, {big: 6 * MiB}, f"Disk-{tag}")
    # The big file's chunks after the first are held 1.5 s each by a proxy in front of the wiki,
    # so the small files land while it is midway, whatever the machine's speed (without it the
    # big file finished first once in a rehearsal and the disk was never filled). Both runs go
    # through the proxy: the ledger's rows name the wiki by its URL.
    proxy = FaultProxy(wiki.api_url, stall_seconds=1.5).start()
    proxy.fail_script(dict.fromkeys(range(2, 7), "hold"), match=chunk_posts)
    api_url = proxy.url_for(wiki.api_url)
    # The local Prefect server's database comes migrated (seed_env_homes): 7-45 s less.
    env = seed_env_homes({**cli_env(home, api_url, wiki.username, wiki.password),
                          "MWINGEST_LEDGER": str(small_disk / "ledger.sqlite3")})
    ledger = small_disk / "ledger.sqlite3"
    filled: dict[str, float] = {}

    def big_midway_some_landed() -> bool:
        rows = ledger_rows(ledger)
        state, offset, _ = rows.get(big, ("", 0, None))
        return (state == "stashing" and offset >= MiB
                and sum(r[0] == "uploaded" for r in rows.values()) >= 2)

    def disk_full() -> None:
        fill(small_disk)
        filled["at"] = time.monotonic()

    args = ("import", str(tmp_path / "batch"), "--json", "--concurrency", "2",
            "--chunk-size", "1MiB")
    script = Script([("disk full", big_midway_some_landed, disk_full)])
    began = time.monotonic()
    ran = run_cli(env, *args, script=script).expect(2)
    ended = time.monotonic()
    assert script.done == ["disk full"], ran.stderr[-3000:]
    stopped_in = ended - filled["at"]
    print(f"first run {ended - began:.1f} s; disk full to exit: {stopped_in:.1f} s")  # noqa: T201
    assert stopped_in < 60, stopped_in

    # One line says it, naming the ledger; no traceback, no failed line per file.
    said = [line for line in ran.stderr.splitlines() if "disk full" in line]
    assert len(said) == 1 and str(ledger) in said[0], ran.stderr[-6000:]
    print(said[0])  # noqa: T201 - what a person reads
    assert said[0].startswith("mwingest: disk full: the ledger "), said
    assert "run the same command again" in said[0]
    assert "Traceback" not in ran.stderr, ran.stderr[-6000:]
    assert {r["outcome"] for r in ran.rows()} <= {"uploaded"}

    # The ledger is intact on the full disk, and nothing reached the wiki that it did not
    # record first: a file is on the wiki once or not at all, and only with its intent written.
    assert integrity(ledger) == "ok"
    rows = ledger_rows(ledger)
    print(sorted(Counter(r[0] for r in rows.values()).items()))  # noqa: T201 - where they stood
    landed = {n for n, r in rows.items() if r[0] == "uploaded"}
    assert 2 <= len(landed) < len(files), rows
    assert rows[big][0] == "stashing", rows[big]  # its next chunk could not be recorded
    session = session_for(wiki)
    versions = on_wiki(session, list(files))
    for name, data in files.items():
        state = rows.get(name, ("no row",))[0]
        if state == "uploaded":
            assert_once(versions, name, data)
        elif state not in RECORDED:  # no publish was recorded: the wiki must not show the file
            assert state in ("no row", "pending", "validated", "stashing", "stashed"), state
            assert name.replace(" ", "_") not in versions, f"File:{name} sent unrecorded"

    # Space freed: the same command finishes the batch, each file once, every row uploaded.
    (small_disk / "filler").unlink()
    proxy.clear()
    began = time.monotonic()
    try:
        again = run_cli(env, *args).expect(0)
    finally:
        proxy.stop()
    checked = time.monotonic()
    print(f"re-run {checked - began:.1f} s")  # noqa: T201
    assert {r["outcome"] for r in again.rows()} <= {"uploaded", "skipped"}
    assert "again from 0" not in again.stderr  # the chunked file went on from the wiki's offset
    versions = on_wiki(session, list(files))
    for name, data in files.items():
        assert_once(versions, name, data)
    rows = ledger_rows(ledger)
    assert {n: r[0] for n, r in rows.items()} == {n: "uploaded" for n in files}
    assert integrity(ledger) == "ok"
    print(f"checks after the re-run {time.monotonic() - checked:.1f} s")  # noqa: T201


def test_a_ledger_opened_on_a_full_disk_says_disk_full_and_keeps_its_rows(
        small_disk: Path) -> None:
    """A re-run before space was freed: SQLite cannot even make the shared-memory index of an
    existing ledger ("disk I/O error", told apart by the disk's free space), a new ledger gets
    SQLITE_FULL; both are the one :class:`LedgerFullError`, and the rows are kept."""
    old = small_disk / "old.sqlite3"
    with Ledger(old) as ledger:
        ledger.begin("https://wiki.example.org/w/api.php", small_disk / "a.png", sha1="a" * 40,
                     size=1, target="A.png")
    fill(small_disk)
    for path in (old, small_disk / "new.sqlite3"):
        with pytest.raises(LedgerFullError, match=f"^disk full: the ledger {path} "):
            Ledger(path)
    (small_disk / "filler").unlink()
    assert integrity(old) == "ok"
    with Ledger(old) as ledger:
        assert [r.target for r in ledger.items()] == ["A.png"]
