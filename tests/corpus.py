"""A corpus of good and bad upload candidates, generated offline, each with the verdict we expect.

Why generated, not checked in: every file carries a per-run token so no two files (and no two runs)
share bytes, which keeps the wiki's duplicate logic out of the way, and binary test data stays out
of git. Media without an encoder here are built by hand from their specs: Ogg Opus pages (RFC 7845,
with the Ogg CRC), MPEG-1 Layer III silent frames behind an ID3v2 tag, and a WebM (Matroska) file
whose single VP8 keyframe is lifted out of a lossy WebP that Pillow wrote.

Not genuine: ``.ogv`` is a valid Ogg file but carries an Opus stream, not Theora video (no Theora
encoder offline). Everything else is a real, decodable file of its type.

``build_corpus(root)`` returns :class:`Case` objects; ``case.path`` is the file to validate and
``case.wanted`` the name to ask the wiki for (names with ``/`` or over 255 bytes cannot exist on
disk, so they are given only as the wanted name).
"""

from __future__ import annotations

import io
import random
import secrets
import struct
import wave
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, PngImagePlugin


def _real_media() -> Path:
    """``shared/corpora/real-media/files`` next to the checkout: ``/work/shared`` for ``/work/main``
    and, as well, for a worktree under ``/work/wt/`` (the first ancestor that has it)."""
    here = Path(__file__).resolve()
    for parent in here.parents:
        candidate = parent / "shared" / "corpora" / "real-media" / "files"
        if candidate.is_dir():
            return candidate
    return here.parents[2] / "shared" / "corpora" / "real-media" / "files"


#: Real media other projects wrote (ORIGINS.tsv next to it says where each file comes from).
REAL_MEDIA = _real_media()

#: Extensions the test wiki allows (devwiki's EXTRA_EXTENSIONS plus MediaWiki's defaults).
WIKI_EXTENSIONS = frozenset({"png", "gif", "jpg", "jpeg", "webp", "svg", "pdf", "tif", "tiff", "ogg", "ogv",
                             "webm", "mp3", "wav"})


@dataclass(frozen=True)
class Case:
    """One corpus entry and what :func:`mwingest.checks.validate.validate_file` should say about it."""

    key: str  # short unique id
    path: Path
    wanted: str  # the name asked for on the wiki
    reason: str | None  # expected Verdict.reason (None: no finding at all)
    ok: bool  # expected Verdict.ok
    note: str

    @property
    def good(self) -> bool:
        return self.reason is None


# --- media builders -------------------------------------------------------------------------------

def _noise(rng: random.Random, size: tuple[int, int], mode: str = "RGB") -> Image.Image:
    return Image.frombytes(mode, size, rng.randbytes(size[0] * size[1] * len(mode)))


def _pil(rng: random.Random, fmt: str, size: tuple[int, int] = (24, 16), **save: object) -> bytes:
    buf = io.BytesIO()
    mode = "P" if fmt == "GIF" else "RGB"
    _noise(rng, size, "L" if mode == "P" else mode).convert(mode).save(buf, format=fmt, **save)
    return buf.getvalue()


def png(rng: random.Random, token: str, size: tuple[int, int] = (24, 16), text: str | None = None) -> bytes:
    info = PngImagePlugin.PngInfo()
    info.add_text("Comment", text or f"mwingest corpus {token}")
    return _pil(rng, "PNG", size, pnginfo=info)


def jpeg(rng: random.Random, token: str, comment: bytes | None = None) -> bytes:
    return _pil(rng, "JPEG", (64, 48), quality=90, comment=comment or f"mwingest {token}".encode())


def _ogg_crc(data: bytes) -> int:
    crc = 0
    for byte in data:
        crc ^= byte << 24
        for _ in range(8):
            crc = ((crc << 1) ^ 0x04C11DB7) if crc & 0x80000000 else crc << 1
            crc &= 0xFFFFFFFF
    return crc


