"""Structure checks on hostile bytes: never an exception, always quick (issue 14).

The generated-damage test (tests/integration/test_damage.py) shows each check catching what it
should, against the real wiki. Here the other half: whatever follows a container's signature,
:func:`check_media` and :func:`check_pdf` answer with a list (a finding or nothing), in bounded time.
"""

from __future__ import annotations

import time
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mwingest.checks.mediacheck import check_media, ogg_crc
from mwingest.checks.pdfcheck import check_pdf
from tests.corpus import _ogg_crc

SIGNATURES = [(b"OggS\x00", "application/ogg"), (b"RIFF\x10\x00\x00\x00WAVE", "audio/wav"),
              (b"fLaC", "audio/flac"), (b"\x1a\x45\xdf\xa3", "video/webm"), (b"ID3\x03\x00", "audio/mpeg"),
              (b"\xff\xfb\x90\xc0", "audio/mpeg")]


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(index=st.integers(0, len(SIGNATURES) - 1), rest=st.binary(max_size=4096))
def test_hostile_media_never_raises(tmp_path: Path, index: int, rest: bytes) -> None:
    signature, mime = SIGNATURES[index]
    path = tmp_path / "x.bin"
    path.write_bytes(signature + rest)
    started = time.monotonic()
    issues = check_media(str(path), mime)
    assert isinstance(issues, list) and len(issues) <= 1
    assert all(i.code in ("truncated-media", "corrupt-media") for i in issues)
    assert time.monotonic() - started < 2


# 30, not more: each example starts the pypdf child process (mwingest.checks.pdfread).
@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(rest=st.binary(max_size=2048))
def test_hostile_pdf_never_raises(tmp_path: Path, rest: bytes) -> None:
    path = tmp_path / "x.pdf"
    path.write_bytes(b"%PDF-1.4\n" + rest + b"\nstartxref\n9\n%%EOF\n")
    issues = check_pdf(str(path))
    assert all(i.code in ("corrupt-pdf", "unverified-pdf") for i in issues)


@given(st.binary(max_size=2000))
def test_ogg_crc_matches_the_reference_implementation(data: bytes) -> None:
    """Our zlib-based CRC against the corpus's bit-by-bit one (RFC 3533's polynomial)."""
    assert ogg_crc(data) == _ogg_crc(data)
