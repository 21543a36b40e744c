"""What MediaWiki 1.39 thinks a file *is*: its MIME sniffing, and its type tables.

Why a port and not just libmagic: the wiki decides with its own detector (``MimeAnalyzer``): fixed
magic numbers first, then ``<?php`` in the first KiB, the XML root element, ZIP trailers and
``getimagesize()``, and only then libmagic. Agreeing with the wiki on *why* a file fails needs the
same order. The type tables are ``MimeMap.php`` trimmed to media types and the types we must name;
an extension missing here is one we cannot verify, and :func:`mwingest.checks.content.check_extension`
then says nothing rather than guess.

IE 5–7 sniffing (``IEContentAnalyzer``) lives in :mod:`mwingest.checks.iesniff`.
"""

from __future__ import annotations

import os
import re
import threading
from dataclasses import dataclass
from xml.parsers import expat

import magic

HEAD_SIZE = 16 * 1024  # MimeAnalyzer reads 16 KiB for WebM headers
TAIL_SIZE = 65558  # the largest ZIP end-of-central-directory record


@dataclass(frozen=True)
class Sample:
    """The bounded slices of a file every sniffing step looks at."""

    path: str
    size: int
    head: bytes
    tail: bytes


def read_sample(path: str | os.PathLike[str], size: int) -> Sample:
    """Read the head and the tail of *path* (at most ~80 KiB whatever the file's size)."""
    with open(path, "rb") as fh:
        head = fh.read(HEAD_SIZE)
        if size <= len(head):
            tail = head[-TAIL_SIZE:]
        else:
            fh.seek(max(0, size - TAIL_SIZE))
            tail = fh.read(TAIL_SIZE)
    return Sample(path=os.fspath(path), size=size, head=head, tail=tail)


def _words(text: str) -> frozenset[str]:
    return frozenset(text.split())  # keeps the long MW lists readable


# --- MediaWiki's MIME tables (MimeMap.php, 1.39), trimmed to media and the types we must name -----

