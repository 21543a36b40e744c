"""EXIF text as the file has it (issue 26): UTF-8 in ASCII tags, cp1252 from older software, and
a ``{camera}`` that does not say the make twice. Files are written here by Pillow, with the tag
bytes as cameras and Lightroom write them; the wiki's reading of the same files is compared in
tests/integration/test_metadata_text_agreement.py.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from mwingest.describe.metadata import read_metadata
from tests.metafiles import jpeg_with_metadata


def _read(tmp_path: Path, **tags: object) -> dict[str, object]:
    path = tmp_path / "x.jpg"
    path.write_bytes(jpeg_with_metadata(**tags))  # type: ignore[arg-type]
    return dict(read_metadata(str(path)).values)


def test_utf8_in_exif_text_tags_is_read_as_utf8(tmp_path: Path) -> None:
    values = _read(tmp_path, artist="Zoë Ångström".encode(), copyright="© 2024 Zoë Ångström".encode(),
                   description="Straße in Łódź, 東京".encode())
    assert values["author"] == "Zoë Ångström"
    assert values["copyright"] == "© 2024 Zoë Ångström"
    assert values["description"] == "Straße in Łódź, 東京"


def test_text_that_is_no_utf8_is_read_as_cp1252(tmp_path: Path) -> None:
    values = _read(tmp_path, artist="René Müller".encode("cp1252"), copyright=b"\x80 5 \x93quoted\x94")
    assert values["author"] == "René Müller"
    assert values["copyright"] == "€ 5 “quoted”"


def test_ascii_stays_as_it_is(tmp_path: Path) -> None:
    assert _read(tmp_path, artist="Ada Lovelace")["author"] == "Ada Lovelace"


@pytest.mark.parametrize("make, model, camera", [
    ("Canon", "Canon EOS 5D", "Canon EOS 5D"),
    ("NIKON CORPORATION", "NIKON D750", "NIKON D750"),
    ("Canon", "EOS 5D", "Canon EOS 5D"),
    ("Canon", "Canonet QL17", "Canon Canonet QL17"),
    ("Apple", "iPhone 12", "Apple iPhone 12"),
])
def test_camera_names_the_make_once(tmp_path: Path, make: str, model: str, camera: str) -> None:
    assert _read(tmp_path, make=make, model=model)["camera"] == camera
