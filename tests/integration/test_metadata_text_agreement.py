"""EXIF text tags against the wiki's own reading (``commonmetadata`` of a stashed upload).

What MediaWiki 1.39 does with them (``Exif::isASCII``): an EXIF ASCII tag holding any byte
outside printable ASCII is dropped, so a UTF-8 ``Artist`` is not shown at all, while the same
name in XMP's ``dc:creator`` is (XMP is UTF-8 by definition). What we do: read the tag's bytes
as UTF-8 (cp1252 when they are no UTF-8), so ``{author}`` is the name the camera or Lightroom
wrote. The claims: for pure ASCII we say what the wiki says; where the wiki shows the name from
XMP, ours (from EXIF) is the same string; where the wiki shows nothing, ours is the file's text,
not mojibake. And ``{camera}`` is the wiki's ``Model`` when the model already names the make.
"""

from __future__ import annotations

import secrets
from pathlib import Path
from typing import Any

import pytest

from mwingest.describe.metadata import read_metadata
from tests.integration.test_validation_agreement import RawApi, api  # noqa: F401
from tests.metafiles import jpeg_with_metadata, xmp_packet

pytestmark = pytest.mark.wiki

NAME = "Zoë Ångström"


def _stashed_common(api: RawApi, data: bytes, name: str) -> dict[str, Any]:  # noqa: F811
    answer = api.upload(data, name, stash="1", ignorewarnings="1")
    key = answer["upload"]["filekey"]
    info = api.get({"action": "query", "prop": "stashimageinfo", "siifilekey": key,
                    "siiprop": "commonmetadata"})["query"]["stashimageinfo"][0]
    out: dict[str, Any] = {}
    for item in info.get("commonmetadata") or []:
        value = item["value"]
        if isinstance(value, list):  # XMP's ordered list: [{"name": 0, "value": …}, {"name": "_type"…}]
            value = "; ".join(str(v["value"]) for v in value if v.get("name") != "_type")
        out[item["name"]] = value
    return out


def test_exif_text_agrees_with_the_wiki(api: RawApi, tmp_path: Path) -> None:  # noqa: F811
    token = secrets.token_hex(4)
    files = {
        "ascii": jpeg_with_metadata(artist="Ada Lovelace", copyright="CC BY 4.0", make="Canon",
                                    model="Canon EOS 5D"),
        "utf8-and-xmp": jpeg_with_metadata(artist=NAME.encode(), xmp=xmp_packet(creator=NAME),
                                           make="NIKON CORPORATION", model="NIKON D750"),
        "utf8-only": jpeg_with_metadata(artist=NAME.encode(), copyright=f"© {NAME}".encode(),
                                        description="Straße in Łódź".encode()),
        "cp1252-only": jpeg_with_metadata(artist="René Müller".encode("cp1252")),
    }
    seen = {}
    for key, data in files.items():
        path = tmp_path / f"{key}.jpg"
        path.write_bytes(data)
        common = _stashed_common(api, data, f"Exiftext-{key}-{token}.jpg")
        seen[key] = (read_metadata(str(path)).values, common)
        print(key, "ours:", seen[key][0], "wiki:", seen[key][1])

    ours, wiki = seen["ascii"]
    assert (ours["author"], ours["copyright"]) == (wiki["Artist"], wiki["Copyright"]) == ("Ada Lovelace",
                                                                                          "CC BY 4.0")
    assert ours["camera"] == wiki["Model"] == "Canon EOS 5D"  # not "Canon Canon EOS 5D"

    ours, wiki = seen["utf8-and-xmp"]
    assert ours["author"] == wiki["Artist"] == NAME  # the wiki's from XMP, ours from EXIF
    assert ours["camera"] == wiki["Model"] == "NIKON D750"

    ours, wiki = seen["utf8-only"]
    assert "Artist" not in wiki and "Copyright" not in wiki and "ImageDescription" not in wiki
    assert (ours["author"], ours["copyright"], ours["description"]) == (NAME, f"© {NAME}", "Straße in Łódź")

    ours, wiki = seen["cp1252-only"]
    assert "Artist" not in wiki and ours["author"] == "René Müller"
