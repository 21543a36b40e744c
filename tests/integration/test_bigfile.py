"""Big files stream from disk: a 64 MiB upload must not cost 64 MiB of memory (issue 2 §5).

The integration test uploads a real 64 MiB WAV (random samples: valid for the wiki's verification at
assembly, incompressible, unique per run) in 8 MiB chunks and measures the growth of this process's
peak resident memory while it does. It asserts memory, not time. The stream tests below it need no
wiki: they pin the two properties the low memory rests on, ``FileSlice`` reading exactly its range
and requests-toolbelt's encoder pulling it block by block.
"""

from __future__ import annotations

import re
import secrets
import tracemalloc
import wave
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from requests_toolbelt.multipart.encoder import MultipartEncoder

from mwingest.base.errors import is_retryable
from mwingest.base.hashing import FileDigest
from mwingest.base.streams import FilePart, FileSlice, SourceChangedError
from mwingest.wiki.chunked import new_state, upload_chunked
from mwingest.wiki.upload import ResultKind, file_info, publish_stash, upload_chunk, verify_landed
from tests.integration.wikihelpers import session_for

MiB = 1024 * 1024
BIG_FRAMES_BYTES = 64 * MiB
CHUNK = 8 * MiB
#: Streaming needs a few hundred KiB whatever the size; holding even one 8 MiB chunk in memory fails.
MAX_GROWTH = CHUNK


def write_random_wav(path: Path, frame_bytes: int) -> None:
    """A valid 16-bit mono WAV of random samples, written 1 MiB at a time."""
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(44100)
        left = frame_bytes
        while left > 0:
            block = secrets.token_bytes(min(MiB, left))
            out.writeframesraw(block)
            left -= len(block)


def _status_kib(field: str) -> int:
    match = re.search(rf"^{field}:\s+(\d+) kB", Path("/proc/self/status").read_text(), re.M)
    assert match, f"/proc/self/status has no {field}"
    return int(match.group(1))


@dataclass
class Peak:
    rss_growth: int | None = None  # bytes; None where VmHWM cannot be reset
    python_peak: int = 0  # bytes


@contextmanager
def peak_growth() -> Iterator[Peak]:
    """Peak memory growth of the block, measured two ways.

    VmHWM (reset through ``/proc/self/clear_refs``) counts everything, C buffers included, but
    memory the process already held and freed can absorb growth unseen. tracemalloc's peak counts
    only Python allocations, exactly, which is where a read-it-all bug would show up.
    """
    peak = Peak()
    try:
        Path("/proc/self/clear_refs").write_text("5")  # VmHWM := the current RSS
        rss_before: int | None = _status_kib("VmRSS")
    except OSError:
        rss_before = None
    tracemalloc.start()
    try:
        yield peak
        peak.python_peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    if rss_before is not None:
        peak.rss_growth = (_status_kib("VmHWM") - rss_before) * 1024


@pytest.fixture
def big_wav(tmp_path: Path) -> Iterator[Path]:
    path = tmp_path / "big.wav"
    write_random_wav(path, BIG_FRAMES_BYTES)
    try:
        yield path
    finally:
        path.unlink(missing_ok=True)


@pytest.mark.wiki
@pytest.mark.slow
def test_64_mib_upload_streams_with_flat_memory(wiki: Any, big_wav: Path,
                                                unique: Callable[[], str]) -> None:
    digest = FileDigest.of(big_wav)
    assert digest.size >= BIG_FRAMES_BYTES
    name = f"Bigfile-{unique()}.wav"
    session = session_for(wiki)
    state = new_state(big_wav, name, digest.sha1, chunk_size=CHUNK)
    assert state.chunk_count == 9  # eight full chunks and the 44-byte WAV header's worth

    with peak_growth() as measured:
        done = upload_chunked(session, state)
        result = publish_stash(session, done.final_filekey or "", name, comment="big file test",
                               text="big file test")
    rss = "n/a" if measured.rss_growth is None else f"{measured.rss_growth / 1024:.0f} KiB"
    print(f"\n{digest.size / MiB:.0f} MiB upload + publish: peak RSS growth {rss}, "
          f"Python allocation peak {measured.python_peak / 1024:.0f} KiB")

    assert done.imageinfo.get("sha1") == digest.sha1
    assert done.bytes_sent == digest.size  # no chunk was sent twice
    assert result.kind == ResultKind.SUCCESS
    verify_landed(session, name, digest.sha1, digest.size)
    history = file_info(session, name, history=True)
    assert history is not None and len(history["versions"]) == 1
    assert measured.python_peak < MAX_GROWTH, f"Python held {measured.python_peak / MiB:.1f} MiB"
    if measured.rss_growth is not None:
        assert measured.rss_growth < MAX_GROWTH, f"RSS grew {measured.rss_growth / MiB:.1f} MiB"