# "extensions": "MIME types that match them"; the first type is the one MW proposes for the extension.
_EXT_TABLE = {
    "png apng": "image/png image/x-png",
    "gif": "image/gif",
    "jpg jpeg jpe jps": "image/jpeg image/pjpeg",
    "webp": "image/webp",
    "svg": "image/svg+xml image/svg application/svg+xml application/svg",
    "pdf": "application/pdf application/acrobat",
    "tif tiff": "image/tiff",
    "ogg": "application/ogg audio/ogg audio/opus video/ogg audio/x-ogg video/x-ogg application/x-ogg",
    "ogv ogm": "application/ogg video/ogg video/x-ogg application/x-ogg",
    "oga opus spx ogx": "application/ogg audio/ogg audio/opus audio/x-ogg application/x-ogg",
    "webm": "video/webm audio/webm",
    "mp3 mpga mpa mp2": "audio/mpeg audio/mp3 audio/mpeg3",
    "wav": "audio/x-wav audio/wav audio/wave",
    "flac": "audio/x-flac audio/flac",
    "mid midi kar": "audio/midi audio/mid",
    "djvu djv": "image/vnd.djvu image/x.djvu image/x-djvu",
    "xcf": "image/x-xcf",
    "bmp": "image/x-bmp image/bmp image/x-ms-bmp application/x-bmp application/bmp",
    "mkv mka": "video/x-matroska audio/x-matroska",
    "mp4 m4p m4b m4r m4v": "video/mp4", "m4a": "video/mp4 audio/mp4",  # MimeMap: video/mp4 also m4a
    "stl": "application/sla",
    "jp2 j2k jpg2": "image/jp2 image/jpeg2000",
    "xpm": "image/x-xpixmap",
    "ico": "image/x-icon image/vnd.microsoft.icon",
    "psd": "image/x-photoshop",
    "txt": "text/plain",
    "csv": "text/csv",
    "zip": "application/zip application/x-zip",
    "exe dll so bin class": "application/octet-stream",
    "xml xsl xsd": "application/xml text/xml",
    "html htm": "text/html",
}
EXT_MIMES: dict[str, tuple[str, ...]] = {
    ext: tuple(types.split()) for exts, types in _EXT_TABLE.items() for ext in exts.split()
}
#: MIME type -> the extension MW appends to a name that has none (``getExtensionFromMimeTypeOrNull``).
MIME_EXTENSION = {
    "image/png": "png", "image/gif": "gif", "image/jpeg": "jpeg", "image/webp": "webp",
    "image/svg+xml": "svg", "application/pdf": "pdf", "image/tiff": "tiff", "application/ogg": "ogx",
    "video/webm": "webm", "audio/webm": "webm", "audio/mpeg": "mpga", "audio/wav": "wav",
    "audio/x-wav": "wav", "audio/midi": "mid", "image/vnd.djvu": "djvu", "image/x-bmp": "bmp",
    "image/x-xcf": "xcf", "video/x-matroska": "mkv", "image/jp2": "jp2", "text/plain": "txt",
    "text/csv": "csv", "application/zip": "zip", "text/html": "html", "application/xml": "xml",
}
#: ``MimeMap::MIME_TYPE_ALIASES`` entries that can come out of sniffing.
_ALIASES = {
    "audio/ogg": "application/ogg", "video/ogg": "application/ogg", "application/x-ogg": "application/ogg",
    "image/x-ms-bmp": "image/x-bmp", "image/bmp": "image/x-bmp",
    "application/octet-stream": "unknown/unknown", "application/x-empty": "unknown/unknown",
    "image/x-png": "image/png", "image/pjpeg": "image/jpeg",
    "image/svg": "image/svg+xml", "application/svg+xml": "image/svg+xml", "audio/x-wav": "audio/wav",
    "audio/wave": "audio/wav", "text/xml": "application/xml", "application/xhtml+xml": "text/html",
    "text/javascript": "application/javascript", "application/x-javascript": "application/javascript",
    "image/vnd.adobe.photoshop": "image/x-photoshop", "image/vnd.microsoft.icon": "image/x-icon",
}
#: ``MimeAnalyzer::isRecognizableExtension``: types MW trusts itself to detect from content.
RECOGNIZABLE = _words(
    "gif jpeg jpg png swf psd bmp tiff tif jpc jp2 jpx jb2 swc iff wbmp xbm djvu ogx ogg ogv oga spx "
    "opus mid pdf wmf xcf webm mkv mka webp mp3 svg stl"
)
#: ``$wgMimeTypeExclusions`` default; the first group is scripts/markup, the rest other hazards.
SCRIPT_MIMES = _words(
    "text/html application/javascript text/javascript text/x-javascript application/x-shellscript "
    "application/x-php text/x-php text/x-python text/x-perl text/x-bash text/x-sh text/x-csh text/scriptlet"
)
EXCLUDED_MIMES = SCRIPT_MIMES | _words(
    "application/x-msdownload application/x-msmetafile application/java application/xml text/xml"
)


def alias(mime: str) -> str:
    """MW's canonical form of a MIME type (one alias step, as ``guessMimeType`` does)."""
    return _ALIASES.get(mime, mime)


# --- sniffing (MimeAnalyzer::doGuessMimeType order) ---------------------------------------------

