"""SHA-1 of local files, streamed, in the form the wiki reports it.

Why SHA-1: it is the only content hash MediaWiki exposes. ``list=allimages&aisha1=`` finds files
with the same bytes before we send one (spec §12), and ``imageinfo.sha1`` proves after a publish that
the wiki stored exactly our bytes (rclone's lesson: acceptance is not integrity). Both speak
lowercase hex, so that is what we produce. Files are read in chunks: a 5 GiB video must not be held
in memory to be hashed.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass

#: Read size: large enough that syscalls do not dominate, small enough to stay cache-friendly.
DEFAULT_CHUNK_SIZE = 1 << 20


def sha1_bytes(data: bytes | bytearray | memoryview) -> str:
    """Lowercase hex SHA-1 of in-memory bytes (for chunks and small test payloads)."""
    return hashlib.sha1(data, usedforsecurity=False).hexdigest()


@dataclass(frozen=True)
class FileDigest:
    """Size and SHA-1 of one file, taken in a single read so both describe the same bytes."""

    size: int
    sha1: str

    @classmethod
    def of(cls, path: str | os.PathLike[str], *, chunk_size: int = DEFAULT_CHUNK_SIZE,
           limit: int | None = None) -> FileDigest:
        """Hash *path* (only its first *limit* bytes when given). The size is what was read, not
        ``stat()``: a file growing under us is caught by the caller comparing it with its own
        ``stat`` size."""
        if chunk_size <= 0:
            raise ValueError("chunk_size must be positive")
        digest = hashlib.sha1(usedforsecurity=False)
        size = 0
        with open(path, "rb") as fh:
            while limit is None or size < limit:
                want = chunk_size if limit is None else min(chunk_size, limit - size)
                block = fh.read(want)
                if not block:
                    break
                digest.update(block)
                size += len(block)
        return cls(size=size, sha1=digest.hexdigest())


def sha1_file(path: str | os.PathLike[str], *, chunk_size: int = DEFAULT_CHUNK_SIZE,
              limit: int | None = None) -> str:
    """Lowercase hex SHA-1 of the file at *path* (or of its first *limit* bytes), streamed."""
    return FileDigest.of(path, chunk_size=chunk_size, limit=limit).sha1
