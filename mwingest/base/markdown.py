"""Text from outside (file names, manifest cells, the wiki's messages) put into markdown safely.

Why: the run's summary artifact and the review form's description are markdown the Prefect UI
renders. A source named ``a](https://evil.example)`` or ``<img src=x onerror=…>``, or a wiki
message with ``**``/``|``/newlines, must show as the characters it is, not become a link, a
picture, HTML or another table row (issue 24). Three spellings: plain text, inline code and a
link's address.
"""

from __future__ import annotations

import re
from urllib.parse import quote, urlsplit

#: The characters CommonMark/GFM give a meaning to inside a line (a backslash before ASCII
#: punctuation is always a literal); ``<``, ``>``, ``&`` become entities instead.
_PUNCT = re.compile(r"([\\`*_{}\[\]()#!|~])")
#: What makes a list item or a heading at the start of a line.
_LEADING = re.compile(r"^([-+=]|\d+[.)])")
_HTML = {"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;"}


def _one_line(value: object) -> str:
    return " ".join(str(value).split())


def text(value: object) -> str:
    """``value`` as literal text on one line: no emphasis, link, picture, HTML or table cell."""
    escaped = _LEADING.sub(lambda m: "\\" + m.group(0), _PUNCT.sub(r"\\\1", _one_line(value)))
    return "".join(_HTML.get(ch, ch) for ch in escaped)


def code(value: object) -> str:
    """``value`` as an inline code span on one line (fenced by more backticks than it holds).
    Not for a table cell: there a ``|`` would still end the cell (use :func:`text`)."""
    body = _one_line(value)
    longest = max((len(run) for run in re.findall(r"`+", body)), default=0)
    fence = "`" * (longest + 1)
    pad = " " if body.startswith("`") or body.endswith("`") or not body else ""
    return f"{fence}{pad}{body}{pad}{fence}"


#: A picture we made ourselves (mwingest.wiki.pictures.local_picture): an inline PNG/JPEG, base64 only.
_DATA_IMAGE = re.compile(r"data:image/(?:png|jpeg|gif|webp);base64,[A-Za-z0-9+/]+={0,2}")


def image_url(value: object) -> str:
    """An address fit for ``![…](here)``: what :func:`url` allows, or an inline base64 picture
    (``data:image/png;base64,…``, nothing but base64 after the comma, so nothing can end the
    address). Other ``data:`` forms (``text/html``, an SVG) are ``#``."""
    address = str(value or "").strip()
    return address if _DATA_IMAGE.fullmatch(address) else url(address)


def url(value: object) -> str:
    """An http(s) address fit for ``[…](here)``; anything else (``javascript:``, ``data:``) is
    ``#``. Characters that would end the address or the link are percent-encoded."""
    address = str(value or "").strip()
    try:
        scheme = urlsplit(address).scheme.lower()
    except ValueError:
        return "#"
    if scheme not in ("http", "https"):
        return "#"
    return quote(address, safe=":/?#@!$&'*+,;=%~-._")