# --- stream level (no wiki) --------------------------------------------------------------------

def test_file_slice_reads_exactly_its_range_and_counts_down(tmp_path: Path) -> None:
    path = tmp_path / "bytes.bin"
    data = bytes(range(256)) * 64  # 16 KiB of known bytes
    path.write_bytes(data)
    piece = FileSlice(path, 1000, 5000)
    assert len(piece) == 5000
    assert piece.read(100) == data[1000:1100]
    assert len(piece) == 4900
    assert piece.read() == data[1100:6000]  # never past offset + length
    assert len(piece) == 0 and piece.bytes_read == 5000
    assert piece.read(10) == b""


def test_file_slice_raises_when_the_file_is_shorter_than_the_range(tmp_path: Path) -> None:
    path = tmp_path / "short.bin"
    path.write_bytes(b"x" * 100)
    piece = FileSlice(path, 50, 1000)
    assert piece.read() == b"x" * 50
    with pytest.raises(SourceChangedError):
        piece.read()  # ending quietly would leave the body short of its Content-Length
    assert len(piece) == 0


@pytest.mark.wiki
def test_a_file_that_shrank_fails_the_chunk_at_once(wiki: Any, tmp_path: Path) -> None:
    """Without the check the wiki would wait for the missing bytes until the read timeout."""
    path = tmp_path / "shrunk.png"
    path.write_bytes(b"\x89PNG" + b"x" * 95)
    session = session_for(wiki)
    part = FilePart("Shrunk.png", path=path, offset=0, length=4096)  # as if stat() said 4096
    with pytest.raises(SourceChangedError) as caught:
        upload_chunk(session, filename="Shrunk.png", filesize=8192, offset=0, part=part)
    assert not is_retryable(caught.value)


def test_file_part_opens_a_fresh_reader_per_attempt(tmp_path: Path) -> None:
    path = tmp_path / "bytes.bin"
    path.write_bytes(b"0123456789")
    part = FilePart("x.bin", path=path, offset=2, length=5)
    first, second = part.open(), part.open()
    assert isinstance(first, FileSlice) and isinstance(second, FileSlice)
    assert first.read() == b"23456"
    assert second.read() == b"23456"  # a retry re-reads from disk, not a spent stream


def test_multipart_encoder_pulls_a_big_slice_block_by_block(tmp_path: Path) -> None:
    path = tmp_path / "sparse.bin"
    with path.open("wb") as fh:  # 64 MiB of zeros without writing them: a sparse file
        fh.truncate(BIG_FRAMES_BYTES + 4096)
    piece = FileSlice(path, 4096, BIG_FRAMES_BYTES)
    encoder = MultipartEncoder(fields=[("action", "upload"),
                                       ("chunk", ("big.bin", piece, "application/octet-stream"))])
    assert encoder.len > BIG_FRAMES_BYTES  # the length came from len(), not from reading

    total = 0
    most_ahead = 0
    while block := encoder.read(64 * 1024):
        total += len(block)
        most_ahead = max(most_ahead, piece.bytes_read - total)
    assert total == encoder.len
    assert piece.bytes_read == BIG_FRAMES_BYTES
    assert most_ahead <= 1 * MiB, "the encoder read far ahead of what it handed out"
