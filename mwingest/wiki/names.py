"""Filename prediction and sanitising: know the wiki's answer to a name before a byte is sent.

Why: a bad name costs a whole upload (content is checked before the name, spec §3), and on chunked
uploads name errors come back as a bare ``illegal-filename`` without details (spec §7).
:func:`predict_title` replays MediaWiki 1.39's ``UploadBase::getTitle`` (spec §9): WebRequest's
NFC and control-character clean-up, ``Title::newFromText`` to drop a ``File:`` prefix, the 240-byte
limit, ``wfStripIllegalFilenameChars`` (byte-wise, as PHP's non-``/u`` regex works),
``MediaWikiTitleCodec::splitTitleString`` and the extension rules. :func:`sanitise` turns any name
into one the wiki keeps unchanged, so the ``badfilename`` warning never fires.

Not modelled: interwiki prefixes (they never make a name land in the File namespace unless listed
in ``$wgLocalInterwikis``), per-namespace capitalisation overrides and ``windows-nonascii-filename``.
"""

from __future__ import annotations

import html.entities
import re
import unicodedata
from dataclasses import dataclass
from functools import lru_cache

from mwingest.wiki.siteinfo import WikiRules

NS_FILE = 6
NS_TALK = 1
#: ``oi_archive_name`` is 255 bytes, minus a timestamp and "!": UploadBase's limit, in UTF-8 bytes.
MAX_NAME_BYTES = 240
#: Default [[MediaWiki:Filename-prefix-blacklist]] (spec §5), matched case-sensitively on the DB key.
DEFAULT_BAD_PREFIXES: tuple[str, ...] = ("CIMG", "DSC_", "DSCF", "DSCN", "DUW", "IMG", "JD", "MGP", "PICT")
#: ``File::normalizeExtension``'s synonyms, used for the ``exists-normalized`` warning.
_SQUISH = {"htm": "html", "jpeg": "jpg", "mpeg": "mpg", "tiff": "tif", "ogv": "ogg"}

# WebRequest (UtfNormal::cleanUp): these become U+FFFD, which makes every title invalid.
_BAD_CONTROLS = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff\ud800-\udfff]")
# MediaWikiTitleCodec::splitTitleString: bidi marks go, these spaces collapse to one "_".
_BIDI = re.compile("[\u200e\u200f\u202a-\u202e]+")
_SPACES = re.compile("[ _\xa0\u1680\u180e\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]+")
_PREFIX = re.compile(r"^(.+?)_*:_*(.*)$")  # same flags as PHP's: "." stops at "\n"
_PERCENT = re.compile(r"%[0-9A-Fa-f]{2}")
# In PHP's byte regex ``\x80-\xff`` matches any byte of a non-ASCII character.
_ENTITY = re.compile("&[A-Za-z0-9\x80-\U0010ffff]+;")
_CHAR_REF = re.compile("&([A-Za-z0-9\x80-\U0010ffff]+;)|&#([0-9]+);|&#[xX]([0-9A-Fa-f]+);|&")
_BASENAME = re.compile(r"([^/\\]*?)[/\\]*$")
# Sanitiser patterns.
_DROP = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ufffd\ufffe\uffff\ud800-\udfff]")
_SANE_ENTITY = re.compile("(&[A-Za-z0-9\x80-\U0010ffff]+);")
_SANE_PERCENT = re.compile(r"%(?=[0-9A-Fa-f]{2})")


@dataclass(frozen=True)
class TitlePrediction:
    """What the wiki will do with one ``filename`` (spec §9)."""

    input: str
    #: DB key without namespace as the wiki will store it (``My_photo.png``); None when refused.
    title: str | None
    #: The wiki's error code when it refuses: ``illegal-filename``, ``filename-toolong``,
    #: ``filename-tooshort``, ``filetype-missing`` or ``filetype-banned``.
    error: str | None
    #: True when the wiki answers the ``badfilename`` warning: normalisation changed more than
    #: first-letter case and spaces↔underscores.
    badfilename: bool
    #: Final extension as kept (case kept); set for ``filetype-banned`` too.
    extension: str | None
    #: Prohibited extensions found anywhere (the ``blacklisted`` list of ``filetype-banned``).
    banned_parts: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        """True when the wiki accepts the name (possibly with a ``badfilename`` warning)."""
        return self.error is None and self.title is not None


