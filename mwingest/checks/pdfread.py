"""The pypdf side of the PDF check, run in a child process (``python -m mwingest.checks.pdfread PATH``).

Why a child: pypdf is pure Python and has no time limit of its own, and a hostile PDF (a page tree,
object stream or cross-reference chain built to loop or to inflate) can keep it busy for as long as
it likes; a thread cannot be stopped. A child can: :func:`mwingest.checks.pdfcheck.check_pdf` kills it at
its time limit, and the child caps its own memory (:data:`MEMORY_LIMIT`). The child imports only
pypdf and the standard library, so it starts in a fraction of a second.

Its answer, one JSON object on stdout: ``{"strict": error or null, "repaired": error or null,
"xref_table": "ok" | "malformed" | "absent"}``. The judgement is the parent's.
"""

from __future__ import annotations

import json
import logging
import re
import sys
from typing import Any

#: Pages whose objects are read; a larger document has the rest of its tree unchecked.
MAX_PAGES = 10_000
#: Address space the child may use (pypdf holds object streams and the xref in memory).
MEMORY_LIMIT = 2 << 30
#: The last classic cross-reference section: ``xref``, subsections ``start count``, entries.
_XREF = re.compile(rb"(?:^|[\r\n])xref[ \t]*\r?\n?", re.M)
_SUBSECTION = re.compile(rb"[ \t]*(\d+)[ \t]+(\d+)[ \t]*(?:\r\n|\r|\n)")
#: One entry: 10-digit offset, 5-digit generation, n/f. The spec wants a 2-byte end of line
#: (" \r", " \n" or "\r\n"); files whose line ends were converted (FTP ASCII mode, git autocrlf)
#: have one byte, and every reader takes that, so one or two are allowed here.
_ENTRY = re.compile(rb"\d{10} \d{5} [nf](?: ?\r\n| ?\n| ?\r| )")


def read(path: str, *, strict: bool) -> str | None:
    """None when pypdf reads the trailer, cross-references and page objects, else the error."""
    import pypdf

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
    except MemoryError:
        return "it needs more memory than a PDF check may use"
    except Exception as exc:  # pypdf raises PdfReadError, PdfStreamError, ValueError, KeyError …
        return f"{type(exc).__name__}: {exc}"[:300]


def xref_table(data: bytes) -> str:
    """Whether the last classic cross-reference table is well-formed (its offsets may still be
    wrong): ``ok``, ``malformed`` (bytes that are no table where one starts: overwritten), or
    ``absent`` (none, e.g. a PDF 1.5 cross-reference stream)."""
    trailer = data.rfind(b"trailer")
    starts = list(_XREF.finditer(data, 0, trailer if trailer >= 0 else len(data)))
    if not starts or trailer < 0:
        return "absent"
    pos, seen = starts[-1].end(), 0
    while pos < trailer:
        head = _SUBSECTION.match(data, pos)
        if head is None:
            break
        pos, count = head.end(), int(head.group(2))
        for _ in range(count):
            entry = _ENTRY.match(data, pos)
            if entry is None:
                return "malformed"
            pos = entry.end()
        seen += count
    rest = data[pos:trailer].strip()
    return "ok" if seen and not rest else "malformed"


def main(argv: list[str]) -> int:
    """Answer for one file on stdout; the exit code is 0 whenever an answer was written."""
    try:
        import resource

        resource.setrlimit(resource.RLIMIT_AS, (MEMORY_LIMIT, MEMORY_LIMIT))
    except (ImportError, ValueError, OSError):  # not on this platform, or a lower limit already
        pass
    logging.disable(logging.CRITICAL)  # pypdf's warnings: the parent logs what matters
    sys.setrecursionlimit(3000)
    path = argv[0]
    answer: dict[str, Any] = {"strict": read(path, strict=True), "repaired": None, "xref_table": "absent"}
    if answer["strict"] is not None:
        answer["repaired"] = read(path, strict=False)
        with open(path, "rb") as fh:
            fh.seek(0, 2)
            size = fh.tell()
            fh.seek(max(0, size - (4 << 20)))  # a classic table sits at the end; 4 MiB hold ~200,000 entries
            answer["xref_table"] = xref_table(fh.read())
    sys.stdout.write(json.dumps(answer))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
