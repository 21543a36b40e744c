"""Keep decoder chatter off the user's terminal: into the debug log instead.

Why: ``mwingest check`` prints a table; Pillow's ``UserWarning``\\ s (corrupt EXIF, invalid APNG),
pypdf's and tifffile's warnings and libtiff's C-level messages ("TIFFFetchNormalTag: …") used to be
printed between its rows. None of them decides a verdict (the decoders' exceptions do), so they go
to the ``mwingest.decoders`` logger at DEBUG level.

Two mechanisms, both process-wide by nature:

* Python warnings from the decoder packages: :func:`install` wraps ``warnings.showwarning`` once;
  other warnings still reach the previous hook. (``warnings.catch_warnings`` is not thread-safe.)
* C libraries that write to file descriptor 2 (libtiff): :func:`captured_stderr` points fd 2 at a
  temporary file around one decode and logs what was written. A lock serialises those windows;
  whatever another thread writes to fd 2 during one is logged too, not lost.
"""

from __future__ import annotations

import logging
import os
import sys
import tempfile
import threading
import warnings
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from typing import Any

log = logging.getLogger("mwingest.decoders")
_DECODER_MODULES = ("PIL", "tifffile", "imagecodecs", "pypdf", "mutagen")
_lock = threading.RLock()
_installed: list[Any] = []
#: At most this much of one window's captured output is logged.
CAPTURE_LIMIT = 64 * 1024


def _from_decoder(filename: str) -> bool:
    parts = filename.replace("\\", "/").split("/")
    return any(module in parts for module in _DECODER_MODULES)


class _ToDebug(logging.Handler):
    """A decoder package's own log records, re-issued at DEBUG on :data:`log`."""

    def emit(self, record: logging.LogRecord) -> None:
        log.debug("%s: %s", record.name, record.getMessage())


def install() -> None:
    """Route the decoder packages' Python warnings and log records to the debug log (idempotent).
    Pillow, tifffile and pypdf log through :mod:`logging`; with no handler configured, Python's
    last-resort handler would print their warnings on stderr."""
    for name in ("PIL", "tifffile", "pypdf"):
        package_log = logging.getLogger(name)
        if not any(isinstance(h, _ToDebug) for h in package_log.handlers):
            package_log.addHandler(_ToDebug())
            package_log.propagate = False
    with _lock:
        if _installed and warnings.showwarning is _installed[0]:
            return
        previous = warnings.showwarning

        def showwarning(message: Warning | str, category: type[Warning], filename: str, lineno: int,
                        file: Any = None, line: str | None = None) -> None:
            if _from_decoder(filename):
                log.debug("%s: %s (%s:%s)", category.__name__, message, filename, lineno)
            else:
                previous(message, category, filename, lineno, file, line)

        warnings.showwarning = showwarning
        _installed[:] = [showwarning]


@contextmanager
def captured_stderr(what: str) -> Iterator[list[str]]:
    """Send file descriptor 2 to a temporary file for the duration; log what arrived there.

    The list it yields holds that text once the block has ended (libtiff's error messages are
    evidence of damage that its return codes do not always carry: :mod:`mwingest.checks.tiffcheck`)."""
    said: list[str] = []
    with _lock, tempfile.TemporaryFile() as sink:
        with suppress(AttributeError, ValueError, OSError):
            sys.stderr.flush()
        saved = os.dup(2)
        try:
            os.dup2(sink.fileno(), 2)
            yield said
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            sink.seek(0)
            text = sink.read(CAPTURE_LIMIT).decode("utf-8", "replace").strip()
            said.append(text)
            if text:
                log.debug("%s wrote to stderr: %s", what, text)
