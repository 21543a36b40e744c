"""A FLAC frame header: where it starts, its first sample and block size, checked by its CRC-8.

Its own module because both the quick check (:mod:`mwingest.checks.audioframes`, the last frame)
and the whole-stream walk (:mod:`mwingest.checks.flacframes`, numpy) read frame headers, and the
walk is imported only when a FLAC is checked: neither imports the other.
"""

from __future__ import annotations

_FLAC_BLOCK = {1: 192, 2: 576, 3: 1152, 4: 2304, 5: 4608, 8: 256, 9: 512, 10: 1024, 11: 2048,
               12: 4096, 13: 8192, 14: 16384, 15: 32768}


def flac_frame_header(data: bytes, pos: int, stream_block: int) -> tuple[int, int] | None:
    """(first sample, block size) of a frame header at *pos* whose CRC-8 matches. A fixed-size
    stream numbers frames, not samples: the stream's block size (STREAMINFO) converts them; the
    last frame's own size may be smaller."""
    if pos + 6 > len(data) or data[pos + 1] & 0xFE != 0xF8:
        return None
    variable = data[pos + 1] & 1
    bs_code, rate_code = data[pos + 2] >> 4, data[pos + 2] & 0xF
    if bs_code == 0 or rate_code == 15 or data[pos + 3] >> 4 > 10 or data[pos + 3] & 1:
        return None
    # the frame or sample number, UTF-8 coded
    first = data[pos + 4]
    extra = next((n for n, mask in ((0, 0x80), (1, 0xE0), (2, 0xF0), (3, 0xF8), (4, 0xFC), (5, 0xFE),
                                    (6, 0xFF)) if (first & mask) == ((mask << 1) & 0xFF)), None)
    if extra is None or pos + 5 + extra > len(data):
        return None
    number = first & (0x7F >> extra) if extra else first
    for byte in data[pos + 5:pos + 5 + extra]:
        if byte & 0xC0 != 0x80:
            return None
        number = (number << 6) | (byte & 0x3F)
    end = pos + 5 + extra
    block = _FLAC_BLOCK.get(bs_code)
    if bs_code in (6, 7):
        width = bs_code - 5
        block = int.from_bytes(data[end:end + width], "big") + 1
        end += width
    end += {12: 1, 13: 2, 14: 2}.get(rate_code, 0)
    if end >= len(data) or block is None or _crc8(data[pos:end]) != data[end]:
        return None
    return (number if variable else number * (stream_block or block)), block


def _crc8(data: bytes) -> int:
    crc = 0
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = ((crc << 1) ^ 0x07) & 0xFF if crc & 0x80 else (crc << 1) & 0xFF
    return crc
