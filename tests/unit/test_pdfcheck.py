"""The PDF check's two additions of issue 26: offsets rebuilt from a well-formed table, and a
time limit.

Why pass a PDF whose cross-reference offsets are all wrong: that is what converting its line ends
does (pypdf's issue 297 file, in the real-media corpus), and every reader rebuilds the offsets by
scanning the objects. A table whose bytes are no table (overwritten) stays ``corrupt-pdf``. The
wiki stores all of these; tests/integration/test_real_media_agreement.py and test_damage.py send
them.
"""

from __future__ import annotations

import io
from pathlib import Path

import pypdf
import pytest

from mwingest.checks.pdfcheck import check_pdf
from mwingest.checks.pdfread import xref_table
from tests.corpus import REAL_MEDIA


def _pdf(pages: int = 3) -> bytes:
    writer = pypdf.PdfWriter()
    for _ in range(pages):
        writer.add_blank_page(72, 72)
    buf = io.BytesIO()
    writer.write(buf)
    return buf.getvalue()


def _write(tmp_path: Path, data: bytes) -> str:
    path = tmp_path / "x.pdf"
    path.write_bytes(data)
    return str(path)


def test_a_good_pdf_passes(tmp_path: Path) -> None:
    assert check_pdf(_write(tmp_path, _pdf())) == []


def test_shifted_offsets_in_a_well_formed_table_pass(tmp_path: Path) -> None:
    data = _pdf()
    head = data.index(b"\n") + 1
    shifted = data[:head] + b"% forty bytes of comment, no offset moves\n" + data[head:]
    strict = pypdf.PdfReader(io.BytesIO(shifted), strict=False)  # sanity: still a 3-page document
    assert len(strict.pages) == 3
    assert xref_table(shifted) == "ok"
    assert check_pdf(_write(tmp_path, shifted)) == []


def test_line_ends_converted_pass(tmp_path: Path) -> None:
    """Every LF becomes CR LF after writing, as a text-mode copy does: offsets and the xref
    entries' line ends no longer match the spec."""
    converted = _pdf().replace(b"\n", b"\r\n")
    assert check_pdf(_write(tmp_path, converted)) == []


def test_an_overwritten_table_is_corrupt(tmp_path: Path) -> None:
    data = _pdf()
    xref = data.rindex(b"\nxref") + 1
    broken = data[:xref] + b"xref\n0 9\nGARBAGE\n" + data[data.index(b"trailer", xref):]
    assert xref_table(broken) == "malformed"
    issues = check_pdf(_write(tmp_path, broken))
    assert [i.code for i in issues] == ["corrupt-pdf"], issues


def test_xref_table_kinds() -> None:
    stream_only = b"%PDF-1.5\n1 0 obj<</Type/XRef>>stream\nendstream\nendobj\nstartxref\n9\n%%EOF"
    assert xref_table(stream_only) == "absent"
    assert xref_table(b"xref\n0 1\n0000000000 65535 f \ntrailer\n<<>>") == "ok"
    assert xref_table(b"xref\n0 2\n0000000000 65535 f \ntrailer\n<<>>") == "malformed"
    assert xref_table(b"xref\n0 1\n0000000000 65535 f \nGARBAGE\ntrailer\n<<>>") == "malformed"


def test_the_time_limit_gives_a_classified_outcome(tmp_path: Path) -> None:
    """No PDF is needed that really stalls pypdf: a limit no child can meet (its interpreter alone
    takes longer to start) shows what happens when one does. The child is killed, the file is
    not refused (that is no proof of damage) but passes with a warning that says why."""
    issues = check_pdf(_write(tmp_path, _pdf()), time_limit=0.001)
    assert [(i.code, i.severity) for i in issues] == [("unverified-pdf", "warn")]
    assert "0.001 seconds" in issues[0].what


def test_pypdfs_issue_297_file_passes() -> None:
    path = REAL_MEDIA / "pypdf-issue-297.pdf"
    if not path.is_file():
        pytest.skip(f"{path} is not there")
    assert check_pdf(str(path)) == []
