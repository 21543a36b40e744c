"""The CSS half of the wiki's SVG filter: ``Sanitizer::normalizeCss`` and ``UploadBase::checkCssFragment``.

Why a port this literal: an SVG we pass must be one the wiki passes, and one it refuses must be
refused here, so the regular expressions keep PHP's semantics. PHP's PCRE without ``/u`` works on
bytes with ASCII-only case folding and an ASCII ``\\s``; Python's ``re`` on ``str`` folds Unicode
(``ſ`` matches ``s``) and its ``\\s`` takes NBSP. Hence ``re.ASCII`` everywhere and :data:`WS`
where PHP writes ``\\s``. ``strtolower`` of PHP 8.2 is ASCII-only too: :func:`ascii_lower`.
"""

from __future__ import annotations

import re
from html.entities import html5

#: PCRE's ``\s`` without ``/u``: space, \t, \n, \v, \f, \r.
WS = r"[ \t\n\x0b\x0c\r]"
_ASCII_LOWER = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")

_CHAR_REFS = re.compile(r"&([A-Za-z0-9\x80-\xff]+;)|&\#([0-9]+);|&\#[xX]([0-9A-Fa-f]+);", re.A)
_CSS_ESCAPE = re.compile(r"\\(?:(\n|\r\n|\r|\f)|([0-9A-Fa-f]{1,6})[\x20\t\r\n\f]?|(.)|())", re.S)
_ONE_COMMENT = re.compile(rf"^{WS}*/\*[^*/]*\*/{WS}*$", re.A)
_FONT_FACE = re.compile(rf"(@font-face{WS}*{{[^}}]*src:)url(\(\"data:;base64,)", re.I | re.M | re.A)
_EXPRESSION = re.compile(rf"expression|-o-link{WS}*:|-o-link-source{WS}*:|-o-replace{WS}*:",
                         re.I | re.M | re.A)
_URL_CALLS = re.compile(rf"({WS}*(url|image|image-set){WS}*\({WS}*[\"']?{WS}*[^#]+.*?\))",
                        re.S | re.I | re.M | re.A)
_LOCAL_URL = re.compile(rf"{WS}*(url|image|image-set){WS}*\({WS}*(#|'#|\"#)", re.I | re.M | re.A)
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0e-\x1f\x7f]")


def ascii_lower(text: str) -> str:
    """PHP 8.2 ``strtolower``: A-Z only (``str.lower`` would also fold ``İ`` and the Kelvin sign)."""
    return text.translate(_ASCII_LOWER)


def _char_ref(match: re.Match[str]) -> str:
    named, dec, hexa = match.groups()
    if named:
        return html5.get(named, match.group(0))
    code = int(dec) if dec else int(hexa, 16)
    if code > 0x10FFFF or 0xD800 <= code <= 0xDFFF:
        return "\ufffd"
    return chr(code)


def _css_escape(match: re.Match[str]) -> str:
    newline, hexa, char, _end = match.groups()
    if newline is not None:
        return ""
    if hexa is not None:
        code = int(hexa, 16)
        char = "\ufffd" if code > 0x10FFFF or 0xD800 <= code <= 0xDFFF else chr(code)
    elif char is None:
        char = "\\"
    if char in ("\n", '"', "'", "\\"):
        return f"\\{ord(char):x} "
    return char


def normalize_css(css: str) -> str:
    """``Sanitizer::normalizeCss``: character references and CSS escapes decoded, comments blanked,
    anything after an unclosed ``/*`` cut (unless the whole value is one comment)."""
    css = _CHAR_REFS.sub(_char_ref, css)
    css = _CSS_ESCAPE.sub(_css_escape, css)
    if _ONE_COMMENT.match(css):
        return css
    css = re.sub(r"/\*.*?\*/", " ", css, flags=re.S)
    return css.split("/*", 1)[0]


def hostile_css(css: str) -> bool:
    """``UploadBase::checkCssFragment``: ``@import``, IE expressions, a ``url()`` that is not a
    same-document fragment, or control characters."""
    if "@import" in ascii_lower(css):
        return True
    css = _FONT_FACE.sub(r"\1\2", css)
    if _EXPRESSION.search(css):
        return True
    for match in _URL_CALLS.finditer(css):
        if not _LOCAL_URL.search(match.group(1)):
            return True
    return bool(_CONTROL.search(css))