def predict_title(name: str, rules: WikiRules, *, content_ext: str | None = None) -> TitlePrediction:
    """Replay ``UploadBase::getTitle`` for ``name`` on a wiki with ``rules``.

    A name without any dot gets its extension from the *content* on the server. We cannot see the
    content here, so pass ``content_ext`` (e.g. ``"png"``, what MediaWiki's MIME detection would
    give); without it the prediction is ``filetype-missing``, the answer for undetectable content.
    """
    desired = request_form(name)
    parsed = _split_title(_decode_char_refs(desired), rules) if desired else None
    filtered = parsed[1] if parsed and parsed[0] == NS_FILE else desired
    if len(filtered.encode("utf-8")) > MAX_NAME_BYTES:  # measured before any replacement
        return _refused(name, "filename-toolong")
    stripped = _strip_illegal_chars(filtered, rules)
    parsed = _split_title("File:" + stripped, rules) if stripped is not None else None
    if parsed is None:
        return _refused(name, "illegal-filename")
    key = parsed[1]
    base, *exts = key.split(".")
    if exts:
        final = exts[-1].strip(" \t\n\r\0\x0b")
        partname = key.rsplit(".", 1)[0]
    elif content_ext:
        final = content_ext.lstrip(".")
        key, exts, partname = f"{key}.{final}", [final], base
    else:
        return _refused(name, "filetype-missing")
    banned = tuple(dict.fromkeys(p for p in map(_ascii_lower, exts) if p in rules.prohibited_extensions))
    if final == "":
        return _refused(name, "filetype-missing")
    if banned or _ascii_lower(final) not in rules.file_extensions:
        return TitlePrediction(name, None, "filetype-banned", False, final, banned)
    if not partname:
        return TitlePrediction(name, None, "filename-tooshort", False, final)
    comparable = ucfirst(desired.replace(" ", "_"), rules)
    bad = key != desired and key != comparable
    return TitlePrediction(name, key, None, bad, final)


def sanitise(name: str, rules: WikiRules, *, fallback_stem: str = "File", ext_hint: str | None = None) -> str:
    """A clean name (with spaces) that the wiki accepts unchanged, keeping as much of ``name`` as it can.

    Raises ValueError when the name has no allowed extension and no ``ext_hint`` is given, or when
    ``ext_hint`` itself is not allowed on this wiki.
    """
    candidate = name
    for _round in range(4):  # a pass can expose a new problem (e.g. NFC after a drop); re-run it
        candidate = _sanitise_once(candidate, rules, fallback_stem, ext_hint)
        prediction = predict_title(candidate, rules)
        if prediction.ok and not prediction.badfilename and unicodedata.is_normalized("NFC", candidate):
            return candidate
    answer = prediction.error or "badfilename"
    raise ValueError(f"could not sanitise {name!r}: the wiki would answer {answer}")


