"""Content checks on a file's bytes, by the rules and in the order of MediaWiki 1.39 (spec §10).

Why mirror the wiki instead of just uploading: a refusal found locally costs no upload, gives a
reason a person can act on, and lets a bulk run sort a folder before a byte is sent. The rules
follow ``UploadBase::verifyFile`` and ``MimeAnalyzer::guessMimeType`` in the 1.39 source:

1. partial checks: the sniffed type is not in ``$wgMimeTypeExclusions``; Internet Explorer's
   sniffing of the first 256 bytes (:func:`~mwingest.checks.iesniff.ie_mime_types`) does not make it
   one; ``detectScript`` finds no HTML or script marker in the first KiB;
2. the sniffed type matches the extension (``$wgVerifyMimeType``);
3. SVG rules (:func:`mwingest.checks.svgcheck.check_svg`);
4. what the wiki does *not* check and we do (:func:`check_raster`): Pillow decodes raster images,
   because the wiki accepts truncated ones, and refuses decompression bombs from the header.

What the file *is* comes from :mod:`mwingest.checks.mimesniff`; SVG rules live in
:mod:`mwingest.checks.svgcheck`.
Every read is bounded: the sample's head and tail, a capped slice of a text file. Checks return
:class:`Issue` facts; :mod:`mwingest.checks.validate` turns them into findings with messages.
"""

from __future__ import annotations

import contextlib
import html
import os
import re
import struct
import warnings
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from PIL import Image

from mwingest.base import quiet
from mwingest.checks import tiffcheck, webplossless
from mwingest.checks.iesniff import ie_mime_types
from mwingest.checks.mimesniff import (
    EXCLUDED_MIMES,
    EXT_MIMES,
    RECOGNIZABLE,
    SCRIPT_MIMES,
    Sample,
    alias,
)

TEXT_SCAN_LIMIT = 8 * 1024 * 1024  # detectScript reads a whole text file; we stop here


@dataclass(frozen=True)
class Issue:
    """One thing a check found: a stable ``code``, a short ``what``, and machine-readable ``detail``
    (``wiki_check`` names the wiki's own message key when the wiki refuses for the same reason)."""

    code: str
    what: str
    detail: Mapping[str, Any] = field(default_factory=dict)
    severity: str = "reject"  # or "warn": the file may go up, but the person should know


# --- partial checks (verifyPartialFile) -------------------------------------------------------------

def check_partial(sample: Sample, file_mime: str, ext: str) -> list[Issue]:
    """Banned sniffed type, banned IE type, HTML/script markers: the checks MW runs on every chunk."""
    ext = ext.lower()
    if file_mime.lower() in EXCLUDED_MIMES:
        return [_banned(file_mime, "filetype-badmime", "sniffed as")]
    proposed = EXT_MIMES.get(ext, ("",))[0]
    for ie_type in ie_mime_types(sample.head[:256], proposed):
        if ie_type.lower() in EXCLUDED_MIMES:
            return [_banned(ie_type, "filetype-bad-ie-mime", "a browser would sniff it as")]
    marker = detect_script(sample, file_mime, ext)
    if marker:
        return [Issue("script-content", f"contains {marker!r} in its first bytes, which browsers run as HTML",
                      {"wiki_check": "uploadscripted", "marker": marker})]
    return []


def _banned(mime: str, wiki_check: str, how: str) -> Issue:
    code = "script-content" if mime.lower() in SCRIPT_MIMES else "banned-type"
    return Issue(code, f"{how} {mime}, a type the wiki refuses", {"wiki_check": wiki_check, "mime": mime})