_MAGIC_HEADS = (
    (b"MThd", "audio/midi"), (b"OggS", "application/ogg"), (b"ID3", "audio/mpeg"),
    (b"\xff\xfb", "audio/mpeg"), (b"\xff\xf3", "audio/mpeg"), (b"\xff\xe3", "audio/mpeg"),
    (b"\x01\x00\x09\x00", "application/x-msmetafile"), (b"\xd7\xcd\xc6\x9a", "application/x-msmetafile"),
    (b"%PDF", "application/pdf"), (b"gimp xcf", "image/x-xcf"), (b"MZ", "application/octet-stream"),
    (b"\xca\xfe\xba\xbe", "application/octet-stream"), (b"\x7fELF", "application/octet-stream"),
)
# What PHP's getimagesize() recognises, by signature.
_IMAGE_HEADS = (
    (b"\x89PNG\r\n\x1a\n", "image/png"), (b"GIF8", "image/gif"), (b"\xff\xd8\xff", "image/jpeg"),
    (b"II*\x00", "image/tiff"), (b"MM\x00*", "image/tiff"), (b"BM", "image/x-bmp"),
    (b"8BPS", "image/x-photoshop"), (b"FWS", "application/x-shockwave-flash"),
    (b"CWS", "application/x-shockwave-flash"), (b"\x00\x00\x01\x00", "image/x-icon"),
)
_PHP_MARKERS = (b"<?php", b"<\x00?\x00p\x00h\x00p", b"<\x00?\x00 ", b"<\x00?\x00\n", b"<\x00?\x00\t",
                b"<\x00?\x00=")
#: ``$wgXMLMimeTypes``: root element (namespace URI + ":" + local name) -> type; other roots: XML.
XML_ROOT_TYPES = {"http://www.w3.org/2000/svg:svg": "image/svg+xml", "svg": "image/svg+xml",
                  "http://www.lysator.liu.se/~alla/dia/:diagram": "application/x-dia-diagram",
                  "http://www.w3.org/1999/xhtml:html": "text/html", "html": "text/html"}
_magic: list[magic.Magic] = []  # one libmagic handle, opened on first use (importing stays cheap)
_magic_lock = threading.Lock()


def detect_mime(sample: Sample) -> str:
    """The type MW sniffs from content alone (``file-mime``), already alias-resolved."""
    return alias(_sniff(sample))


