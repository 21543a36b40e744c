"""Structure checks for audio and video: the damage the wiki stores without a word.

Why: MediaWiki 1.39 without TimedMediaHandler keeps half a WebM, half a WAV or an Ogg with bad
page checksums as if they were whole; the file page then shows a player that stops or never starts.
We read each container's *structure* (page headers and CRCs, chunk and element sizes, frame
headers), never its samples, so time is one pass over the bytes at most and memory is a block.

Only what the bytes prove counts: a size that runs past the end of the file, a checksum that does
not match, a header that cannot be one. A quirk a player tolerates (no end-of-stream flag, junk
after the last frame) passes. Codes: ``truncated-media`` (cut short: the container says more bytes
follow than the file holds) and ``corrupt-media`` (the bytes contradict their own structure).
"""

from __future__ import annotations

import os
import struct
import zlib
from collections.abc import Callable

from mwingest.content import Issue

_BLOCK = 1 << 20
_REV8 = bytes(int(f"{i:08b}"[::-1], 2) for i in range(256))


class _Damage(Exception):
    def __init__(self, code: str, what: str, **detail: object) -> None:
        super().__init__(what)
        self.issue = Issue(code, what, {"format": detail.pop("fmt", None), **detail})


def _truncated(fmt: str, what: str, **detail: object) -> _Damage:
    return _Damage("truncated-media", f"is cut short: {what}", fmt=fmt, **detail)


def _corrupt(fmt: str, what: str, **detail: object) -> _Damage:
    return _Damage("corrupt-media", f"is damaged: {what}", fmt=fmt, **detail)


def check_media(path: str, mime: str | None) -> list[Issue]:
    """The first structural damage in an audio or video file (by its sniffed *mime*), or nothing."""
    checker = _checker_for(path, mime or "")
    if checker is None:
        return []
    try:
        checker(path)
    except _Damage as damage:
        return [damage.issue]
    return []


def _checker_for(path: str, mime: str) -> Callable[[str], None] | None:
    with open(path, "rb") as fh:
        head = fh.read(12)
    if head.startswith(b"OggS"):
        return check_ogg
    if head.startswith(b"RIFF") and head[8:12] == b"WAVE":
        return check_wav
    if head.startswith(b"fLaC"):
        return check_flac
    if head.startswith(b"\x1a\x45\xdf\xa3"):
        return check_ebml
    if mime == "audio/mpeg":
        return check_mp3
    return None


# --- Ogg (RFC 3533) ---------------------------------------------------------------------------------

def ogg_crc(data: bytes) -> int:
    """Ogg's CRC-32 (polynomial 0x04C11DB7, not reflected, no pre/post inversion), via zlib's
    reflected CRC-32 on bit-reversed bytes: C speed, no table of our own."""
    raw = zlib.crc32(data.translate(_REV8), 0xFFFFFFFF) ^ 0xFFFFFFFF
    return int(f"{raw:032b}"[::-1], 2)


def check_ogg(path: str) -> None:
    """Every page: capture pattern, version 0, complete, and its CRC right."""
    size = os.path.getsize(path)
    pages = 0
    with open(path, "rb") as fh:
        offset = 0
        while offset < size:
            header = fh.read(27)
            if len(header) < 27:
                raise _truncated("Ogg", f"its last page header stops after {len(header)} bytes",
                                 offset=offset)
            if header[:4] != b"OggS" or header[4] != 0:
                raise _corrupt("Ogg", f"no Ogg page where one must start (byte {offset:,})", offset=offset)
            lacing = fh.read(header[26])
            body_size = sum(lacing)
            body = fh.read(body_size)
            if len(lacing) < header[26] or len(body) < body_size:
                raise _truncated("Ogg", f"page {pages + 1} needs {27 + header[26] + body_size:,} bytes, "
                                 f"the file ends before", offset=offset)
            page = header[:22] + b"\0\0\0\0" + header[26:] + lacing + body
            if ogg_crc(page) != struct.unpack_from("<I", header, 22)[0]:
                raise _corrupt("Ogg", f"page {pages + 1} (byte {offset:,}) fails its checksum", offset=offset)
            pages += 1
            offset += len(page)


