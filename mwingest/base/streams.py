"""Streamed file parts for multipart bodies, so memory stays flat whatever the file size.

Why not ``open(path).read()``: a 4 GiB video would be held in memory. A :class:`FilePart` names a
byte range of a file and opens a fresh reader for every attempt, so a request the session has to
repeat (after a token refresh) re-reads the same bytes from disk instead of a half-consumed stream.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from mwingest.base.errors import SourceChangedError


class FileSlice:
    """A read-only view of ``length`` bytes of a file from ``offset``.

    ``len()`` is the number of bytes *not yet read*: requests-toolbelt's encoder asks it to know
    what is left to stream. No ``fileno`` on purpose: the encoder would then measure the whole file.
    """

    def __init__(self, path: str | os.PathLike[str], offset: int, length: int) -> None:
        self._fh: BinaryIO = open(path, "rb")  # noqa: SIM115 - closed by close()/read end
        self._fh.seek(offset)
        self._left = length
        self.bytes_read = 0

    def read(self, size: int = -1) -> bytes:
        if self._left <= 0:
            self.close()
            return b""
        size = self._left if size is None or size < 0 else min(size, self._left)
        if size == 0:
            return b""
        data = self._fh.read(size)
        self._left -= len(data)
        self.bytes_read += len(data)
        if not data:
            # The file shrank under us. Ending quietly would send a body shorter than the
            # Content-Length already announced, and the server would wait out the read timeout.
            left, self._left = self._left, 0
            self.close()
            raise SourceChangedError(f"{self._fh.name} ended {left} bytes before the range we are "
                                     "sending: the file changed while it was being uploaded")
        return data

    def __len__(self) -> int:
        return max(self._left, 0)

    def close(self) -> None:
        if not self._fh.closed:
            self._fh.close()


@dataclass(frozen=True)
class FilePart:
    """A multipart file field: what to send as ``filename=`` and which bytes."""

    filename: str
    path: Path | None = None
    offset: int = 0
    length: int | None = None
    data: bytes | None = None  # small in-memory bodies (tests, tiny files)
    content_type: str = "application/octet-stream"

    @classmethod
    def whole(cls, path: str | os.PathLike[str], filename: str | None = None) -> FilePart:
        p = Path(path)
        return cls(filename=filename or p.name, path=p, offset=0, length=p.stat().st_size)

    @property
    def size(self) -> int:
        if self.data is not None:
            return len(self.data)
        assert self.path is not None
        return self.length if self.length is not None else self.path.stat().st_size - self.offset

    def open(self) -> FileSlice | bytes:
        """A fresh reader (or the bytes) for one attempt of the request."""
        if self.data is not None:
            return self.data
        assert self.path is not None
        return FileSlice(self.path, self.offset, self.size)