def _sniff(s: Sample) -> str:
    """``MimeAnalyzer::doGuessMimeType`` step by step; the first step that knows wins."""
    head, head1k = s.head, s.head[:1024]
    for sig, mime in _MAGIC_HEADS:
        if head1k.startswith(sig):
            return mime
    if head.startswith(b"\x1a\x45\xdf\xa3"):  # EBML: WebM / Matroska
        pos = head.find(b"\x42\x82")
        doctype = head[pos + 3:pos + 11] if pos > 0 else b""
        if doctype.startswith(b"matroska"):
            return "video/x-matroska"
        if doctype.startswith(b"webm"):
            video = any(m in head for m in (b"\x86\x85V_VP8", b"\x86\x85V_VP9", b"\x86\x85V_AV1",
                                            b"\x86\x86V_VP8\x00", b"\x86\x86V_VP9\x00", b"\x86\x86V_AV1\x00"))
            return "video/webm" if video else "audio/webm"
        return "unknown/unknown"
    if head.startswith(b"RIFF") and head[8:15] == b"WEBPVP8":
        return "image/webp"
    if head.startswith(b"\x00\x00\x00\x0cjP  \r\n\x87\n") and head[16:24] in (b"ftypjp2 ", b"ftypjpx "):
        return "image/jp2" if head[16:24] == b"ftypjp2 " else "image/jpx"
    if head.startswith(b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"):
        return "unknown/unknown"  # MS OLE; MW reads the directory for Office subtypes, never media
    if any(marker in head1k for marker in _PHP_MARKERS):
        return "application/x-php"
    xml_root = _xml_root(s.path, head)
    if xml_root is not None:
        return xml_root
    shebang = re.search(rb"/?([^\s]+/)(\w+)", head1k) if head1k.startswith(b"#!") else None
    if shebang:
        return "application/x-" + shebang.group(2).decode("ascii", "replace")
    eocd = s.tail.find(b"PK\x05\x06")  # a ZIP's end record, which must end the file (T40432)
    if 0 <= eocd <= len(s.tail) - 22:
        comment_length = int.from_bytes(s.tail[eocd + 20:eocd + 22], "little")
        if eocd + 22 + comment_length == len(s.tail):
            return "application/zip"
    if _is_stl(s):
        return "application/sla"
    for sig, mime in _IMAGE_HEADS:
        if head.startswith(sig):
            return mime
    return _libmagic(s.path)


def _is_stl(s: Sample) -> bool:
    """``MimeAnalyzer``'s STL test: ASCII ``solid … endsolid``, or a binary STL whose triangle
    count (after its 80-byte header) gives exactly its size."""
    if s.size >= 15 and s.head[:6].lower() == b"solid " and re.search(
            rb"(?:\r\n|\n|\r|\x0b|\x0c|\x85)endsolid [^\n]*\n?\Z", s.tail, re.I):
        return True
    if s.size > 84 and len(s.head) >= 84:
        return s.size == 84 + int.from_bytes(s.head[80:84], "little") * 50
    return False


def _xml_root(path: str, head: bytes) -> str | None:
    """The type of a well-formed XML file by its root element, as ``XmlTypeCheck`` decides it; None
    when the file is not XML. Like the wiki, this reads the whole file, but as a stream (64 KiB
    blocks), and entity declarations end it: those files are typed by libmagic instead."""
    if head[:2] in (b"\xff\xfe", b"\xfe\xff"):  # UTF-16 with its BOM: libxml2 reads it, so does expat
        start = head[2:64].decode("utf-16-le" if head[0] == 0xFF else "utf-16-be", "ignore")
        if not start.lstrip(" \t\r\n").startswith("<"):
            return None
    elif not head.lstrip(b"\xef\xbb\xbf \t\r\n").startswith(b"<"):
        return None
    parser = expat.ParserCreate(namespace_separator=":")
    parser.SetParamEntityParsing(expat.XML_PARAM_ENTITY_PARSING_NEVER)
    roots: list[str] = []

    def start(name: str, _attrs: object) -> None:
        roots.append(name)
        parser.StartElementHandler = None  # only the root matters; the rest is a well-formedness pass

    parser.StartElementHandler = start

    def refuse(*_args: object) -> None:
        raise ValueError("entity declaration")

    parser.EntityDeclHandler = refuse
    try:
        with open(path, "rb") as fh:
            while block := fh.read(1 << 16):
                parser.Parse(block, False)
        parser.Parse(b"", True)
    except (expat.ExpatError, ValueError, OSError):
        return None
    if not roots:
        return None
    return XML_ROOT_TYPES.get(roots[0], "application/xml")


def _libmagic(path: str) -> str:
    """``mime_content_type()`` fallback, normalised as ``MimeAnalyzer::detectMimeType`` does."""
    try:
        with _magic_lock:  # a libmagic handle is not thread-safe
            if not _magic:
                _magic.append(magic.Magic(mime=True))
            found = _magic[0].from_file(path)
    except (magic.MagicException, OSError):
        return "unknown/unknown"
    found = re.sub(r"[;, ].*$", "", found or "").strip().lower()
    found = _PHP_MAGIC_NAMES.get(found, found)
    return "unknown/unknown" if not found or "unknown" in found else found


#: Where the system's libmagic names a type differently from the database PHP's fileinfo bundles
#: (which is what the wiki asks), the PHP name: seen on Debian 12 with PHP 8.2.
_PHP_MAGIC_NAMES = {"image/x-xpixmap": "image/x-xpmi"}


def logical_mime(file_mime: str, ext: str) -> str | None:
    """``improveTypeFromExtension``: MW trusts the extension only for types it cannot sniff."""
    ext = ext.lower()
    mime: str | None = file_mime
    if file_mime == "unknown/unknown" and ext not in RECOGNIZABLE:
        mime = EXT_MIMES.get(ext, (None,))[0]
    return alias(mime) if mime else None


def extension_for_mime(mime: str) -> str | None:
    """The extension MW appends to a name without one, guessed from the content's type."""
    return MIME_EXTENSION.get(mime)