# --- RIFF / WAV -------------------------------------------------------------------------------------

def check_wav(path: str) -> None:
    """The RIFF size and every chunk's size fit in the file; ``fmt `` comes before ``data``."""
    size = os.path.getsize(path)
    with open(path, "rb") as fh:
        riff_size = struct.unpack("<4sI4s", fh.read(12))[1]
        end = min(size, riff_size + 8) if riff_size else size
        if riff_size + 8 > size and riff_size not in (0, 0xFFFFFFFF):
            raise _truncated("WAV", f"its RIFF header announces {riff_size + 8:,} bytes, "
                             f"the file has {size:,}")
        offset, seen_fmt = 12, False
        while offset + 8 <= end:
            fh.seek(offset)
            chunk_id, chunk_size = struct.unpack("<4sI", fh.read(8))
            if chunk_id == b"fmt ":
                seen_fmt = True
            if chunk_id == b"data" and not seen_fmt:
                raise _corrupt("WAV", "its sample data comes before the format chunk")
            streaming = chunk_id == b"data" and chunk_size in (0, 0xFFFFFFFF)
            if offset + 8 + chunk_size > size and not streaming:
                raise _truncated("WAV", f"its {chunk_id.decode('latin-1')!r} chunk announces "
                                 f"{chunk_size:,} bytes, {size - offset - 8:,} remain")
            offset += 8 + chunk_size + (chunk_size & 1)
        if not seen_fmt:
            raise _corrupt("WAV", "it has no format chunk")


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
        total_samples = block_max = 0
        while True:
            head = fh.read(4)
            if len(head) < 4:
                raise _truncated("FLAC", "its metadata stops before the audio")
            last, kind, length = head[0] & 0x80, head[0] & 0x7F, int.from_bytes(head[1:], "big")
            if fh.tell() + length > size:
                raise _truncated("FLAC", f"a metadata block of {length:,} bytes runs past the end")
            block = fh.read(length)
            if kind == 0 and length >= 18:
                block_max = struct.unpack_from(">H", block, 2)[0]
                total_samples = int.from_bytes(block[13:18], "big") & 0xFFFFFFFFF
            if last:
                break
        audio_start = fh.tell()
        if audio_start == size:
            raise _truncated("FLAC", "it has no audio frames")
        tail_start = max(audio_start, size - max(64 * 1024, 4 * block_max * 8 + 1024))
        fh.seek(tail_start)
        tail = fh.read()
    frame = _last_flac_frame(tail, block_max)
    if frame is None:
        return  # no header we can read near the end: nothing proven
    start, first_sample, block_size = frame
    if _crc16_flac(tail[start:-2]) != int.from_bytes(tail[-2:], "big"):
        raise _truncated("FLAC", "its last frame is incomplete (checksum of the frame does not match)")
    if total_samples and first_sample + block_size < total_samples:
        raise _truncated("FLAC", f"audio ends at sample {first_sample + block_size:,} of {total_samples:,}")


def _last_flac_frame(tail: bytes, stream_block: int) -> tuple[int, int, int] | None:
    """(offset in *tail*, first sample, block size) of the last frame header with a valid CRC-8."""
    pos = len(tail)
    while (pos := tail.rfind(b"\xff", 0, pos)) >= 0:
        parsed = _flac_frame_header(tail, pos, stream_block)
        if parsed is not None:
            return (pos, *parsed)
    return None


_FLAC_BLOCK = {1: 192, 2: 576, 3: 1152, 4: 2304, 5: 4608, 8: 256, 9: 512, 10: 1024, 11: 2048,
               12: 4096, 13: 8192, 14: 16384, 15: 32768}


def _flac_frame_header(data: bytes, pos: int, stream_block: int) -> tuple[int, int] | None:
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


