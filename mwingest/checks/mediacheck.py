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

import logging
import os
import struct
import zlib
from collections.abc import Callable

from mwingest.checks.content import Issue
from mwingest.checks.damage import Damage, corrupt, truncated

log = logging.getLogger(__name__)

_BLOCK = 1 << 20
_REV8 = bytes(int(f"{i:08b}"[::-1], 2) for i in range(256))


def check_media(path: str, mime: str | None) -> list[Issue]:
    """The first structural damage in an audio or video file (by its sniffed *mime*), or nothing."""
    checker = _checker_for(path, mime or "")
    if checker is None:
        return []
    try:
        checker(path)
    except Damage as damage:
        return [damage.issue]
    except OSError:
        raise  # the caller reports an unreadable file
    except Exception:  # a walk's own bug is no proof of damage: never a crash, never a refusal
        log.debug("structure check of %s failed", path, exc_info=True)
    return []


def _checker_for(path: str, mime: str) -> Callable[[str], None] | None:
    with open(path, "rb") as fh:
        head = fh.read(12)
    if head.startswith(b"OggS"):
        return check_ogg
    if head.startswith(b"RIFF") and head[8:12] == b"WAVE":
        return check_wav
    if head.startswith(b"fLaC"):
        from mwingest.checks.audioframes import check_flac  # imports this module's helpers

        return check_flac
    if head.startswith(b"\x1a\x45\xdf\xa3"):
        return check_ebml
    if mime == "audio/mpeg":
        from mwingest.checks.audioframes import check_mp3

        return check_mp3
    from mwingest.checks.mp4boxes import MIMES, check_mp4  # imports this module's helpers

    if mime in MIMES:
        return check_mp4
    return None


# --- Ogg (RFC 3533) ---------------------------------------------------------------------------------

def ogg_crc(data: bytes) -> int:
    """Ogg's CRC-32 (polynomial 0x04C11DB7, not reflected, no pre/post inversion), via zlib's
    reflected CRC-32 on bit-reversed bytes: C speed, no table of our own."""
    raw = zlib.crc32(data.translate(_REV8), 0xFFFFFFFF) ^ 0xFFFFFFFF
    return int(f"{raw:032b}"[::-1], 2)


def check_ogg(path: str) -> None:
    """Every page: capture pattern, version 0, complete, and its CRC right. Bytes after the
    end of every stream are tolerated (they are no part of it)."""
    size = os.path.getsize(path)
    pages = 0
    open_streams: set[int] = set()
    with open(path, "rb") as fh:
        offset = 0
        while offset < size:
            header = fh.read(27)
            if pages and not open_streams and not header.startswith(b"OggS"):
                return  # every stream has ended: bytes after them (a tag, padding) harm no player
            if len(header) < 27:
                raise truncated("Ogg", f"its last page header stops after {len(header)} bytes",
                                 offset=offset)
            if header[:4] != b"OggS" or header[4] != 0:
                raise corrupt("Ogg", f"no Ogg page where one must start (byte {offset:,})", offset=offset)
            serial = struct.unpack_from("<I", header, 14)[0]
            if header[5] & 2:
                open_streams.add(serial)
            if header[5] & 4:
                open_streams.discard(serial)
            lacing = fh.read(header[26])
            body_size = sum(lacing)
            body = fh.read(body_size)
            if len(lacing) < header[26] or len(body) < body_size:
                raise truncated("Ogg", f"page {pages + 1} needs {27 + header[26] + body_size:,} bytes, "
                                 f"the file ends before", offset=offset)
            page = header[:22] + b"\0\0\0\0" + header[26:] + lacing + body
            if ogg_crc(page) != struct.unpack_from("<I", header, 22)[0]:
                raise corrupt("Ogg", f"page {pages + 1} (byte {offset:,}) fails its checksum", offset=offset)
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
            raise truncated("WAV", f"its RIFF header announces {riff_size + 8:,} bytes, "
                             f"the file has {size:,}")
        offset, seen_fmt = 12, False
        while offset + 8 <= end:
            fh.seek(offset)
            chunk_id, chunk_size = struct.unpack("<4sI", fh.read(8))
            if chunk_id == b"fmt ":
                seen_fmt = True
            if chunk_id == b"data" and not seen_fmt:
                raise corrupt("WAV", "its sample data comes before the format chunk")
            streaming = chunk_id == b"data" and chunk_size in (0, 0xFFFFFFFF)
            if offset + 8 + chunk_size > size and not streaming:
                raise truncated("WAV", f"its {chunk_id.decode('latin-1')!r} chunk announces "
                                 f"{chunk_size:,} bytes, {size - offset - 8:,} remain")
            offset += 8 + chunk_size + (chunk_size & 1)
        if not seen_fmt:
            raise corrupt("WAV", "it has no format chunk")


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
        raise corrupt("WebM", f"an invalid element {'ID' if is_id else 'size'} (byte 0x{b:02x})")
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
                raise corrupt("WebM", f"the top-level element 0x{eid:X} has no size")
            offset = data_start + data_size


def _element(fh: object, size: int, offset: int) -> tuple[int, int, int | None] | None:
    eid = _vint(fh, is_id=True)
    if eid is None:
        return None
    length = _vint(fh, is_id=False)
    if length is None:
        raise truncated("WebM", f"the element at byte {offset:,} stops inside its header")
    data_start = fh.tell()  # type: ignore[attr-defined]
    data_size = None if length[2] else length[0]
    if data_size is not None and data_start + data_size > size:
        raise truncated("WebM", f"the element 0x{eid[0]:X} at byte {offset:,} needs {data_size:,} bytes, "
                         f"{size - data_start:,} remain", element=f"0x{eid[0]:X}")
    return eid[0], data_start, data_size


def _walk_segment(fh: object, start: int, end: int, size: int) -> None:
    if end > size:
        raise truncated("WebM", f"its Segment announces {end:,} bytes, the file has {size:,}")
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
                raise corrupt("WebM", f"the element 0x{eid:X} has an unknown size")
            offset = _walk_unknown_cluster(fh, data_start, end, size)
        else:
            if eid == _CLUSTER:
                _walk_cluster(fh, data_start, data_start + data_size, size, clusters)
            offset = data_start + data_size
    if clusters == 0 and end == size and offset >= size:
        raise truncated("WebM", "it has no media data (no Cluster)")


def _walk_cluster(fh: object, start: int, end: int, size: int, number: int) -> None:
    """A cluster's blocks (headers only) must fill it exactly: one that runs past its end, or has
    no size, is damage inside the media data."""
    offset = start
    while offset < end:
        fh.seek(offset)  # type: ignore[attr-defined]
        element = _element(fh, size, offset)
        if element is None:
            raise truncated("WebM", f"cluster {number} stops inside a block header")
        _eid, data_start, data_size = element
        if data_size is None or data_start + data_size > end:
            raise corrupt("WebM", f"a block at byte {offset:,} runs past the end of cluster {number}")
        offset = data_start + data_size


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