_SAFE_XML_ENCODINGS = frozenset(
    ["UTF-8", "US-ASCII", "ISO-8859-1", "ISO-8859-2", "UTF-16", "UTF-32"]
    + [f"WINDOWS-125{i}" for i in range(9)]
)
_SCRIPT_TYPE = re.compile(r"type\s*=\s*['\"]?\s*(?:\w*/)?(?:ecma|java)", re.S | re.I | re.M)
_SCRIPT_URL = re.compile(r"(?:href|src|data)\s*=\s*['\"]?\s*(?:ecma|java)script:", re.S | re.I | re.M)
_CSS_SCRIPT_URL = re.compile(r"url\s*\(\s*['\"]?\s*(?:ecma|java)script:", re.S | re.I | re.M)


def detect_script(sample: Sample, mime: str, ext: str) -> str | None:
    """``UploadBase::detectScript``: the first marker of HTML or script found, or None."""
    if mime.startswith("text/"):
        with open(sample.path, "rb") as fh:
            chunk = fh.read(TEXT_SCAN_LIMIT)
    else:
        chunk = sample.head[:1024]
    chunk = chunk.lower()
    if chunk[:2] in (b"\xfe\xff", b"\xff\xfe"):
        codec = "utf-16-be" if chunk[:2] == b"\xfe\xff" else "utf-16-le"
        chunk = chunk.decode(codec, "ignore").encode("ascii", "ignore")
    chunk = chunk.strip(b" \t\n\r\x00\x0b")
    if not chunk:
        return None
    if re.search(rb"<!doctype *x?html", chunk):
        return "<!DOCTYPE html"
    if (ext == "svg" or mime.startswith("image/svg")) and xml_encoding_mismatch(sample.path):
        return "unsafe XML encoding"
    for tag in (b"<body", b"<head", b"<html", b"<script"):
        if tag in chunk:
            return tag.decode()
    text = html.unescape(chunk.decode("latin-1"))
    for pattern, what in ((_SCRIPT_TYPE, "script type="), (_SCRIPT_URL, "javascript: URL"),
                          (_CSS_SCRIPT_URL, "javascript: in CSS url()")):
        if pattern.search(text):
            return what
    return None


def xml_encoding_mismatch(path: str) -> bool:
    """``checkXMLEncodingMissmatch``: an XML declaration whose encoding browsers and expat may read
    differently (or an unterminated declaration, or EBCDIC) – a known script-smuggling trick."""
    with open(path, "rb") as fh:
        raw = fh.read(262144)  # $wgSVGMetadataCutoff
    texts = [raw.decode("latin-1")]
    if raw[:4] == b"\x4c\x6f\xa7\x94":
        return True
    for codec in ("utf-16", "utf-16-be", "utf-32", "utf-32-be"):
        try:
            texts.append(raw.decode(codec))
        except UnicodeDecodeError:
            continue
    for text in texts:
        decl = re.search(r"<\?xml\b(.*?)\?>", text, re.S | re.I)
        if decl:
            enc = re.search(r"encoding[ \t\n\r]*=[ \t\n\r]*['\"](.*?)['\"]", decl.group(1), re.S | re.I)
            if enc and enc.group(1).upper() not in _SAFE_XML_ENCODINGS:
                return True
        elif re.search(r"<\?xml\b", text, re.I):
            return True
    return False


# --- extension vs content (verifyFile / verifyExtension) ------------------------------------------

def check_extension(mime: str | None, ext: str) -> list[Issue]:
    """``UploadBase::verifyExtension``: the sniffed type must be one MW maps to *ext*."""
    ext = ext.lower()
    if not ext:
        return []
    expected = EXT_MIMES.get(ext)
    if not mime or mime == "unknown/unknown":
        if ext in RECOGNIZABLE:
            return [_mismatch(ext, "unknown", expected)]
        return []
    if expected is None:
        # MW's isMatchingExtension: a type with known extensions mismatches an unknown one (a
        # JPEG named .mpo); a type without any (and an extension without any) passes.
        if any(mime in types or alias(mime) in types for types in EXT_MIMES.values()):
            return [_mismatch(ext, mime, ())]
        return []
    if mime in expected or alias(mime) in expected:
        return []
    return [_mismatch(ext, mime, expected)]