# --- EBML: WebM / Matroska ---------------------------------------------------------------------------

_SEGMENT, _CLUSTER = 0x18538067, 0x1F43B675
_LEVEL1 = {0x114D9B74, 0x1549A966, 0x1654AE6B, _CLUSTER, 0x1C53BB6B, 0x1941A469, 0x1043A770, 0x1254C367, 0xEC}


def _vint(fh: object, *, is_id: bool) -> tuple[int, int, bool] | None:
    """(value, length, all-ones) of one EBML variable-size integer, or None at end of file."""
    first = fh.read(1)  # type: ignore[attr-defined]
    if not first:
        return None
    b = first[0]
    length = 9 - b.bit_length() if b else 9
    if length > 8:
        raise _corrupt("WebM", f"an invalid element {'ID' if is_id else 'size'} (byte 0x{b:02x})")
    rest = fh.read(length - 1)  # type: ignore[attr-defined]
    if len(rest) < length - 1:
        return None
    raw = int.from_bytes(first + rest, "big")
    value = raw if is_id else raw & ((1 << (7 * length)) - 1)
    return value, length, (raw & ((1 << (7 * length)) - 1)) == (1 << (7 * length)) - 1


def check_ebml(path: str) -> None:
    """The EBML header, the Segment, and its top-level elements (clusters' children when a
    cluster's size is unknown): every size fits in the file."""
    size = os.path.getsize(path)
    with open(path, "rb") as fh:
        offset = 0
        while offset < size:
            fh.seek(offset)
            element = _element(fh, size, offset)
            if element is None:
                return
            eid, data_start, data_size = element
            if eid == _SEGMENT:
                _walk_segment(fh, data_start, size if data_size is None else data_start + data_size, size)
                return
            if data_size is None:
                raise _corrupt("WebM", f"the top-level element 0x{eid:X} has no size")
            offset = data_start + data_size


def _element(fh: object, size: int, offset: int) -> tuple[int, int, int | None] | None:
    eid = _vint(fh, is_id=True)
    if eid is None:
        return None
    length = _vint(fh, is_id=False)
    if length is None:
        raise _truncated("WebM", f"the element at byte {offset:,} stops inside its header")
    data_start = fh.tell()  # type: ignore[attr-defined]
    data_size = None if length[2] else length[0]
    if data_size is not None and data_start + data_size > size:
        raise _truncated("WebM", f"the element 0x{eid[0]:X} at byte {offset:,} needs {data_size:,} bytes, "
                         f"{size - data_start:,} remain", element=f"0x{eid[0]:X}")
    return eid[0], data_start, data_size


def _walk_segment(fh: object, start: int, end: int, size: int) -> None:
    if end > size:
        raise _truncated("WebM", f"its Segment announces {end:,} bytes, the file has {size:,}")
    offset, clusters = start, 0
    while offset < end:
        fh.seek(offset)  # type: ignore[attr-defined]
        element = _element(fh, size, offset)
        if element is None:
            break
        eid, data_start, data_size = element
        if eid == _CLUSTER:
            clusters += 1
        if data_size is None:
            if eid != _CLUSTER:
                raise _corrupt("WebM", f"the element 0x{eid:X} has an unknown size")
            offset = _walk_unknown_cluster(fh, data_start, end, size)
        else:
            offset = data_start + data_size
    if clusters == 0 and end == size and offset >= size:
        raise _truncated("WebM", "it has no media data (no Cluster)")


def _walk_unknown_cluster(fh: object, start: int, end: int, size: int) -> int:
    """A live-written cluster ends where the next top-level element starts."""
    offset = start
    while offset < end:
        fh.seek(offset)  # type: ignore[attr-defined]
        peek = _vint(fh, is_id=True)
        if peek is None or peek[0] in _LEVEL1:
            return offset
        fh.seek(offset)  # type: ignore[attr-defined]
        element = _element(fh, size, offset)
        if element is None or element[2] is None:
            return offset if element is not None else end
        offset = element[1] + element[2]
    return offset