def _sanitise_once(name: str, rules: WikiRules, fallback_stem: str, ext_hint: str | None) -> str:
    text = unicodedata.normalize("NFC", re.sub("[\t\n\r]", " ", name))
    text = unicodedata.normalize("NFC", _DROP.sub("", text))
    text = _drop_file_prefixes(text, rules)
    text = _BIDI.sub("", text)
    illegal = set(rules.illegal_file_chars) | set(":/\\")
    allowed = _legal_bytes(rules.legal_title_chars)
    text = "".join("-" if c in illegal or not _char_legal(c, allowed) else c for c in text)
    text = _SPACES.sub(" ", unicodedata.normalize("NFC", text)).strip(" ")
    text = _break_magic(text)
    stem, dot, ext = text.rpartition(".")
    if not dot or not _extension_allowed(ext, rules):
        if ext_hint is None:
            raise ValueError(f"{name!r} has no extension allowed on this wiki; pass ext_hint")
        ext = ext_hint.lstrip(".")
        if not _extension_allowed(ext, rules):
            raise ValueError(f"ext_hint {ext_hint!r} is not an allowed file extension on this wiki")
        stem = text.rstrip(". ")
    stem = stem.strip(" ") or fallback_stem
    stem = ucfirst(stem, rules)
    room = MAX_NAME_BYTES - len(ext.encode("utf-8")) - 1
    while len(stem.encode("utf-8")) > room:
        stem = stem[:-1]  # whole code points only: a character is never split
    stem = stem.rstrip(" ") or fallback_stem
    return unicodedata.normalize("NFC", _neutralise_prohibited(stem, rules) + "." + ext)


def _drop_file_prefixes(text: str, rules: WikiRules) -> str:
    """Remove leading ``File:``/``Image:`` (any local name), as the wiki does, repeatedly."""
    names = {n.replace("_", " ").casefold() for n in rules.file_namespace_names} | {"file"}
    while True:
        head, colon, rest = text.lstrip(" _:").partition(":")
        if not colon or head.replace("_", " ").strip(" ").casefold() not in names:
            return text
        text = rest


def _break_magic(text: str) -> str:
    """Break the sequences that make a title invalid: ``%XX``, ``&name;``, ``~~~``."""
    previous = None
    while previous != text:
        previous = text
        text = _SANE_PERCENT.sub("-", text)
        text = _SANE_ENTITY.sub(r"\1-", text)
        text = text.replace("~~~", "~~-")
    return text


def _neutralise_prohibited(stem: str, rules: WikiRules) -> str:
    """``x.php`` → ``x-php``: every dot-part after the first is checked against the prohibited list."""
    first, *parts = stem.split(".")
    out = first
    for part in parts:
        out += ("-" if _ascii_lower(part) in rules.prohibited_extensions else ".") + part
    return out


def _extension_allowed(ext: str, rules: WikiRules) -> bool:
    lower = _ascii_lower(ext)
    return bool(ext) and lower in rules.file_extensions and lower not in rules.prohibited_extensions


def unique_variant(name: str, n: int) -> str:
    """``("Sunset.jpg", 2)`` → ``"Sunset (2).jpg"``: the rename used when the name ``exists``.

    The stem is shortened (whole characters) so the result stays within the 240-byte limit.
    """
    stem, dot, ext = name.rpartition(".")
    if not dot or not stem:
        stem, ext = name, ""
    suffix, tail = f" ({n})", f".{ext}" if ext else ""
    while stem and len((stem + suffix + tail).encode("utf-8")) > MAX_NAME_BYTES:
        stem = stem[:-1]
    return stem.rstrip(" ") + suffix + tail


def title_key(name: str) -> str:
    """The comparison key MediaWiki uses: spaces become underscores."""
    return name.replace(" ", "_")


def is_thumbnail_like(name: str) -> bool:
    """``UploadBase::isThumbName`` on the DB key: ``NNpx-``/``NNNpx-`` → ``thumb``/``thumb-name``.

    Pass the predicted title (or a sanitised name): the check is byte-wise and case-sensitive.
    """
    raw = title_key(name).encode("utf-8")
    n = raw.rfind(b".")
    part = raw[:n] if n > 0 else raw
    return (part[3:6] == b"px-" or part[2:5] == b"px-") and part[:2].isdigit() and len(part) >= 2


