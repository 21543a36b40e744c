"""MediaWiki's model of Internet Explorer 5–7 sniffing (``IEContentAnalyzer.php``, 1.39).

Why: a PNG whose first 256 bytes hold ``<script`` would be run as HTML by such a browser, so the
wiki refuses it (``filetype-bad-ie-mime``) although it is a valid PNG. Kept apart from
:mod:`mwingest.checks.mimesniff` (what the wiki thinks a file *is*) because it answers another
question: what an old browser would make of the same bytes.
"""

from __future__ import annotations

from mwingest.checks.mimesniff import _words

_IE_AMBIGUOUS = frozenset({"text/plain", "application/octet-stream", "application/x-netcdf"})
_IE_TEXT = frozenset({"text/richtext", "image/x-bitmap", "application/postscript", "application/base64",
                      "application/macbinhex40", "application/x-cdf", "text/scriptlet"})
_IE7_TEXT = _IE_TEXT | {"text/xml", "application/xml"}
_IE_BINARY = _words(
    "application/pdf audio/x-aiff audio/basic audio/wav image/gif image/pjpeg image/jpeg image/tiff "
    "image/x-png image/png image/bmp image/x-jg image/x-art image/x-emf image/x-wmf video/avi "
    "video/x-msvideo video/mpeg application/x-compressed application/x-zip-compressed "
    "application/x-gzip-compressed application/java application/x-msdownload"
)
_IE_VERSIONS = ("ie05", "ie06", "ie07", "ie07.strict", "ie07.nohtml")
_IE_HTML_TAGS = (b"html", b"head", b"title", b"body", b"script", b"a href", b"pre", b"img", b"plaintext",
                 b"table")
_IE_TRANSLATE = {"image/pjpeg": "image/jpeg", "image/x-png": "image/png",
                 "image/x-wmf": "application/x-msmetafile", "image/bmp": "image/x-bmp",
                 "application/x-zip-compressed": "application/zip",
                 "application/x-compressed": "application/x-compress",
                 "application/x-gzip-compressed": "application/x-gzip", "audio/mid": "audio/midi"}
# IE's binary signatures that need nothing but a prefix (checkBinaryHeaders; they exclude each other).
_IE_BINARY_HEADS = (
    (b"\xff\xd8", "image/pjpeg"), (b".sd\x00", "audio/basic"), (b".snd", "audio/basic"),
    (b"\x00ds.", "audio/basic"), (b"dns.", "audio/basic"), (b"MM\x00", "image/tiff"),
    (b"MZ", "application/x-msdownload"), (b"\x89PNG\r\n\x1a\n", "image/x-png"), (b"MROF", "audio/x-aiff"),
    (b"\x00\x00\x01\xb3", "video/mpeg"), (b"\x00\x00\x01\xba", "video/mpeg"),
    (b"\xd7\xcd\xc6\x9a", "image/x-wmf"),
    (b"\xca\xfe\xba\xbe", "application/java"), (b"PK", "application/x-zip-compressed"),
    (b"\x1f\x9d", "application/x-compressed"), (b"\x1f\x8b", "application/x-gzip-compressed"),
    (b"MThd\x00", "audio/mid"), (b"%PDF", "application/pdf"),
)


def ie_mime_types(chunk: bytes, proposed: str) -> list[str]:
    """The types IE 5–7 would give *chunk* (the first 256 bytes) served as *proposed*, deduplicated."""
    found = (_IE_TRANSLATE.get(t, t) for t in (_ie_type(v, chunk, proposed) for v in _IE_VERSIONS))
    return list(dict.fromkeys(found))


def _ie_format(modern: bool, mime: str | None) -> str:
    if not mime or mime == "(null)" or mime in _IE_AMBIGUOUS:
        return "ambiguous"
    if mime in (_IE7_TEXT if modern else _IE_TEXT):
        return "text"
    if mime in _IE_BINARY:
        return "binary"
    return "html" if mime == "text/html" else "unknown"