def _ogg_page(packets: list[bytes], *, serial: int, seq: int, granule: int, flags: int) -> bytes:
    lacing = b""
    for packet in packets:
        lacing += b"\xff" * (len(packet) // 255) + bytes([len(packet) % 255])
    header = struct.pack("<4sBBqIII", b"OggS", 0, flags, granule, serial, seq, 0)
    page = header + bytes([len(lacing)]) + lacing + b"".join(packets)
    return page[:22] + struct.pack("<I", _ogg_crc(page)) + page[26:]


def ogg_opus(rng: random.Random, token: str, frames: int = 25) -> bytes:
    """Ogg Opus, mono, ``frames`` × 20 ms of packets that hold only a TOC byte (decoded as silence)."""
    serial = rng.getrandbits(32)
    head = b"OpusHead" + struct.pack("<BBHIhB", 1, 1, 312, 48000, 0, 0)
    comment = f"MWINGEST={token}".encode()
    tags = b"OpusTags" + struct.pack("<I", 8) + b"mwingest" + struct.pack("<II", 1, len(comment)) + comment
    audio = [bytes([0xF8])] * frames  # config 31 (CELT FB 20 ms), mono, one frame of length 0
    return (_ogg_page([head], serial=serial, seq=0, granule=0, flags=0x02)
            + _ogg_page([tags], serial=serial, seq=1, granule=0, flags=0)
            + _ogg_page(audio, serial=serial, seq=2, granule=312 + frames * 960, flags=0x04))


def mp3(rng: random.Random, token: str, frames: int = 20) -> bytes:
    """ID3v2.3 tag + MPEG-1 Layer III 128 kbit/s 44.1 kHz mono frames with zero side info (silence)."""
    text = b"\x00" + f"mwingest {token}".encode()
    frame = b"TIT2" + struct.pack(">IH", len(text), 0) + text
    size = len(frame)
    syncsafe = bytes([(size >> 21) & 0x7F, (size >> 14) & 0x7F, (size >> 7) & 0x7F, size & 0x7F])
    audio = (b"\xff\xfb\x90\xc0" + bytes(417 - 4)) * frames  # 144 * 128000 / 44100 = 417 bytes
    return b"ID3\x03\x00\x00" + syncsafe + frame + audio


def wav(rng: random.Random, token: str) -> bytes:
    buf = io.BytesIO()
    with wave.open(buf, "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(8000)
        out.writeframes(rng.randbytes(1600) + token.encode().ljust(16, b"\0"))
    return buf.getvalue()


def _ebml(element_id: int, payload: bytes | int | str) -> bytes:
    if isinstance(payload, int):
        payload = payload.to_bytes(max(1, (payload.bit_length() + 7) // 8), "big")
    elif isinstance(payload, str):
        payload = payload.encode()
    size = len(payload)
    vint = bytes([0x80 | size]) if size < 0x7F else (0x01 << 56 | size).to_bytes(8, "big")
    return element_id.to_bytes((element_id.bit_length() + 7) // 8, "big") + vint + payload


def webm(rng: random.Random, token: str) -> bytes:
    """A one-frame VP8 WebM; the keyframe is the ``VP8 `` chunk of a lossy WebP written by Pillow."""
    width, height = 32, 24
    riff = _pil(rng, "WEBP", (width, height), quality=60, lossless=False)
    assert riff[12:16] == b"VP8 ", "Pillow wrote no simple lossy WebP"
    frame = riff[20:20 + struct.unpack("<I", riff[16:20])[0]]
    header = _ebml(0x1A45DFA3, b"".join([
        _ebml(0x4286, 1), _ebml(0x42F7, 1), _ebml(0x42F2, 4), _ebml(0x42F3, 8),
        _ebml(0x4282, "webm"), _ebml(0x4287, 2), _ebml(0x4285, 2)]))
    info = _ebml(0x1549A966, _ebml(0x2AD7B1, 1_000_000) + _ebml(0x4D80, f"mwingest {token}")
                 + _ebml(0x5741, "mwingest corpus"))
    track = _ebml(0xAE, b"".join([_ebml(0xD7, 1), _ebml(0x73C5, 1), _ebml(0x83, 1), _ebml(0x86, "V_VP8"),
                                  _ebml(0xE0, _ebml(0xB0, width) + _ebml(0xBA, height))]))
    cluster = _ebml(0x1F43B675, _ebml(0xE7, 0) + _ebml(0xA3, b"\x81\x00\x00\x80" + frame))
    return header + _ebml(0x18538067, info + _ebml(0x1654AE6B, track) + cluster)


SVG_NS = 'xmlns="http://www.w3.org/2000/svg" xmlns:xlink="http://www.w3.org/1999/xlink"'


def svg(token: str, body: str = "", *, prolog: str = '<?xml version="1.0" encoding="UTF-8"?>\n') -> bytes:
    return (f'{prolog}<svg {SVG_NS} width="20" height="20"><!-- mwingest {token} -->'
            f'<rect width="20" height="20" fill="#3a6"/>{body}</svg>\n').encode()


# --- the corpus -----------------------------------------------------------------------------------

_Row = tuple[str, "str | tuple[str, str]", "bytes | None", "str | None", bool, str]
W3C_DTD = '<!DOCTYPE svg PUBLIC "-//W3C//DTD SVG 1.1//EN" "http://www.w3.org/Graphics/SVG/1.1/DTD/svg11.dtd">\n'


def _row(key: str, name: str | tuple[str, str], data: bytes | None, reason: str | None, note: str,
         ok: bool | None = None) -> _Row:
    return key, name, data, reason, reason is None if ok is None else ok, note


def _cases(rng: random.Random, t: str) -> list[_Row]:
    """(key, name on disk or (name on disk, wanted name), bytes or None, expected reason, ok, note)."""
    p = png(rng, t)
    rows = [
        # good: every type the test wiki allows
        _row("good-png", "good.png", p, None, "Pillow PNG"),
        _row("good-png-upper", "upper.PNG", png(rng, t), None, "upper-case extension"),
        _row("good-jpg", "good.jpg", jpeg(rng, t), None, "Pillow JPEG"),
        _row("good-jpeg", "good.jpeg", jpeg(rng, t), None, "Pillow JPEG as .jpeg"),
        _row("good-gif", "good.gif", _pil(rng, "GIF", comment=t.encode()), None, "Pillow GIF"),
        _row("good-webp", "good.webp", _pil(rng, "WEBP", quality=70), None, "Pillow WebP"),
        _row("good-svg", "good.svg", svg(t, '<a xlink:href="https://example.org/"><circle r="3"/></a>'), None,
             "clean SVG with an https link on <a>"),
        _row("good-svg-dtd", "dtd.svg", svg(t, prolog=W3C_DTD), None, "SVG with the W3C DOCTYPE"),
        _row("good-pdf", "good.pdf", _pil(rng, "PDF", title=t), None, "Pillow PDF"),
        _row("good-tif", "good.tif", _pil(rng, "TIFF", description=t), None, "Pillow TIFF"),
        _row("good-tiff", "good.tiff", _pil(rng, "TIFF", description=t, compression="tiff_lzw"), None, "LZW"),
        _row("good-ogg", "good.ogg", ogg_opus(rng, t), None, "hand-built Ogg Opus"),
        _row("good-ogv", "good.ogv", ogg_opus(rng, t + "v"), None, "Ogg container (Opus, not Theora)"),
        _row("good-webm", "good.webm", webm(rng, t), None, "hand-built VP8 WebM"),
        _row("good-mp3", "good.mp3", mp3(rng, t), None, "hand-built MP3 frames"),
        _row("good-wav", "good.wav", wav(rng, t), None, "stdlib wave"),
        _row("nfd-name", "e\u0301t\u0301.png", png(rng, t), None, "NFD name: NFC-normalised silently"),
    ]
    return rows + _bad_content(rng, t, p) + _bad_names(rng, t)


def _bad_content(rng: random.Random, t: str, p: bytes) -> list[_Row]:
    zip_buf = io.BytesIO()
    with zipfile.ZipFile(zip_buf, "w") as zf:
        zf.writestr("readme.txt", f"mwingest {t}")
    ihdr = _png_chunk(b"IHDR", struct.pack(">IIBBBBB", 100_000, 100_000, 8, 2, 0, 0, 0))
    bomb_png = b"\x89PNG\r\n\x1a\n" + ihdr + _png_chunk(b"IDAT", zlib.compress(bytes(1_200_004)))
    bomb_gif = b"GIF89a" + struct.pack("<HHBBB", 65535, 65535, 0, 0, 0) + b",\0\0\0\0\1\0\1\0\0\2\2D\1\0;"
    xxe = '<!DOCTYPE svg [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>\n'
    ms, sc, ss = "mime-mismatch", "script-content", "svg-script"
    return [
        # content the wiki refuses
        _row("jpeg-as-png", "jpeg.png", jpeg(rng, t), ms, "JPEG bytes named .png"),
        _row("html-as-jpg", "page.jpg", f"<html><body>{t}</body></html>".encode(), sc, "HTML"),
        _row("doctype-as-png", "doc.png", f"<!DOCTYPE html>\n<p>{t}</p>".encode(), "banned-type",
             "HTML doctype, but well-formed XML: the wiki types it by its root, application/xml"),
        _row("html-doctype-as-png", "html.png", f"<!DOCTYPE html><html><p>{t}".encode(), sc, "HTML doctype"),
        _row("text-as-pdf", "text.pdf", f"just some text {t}\nsecond line\n".encode(), ms, "text"),
        _row("empty", "empty.png", b"", "empty-file", "zero bytes"),
        _row("svg-script-early", "early.svg", svg(t, "<script>alert(1)</script>"), sc, "<script> in 1st KiB"),
        _row("svg-script-late", "late.svg", svg(t, f"<!--{'x' * 2100}--><script>alert(1)</script>"), ss,
             "<script> after 2 KiB"),
        _row("svg-onload", "onload.svg", svg(t, '<rect onload="alert(1)"/>'), ss, "event handler"),
        _row("svg-ext-href", "href.svg", svg(t, '<image xlink:href="http://example.org/x.png"/>'), ss,
             "external href on <image>"),
        _row("svg-js-href", "jshref.svg", svg(t, '<a xlink:href="javascript:alert(1)"><circle r="2"/></a>'),
             sc, "javascript: URL in the first KiB"),
        _row("svg-pi", "pi.svg", svg(t, prolog='<?xml-stylesheet type="text/css" href="http://x.org/a.css"?>'),
             ss, "xml-stylesheet PI"),
        _row("svg-xhtml", "xhtml.svg", svg(t, '<foreignObject><div xmlns="http://www.w3.org/1999/xhtml">x</div>'
                                              "</foreignObject>"), ss, "XHTML namespace"),
        _row("svg-malformed", "broken.svg", svg(t, "<g><rect></g>"), "svg-invalid", "mismatched tags"),
        _row("svg-laughs", "laughs.svg", _billion_laughs(t), "svg-invalid", "billion laughs"),
        _row("svg-xxe", "xxe.svg", svg(t, "<text>&xxe;</text>", prolog=xxe), "svg-invalid",
             "external entity"),
        _row("svg-entity", "entity.svg", svg(t, prolog='<!DOCTYPE svg [<!ENTITY ns "x">]>\n'), None,
             "harmless internal entity (Illustrator style): the wiki accepts it, and so do we"),
        _row("svg-dtd", "sysdtd.svg", svg(t, prolog='<!DOCTYPE svg SYSTEM "http://example.org/evil.dtd">\n'),
             ss, "non-W3C DTD"),
        _row("png-script-chunk", "chunk.png", png(rng, t, text="<script>alert(1)</script>"), sc,
             "<script> in a tEXt chunk within 256 bytes (IE sniffing)"),
        _row("jpeg-html-com", "com.jpg", jpeg(rng, t, comment=b"<html><body>hi</body></html>"), sc,
             "<html> in a JPEG COM segment"),
        _row("gif-php", "php.gif", f"GIF89a<?php echo '{t}'; ?>".encode(), sc, "GIF89a<?php"),
        _row("zip-as-png", "zip.png", zip_buf.getvalue(), ms, "ZIP named .png"),
        _row("svg-as-png", "svg.png", svg(t), "banned-type", "SVG bytes named .png: IE says text/xml"),
        _row("xml-file", "data.xml", f'<?xml version="1.0"?><data>{t}</data>'.encode(), "banned-type", "XML"),
        _row("mz-exe", "tool.exe", b"MZ\x90\x00" + t.encode() + bytes(300), "banned-type", "MZ executable"),
        _row("png-as-exe", "pic.jpg.exe", png(rng, t), ms, "content is checked before the name"),
        # our own integrity checks: the wiki accepts these
        _row("png-truncated", "trunc.png", p[: len(p) * 6 // 10], "corrupt-image", "PNG cut at 60 %"),
        _row("jpeg-truncated", "trunc.jpg", jpeg(rng, t)[:600], "corrupt-image", "JPEG cut short"),
        _row("png-zeros", "zeros.png", b"\x89PNG\r\n\x1a\n" + bytes(200) + t.encode(), "corrupt-image",
             "PNG signature then zeros"),
        _row("png-bomb", "bomb.png", bomb_png + t.encode(), "decompression-bomb", "PNG of 100000x100000"),
        _row("gif-bomb", "bomb.gif", bomb_gif + t.encode(), "decompression-bomb", "GIF of 65535x65535"),
    ]


def _bad_names(rng: random.Random, t: str) -> list[_Row]:
    bf = "bad-filename"
    return [
        _row("php-png", "shell.php.png", png(rng, t), "filetype-prohibited", ".php anywhere in the name"),
        _row("txt", "notes.txt", f"plain text {t}\n".encode(), "filetype-not-allowed", ".txt not allowed"),
        _row("noext-text", "README", f"plain text without extension {t}\n".encode(), "filetype-not-allowed",
             "the wiki guesses .txt from the content, then refuses it"),
        _row("noext-png", "noext", png(rng, t), bf, "the wiki appends .png", ok=True),
        _row("odd-chars", ("odd.png", "a#b<c>[d]{e}|f.png"), png(rng, t), bf, "#<>[]{}| become -", ok=True),
        _row("colon", "a:b.png", png(rng, t), bf, ": becomes -", ok=True),
        _row("slash", ("slash.png", "dir/sub.png"), png(rng, t), bf, "/ becomes -", ok=True),
        _row("rtl-mark", "a\u200fb.png", png(rng, t), bf, "bidi mark removed", ok=True),
        _row("percent", "a%41b.png", png(rng, t), bf, "%XX is illegal"),
        _row("tildes", "a~~~b.png", png(rng, t), bf, "~~~ is illegal"),
        _row("too-long", ("long.png", "L" * 296 + ".png"), png(rng, t), "filename-too-long", "300 bytes"),
        _row("dot-only", ".png", png(rng, t), bf, "nothing before the extension"),
        _row("trailing-dot", "dot.", png(rng, t), bf, "empty extension: filetype-missing"),
        # local problems
        _row("missing", "missing.png", None, "not-found", "no such file"),
        _row("directory", "folder.png", None, "not-a-file", "a directory"),
    ]


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def _billion_laughs(token: str) -> bytes:
    ents = ['<!ENTITY lol0 "lol">'] + [f'<!ENTITY lol{i} "{f"&lol{i - 1};" * 10}">' for i in range(1, 10)]
    return svg(token, "<text>&lol9;</text>", prolog=f"<!DOCTYPE svg [{''.join(ents)}]>\n")


def build_corpus(root: Path, *, token: str | None = None, seed: int | None = None) -> list[Case]:
    """Write the corpus under *root* and return its cases (good ones first)."""
    token = token or secrets.token_hex(4)
    rng = random.Random(seed if seed is not None else secrets.randbits(64))
    cases = []
    for key, names, data, reason, ok, note in _cases(rng, token):
        disk, wanted = names if isinstance(names, tuple) else (names, names)
        folder = root / key
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / disk
        if key == "directory":
            path.mkdir()
        elif data is not None:
            path.write_bytes(data)
        cases.append(Case(key, path, wanted, reason, ok, note))
    return cases


def good_extensions(cases: list[Case]) -> set[str]:
    """Lower-case extensions covered by the good cases."""
    return {c.wanted.rsplit(".", 1)[-1].lower() for c in cases if c.good}

