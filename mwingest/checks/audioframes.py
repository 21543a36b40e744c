"""Frame-level checks of FLAC and MP3: is the last frame whole, is the announced length there?
(Every FLAC frame between, header chain and CRC-16: :mod:`mwingest.checks.flacframes`.)

Split from :mod:`mwingest.checks.mediacheck` (the container walks) because these read frame headers:
a FLAC frame header with its CRC-8, the last frame's CRC-16, MPEG audio frame lengths and the
Xing/Info byte count. Same codes and rules: only what the bytes prove counts.
"""

from __future__ import annotations

import os
import struct
from typing import BinaryIO

from mwingest.checks.damage import corrupt, truncated
from mwingest.checks.flacheader import flac_frame_header

_BLOCK = 1 << 20


# --- FLAC -------------------------------------------------------------------------------------------

def _crc16_flac(data: bytes) -> int:
    crc = 0
    for byte in data:
        crc ^= byte << 8
        for _ in range(8):
            crc = ((crc << 1) ^ 0x8005) & 0xFFFF if crc & 0x8000 else (crc << 1) & 0xFFFF
    return crc


def check_flac(path: str) -> None:
    """Metadata blocks fit in the file; the last frame is whole (its CRC-16 matches) and ends the
    stream STREAMINFO announces. The CRC runs over the last frame only (its header is found by
    its sync code and CRC-8 near the end), so cost does not grow with the file."""
    size = os.path.getsize(path)
    with open(path, "rb") as fh:
        fh.seek(4)
        total_samples = block_max = max_frame = 0
        while True:
            head = fh.read(4)
            if len(head) < 4:
                raise truncated("FLAC", "its metadata stops before the audio")
            last, kind, length = head[0] & 0x80, head[0] & 0x7F, int.from_bytes(head[1:], "big")
            if fh.tell() + length > size:
                raise truncated("FLAC", f"a metadata block of {length:,} bytes runs past the end")
            block = fh.read(length)
            if kind == 0 and length >= 18:
                block_max = struct.unpack_from(">H", block, 2)[0]
                max_frame = int.from_bytes(block[7:10], "big")
                total_samples = int.from_bytes(block[13:18], "big") & 0xFFFFFFFFF
            if last:
                break
        audio_start = fh.tell()
        if audio_start == size:
            raise truncated("FLAC", "it has no audio frames")
        tail_start = max(audio_start, size - max(64 * 1024, 4 * block_max * 8 + 1024))
        fh.seek(tail_start)
        tail = fh.read()
    frame = _last_flac_frame(tail, block_max)
    if frame is None:
        return  # no header we can read near the end: nothing proven
    start, first_sample, block_size = frame
    if _crc16_flac(tail[start:-2]) != int.from_bytes(tail[-2:], "big"):
        raise truncated("FLAC", "its last frame is incomplete (checksum of the frame does not match)")
    if total_samples and first_sample + block_size < total_samples:
        raise truncated("FLAC", f"audio ends at sample {first_sample + block_size:,} of {total_samples:,}")
    from mwingest.checks.flacframes import check_frames  # numpy: imported when a FLAC is checked

    check_frames(path, audio_start, block_max, max_frame)


def _last_flac_frame(tail: bytes, stream_block: int) -> tuple[int, int, int] | None:
    """(offset in *tail*, first sample, block size) of the last frame header with a valid CRC-8."""
    pos = len(tail)
    while (pos := tail.rfind(b"\xff", 0, pos)) >= 0:
        parsed = flac_frame_header(tail, pos, stream_block)
        if parsed is not None:
            return (pos, *parsed)
    return None


# --- MPEG audio (MP3) --------------------------------------------------------------------------------

_BITRATES = {  # (version is MPEG-1, layer) -> kbit/s by index
    (True, 1): (0, 32, 64, 96, 128, 160, 192, 224, 256, 288, 320, 352, 384, 416, 448),
    (True, 2): (0, 32, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320, 384),
    (True, 3): (0, 32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320),
    (False, 1): (0, 32, 48, 56, 64, 80, 96, 112, 128, 144, 160, 176, 192, 224, 256),
    (False, 2): (0, 8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160),
}
_RATES = {3: (44100, 48000, 32000), 2: (22050, 24000, 16000), 0: (11025, 12000, 8000)}


_FREE_FORMAT = -1


