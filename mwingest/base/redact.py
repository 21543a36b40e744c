"""Moved out of :mod:`mwingest.wiki.credentials` so that its importers need not import it (issue 25)."""

from __future__ import annotations

import re
import threading
from collections.abc import Iterable
from urllib.parse import quote, quote_plus

_lock = threading.Lock()
_secrets: set[str] = set()
_pattern: re.Pattern[str] | None = None
MASK = "[redacted]"
#: JSON Schema ``pattern`` for a URL parameter (a ledger's): no ``scheme://user:password@``. The
#: Prefect server checks a deployment's parameters against its schema when a run is created, so
#: a password is refused before anything stores it. Python's ``re`` and ECMA alike.
NO_PASSWORD_PATTERN = r"^(?![A-Za-z][A-Za-z0-9+.-]*://[^/@]*:[^/@]*@)"


def _forms(secret: str) -> Iterable[str]:
    """The spellings a secret can take in a log line: raw, URL-encoded, form-encoded."""
    yield secret
    yield quote(secret, safe="")
    yield quote_plus(secret, safe="")


def register_secret(secret: str) -> None:
    """Remember a secret value (password, token, cookie) so :func:`redact` masks it everywhere."""
    global _pattern
    if not secret or len(secret) < 4:
        return
    with _lock:
        before = len(_secrets)
        _secrets.update(_forms(secret))
        if len(_secrets) != before:
            ordered = sorted(_secrets, key=len, reverse=True)
            _pattern = re.compile("|".join(re.escape(s) for s in ordered))


def redact(text: str) -> str:
    """``text`` with every registered secret masked."""
    pattern = _pattern
    if pattern is None or not text:
        return text
    return pattern.sub(MASK, text)
