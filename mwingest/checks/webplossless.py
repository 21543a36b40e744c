"""Lossless WebP (VP8L): does the bitstream end where its chunk ends? (issue 26)

Why: VP8L has no checksum, and libwebp (Pillow's decoder) decodes most damage in the middle of a
lossless image without an error: a run of zeroed bytes becomes other valid symbols, the decoder
stops once it has its pixels, and the rest of the chunk is never read. The wiki stores such a
file; it shows garbage from the damage on. The proof is in the bitstream itself: an encoder
ends the stream in the chunk's last byte, so a stream that is complete while whole bytes of the
chunk remain unread (and they are not zero padding) was damaged.

So this module walks a VP8L stream the way a decoder parses it (RFC 9649: transforms, color
cache, meta prefix codes, the five prefix codes per group, literals, backward references, cache
indexes), without computing colors: only the entropy image that selects prefix-code groups needs
its pixel values, and it is small. Time is one table lookup per symbol; images over
:data:`MAX_PIXELS` are not walked. A walk that meets anything it does not expect gives no verdict
(:class:`Unsure`): only a stream that parses completely and leaves unread bytes is called damaged.
"""

from __future__ import annotations

import struct

#: Pixels (main image) walked at most: a 1.4-megapixel screenshot took 3.3 s on the shared test
#: machine (CPython, two busy cores), so a walk stays within about seven seconds.
MAX_PIXELS = 3_000_000
#: Files read whole to find their VP8L chunks at most.
MAX_FILE_BYTES = 64 << 20
#: Table entries built for prefix codes at most (memory), across all groups.
MAX_TABLE_ENTRIES = 8_000_000
_ALPHABET = (256 + 24, 256, 256, 256, 40)
_CODE_LENGTH_ORDER = (17, 18, 0, 1, 2, 3, 4, 5, 16, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15)


class Unsure(Exception):
    """The walk cannot tell (an unexpected structure, or over a limit): no verdict."""


class Broken(Exception):
    """The stream contradicts itself."""