def has_bad_prefix(name: str, prefixes: tuple[str, ...] = DEFAULT_BAD_PREFIXES) -> bool:
    """True when the ``bad-prefix`` warning fires: the stem starts with a camera-style prefix.

    Pass the predicted title (first letter already as the wiki stores it); matching is case-sensitive.
    """
    key = title_key(name)
    part = key if key.find(".") <= 0 else key[: key.rfind(".")]  # PHP: !strpos() → whole name
    return any(prefix and part.startswith(prefix) for prefix in prefixes)


def normalised_extension(ext: str) -> str:
    """``File::normalizeExtension``: ``JPG``/``jpeg`` → ``jpg``; ``''`` for odd extensions."""
    lower = _ascii_lower(ext.lstrip("."))
    if lower in _SQUISH:
        return _SQUISH[lower]
    return lower if re.fullmatch("[0-9a-z]+", lower) else ""


def request_form(name: str) -> str:
    """The ``filename`` as MediaWiki sees it after WebRequest: NFC, bad controls as U+FFFD."""
    return unicodedata.normalize("NFC", _BAD_CONTROLS.sub("\ufffd", name))


def ucfirst(text: str, rules: WikiRules) -> str:
    """``Language::ucfirst`` when ``case=first-letter``: ASCII a-z, else ``mb_strtoupper``.

    Python's ``str.upper`` and PHP 8.2's ``mb_strtoupper`` agree on every code point (both full
    case mapping on Unicode 14: ``ß`` → ``SS``), checked once against php-cli.
    """
    if rules.case != "first-letter" or not text:
        return text
    first = text[0]
    if first < "`" or (first <= "\x7f" and not "a" <= first <= "z"):
        return text
    return first.upper() + text[1:]


def _refused(name: str, error: str) -> TitlePrediction:
    return TitlePrediction(name, None, error, False, None)


def _ascii_lower(text: str) -> str:
    """PHP 8's ``strtolower``: ASCII only."""
    return text.translate(_ASCII_LOWER)


_ASCII_LOWER = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")


def _split_title(text: str, rules: WikiRules) -> tuple[int, str] | None:
    """``MediaWikiTitleCodec::splitTitleString``: (namespace, DB key), or None when invalid."""
    key = _SPACES.sub("_", _BIDI.sub("", text.replace(" ", "_"))).strip("_")
    if "\ufffd" in key:
        return None
    ns = 0
    if key.startswith(":"):
        key = key[1:].strip("_")
    if not key:
        return None
    match = _PREFIX.match(key)
    if match and (found := _ns_index(match.group(1), rules)) is not None:
        ns, key = found, match.group(2)
        inner = _PREFIX.match(key) if ns == NS_TALK else None
        if inner and _ns_index(inner.group(1), rules):
            return None  # Talk:File:x
    if "#" in key:
        key = key[: key.index("#")].rstrip("_")
    allowed = _legal_bytes(rules.legal_title_chars)
    if not all(_char_legal(c, allowed) for c in key) or _PERCENT.search(key) or _ENTITY.search(key):
        return None
    if "." in key and (key in (".", "..") or key.startswith(("./", "../")) or "/./" in key
                       or "/../" in key or key.endswith(("/.", "/.."))):
        return None
    if "~~~" in key or len(key.encode("utf-8")) > 255:
        return None
    key = ucfirst(key, rules)
    if (key == "" and ns != 0) or key.startswith(":") or re.search(r"^[_ ]|[\r\n\t]|[_ ]$", key):
        return None
    return ns, key


def _ns_index(prefix: str, rules: WikiRules) -> int | None:
    """``Language::getNsIndex``: namespace names and aliases, case-insensitive, ``_`` for spaces."""
    wanted = prefix.lower()
    for ns_name, ns_id in rules.namespaces.items():
        if ns_name and ns_name.replace(" ", "_").lower() == wanted:
            return ns_id
    return NS_FILE if wanted == "file" else None  # the canonical name is always known