def _ie_type(version: str, chunk: bytes, proposed: str) -> str:
    modern, strict, nohtml = version >= "ie07", version.endswith("strict"), version.endswith("nohtml")
    proposed = proposed.split(";")[0]
    proposed_format = _ie_format(modern, proposed)
    if proposed_format == "unknown" and proposed not in ("multipart/mixed", "multipart/x-mixed-replace"):
        return proposed  # IE trusts a type it has no table entry for: webp, svg, ogg … are never sniffed
    if not chunk:
        return proposed
    chunk = chunk[:255]
    found, binary = _ie_sample(chunk, modern)
    binary_type, text_type = _ie_binary_header(chunk), _ie_text_header(chunk)
    if proposed == "text/html" and "html" in found:
        return "text/html"
    if (proposed == "image/gif" and binary_type == "image/gif") or (
            proposed in ("image/pjpeg", "image/jpeg") and binary_type == "image/pjpeg") or (
            modern and proposed in ("image/x-png", "image/png") and binary_type == "image/x-png"):
        return proposed
    for flag, mime in (("cdf", "application/x-cdf"), ("rss", "application/rss+xml"),
                       ("atom", "application/atom+xml")):
        if flag in found:
            return mime
    if "xml" in found and (not strict or proposed in ("text/html", "text/xml")):
        return "text/xml"
    if "html" in found and (not nohtml or proposed == "text/plain"):
        return "text/html"
    if "scriptlet" in found and (not strict or proposed in ("text/plain", "text/scriptlet")):
        return "text/scriptlet"
    if binary:
        sniffed = binary_type or text_type or "application/octet-stream"
    else:
        sniffed = text_type or binary_type or "text/plain"
    if _ie_format(modern, sniffed) != "ambiguous":
        return sniffed
    if (proposed_format == "text" and not binary) or (proposed_format == "binary" and binary) \
            or proposed_format == "html":
        return proposed
    return sniffed  # IE would now consult the registry by the *temp file's* name: it has no extension


def _ie_sample(chunk: bytes, modern: bool) -> tuple[set[str], bool]:
    """Tags IE looks for after each ``<``, and its byte-class counters' text-or-binary verdict."""
    found: set[str] = set()
    ctrl = high = low = ff = 0
    for offset, byte in enumerate(chunk):
        if byte in (0x0A, 0x0D):
            continue
        if byte == 0x0C:
            ff += 1
            continue
        if byte == 0x09:
            low += 1
            continue
        if byte < 32 or byte >= 128:
            ctrl, high = (ctrl + 1, high) if byte < 32 else (ctrl, high + 1)
            continue
        low += 1
        if byte != 0x3C:  # "<"
            continue
        rest = chunk[offset + 1:offset + 16].lower()
        if rest.startswith(b"?xml") and chunk[offset + 5:offset + 6] in (b":", b" ", b"\t"):
            found.add("xml")
        if rest.startswith(b"scriptlet"):
            found.add("scriptlet")
            break
        if any(rest.startswith(tag) for tag in _IE_HTML_TAGS):
            found.add("html")
        if not modern and rest.startswith(b"channel"):
            found.add("cdf")
        elif modern and rest.startswith((b"rss", b"feed")):
            found.add("rss" if rest.startswith(b"rss") else "atom")
            break
    binary = ctrl != 0 and (ff + low) < (ctrl + high) * 16
    return found, binary


def _ie_binary_header(chunk: bytes) -> str | None:
    if chunk[:5].upper() in (b"GIF87", b"GIF89"):
        return "image/gif"
    if chunk[:2] == b"BM" and chunk[6:8] == b"\x00\x00" and chunk[8:10] == b"\x00\x00":
        return "image/bmp"
    if chunk[:4] == b"RIFF":
        return {b"WAVE": "audio/wav", b"AVI ": "video/avi"}.get(chunk[8:12])
    for sig, mime in _IE_BINARY_HEADS:
        if chunk.startswith(sig):
            return mime
    if len(chunk) >= 5 and chunk[:2] == b"JG" and 3 <= chunk[2] <= 31 and chunk[4] == 0:
        return "image/x-jg"
    if chunk[:4] == b"FORM" and chunk[8:12] in (b"AIFF", b"AIFC"):
        return "audio/x-aiff"
    if chunk[:4] == b"\x01\x00\x00\x00" and chunk[40:44] == b" EMF":
        return "image/x-emf"
    return None


def _ie_text_header(chunk: bytes) -> str | None:
    for sig, mime in ((b"%PDF", "application/pdf"), (b"%!", "application/postscript"),
                      (b"{\\rtf", "text/richtext"), (b"begin", "application/base64")):
        if chunk.startswith(sig):
            return mime
    return None