def _mismatch(ext: str, mime: str, expected: Iterable[str] | None) -> Issue:
    return Issue("mime-mismatch", f"its content is {mime}, not what a .{ext} file holds",
                 {"wiki_check": "filetype-mime-mismatch", "extension": ext, "mime": mime,
                  "expected": sorted(expected or ())})


# --- raster integrity (stricter than the wiki) ----------------------------------------------------

def _bomb_warnings_are_errors() -> None:
    """Pillow only *warns* between ``MAX_IMAGE_PIXELS`` and twice that, and its GIF reader fills a
    frame's disposal area before returning to us: for mwingest that warning is an error. A lasting
    filter, not ``warnings.catch_warnings()``, which swaps process-global state and would race
    between worker threads; re-added if something reset the filters since import."""
    if not any(f[0] == "error" and f[2] is Image.DecompressionBombWarning for f in warnings.filters):
        warnings.filterwarnings("error", category=Image.DecompressionBombWarning)


_bomb_warnings_are_errors()
quiet.install()

#: The decompression-bomb limit when none is given: Pillow's own default (89.5 megapixels). The
#: wiki has no pixel limit for uploads (``$wgMaxImageArea`` only stops it scaling them).
DEFAULT_MAX_PIXELS = 89_478_485
#: Pixels decoded in memory at most, per image or frame (≈ 358 MB as RGBA), whatever the limit.
FULL_DECODE_PIXELS = 89_478_485
#: Decoded pixels, summed over the frames of an animation (or the pages of a TIFF), that we decode
#: at most; past it the remaining frames are not checked (time and memory stay bounded).
FRAME_PIXEL_BUDGET = 400_000_000
MAX_FRAMES = 10_000

PIL_FORMATS = {"png": "PNG", "apng": "PNG", "jpg": "JPEG", "jpeg": "JPEG", "jpe": "JPEG", "gif": "GIF",
               "webp": "WEBP", "tif": "TIFF", "tiff": "TIFF", "bmp": "BMP"}


def check_raster(path: str, ext: str, *, max_pixels: int | None = None) -> list[Issue]:
    """Decode a raster image once, refusing bombs from the header and truncation from the data.

    The format's own Pillow plugin reads the header, so the declared size is checked before any
    pixel is decoded (for a GIF, every frame's, from its blocks). Pillow's bomb warning is an error
    (set once at import), so a plugin that checks while opening stops before it allocates.
    ``verify()`` checks chunk CRCs; a full ``load()`` follows because ``verify()`` misses
    truncated JPEG and GIF data. JPEGs decode at 1/8 scale, which still reads every byte.

    ``max_pixels`` is the bomb limit (default :data:`DEFAULT_MAX_PIXELS`). It may be raised past
    what we decode in memory (:data:`FULL_DECODE_PIXELS`): such an image is refused by neither
    limit, its header and chunk checksums are checked, and it passes with an ``unverified-image``
    warning, so memory stays bounded whatever the setting.
    """
    fmt = PIL_FORMATS.get(ext.lower())
    if fmt is None:
        return []
    limit = max_pixels if max_pixels is not None else DEFAULT_MAX_PIXELS
    _bomb_warnings_are_errors()
    try:
        if fmt == "GIF":
            gif_width, gif_height, cut = _gif_canvas(path)
            _check_pixels(gif_width, gif_height, limit)
            if cut:
                raise _GifCut(cut)
        width, height = _pil_pass(path, fmt, limit, verify=True)
        decoded = width * height // (64 if fmt == "JPEG" else 1)  # JPEGs decode at 1/8 scale
        if decoded > FULL_DECODE_PIXELS:
            return [Issue("unverified-image", f"has {width}x{height} = {width * height:,} pixels, more than "
                          f"mwingest decodes in memory; its structure was checked, its pixel data not",
                          {"format": fmt, "pixels": width * height, "decode_limit": FULL_DECODE_PIXELS},
                          severity="warn")]
        _pil_pass(path, fmt, limit, verify=False)
        if fmt == "WEBP" and (damage := webplossless.damage_in(path)):  # no checksum: libwebp decodes garbage
            return [Issue("corrupt-image", f"is damaged: {damage}", {"format": fmt})]
    except _Bomb as bomb:
        return [Issue("decompression-bomb", str(bomb), {"pixels": bomb.pixels, "limit": limit})]
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        if limit > (Image.MAX_IMAGE_PIXELS or 1 << 62):  # Pillow's own cap, under ours: not a bomb to us
            return [Issue("unverified-image", f"is larger than Pillow decodes ({exc}); its header "
                          "was checked", {"format": fmt, "limit": limit}, severity="warn")]
        return [Issue("decompression-bomb", str(exc), {"limit": limit})]
    except _GifCut as exc:
        return [Issue("corrupt-image", f"is cut short: {exc}", {"format": fmt, "truncated": True})]
    except Exception as exc:  # Pillow raises a zoo of types (OSError, SyntaxError, struct.error …)
        return _decode_failure(path, fmt, exc)
    if width <= 0 or height <= 0:
        return [Issue("corrupt-image", f"declares a size of {width}x{height}", {"format": fmt})]
    return []


