"""Metadata from the files, on a real wiki: the page text carries what the template asked for,
and the wiki's own reading of the file (``iiprop=commonmetadata``) agrees with ours.

The files are written here the way cameras and photo software write them (:mod:`tests.metafiles`):
one with EXIF (date, artist, GPS, a quarter-turn orientation) plus XMP and IPTC, one with XMP
only, one with IPTC only. The wiki is a variant with an image scaler, so that it rotates by EXIF
orientation as production wikis do, and its reported size can be compared with our prediction.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from mwingest.describe.metadata import read_metadata
from mwingest.job.settings import BatchSettings
from tests.integration.wikihelpers import SCALER_SETTINGS, create_page, page_text, session_for
from tests.metafiles import jpeg_with_metadata, xmp_packet

pytestmark = pytest.mark.wiki

TEMPLATE = """== {{{{int:filedesc}}}} ==
{{{{Information
|description={description}
|date={date}
|author={author}
}}}}
Keywords: {keywords}. Camera: {camera}. Size: {width}x{height}.
[[Category:Test uploads]]
"""


def _common(session, title: str) -> dict[str, Any]:
    answer = session.get({"action": "query", "titles": f"File:{title}", "prop": "imageinfo",
                          "iiprop": "commonmetadata|size", "iimetadataversion": "latest"})
    info = answer["query"]["pages"][0]["imageinfo"][0]
    common = {m["name"]: m["value"] for m in info.get("commonmetadata") or []}
    return {"common": common, "width": info["width"], "height": info["height"]}


def _wiki_date(value: Any) -> str:
    """The wiki's ``DateTimeOriginal`` (``2021:05:06 07:08:09``, or ISO from XMP) as ours."""
    text = str(value)
    return text[:10].replace(":", "-") + text[10:19].replace("T", " ")


def _wiki_author(value: Any) -> str:
    if isinstance(value, list):  # XMP's ordered list: [{"name": "0", "value": "…"}, …, _type]
        return "; ".join(str(v["value"]) for v in value if isinstance(v, dict) and v.get("name") != "_type")
    return str(value)


def test_fields_from_exif_xmp_and_iptc_land_in_the_text_and_agree_with_the_wiki(
        wiki_factory, prefect_harness, tmp_path, unique, monkeypatch):
    from flows.ingest import ingest_batch

    wiki = wiki_factory(extra_settings=SCALER_SETTINGS)
    for name, value in (("MWINGEST_API_URL", wiki.api_url), ("MWINGEST_USERNAME", wiki.username),
                        ("MWINGEST_PASSWORD", wiki.password)):
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("PREFECT_API_URL", raising=False)
    # Templates the text uses must exist (looked up before the upload); the category may be red.
    for title in ("Template:Information", "Template:Location"):  # --location adds {{Location}}
        create_page(session_for(wiki), title, "{{{1|}}}")
    u = unique()
    folder = tmp_path / "photos"
    folder.mkdir()
    exif = folder / f"Harbour exif {u}.jpg"
    exif.write_bytes(jpeg_with_metadata(
        size=(40, 30), artist="Ada Lovelace", date="2021:05:06 07:08:09",
        gps=(52.516272, -13.377702), orientation=6, make="Canon", model="EOS 5D",
        xmp=xmp_packet(description="The harbour at dawn", subjects=["harbour", "boats"]),
        iptc={(2, 25): ["pier"]}))
    xmp = folder / f"Pier xmp {u}.jpg"
    xmp.write_bytes(jpeg_with_metadata(xmp=xmp_packet(
        creator="Grace Hopper", created="2019-03-04T05:06:07", description="Pier in fog",
        subjects=["pier"])))
    iptc = folder / f"Boats iptc {u}.jpg"
    iptc.write_bytes(jpeg_with_metadata(iptc={
        (2, 80): "Mary Somerville", (2, 55): "20180910", (2, 60): "111213+0000",
        (2, 120): "Boats at the quay", (2, 25): ["boats", "quay"]}))
    template = tmp_path / "information.wiki"
    template.write_text(TEMPLATE, encoding="utf-8")

    rows = ingest_batch(sources=[str(folder)], wiki=wiki.api_url, settings=BatchSettings.from_flat(
               text_template=str(template), location=True, review_timeout_s=0,
               ledger_path=str(tmp_path / "l.db")))
    outcomes = {Path(r["source"]).name: r for r in rows}
    assert {n: o["outcome"] for n, o in outcomes.items()} == dict.fromkeys(
        (exif.name, xmp.name, iptc.name), "uploaded"), rows

    session = session_for(wiki)
    text = page_text(session, f"File:{outcomes[exif.name]['filename']}")
    assert "|description=The harbour at dawn" in text and "|date=2021-05-06 07:08:09" in text
    assert "|author=Ada Lovelace" in text and "Camera: Canon EOS 5D." in text
    assert "Keywords: harbour, boats." in text and "Size: 30x40." in text
    # The position only because it was asked for, and before the categories.
    assert "{{Location|52.516272|-13.377702}}\n[[Category:Test uploads]]" in text
    text = page_text(session, f"File:{outcomes[xmp.name]['filename']}")
    assert "|author=Grace Hopper" in text and "|date=2019-03-04 05:06:07" in text
    assert "{{Location" not in text  # no position in the file, no line
    text = page_text(session, f"File:{outcomes[iptc.name]['filename']}")
    assert "|author=Mary Somerville" in text and "|description=Boats at the quay" in text
    assert "|date=2018-09-10 11:12:13" in text and "Keywords: boats, quay." in text

    for path in (exif, xmp, iptc):
        ours = read_metadata(str(path)).values
        theirs = _common(session, outcomes[path.name]["filename"])
        common = theirs["common"]
        print(path.name, "ours:", ours, "wiki:", common)
        assert _wiki_date(common["DateTimeOriginal"]) == ours["date"]
        assert _wiki_author(common["Artist"]) == ours["author"]
        assert (theirs["width"], theirs["height"]) == (ours["width"], ours["height"])
        if "gps.lat" in ours:
            assert float(common["GPSLatitude"]) == pytest.approx(ours["gps.lat"], abs=1e-5)
            assert float(common["GPSLongitude"]) == pytest.approx(ours["gps.lon"], abs=1e-5)
        else:
            assert "GPSLatitude" not in common