# --- MPEG audio (MP3) --------------------------------------------------------------------------------

_BITRATES = {  # (version is MPEG-1, layer) -> kbit/s by index
    (True, 1): (0, 32, 64, 96, 128, 160, 192, 224, 256, 288, 320, 352, 384, 416, 448),
    (True, 2): (0, 32, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320, 384),
    (True, 3): (0, 32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320),
    (False, 1): (0, 32, 48, 56, 64, 80, 96, 112, 128, 144, 160, 176, 192, 224, 256),
    (False, 2): (0, 8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160),
}
_RATES = {3: (44100, 48000, 32000), 2: (22050, 24000, 16000), 0: (11025, 12000, 8000)}


def _mp3_frame(header: bytes) -> int | None:
    """The byte length of the MPEG audio frame starting with *header*, or None if it is none."""
    if len(header) < 4 or header[0] != 0xFF or header[1] & 0xE0 != 0xE0:
        return None
    version, layer_bits = (header[1] >> 3) & 3, (header[1] >> 1) & 3
    bitrate_index, rate_index, padding = header[2] >> 4, (header[2] >> 2) & 3, (header[2] >> 1) & 1
    if version == 1 or layer_bits == 0 or bitrate_index in (0, 15) or rate_index == 3:
        return None  # reserved values, or free format (length unknown without decoding)
    layer = 4 - layer_bits
    mpeg1 = version == 3
    kbps = _BITRATES[(mpeg1, 1 if layer == 1 else (layer if mpeg1 else 2))][bitrate_index]
    rate = _RATES[version][rate_index]
    if layer == 1:
        return (12 * kbps * 1000 // rate + padding) * 4
    return (144 if mpeg1 or layer == 2 else 72) * kbps * 1000 // rate + padding


def check_mp3(path: str) -> None:
    """Walk the frames after the ID3v2 tag; the last one must be whole, and a Xing/Info header's
    byte count must be there. Lost sync mid-file is not proof (players resync), so it ends the walk."""
    size = os.path.getsize(path)
    with open(path, "rb") as fh:
        head = fh.read(10)
        offset = 0
        if head.startswith(b"ID3") and len(head) == 10:
            tag = (head[6] << 21) | (head[7] << 14) | (head[8] << 7) | head[9]
            offset = 10 + tag + (10 if head[5] & 0x10 else 0)
            if offset > size:
                raise _truncated("MP3", "its ID3 tag runs past the end of the file")
        fh.seek(offset)
        buf, buf_start = fh.read(_BLOCK), offset
        first = offset
        announced: int | None = None
        frames = 0
        while True:
            rel = offset - buf_start
            if rel + 4 > len(buf):
                more = fh.read(_BLOCK)
                if not more:
                    break
                buf, buf_start = buf[rel:] + more, offset
                rel = 0
            length = _mp3_frame(buf[rel:rel + 4])
            if length is None:
                break
            if frames == 0:
                announced = _xing_bytes(buf[rel:rel + length])
            if offset + length > size:
                raise _truncated("MP3", f"frame {frames + 1} needs {length} bytes, {size - offset} remain")
            frames += 1
            offset += length
    if frames == 0:
        raise _corrupt("MP3", "no MPEG audio frame follows its tag")
    if announced and first + announced > size + 1024:
        raise _truncated("MP3", f"its Xing/Info header announces {announced:,} bytes of audio, "
                         f"{size - first:,} are there")


def _xing_bytes(frame: bytes) -> int | None:
    pos = max(frame.find(b"Xing", 0, 64), frame.find(b"Info", 0, 64))
    if pos < 0 or len(frame) < pos + 16:
        return None
    flags = struct.unpack_from(">I", frame, pos + 4)[0]
    if not flags & 2:
        return None
    return struct.unpack_from(">I", frame, pos + 8 + (4 if flags & 1 else 0))[0]