def _decode_failure(path: str, fmt: str, exc: Exception) -> list[Issue]:
    """Pillow failed: a text-chunk bomb is a bomb; a TIFF gets a second decoder before it is
    called corrupt; a failure in a later frame says which."""
    error = f"{type(exc).__name__}: {exc}"
    if isinstance(exc, _DecoderSaid):  # libtiff decoded garbage and said so: no second opinion
        return [Issue("corrupt-image", f"cannot be decoded as {fmt}: libtiff reports damage in its "
                      f"image data ({exc})", {"format": fmt, "error": error})]
    if "decompressed data too large" in str(exc).lower():  # zTXt/iTXt/iCCP over Pillow's caps
        return [Issue("decompression-bomb", f"has a metadata chunk that inflates too far ({exc})",
                      {"format": fmt, "error": error})]
    if fmt == "TIFF":
        second = tiffcheck.second_opinion(path)
        if second.verdict == "ok":
            return []
        if second.verdict == "unknown":
            return [Issue("unverified-image", f"could not be checked: Pillow cannot decode it ({exc}) and "
                          f"the second decoder cannot tell ({second.error})",
                          {"format": fmt, "error": error, "second": second.error}, severity="warn")]
        error += f"; tifffile: {second.error}"
    where = f"frame {exc.frame} of {exc.frames} " if isinstance(exc, _FrameError) else ""
    cause = exc.__cause__ if isinstance(exc, _FrameError) and exc.__cause__ else exc
    said = f"{cause}; tifffile: {second.error}" if fmt == "TIFF" else cause
    return [Issue("corrupt-image", f"cannot be decoded as {fmt}: {where}is damaged ({said})",
                  {"format": fmt, "error": error})]


class _FrameError(Exception):
    """A frame after the first failed to decode."""

    def __init__(self, frame: int, frames: int) -> None:
        super().__init__(f"frame {frame} of {frames}")
        self.frame, self.frames = frame, frames


class _DecoderSaid(Exception):
    """The decoder returned an image but reported damage in its data while decoding it."""


class _GifCut(Exception):
    """A GIF whose block structure ends mid-block."""


class _Bomb(Exception):
    def __init__(self, width: int, height: int, limit: int) -> None:
        self.pixels = width * height
        super().__init__(f"declares {width}x{height} = {self.pixels:,} pixels, over the limit of {limit:,}")


def _check_pixels(width: int, height: int, limit: int) -> None:
    if width * height > limit:
        raise _Bomb(width, height, limit)