class _Bits:
    """LSB-first bit reader over *data* (a VP8L stream)."""

    def __init__(self, data: bytes) -> None:
        self.data, self.pos, self.value, self.count = data, 0, 0, 0

    def _fill(self, need: int) -> None:
        while self.count < need:
            if self.pos >= len(self.data):
                raise Broken("the stream needs more bits than its chunk holds")
            self.value |= self.data[self.pos] << self.count
            self.pos += 1
            self.count += 8

    def read(self, n: int) -> int:
        if n == 0:
            return 0
        self._fill(n)
        out = self.value & ((1 << n) - 1)
        self.value >>= n
        self.count -= n
        return out

    def peek(self, n: int) -> int:
        """Up to *n* bits (fewer at the end of the data, padded with zeros)."""
        while self.count < n and self.pos < len(self.data):
            self.value |= self.data[self.pos] << self.count
            self.pos += 1
            self.count += 8
        return self.value & ((1 << n) - 1)

    def skip(self, n: int) -> None:
        if n > self.count:
            raise Broken("the stream needs more bits than its chunk holds")
        self.value >>= n
        self.count -= n

    def unread_bytes(self) -> bytes:
        """The whole bytes after the last bit read."""
        return self.data[self.pos - self.count // 8:]


class _Code:
    """A canonical prefix code as a lookup table on the next *width* bits (LSB first)."""

    def __init__(self, lengths: list[int], budget: list[int]) -> None:
        used = [(length, symbol) for symbol, length in enumerate(lengths) if length]
        if not used:
            raise Broken("a prefix code has no symbols")
        if len(used) == 1:
            self.width, self.table = 0, [(used[0][1], 0)]
            return
        self.width = max(length for length, _ in used)
        budget[0] -= 1 << self.width
        if budget[0] < 0:
            raise Unsure("prefix code tables over the memory limit")
        table: list[tuple[int, int] | None] = [None] * (1 << self.width)
        code, previous = 0, 0
        for length, symbol in sorted(used):
            code <<= length - previous
            previous = length
            if code >= 1 << length:
                raise Broken("a prefix code is over-subscribed")
            reverse = int(f"{code:0{length}b}"[::-1], 2)
            for fill in range(reverse, 1 << self.width, 1 << length):
                table[fill] = (symbol, length)
            code += 1
        if code != 1 << previous:
            raise Broken("a prefix code is incomplete")
        self.table = table  # type: ignore[assignment]

    def read(self, bits: _Bits) -> int:
        if not self.width:
            return self.table[0][0]
        entry = self.table[bits.peek(self.width)]
        if entry is None:
            raise Broken("bits that are no code")
        bits.skip(entry[1])
        return entry[0]


def check_vp8l(stream: bytes) -> str | None:
    """A description of the damage, or None (whole, or no verdict)."""
    try:
        return _walk(stream)
    except Broken as exc:
        return str(exc)
    except (Unsure, IndexError, ValueError, RecursionError):
        return None


def _walk(stream: bytes) -> str | None:
    if len(stream) < 5 or stream[0] != 0x2F:
        return None  # libwebp itself refuses these
    bits = _Bits(stream[1:])
    width, height = bits.read(14) + 1, bits.read(14) + 1
    bits.read(1)
    if bits.read(3) != 0:
        return None
    if width * height > MAX_PIXELS:
        raise Unsure("too large to walk")
    budget = [MAX_TABLE_ENTRIES]
    xsize, seen = width, set()
    while bits.read(1):
        kind = bits.read(2)
        if kind in seen:
            raise Broken("a transform appears twice")
        seen.add(kind)
        if kind in (0, 1):
            size_bits = bits.read(3) + 2
            _image(bits, _sub(xsize, size_bits), _sub(height, size_bits), budget, values=False)
        elif kind == 3:
            colors = bits.read(8) + 1
            _image(bits, colors, 1, budget, values=False)
            xsize = _sub(xsize, 3 if colors <= 2 else 2 if colors <= 4 else 1 if colors <= 16 else 0)
    _image(bits, xsize, height, budget, values=False, level0=True)
    rest = bits.unread_bytes()
    if len(rest) > 1 and rest.strip(b"\x00"):
        return (f"its lossless image data ends {len(rest):,} bytes before its chunk does: the bytes "
                "between were damaged (decoders show garbage from there on)")
    return None


def _sub(size: int, bits: int) -> int:
    return (size + (1 << bits) - 1) >> bits


def _image(bits: _Bits, xsize: int, ysize: int, budget: list[int], *, values: bool,
           level0: bool = False) -> list[int]:
    """Parse one entropy-coded image; its ARGB values when *values* (only the entropy image)."""
    cache_bits = 0
    if bits.read(1):
        cache_bits = bits.read(4)
        if not 1 <= cache_bits <= 11:
            raise Broken("a color cache size out of range")
    groups_of: list[int] | None = None
    group_bits = 0
    if level0 and bits.read(1):
        group_bits = bits.read(3) + 2
        entropy = _image(bits, _sub(xsize, group_bits), _sub(ysize, group_bits), budget, values=True)
        groups_of = [(pixel >> 8) & 0xFFFF for pixel in entropy]
    count = (max(groups_of) + 1) if groups_of else 1
    cache_size = (1 << cache_bits) if cache_bits else 0
    groups = [[_read_code(bits, _ALPHABET[j] + (cache_size if j == 0 else 0), budget) for j in range(5)]
              for _ in range(count)]
    return _pixels(bits, xsize, ysize, groups, groups_of, group_bits, cache_bits, values)


def _pixels(bits: _Bits, xsize: int, ysize: int, groups: list[list[_Code]], groups_of: list[int] | None,
            group_bits: int, cache_bits: int, values: bool) -> list[int]:
    total, pos = xsize * ysize, 0
    out: list[int] = []
    cache = [0] * (1 << cache_bits) if cache_bits and values else []
    group_row = _sub(xsize, group_bits) if groups_of is not None else 0
    while pos < total:
        if groups_of is not None:
            y, x = divmod(pos, xsize)
            group = groups_of[(y >> group_bits) * group_row + (x >> group_bits)]
            green, red, blue, alpha, distance = groups[group]
        else:
            green, red, blue, alpha, distance = groups[0]
        code = green.read(bits)
        if code < 256:
            r, b, a = red.read(bits), blue.read(bits), alpha.read(bits)
            if values:
                _put(out, cache, cache_bits, (a << 24) | (r << 16) | (code << 8) | b)
            pos += 1
        elif code < 256 + 24:
            length = _copy_value(code - 256, bits)
            plane = _copy_value(distance.read(bits), bits)
            dist = _plane_distance(xsize, plane)
            if dist > pos or pos + length > total:
                raise Broken("a backward reference points outside the image")
            if values:
                for _ in range(length):
                    _put(out, cache, cache_bits, out[-dist])
            pos += length
        else:
            if not cache_bits:
                raise Broken("a color cache index without a cache")
            if values:
                _put(out, cache, cache_bits, cache[code - 280])
            pos += 1
    return out


def _put(out: list[int], cache: list[int], cache_bits: int, argb: int) -> None:
    out.append(argb)
    if cache_bits:
        cache[((0x1E35A7BD * argb) & 0xFFFFFFFF) >> (32 - cache_bits)] = argb


def _copy_value(prefix: int, bits: _Bits) -> int:
    if prefix < 4:
        return prefix + 1
    extra = (prefix - 2) >> 1
    return ((2 + (prefix & 1)) << extra) + bits.read(extra) + 1


_DISTANCE_MAP = (
    (0, 1), (1, 0), (1, 1), (-1, 1), (0, 2), (2, 0), (1, 2), (-1, 2), (2, 1), (-2, 1), (2, 2), (-2, 2),
    (0, 3), (3, 0), (1, 3), (-1, 3), (3, 1), (-3, 1), (2, 3), (-2, 3), (3, 2), (-3, 2), (0, 4), (4, 0),
    (1, 4), (-1, 4), (4, 1), (-4, 1), (3, 3), (-3, 3), (2, 4), (-2, 4), (4, 2), (-4, 2), (0, 5), (3, 4),
    (-3, 4), (4, 3), (-4, 3), (5, 0), (1, 5), (-1, 5), (5, 1), (-5, 1), (2, 5), (-2, 5), (5, 2), (-5, 2),
    (4, 4), (-4, 4), (3, 5), (-3, 5), (5, 3), (-5, 3), (0, 6), (6, 0), (1, 6), (-1, 6), (6, 1), (-6, 1),
    (2, 6), (-2, 6), (6, 2), (-6, 2), (4, 5), (-4, 5), (5, 4), (-5, 4), (3, 6), (-3, 6), (6, 3), (-6, 3),
    (0, 7), (7, 0), (1, 7), (-1, 7), (5, 5), (-5, 5), (7, 1), (-7, 1), (4, 6), (-4, 6), (6, 4), (-6, 4),
    (2, 7), (-2, 7), (7, 2), (-7, 2), (3, 7), (-3, 7), (7, 3), (-7, 3), (5, 6), (-5, 6), (6, 5), (-6, 5),
    (8, 0), (4, 7), (-4, 7), (7, 4), (-7, 4), (8, 1), (8, 2), (6, 6), (-6, 6), (8, 3), (5, 7), (-5, 7),
    (7, 5), (-7, 5), (8, 4), (6, 7), (-6, 7), (7, 6), (-7, 6), (8, 5), (7, 7), (-7, 7), (8, 6), (8, 7))


def _plane_distance(xsize: int, plane: int) -> int:
    if plane > 120:
        return plane - 120
    dx, dy = _DISTANCE_MAP[plane - 1]
    return max(1, dx + dy * xsize)


def _read_code(bits: _Bits, alphabet: int, budget: list[int]) -> _Code:
    lengths = [0] * alphabet
    if bits.read(1):  # simple code: one or two symbols
        two = bits.read(1)
        first = bits.read(8 if bits.read(1) else 1)
        if first >= alphabet:
            raise Broken("a prefix code symbol out of range")
        lengths[first] = 1
        if two:
            second = bits.read(8)
            if second >= alphabet:
                raise Broken("a prefix code symbol out of range")
            lengths[second] = 1
        return _Code(lengths, budget)
    code_lengths = [0] * 19
    for index in range(bits.read(4) + 4):
        code_lengths[_CODE_LENGTH_ORDER[index]] = bits.read(3)
    meta = _Code(code_lengths, budget)
    limit = alphabet
    if bits.read(1):
        limit = 2 + bits.read(2 + 2 * bits.read(3))
        if limit > alphabet:
            raise Broken("a prefix code's length count is out of range")
    symbol, previous = 0, 8
    while symbol < alphabet and limit > 0:
        limit -= 1
        length = meta.read(bits)
        if length < 16:
            lengths[symbol] = length
            symbol += 1
            if length:
                previous = length
            continue
        extra, offset = {16: (2, 3), 17: (3, 3), 18: (7, 11)}[length]
        repeat = bits.read(extra) + offset
        if symbol + repeat > alphabet:
            raise Broken("a prefix code's lengths run past its alphabet")
        fill = previous if length == 16 else 0
        lengths[symbol:symbol + repeat] = [fill] * repeat
        symbol += repeat
    return _Code(lengths, budget)


def damage_in(path: str) -> str | None:
    """The first damaged lossless bitstream of the WebP file at *path* (which libwebp decoded)."""
    with open(path, "rb") as fh:
        data = fh.read(MAX_FILE_BYTES + 1)
    if len(data) > MAX_FILE_BYTES:
        return None
    for number, stream in enumerate(vp8l_chunks(data)):
        found = check_vp8l(stream)
        if found:
            return found if number == 0 else f"frame {number + 1}: {found}"
    return None


def vp8l_chunks(data: bytes) -> list[bytes]:
    """The VP8L bitstreams of a WebP file: the image's, or each animation frame's."""
    found: list[bytes] = []
    _chunks(data, 12, len(data), found)
    return found


def _chunks(data: bytes, pos: int, end: int, found: list[bytes]) -> None:
    while pos + 8 <= end:
        kind, size = data[pos:pos + 4], struct.unpack_from("<I", data, pos + 4)[0]
        body = data[pos + 8:pos + 8 + size]
        if kind == b"VP8L":
            found.append(body)
        elif kind == b"ANMF" and size > 16:
            _chunks(data, pos + 8 + 16, min(end, pos + 8 + size), found)
        pos += 8 + size + (size & 1)