def _mp3_frame(header: bytes) -> int | None:
    """The byte length of the MPEG audio frame starting with *header*; None if it is none;
    :data:`_FREE_FORMAT` for a free-bitrate frame (its length needs decoding)."""
    if len(header) < 4 or header[0] != 0xFF or header[1] & 0xE0 != 0xE0:
        return None
    version, layer_bits = (header[1] >> 3) & 3, (header[1] >> 1) & 3
    bitrate_index, rate_index, padding = header[2] >> 4, (header[2] >> 2) & 3, (header[2] >> 1) & 1
    if version == 1 or layer_bits == 0 or bitrate_index == 15 or rate_index == 3:
        return None  # reserved values
    if bitrate_index == 0:
        return _FREE_FORMAT
    layer = 4 - layer_bits
    mpeg1 = version == 3
    kbps = _BITRATES[(mpeg1, 1 if layer == 1 else (layer if mpeg1 else 2))][bitrate_index]
    rate = _RATES[version][rate_index]
    if layer == 1:
        return (12 * kbps * 1000 // rate + padding) * 4
    return (144 if mpeg1 or layer == 2 else 72) * kbps * 1000 // rate + padding


def _id3_size(head: bytes) -> int | None:
    """Total bytes of an ID3v2 tag starting with *head* (10+ bytes), or None if it is none."""
    if len(head) < 10 or not head.startswith(b"ID3") or any(b & 0x80 for b in head[6:10]):
        return None
    return 10 + ((head[6] << 21) | (head[7] << 14) | (head[8] << 7) | head[9]) + (10 if head[5] & 0x10 else 0)


_TRAILERS = (b"TAG", b"APETAGEX", b"LYRICSBEGIN")
#: How far past a lost sync we look for the frames to go on (garbage in the middle).
RESYNC_WINDOW = 64 * 1024


def check_mp3(path: str) -> None:
    """Walk the frames after the ID3v2 tag. Refused: a last frame cut short, fewer bytes than a
    Xing/Info header announces, and bytes in the middle that are no frame while whole frames go
    on after them (players skip them, with a click or a gap). Tags at the end (ID3v1, APE,
    Lyrics3) end the walk, an ID3v2 tag between frames is stepped over, and a free-bitrate stream
    is not walked (its frame lengths need decoding)."""
    size = os.path.getsize(path)
    with open(path, "rb") as fh:
        offset = _id3_size(fh.read(10)) or 0
        if offset > size:
            raise truncated("MP3", "its ID3 tag runs past the end of the file")
        first, announced, frames = offset, None, 0
        buf, buf_start = b"", offset
        crc_passed, crc_failed = 0, None
        while offset < size:
            if offset + 64 > buf_start + len(buf):
                fh.seek(offset)
                buf, buf_start = fh.read(_BLOCK), offset
            rel = offset - buf_start
            length = _mp3_frame(buf[rel:rel + 4])
            if length == _FREE_FORMAT:
                return
            if length is None:
                tag = _id3_size(buf[rel:rel + 10])
                if tag:
                    offset += tag
                    continue
                if frames and not buf[rel:rel + 11].startswith(_TRAILERS):
                    _garbage_between_frames(fh, offset, size)
                break
            if frames == 0:
                announced = _xing_bytes(buf[rel:rel + length])
            if offset + length > size:
                raise truncated("MP3", f"frame {frames + 1} needs {length} bytes, {size - offset} remain")
            protected = _mp3_crc_ok(buf[rel:rel + min(length, 38)])
            if protected is True:
                crc_passed += 1
            elif protected is False and crc_failed is None:
                crc_failed = (frames + 1, offset)
            frames += 1
            offset += length
    if frames == 0:
        raise corrupt("MP3", "no MPEG audio frame follows its tag")
    if crc_failed and crc_passed:  # an encoder that writes wrong CRCs writes them all wrong
        raise corrupt("MP3", f"frame {crc_failed[0]:,} (byte {crc_failed[1]:,}) fails its checksum, "
                      "which the other frames pass: its audio is damaged")
    if announced and first + announced > size + 1024:
        raise truncated("MP3", f"its Xing/Info header announces {announced:,} bytes of audio, "
                         f"{size - first:,} are there")


def _garbage_between_frames(fh: BinaryIO, offset: int, size: int) -> None:
    """Sync was lost at *offset*: if two whole, consecutive frames of the same stream start within
    :data:`RESYNC_WINDOW` after it, the bytes between are damage in the middle of the audio."""
    fh.seek(offset + 1)
    window = fh.read(RESYNC_WINDOW + 8192)
    pos = -1
    while (pos := window.find(b"\xff", pos + 1, RESYNC_WINDOW)) >= 0:
        length = _mp3_frame(window[pos:pos + 4])
        if not length or length < 0:
            continue
        following = window[pos + length:pos + length + 4]
        if (_mp3_frame(following) or 0) > 0 and following[1] == window[pos + 1] \
                and following[2] & 0x0C == window[pos + 2] & 0x0C:
            raise corrupt("MP3", f"{pos + 1:,} bytes at byte {offset:,} are no audio frame, "
                          f"and the audio goes on after them")


def _mp3_crc_ok(frame: bytes) -> bool | None:
    """For a Layer III frame with a CRC (protection bit 0): does the CRC-16 over header bytes 2-3
    and the side information match the one stored after the header? None: no CRC to check."""
    if len(frame) < 6 or frame[1] & 1 or (frame[1] >> 1) & 3 != 1:
        return None
    mono = frame[3] >> 6 == 3
    side = (17 if mono else 32) if (frame[1] >> 3) & 3 == 3 else (9 if mono else 17)
    if len(frame) < 6 + side:
        return None
    crc = 0xFFFF
    for byte in frame[2:4] + frame[6:6 + side]:
        crc ^= byte << 8
        for _ in range(8):
            crc = ((crc << 1) ^ 0x8005) & 0xFFFF if crc & 0x8000 else (crc << 1) & 0xFFFF
    return crc == int.from_bytes(frame[4:6], "big")


def _xing_bytes(frame: bytes) -> int | None:
    pos = max(frame.find(b"Xing", 0, 64), frame.find(b"Info", 0, 64))
    if pos < 0 or len(frame) < pos + 16:
        return None
    flags = struct.unpack_from(">I", frame, pos + 4)[0]
    if not flags & 2:
        return None
    return struct.unpack_from(">I", frame, pos + 8 + (4 if flags & 1 else 0))[0]