def _gif_canvas(path: str) -> tuple[int, int, str | None]:
    """The largest canvas any frame of a GIF asks for, read from its block structure alone.

    Pillow grows the canvas when a frame reaches past the logical screen, but only once it seeks to
    that frame, and we decode frame 0 only: a bomb in a later frame would pass (and reach the wiki's
    scaler). Walking the blocks reads the file once and allocates nothing; a malformed block ends
    the walk and Pillow's decode then says what is wrong.
    """
    with open(path, "rb") as fh:
        head = fh.read(13)
        if len(head) < 13 or not head.startswith(b"GIF"):
            return 0, 0, None
        width, height = struct.unpack("<HH", head[6:10])
        if head[10] & 0x80:  # global colour table
            fh.seek(3 << ((head[10] & 7) + 1), os.SEEK_CUR)
        size = os.fstat(fh.fileno()).st_size
        while (kind := fh.read(1)) not in (b"", b";"):
            if kind == b",":  # image descriptor: x, y, width, height, flags
                desc = fh.read(9)
                if len(desc) < 9:
                    return width, height, "an image descriptor stops at the end of the file"
                x, y, w, h, flags = struct.unpack("<HHHHB", desc)
                width, height = max(width, x + w), max(height, y + h)
                if flags & 0x80:  # local colour table
                    fh.seek(3 << ((flags & 7) + 1), os.SEEK_CUR)
                fh.read(1)  # LZW minimum code size
            elif kind == b"!":  # extension: label, then sub-blocks
                fh.read(1)
            else:
                break
            while (block := fh.read(1)) and block[0]:
                fh.seek(block[0], os.SEEK_CUR)
            if not block or fh.tell() > size:
                return width, height, f"the data of a block runs past the end of the file ({size:,} bytes)"
    return width, height, None


def _pil_pass(path: str, fmt: str, limit: int, *, verify: bool) -> tuple[int, int]:
    """Open *path* with the plugin for *fmt* (header only), check the declared size, then either
    ``verify()`` or decode. ``Image.OPEN`` is Pillow's registry of plugin openers, the one
    ``Image.open`` itself walks: using it directly is ``Image.open(formats=[fmt])`` with our own
    size check in place of Pillow's (which only warns below twice the limit)."""
    Image.preinit()
    if fmt not in Image.OPEN:
        Image.init()
    factory, accept = Image.OPEN[fmt]
    with open(path, "rb") as fh:
        accepted = accept(fh.read(16)) if accept is not None else True
        if not accepted or isinstance(accepted, str):  # a str is Pillow's "recognised, unsupported"
            raise SyntaxError(f"not a {fmt} file")
        fh.seek(0)
        im = factory(fh, path)
        width, height = im.size
        _check_pixels(width, height, limit)
        if width <= 0 or height <= 0:
            return width, height
        if verify:
            im.verify()
        else:
            if fmt == "JPEG":
                im.draft(im.mode, (max(1, width // 8), max(1, height // 8)))
            decode = quiet.captured_stderr(f"{fmt} decoder") if fmt == "TIFF" else contextlib.nullcontext([])
            with decode as said:
                im.load()
                if fmt != "JPEG":
                    _load_frames(im, limit)
            if fmt == "TIFF" and (damage := tiffcheck.decoder_damage("\n".join(said))):
                raise _DecoderSaid(damage)
    return width, height


def _load_frames(im: Image.Image, limit: int) -> None:
    """Decode every later frame (GIF, APNG, WebP animation, TIFF pages), each within the pixel
    limit, all within :data:`FRAME_PIXEL_BUDGET`; a failure names its frame."""
    frames = min(getattr(im, "n_frames", 1), MAX_FRAMES)
    spent = im.size[0] * im.size[1]
    for index in range(1, frames):
        try:
            im.seek(index)
            _check_pixels(im.size[0], im.size[1], limit)
            spent += im.size[0] * im.size[1]
            if spent > FRAME_PIXEL_BUDGET or im.size[0] * im.size[1] > FULL_DECODE_PIXELS:
                return
            im.load()
        except (_Bomb, Image.DecompressionBombError, Image.DecompressionBombWarning):
            raise
        except Exception as exc:
            raise _FrameError(index + 1, frames) from exc
