"""What a fault plan of :mod:`tests.faultproxy` matches on: a request's head (method, target,
headers, the body's first 64 KiB) and the API parameters read from it, and the matchers the tests
use (uploads, chunks, direct file uploads, publishes, one API action)."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from email.message import Message
from urllib.parse import parse_qs, urlsplit

_DISPOSITION_NAME = re.compile(rb'name="([^"]*)"')


@dataclass(frozen=True)
class RequestHead:
    """What a match function sees: method, target, headers and the body's first 64 KiB."""

    method: str
    target: str
    headers: Message
    body_head: bytes
    content_length: int

    def _multipart_fields(self) -> dict[str, bytes | None]:
        """Form fields found in the body head; file parts map to None (their bytes are not parsed)."""
        match = re.search(r'boundary="?([^";]+)"?', self.headers.get("Content-Type", ""))
        if not match:
            return {}
        found: dict[str, bytes | None] = {}
        for part in self.body_head.split(b"--" + match.group(1).encode())[1:]:
            head, sep, value = part.partition(b"\r\n\r\n")
            name = _DISPOSITION_NAME.search(head)
            if not sep or name is None:
                continue
            found[name.group(1).decode()] = None if b"filename=" in head else value.removesuffix(b"\r\n")
        return found

    def param(self, name: str) -> str | None:
        """An API parameter from the query string, a urlencoded body or a multipart text field."""
        query = parse_qs(urlsplit(self.target).query)
        if name in query:
            return query[name][0]
        ctype = self.headers.get("Content-Type", "")
        if ctype.startswith("application/x-www-form-urlencoded"):
            form = parse_qs(self.body_head.decode("latin-1"))
            return form[name][0] if name in form else None
        value = self._multipart_fields().get(name)
        return value.decode("utf-8", "replace") if value is not None else None

    def has_part(self, name: str) -> bool:
        """True when the multipart body has a part called ``name`` (e.g. ``chunk``)."""
        return name in self._multipart_fields()


def upload_posts(head: RequestHead) -> bool:
    """Every ``action=upload`` POST: chunks, checkstatus and publishes."""
    return head.method == "POST" and head.param("action") == "upload"


def chunk_posts(head: RequestHead) -> bool:
    """Only POSTs that carry a ``chunk`` part."""
    return head.method == "POST" and head.has_part("chunk")


def file_posts(head: RequestHead) -> bool:
    """Direct uploads: POSTs that carry a ``file`` part."""
    return head.method == "POST" and head.has_part("file")


def publish_posts(head: RequestHead) -> bool:
    """Publishes of a stashed file: ``action=upload`` with a ``filekey``, no chunk, no checkstatus."""
    return (upload_posts(head) and head.param("filekey") is not None
            and head.param("checkstatus") is None and not head.has_part("chunk"))


def action_is(action: str, method: str | None = None) -> Callable[[RequestHead], bool]:
    """Requests of one API action (``query``, ``login``, ...), optionally of one method."""
    return lambda head: (head.param("action") == action
                         and (method is None or head.method == method))
