"""Every FLAC frame, not just the last: the header chain and each frame's CRC-16 (issue 26).

Why: damage in the middle of a FLAC (a disk block overwritten, bytes lost in a copy) leaves the
file's start and end intact, so the last-frame check of :mod:`mwingest.checks.audioframes` passes it, and
the wiki stores it; a player then clicks, skips or stops there. A FLAC frame carries its own proof:
a header with a CRC-8 and the frame's number (or first sample), and a CRC-16 over the whole frame.

How, in bounded time and memory: the file is memory-mapped, never read whole. Candidate headers
(the sync code ``0xFFF8``/``0xFFF9``) are found with numpy a block at a time; a candidate is a frame
header when its CRC-8 matches, its sample rate, channel and sample-size fields are the first
frame's, and its number is the one the previous frame leads to. That chain must reach the end of
the stream: when it stops before the last frames (a later header continues the stream at a later
sample) the frames between are damaged. The CRC-16s are then computed for all frames at once:
frames are right-aligned in a byte matrix (leading zeros do not change a CRC that starts at zero)
and the CRC state of every frame advances one byte column at a time, so the Python loop runs
once per byte of the *longest frame*, not per byte of the file. A frame whose CRC-16 (over the
frame with its stored CRC) is not zero is damaged. The last frame is left to
:func:`mwingest.checks.audioframes.check_flac` (it says "cut short").
"""

from __future__ import annotations

import mmap
from collections.abc import Iterator

import numpy as np

from mwingest.checks.damage import corrupt
from mwingest.checks.flacheader import flac_frame_header

#: Bytes scanned for sync codes per numpy pass.
SCAN_BLOCK = 16 << 20
#: Frame bytes whose CRC-16s are computed in one matrix (its memory, roughly).
CRC_BATCH_BYTES = 32 << 20
#: Frames longer than this are not CRC-checked (a broken chain is reported before that).
MAX_FRAME_BYTES = 1 << 20


def _crc16_table() -> np.ndarray:
    table = []
    for byte in range(256):
        crc = byte << 8
        for _ in range(8):
            crc = ((crc << 1) ^ 0x8005) & 0xFFFF if crc & 0x8000 else (crc << 1) & 0xFFFF
        table.append(crc)
    return np.array(table, dtype=np.uint16)


_TABLE = _crc16_table()


def check_frames(path: str, audio_start: int, stream_block: int, max_frame: int) -> None:
    """Raise ``corrupt-media`` at the first frame that is damaged or missing in the middle."""
    with open(path, "rb") as fh, mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as mm:
        size = len(mm)
        first = flac_frame_header(mm[audio_start:audio_start + 32], 0, stream_block)
        if first is None:
            raise corrupt("FLAC", f"no frame header starts its audio (byte {audio_start:,})")
        fields = (mm[audio_start + 1], mm[audio_start + 2] & 0x0F, mm[audio_start + 3])
        starts, expected, later = [audio_start], first[0] + first[1], None
        for pos in _sync_candidates(mm, audio_start + 1, size):
            if (mm[pos + 1], mm[pos + 2] & 0x0F, mm[pos + 3]) != fields:
                continue
            parsed = flac_frame_header(mm[pos:pos + 32], 0, stream_block)
            if parsed is None:
                continue
            if parsed[0] == expected:
                starts.append(pos)
                expected = parsed[0] + parsed[1]
            elif parsed[0] > expected and pos - starts[-1] > max(max_frame, 1) and later is None:
                later = (pos, parsed[0])  # a header past a gap no frame can span
        if later is not None and later[0] > starts[-1]:
            raise corrupt("FLAC", f"frames are damaged or missing after byte {starts[-1]:,}: the audio "
                          f"goes on at byte {later[0]:,} (sample {later[1]:,}, {expected:,} expected)")
        bounds = [(a, b) for a, b in zip(starts, starts[1:], strict=False) if b - a <= MAX_FRAME_BYTES]
        data = np.frombuffer(mm, dtype=np.uint8)
        try:
            bad = _first_bad_crc(data, bounds)
        finally:
            del data  # the mmap cannot close while numpy holds it
        if bad is not None:
            number = starts.index(bad[0]) + 1
            raise corrupt("FLAC", f"frame {number:,} (bytes {bad[0]:,}–{bad[1]:,}) fails its checksum: "
                          "its audio is damaged")


def _sync_candidates(mm: mmap.mmap, start: int, end: int) -> Iterator[int]:
    """Offsets of ``0xFF`` followed by ``0xF8``/``0xF9``, in order, a block at a time."""
    pos = start
    while pos < end - 6:
        stop = min(end, pos + SCAN_BLOCK + 1)
        block = np.frombuffer(mm[pos:stop], dtype=np.uint8)
        hits = np.flatnonzero((block[:-1] == 0xFF) & ((block[1:] & 0xFE) == 0xF8))
        for hit in hits.tolist():
            if pos + hit + 6 <= end:
                yield pos + hit
        pos = stop - 1


def _first_bad_crc(data: np.ndarray, bounds: list[tuple[int, int]]) -> tuple[int, int] | None:
    """The first (start, end) whose bytes' CRC-16 is not zero, batch by batch."""
    index = 0
    while index < len(bounds):
        batch, spent = [], 0
        while index < len(bounds) and (not batch or spent < CRC_BATCH_BYTES):
            batch.append(bounds[index])
            spent += bounds[index][1] - bounds[index][0]
            index += 1
        longest = max(end - start for start, end in batch)
        columns = np.zeros((longest, len(batch)), dtype=np.uint8)
        for column, (start, end) in enumerate(batch):
            columns[longest - (end - start):, column] = data[start:end]
        state = np.zeros(len(batch), dtype=np.uint16)
        for row in columns:
            state = _TABLE[(state >> 8) ^ row] ^ (state << 8)
        failed = np.flatnonzero(state)
        if failed.size:
            return batch[int(failed[0])]
    return None
