"""PDF structure: the end-of-file marker, the cross-reference table, the trailer and the page tree.

Why: the wiki (without PdfHandler) stores a PDF cut in half or with a broken trailer as a good
one; a reader then shows nothing or an error. We check what makes a PDF openable, not its content
streams: ``%%EOF`` after the last ``startxref`` (else it was cut short), then pypdf in strict mode
reads the cross-reference table, the trailer (it must name the catalog) and every page object.
A strict failure is proof of damage even where pypdf's repair still finds the pages (some readers
repair, others show a blank page): the message says which. An encrypted file passes once its
trailer and cross-references read: the pages need its password.

pypdf is handed the open file (it would otherwise read the whole file into memory), and its log
goes to our debug log, not to stderr. Code: ``corrupt-pdf``.
"""

from __future__ import annotations

import logging
import os
from typing import Any

from mwingest.base import quiet
from mwingest.checks.content import Issue

log = logging.getLogger(__name__)
#: How far from the end ``%%EOF`` may sit (the spec says the last line; writers append junk).
EOF_WINDOW = 64 * 1024
#: Pages whose objects are read; a larger document has the rest of its tree unchecked.
MAX_PAGES = 10_000


def check_pdf(path: str) -> list[Issue]:
    """The first structural damage of a PDF, or nothing."""
    size = os.path.getsize(path)
    with open(path, "rb") as fh:
        fh.seek(max(0, size - EOF_WINDOW))
        tail = fh.read()
    startxref = tail.rfind(b"startxref")
    if b"%%EOF" not in (tail[startxref:] if startxref >= 0 else tail):
        return [Issue("corrupt-pdf", "is cut short: the end-of-file marker (%%EOF) is missing",
                      {"format": "PDF", "truncated": True})]
    try:
        import pypdf
    except ImportError:  # pragma: no cover - a declared dependency
        return []
    quiet.install()
    strict_error = _read(pypdf, path, strict=True)
    if strict_error is None:
        return []
    repaired_error = _read(pypdf, path, strict=False)
    if repaired_error is None:
        return [Issue("corrupt-pdf", f"is damaged: its cross-reference table or trailer is broken "
                      f"({strict_error}); some readers repair this, others show nothing",
                      {"format": "PDF", "error": strict_error, "repairable": True})]
    return [Issue("corrupt-pdf", f"is damaged: its structure cannot be read ({repaired_error})",
                  {"format": "PDF", "error": repaired_error, "repairable": False})]


def _read(pypdf: Any, path: str, *, strict: bool) -> str | None:
    """None when pypdf reads the trailer, cross-references and page objects, else the error."""
    try:
        with open(path, "rb") as fh:
            reader = pypdf.PdfReader(fh, strict=strict)
            if strict and "/Root" not in reader.trailer:
                return "its trailer names no document catalog (/Root)"
            if reader.is_encrypted:
                return None
            if len(reader.pages) == 0:
                return "it has no pages"
            for number, page in enumerate(reader.pages):
                if number >= MAX_PAGES:
                    break
                page.get("/Contents")
        return None
    except RecursionError:
        return "its page tree nests too deeply"
    except Exception as exc:  # pypdf raises PdfReadError, PdfStreamError, ValueError, KeyError …
        return f"{type(exc).__name__}: {exc}"[:300]
