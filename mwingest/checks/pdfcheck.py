"""PDF structure: the end-of-file marker, the cross-reference table, the trailer and the page tree.

Why: the wiki (without PdfHandler) stores a PDF cut in half or with a broken trailer as a good
one; a reader then shows nothing or an error. We check what makes a PDF openable, not its content
streams: ``%%EOF`` after the last ``startxref`` (else it was cut short), then pypdf in strict mode
reads the cross-reference table, the trailer (it must name the catalog) and every page object.
A strict failure is proof of damage even where pypdf's repair still finds the pages (some readers
repair, others show a blank page): the message says which. An encrypted file passes once its
trailer and cross-references read: the pages need its password.

pypdf runs in a child process (:mod:`mwingest.checks.pdfread`) with a time limit and a memory cap, so a
hostile PDF cannot stall validation: past :data:`TIME_LIMIT` the child is killed and the file passes
with the warning ``unverified-pdf`` (like a TIFF no decoder here can read: not proof of damage).
A strict failure is forgiven in one case: the cross-reference table is well-formed but its offsets
are wrong (a file whose line ends were converted after it was written), which every reader rebuilds
by scanning the objects, and the repaired read finds everything. Codes: ``corrupt-pdf``,
``unverified-pdf``.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from pathlib import Path

from mwingest.checks.content import Issue

log = logging.getLogger(__name__)
#: How far from the end ``%%EOF`` may sit (the spec says the last line; writers append junk).
EOF_WINDOW = 64 * 1024
#: Seconds pypdf may spend on one file, then it is stopped (generous: it reads the page tree only).
TIME_LIMIT = 60.0
#: Where ``python -m mwingest.checks.pdfread`` finds this package, whatever the caller's directory.
_PACKAGE_PARENT = str(Path(__file__).resolve().parents[1])


def check_pdf(path: str, *, time_limit: float | None = None) -> list[Issue]:
    """The first structural damage of a PDF, or nothing; within *time_limit* seconds (default
    :data:`TIME_LIMIT`), after which the file passes with the warning ``unverified-pdf``."""
    size = os.path.getsize(path)
    with open(path, "rb") as fh:
        fh.seek(max(0, size - EOF_WINDOW))
        tail = fh.read()
    startxref = tail.rfind(b"startxref")
    if b"%%EOF" not in (tail[startxref:] if startxref >= 0 else tail):
        return [Issue("corrupt-pdf", "is cut short: the end-of-file marker (%%EOF) is missing",
                      {"format": "PDF", "truncated": True})]
    return _judge(path, time_limit if time_limit is not None else TIME_LIMIT)


def _judge(path: str, time_limit: float) -> list[Issue]:
    try:
        done = subprocess.run([sys.executable, "-m", "mwingest.checks.pdfread", os.path.abspath(path)],
                              capture_output=True, timeout=time_limit, check=False, stdin=subprocess.DEVNULL,
                              cwd=_PACKAGE_PARENT)
    except subprocess.TimeoutExpired:  # run() has killed the child
        return [Issue("unverified-pdf", f"could not be checked within {time_limit:g} seconds (a PDF "
                      "built to stall readers, or a very large one); it goes up unchecked",
                      {"format": "PDF", "time_limit": time_limit}, severity="warn")]
    try:
        answer = json.loads(done.stdout)
    except ValueError:  # the child died (its memory cap, a crash in pypdf's C helpers)
        log.debug("PDF check of %s ended with %s: %s", path, done.returncode, done.stderr[-2000:])
        return [Issue("unverified-pdf", "could not be checked: the PDF reader stopped on it "
                      f"(exit status {done.returncode}); it goes up unchecked",
                      {"format": "PDF", "exit": done.returncode}, severity="warn")]
    strict_error, repaired_error = answer["strict"], answer["repaired"]
    if strict_error is None:
        return []
    if repaired_error is None and answer["xref_table"] == "ok" and "xref" in strict_error.lower():
        # A well-formed table whose offsets are wrong (line ends converted after writing, as in
        # pypdf's issue 297 file): every reader rebuilds the offsets by scanning the objects.
        log.debug("%s: cross-reference offsets rebuilt (%s)", path, strict_error)
        return []
    if repaired_error is None:
        return [Issue("corrupt-pdf", f"is damaged: its cross-reference table or trailer is broken "
                      f"({strict_error}); some readers repair this, others show nothing",
                      {"format": "PDF", "error": strict_error, "repairable": True})]
    return [Issue("corrupt-pdf", f"is damaged: its structure cannot be read ({repaired_error})",
                  {"format": "PDF", "error": repaired_error, "repairable": False})]