def _decode_char_refs(text: str) -> str:
    """``Sanitizer::decodeCharReferencesAndNormalize``, as ``Title::newFromText`` applies it."""
    if "&" not in text:
        return text

    def decode(match: re.Match[str]) -> str:
        named, dec, hexa = match.groups()
        if named:
            named = "rlm;" if named in ("רלמ;", "رلم;") else named
            return html.entities.html5.get(named, "&" + named)
        if dec or hexa:
            code = int(dec) if dec else int(hexa, 16)
            valid = code in (9, 10) or 0x20 <= code <= 0x7E or 0xA0 <= code <= 0xD7FF \
                or 0xE000 <= code <= 0xFFFD or 0x10000 <= code <= 0x10FFFF
            return chr(code) if valid else "\ufffd"
        return "&"

    return unicodedata.normalize("NFC", _CHAR_REF.sub(decode, text))


def _strip_illegal_chars(name: str, rules: WikiRules) -> str | None:
    """``wfStripIllegalFilenameChars``: each byte outside ``legaltitlechars`` or in
    ``$wgIllegalFileChars`` → ``-``, then the directory part is cut. None for broken UTF-8, which
    the title parser then rejects."""
    allowed = _legal_bytes(rules.legal_title_chars)
    illegal = {b for ch in rules.illegal_file_chars for b in ch.encode("utf-8")}
    raw = bytes(b if b in allowed and b not in illegal else 0x2D for b in name.encode("utf-8"))
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        return None
    match = _BASENAME.search(text)
    return match.group(1) if match else ""


def _char_legal(ch: str, allowed: frozenset[int]) -> bool:
    """A character passes PHP's byte class when every one of its UTF-8 bytes does."""
    return ord(ch) in allowed if ch < "\x80" else all(b in allowed for b in ch.encode("utf-8", "replace"))


@lru_cache(maxsize=16)
def _legal_bytes(php_class: str) -> frozenset[int]:
    """The byte values a PHP (non-``/u``) regex character class matches, e.g. ``legaltitlechars``.

    ``\\x80-\\xFF`` means every byte of a multi-byte UTF-8 character, i.e. all non-ASCII text.
    """
    tokens: list[int | frozenset[int] | None] = []  # None: an unescaped "-", maybe a range
    i = 0
    while i < len(php_class):
        ch, rest = php_class[i], php_class[i + 1:]
        if ch == "\\" and rest:
            hex_match = re.match(r"x\{([0-9A-Fa-f]+)\}|x([0-9A-Fa-f]{1,2})", rest)
            if hex_match:
                tokens.append(min(int(hex_match.group(1) or hex_match.group(2), 16), 0xFF))
                i += 1 + len(hex_match.group(0))
                continue
            tokens.append(_CLASS_ESCAPES.get(rest[0], ord(rest[0])) if rest[0] < "\x80" else
                          frozenset(rest[0].encode("utf-8")))
            i += 2
        else:
            encoded = ch.encode("utf-8")
            tokens.append(None if ch == "-" else encoded[0] if len(encoded) == 1 else frozenset(encoded))
            i += 1
    allowed: set[int] = set()
    k = 0
    while k < len(tokens):
        item = tokens[k]
        if k + 2 < len(tokens) and tokens[k + 1] is None and isinstance(item, int) \
                and isinstance(high := tokens[k + 2], int):
            allowed.update(range(item, high + 1))  # a range such as A-Z or \x80-\xFF
            k += 3
            continue
        allowed.update({0x2D} if item is None else {item} if isinstance(item, int) else item)
        k += 1
    return frozenset(allowed)


_DIGITS = frozenset(range(48, 58))
_CLASS_ESCAPES: dict[str, int | frozenset[int]] = {
    "n": 10, "t": 9, "r": 13, "f": 12, "v": 11, "e": 27, "0": 0, "d": _DIGITS,
    "s": frozenset({9, 10, 11, 12, 13, 32}),
    "w": _DIGITS | frozenset(range(65, 91)) | frozenset(range(97, 123)) | {95},
}
