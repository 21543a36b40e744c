"""TIFF damage that the decoders' return codes miss (issue 26): libtiff's codec errors on stderr,
and strip tables that contradict the page's size when no decoder here can read the page.

Three files of Pillow's crash corpus (in the real-media corpus) are such cases; the wiki stores
all three (tests/integration/test_real_media_agreement.py sends them). A Group 4 fax TIFF written
here and garbled in its strip is the generated case (tests/integration/test_damage.py sends it).
"""

from __future__ import annotations

import io
import random
from pathlib import Path

import pytest
from PIL import Image, ImageDraw

from mwingest.checks.content import check_raster
from mwingest.checks.tiffcheck import decoder_damage, second_opinion, structure_problem
from tests.corpus import REAL_MEDIA


def g4_tiff(rng: random.Random) -> bytes:
    """A 1-bit drawing saved with CCITT Group 4 compression (libtiff's encoder, via Pillow)."""
    image = Image.new("1", (200, 120), 1)
    draw = ImageDraw.Draw(image)
    for _ in range(30):
        draw.line([rng.randrange(200), rng.randrange(120), rng.randrange(200), rng.randrange(120)],
                  fill=0, width=2)
    buf = io.BytesIO()
    image.save(buf, format="TIFF", compression="group4")
    return buf.getvalue()


def garble_strip(data: bytes, rng: random.Random) -> bytes:
    """Six random bytes a third of the way into the first strip (Pillow writes one strip)."""
    import tifffile

    with tifffile.TiffFile(io.BytesIO(data)) as tif:
        offset, count = tif.pages[0].dataoffsets[0], tif.pages[0].databytecounts[0]
    start = offset + count // 3
    return data[:start] + bytes(rng.randrange(256) for _ in range(6)) + data[start + 6:]


def test_codec_errors_are_picked_out_of_libtiffs_output() -> None:
    assert decoder_damage("Fax4Decode: Bad code word at line 27 of strip 0 (x 0).") == \
        "Fax4Decode: Bad code word at line 27 of strip 0 (x 0)."
    assert decoder_damage("TIFFFillStrip: Read error on strip 0; got 3 bytes, expected 1012.")
    assert decoder_damage("Fax3Decode2D: Warning, Premature EOL at line 3 of strip 0.") is None
    assert decoder_damage("TIFFFetchNormalTag: Defined set_get_field_type of custom tag 0") is None
    assert decoder_damage("") is None


def test_a_garbled_g4_strip_is_corrupt(tmp_path: Path) -> None:
    rng = random.Random(26)
    good, bad = tmp_path / "good.tif", tmp_path / "bad.tif"
    data = g4_tiff(rng)
    good.write_bytes(data)
    bad.write_bytes(garble_strip(data, rng))
    assert check_raster(str(good), "tif") == []
    issues = check_raster(str(bad), "tif")
    assert [i.code for i in issues] == ["corrupt-image"], issues
    assert "libtiff reports damage" in issues[0].what


@pytest.mark.parametrize("name, evidence", [
    ("pil-crash-0da013a13571cc8eb457a39fee8db18f8a3c7127.tif", "Bad code word"),
    ("pil-crash-2020-10-test.tif", "no strip byte counts"),
    ("pil-libtiff_segfault.tif", "needs 23 strips"),
])
def test_pillows_crash_files_are_corrupt(name: str, evidence: str) -> None:
    path = REAL_MEDIA / name
    if not path.is_file():
        pytest.skip(f"{path} is not there")
    issues = check_raster(str(path), "tif")
    assert [i.code for i in issues] == ["corrupt-image"], issues
    assert evidence in issues[0].what


def test_good_tiffs_have_consistent_strip_tables() -> None:
    """No false alarm on the corpus's good TIFFs (those both decoders read)."""
    if not REAL_MEDIA.is_dir():
        pytest.skip("no real-media corpus")
    checked = 0
    for path in sorted(REAL_MEDIA.glob("pil-*.tif*")):
        if "crash" in path.name or second_opinion(str(path)).verdict != "ok":
            continue
        if check_raster(str(path), "tif"):
            continue
        assert structure_problem(str(path)) is None, path.name
        checked += 1
    assert checked >= 20
