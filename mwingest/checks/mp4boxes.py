"""MP4 / M4A / MOV (ISO base media and QuickTime) box structure, for wikis that allow them (issue 26).

Why: a wiki whose ``$wgFileExtensions`` has mp4, m4a or mov stores such a file on its MIME type
alone; a recording that stopped before its index (``moov``) was written, or a copy cut short,
is stored as if whole and never plays. We read box headers only (8 or 16 bytes each, seeking over
the payloads) and the ``moov`` box itself (it is small: an index), never the media data, so time
and memory stay bounded whatever the size:

* every top-level box has a size of at least its header, a type of printable characters, and
  ends within the file (a size of 0 means "to the end", as the format allows); the sizes add up
  to the file, give or take a few trailing bytes players ignore;
* ``ftyp`` comes before the media (``moov``, ``mdat``, ``moof``) when there is one; QuickTime
  files from before ``ftyp`` may start with ``moov``, ``mdat``, ``wide``, ``free``, ``skip``, ``pnot``;
* ``moov`` is there (without it no player can find a sample);
* inside ``moov`` and ``moof``, each child box fits in its parent, and no chunk offset of a
  sample table (``stco``/``co64``) points past the end of the file (the media was cut off).

Codes: ``truncated-media`` (a box or a chunk offset past the end), ``corrupt-media`` (the rest).
"""

from __future__ import annotations

import os
import struct
from typing import BinaryIO

from mwingest.checks.damage import corrupt, truncated

#: MIME types (as sniffed) whose files are walked here.
MIMES = frozenset({"video/mp4", "audio/mp4", "video/quicktime", "audio/x-m4a", "video/x-m4v",
                   "video/3gpp", "video/3gpp2", "audio/3gpp", "audio/3gpp2"})
#: Containers whose children are walked (their payload is boxes and nothing else).
_CONTAINERS = frozenset({b"moov", b"trak", b"mdia", b"minf", b"stbl", b"edts", b"dinf", b"mvex",
                         b"moof", b"traf", b"mfra"})
_QUICKTIME_FIRST = frozenset({b"moov", b"mdat", b"wide", b"free", b"skip", b"pnot"})
_MEDIA = frozenset({b"moov", b"mdat", b"moof"})
#: An index box read into memory at most (a two-hour film's ``moov`` is a few MiB).
MAX_INDEX_BYTES = 64 << 20
#: Zero bytes after the last box that are taken as padding.
_PADDING = 64 << 10
#: Top-level boxes walked at most (a fragmented file has two per fragment).
MAX_BOXES = 1_000_000


def check_mp4(path: str) -> None:
    """Raise :class:`mwingest.checks.damage.Damage` at the first contradiction of the box structure."""
    size = os.path.getsize(path)
    with open(path, "rb") as fh:
        offset, seen, boxes = 0, [], 0
        while offset + 8 <= size and boxes < MAX_BOXES:
            if size - offset <= _PADDING and _zeros(fh, offset):
                break  # zeros after the last box: padding players ignore
            kind, header, length = _box_header(fh, offset, size, "the file")
            if kind == b"ftyp" and any(k in _MEDIA for k in seen):
                raise corrupt("MP4", f"its file type box (ftyp, byte {offset:,}) comes after the media")
            if not seen and kind != b"ftyp" and kind not in _QUICKTIME_FIRST:
                raise corrupt("MP4", f"it starts with a {_name(kind)} box, not a file type box (ftyp)")
            if kind in (b"moov", b"moof"):
                if length > MAX_INDEX_BYTES:
                    raise corrupt("MP4", f"its {_name(kind)} box at byte {offset:,} claims {length:,} bytes")
                fh.seek(offset + header)
                _walk_children(fh.read(length - header), kind, offset + header, size)
            seen.append(kind)
            boxes += 1
            offset += length
    if b"moov" not in seen and boxes < MAX_BOXES:
        raise corrupt("MP4", "it has no movie box (moov): the index players need is missing "
                      "(a recording that stopped before it was written?)")


def _box_header(fh: BinaryIO, offset: int, end: int, parent: str) -> tuple[bytes, int, int]:
    """(type, header length, box length) of the box at *offset*, checked against *end*."""
    fh.seek(offset)
    head = fh.read(16)
    length, kind = struct.unpack(">I4s", head[:8])
    header = 8
    if length == 1:
        if len(head) < 16:
            raise truncated("MP4", f"the {_name(kind)} box at byte {offset:,} stops inside its header")
        length, header = struct.unpack(">Q", head[8:16])[0], 16
    elif length == 0:
        length = end - offset
    if not all(0x20 <= c < 0x7F or c == 0xA9 for c in kind):
        raise corrupt("MP4", f"the bytes at {offset:,} in {parent} are no box (type {kind!r})")
    if length < header:
        raise corrupt("MP4", f"the {_name(kind)} box at byte {offset:,} declares {length} bytes, "
                      f"less than its own header")
    if offset + length > end:
        raise truncated("MP4", f"the {_name(kind)} box at byte {offset:,} needs {length:,} bytes, "
                        f"{end - offset:,} remain")
    return kind, header, length


def _walk_children(payload: bytes, parent: bytes, base: int, file_size: int) -> None:
    """Children of a container box held in *payload* (file offset *base*), depth first."""
    pos = 0
    while pos + 8 <= len(payload):
        length, kind = struct.unpack_from(">I4s", payload, pos)
        header = 8
        if length == 1 and pos + 16 <= len(payload):
            length, header = struct.unpack_from(">Q", payload, pos + 8)[0], 16
        elif length == 0:
            length = len(payload) - pos
        where = f"the {_name(kind)} box at byte {base + pos:,} inside {_name(parent)}"
        if not all(0x20 <= c < 0x7F or c == 0xA9 for c in kind) or length < header:
            raise corrupt("MP4", f"{where} is no box (size {length}, type {kind!r})")
        if pos + length > len(payload):
            raise corrupt("MP4", f"{where} runs {pos + length - len(payload):,} bytes past its parent")
        body = payload[pos + header:pos + length]
        if kind in _CONTAINERS:
            _walk_children(body, kind, base + pos + header, file_size)
        elif kind in (b"stco", b"co64"):
            _check_chunk_offsets(body, kind, file_size, where)
        pos += length


def _check_chunk_offsets(body: bytes, kind: bytes, file_size: int, where: str) -> None:
    if len(body) < 8:
        raise corrupt("MP4", f"{where} is too short for its entry count")
    count = struct.unpack_from(">I", body, 4)[0]
    width = 8 if kind == b"co64" else 4
    if 8 + count * width > len(body):
        raise corrupt("MP4", f"{where} lists {count:,} chunks but holds {(len(body) - 8) // width:,}")
    if count:
        import numpy as np  # the table may list millions of chunks

        last = int(np.frombuffer(body, dtype=">u8" if width == 8 else ">u4", count=count, offset=8).max())
        if last >= file_size:
            raise truncated("MP4", f"its sample table points at byte {last:,}, past the end of the file "
                            f"({file_size:,} bytes): the media data was cut off")


def _zeros(fh: BinaryIO, offset: int) -> bool:
    fh.seek(offset)
    return not fh.read().strip(b"\0")


def _name(kind: bytes) -> str:
    return kind.decode("latin-1")
