"""Metadata read from files written here (EXIF, XMP, IPTC), the template filled from it, and the
sheet's round trip through openpyxl: pure file work, no wiki."""

from __future__ import annotations

from pathlib import Path

import pytest

from mwingest.describe.manifest import read_manifest
from mwingest.describe.metadata import FileMetadata, add_location, read_metadata, template_values
from mwingest.describe.sheet import sheet_rows, write_sheet
from mwingest.describe.sources import collect
from tests.metafiles import jpeg_with_metadata, xmp_packet


def test_exif_first_then_xmp_then_iptc_and_orientation_turns_the_size(tmp_path):
    path = tmp_path / "a.jpg"
    path.write_bytes(jpeg_with_metadata(
        size=(40, 30), artist="Ada", date="2021:05:06 07:08:09", gps=(-33.5, 151.25), orientation=8,
        xmp=xmp_packet(creator="Not Ada", title="Harbour", subjects=["a", "b"]),
        iptc={(2, 120): "caption from IPTC", (2, 80): "Not Ada either"}))
    meta = read_metadata(str(path))
    assert meta.values["author"] == "Ada" and meta.sources["author"] == "exif"
    assert meta.values["title"] == "Harbour" and meta.values["keywords"] == "a, b"
    assert meta.values["description"] == "caption from IPTC" and meta.sources["description"] == "iptc"
    assert meta.gps == (-33.5, 151.25)
    assert (meta.values["width"], meta.values["height"]) == (30, 40)


@pytest.mark.parametrize("content", [b"not an image", b"\xff\xd8\xff\xe1\x00\x10Exif\x00\x00garbage"])
def test_unreadable_files_have_no_metadata(tmp_path, content):
    path = tmp_path / "bad.jpg"
    path.write_bytes(content)
    assert read_metadata(str(path)).values == {}


def test_xmp_with_entities_is_not_expanded(tmp_path):
    bomb = (b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;">]>'
            b'<x:xmpmeta xmlns:x="adobe:ns:meta/">&b;</x:xmpmeta>')
    path = tmp_path / "x.jpg"
    path.write_bytes(jpeg_with_metadata(xmp=bomb))
    assert "title" not in read_metadata(str(path)).values


def test_location_goes_before_the_categories_and_only_once():
    meta = FileMetadata({"gps.lat": 1.5, "gps.lon": -2.25})
    text = add_location("Text\n[[Category:A]]\n", meta)
    assert text == "Text\n{{Location|1.500000|-2.250000}}\n[[Category:A]]\n"
    assert add_location(text, meta) == text
    assert add_location("Text", FileMetadata()) == "Text"


def test_a_column_with_a_value_wins_an_empty_one_does_not():
    meta = FileMetadata({"author": "From file", "date": "2020-01-01"})
    values = template_values({"author": "From sheet", "date": "", "categories": "Boats; Category:Piers"},
                             meta)
    assert values["author"] == "From sheet" and values["date"] == "2020-01-01"
    assert values["category_links"] == "[[Category:Boats]]\n[[Category:Piers]]"


def test_folder_items_get_their_text_from_the_template_and_metadata(tmp_path):
    folder = tmp_path / "f"
    folder.mkdir()
    (folder / "a.jpg").write_bytes(jpeg_with_metadata(artist="Ada", gps=(10.0, 20.0)))
    template = tmp_path / "t.wiki"
    template.write_text("By {author} at {gps.lat:.1f}", encoding="utf-8")
    [item] = collect([str(folder)], text_template=str(template), location=True)
    assert item.text == "By Ada at 10.0\n{{Location|10.000000|20.000000}}\n"
    template.write_text("By {photographer}", encoding="utf-8")
    [item] = collect([str(folder)], text_template=str(template))
    assert item.error == "template-field-missing" and "photographer" in item.error_message


def test_sheet_round_trip_rejects_rows_missing_a_required_column(tmp_path):
    folder = tmp_path / "scans"
    folder.mkdir()
    for name, caption in (("one.jpg", "From the file"), ("two.jpg", None), ("three.jpg", None)):
        (folder / name).write_bytes(jpeg_with_metadata(artist="Ada", description=caption))
    out = tmp_path / "batch.xlsx"
    write_sheet(sheet_rows([str(p) for p in sorted(folder.iterdir())], tmp_path), out)

    from openpyxl import load_workbook

    book = load_workbook(out)
    ws = book.active
    header = [c.value for c in ws[1]]
    assert header[:5] == ["source", "filename", "description*", "licence*", "categories"]
    licence = header.index("licence*") + 1
    for row in range(2, ws.max_row + 1):
        if ws.cell(row, 1).value != "scans/two.jpg":
            ws.cell(row, licence).value = "cc-by-4.0"
    ws.cell(2, header.index("categories") + 1).value = "Boats"  # row 2 is one.jpg (name order)
    book.save(out)

    template = tmp_path / "t.wiki"
    template.write_text("{description} by {author}, {{{{{licence}}}}}\n{category_links}", encoding="utf-8")
    items = {Path(i.source).name: i for i in read_manifest(out, text_template=str(template))}
    assert items["one.jpg"].text == "From the file by Ada, {{cc-by-4.0}}\n[[Category:Boats]]"
    assert items["three.jpg"].error == "missing-column-value"
    assert "'description'" in items["three.jpg"].error_message
    assert items["two.jpg"].error == "missing-column-value"
    assert "'description', 'licence'" in items["two.jpg"].error_message


def test_csv_sheet_reads_back_with_numbers_as_numbers(tmp_path):
    (tmp_path / "a.jpg").write_bytes(jpeg_with_metadata(gps=(1.25, 2.5), artist="Ada"))
    out = tmp_path / "batch.csv"
    write_sheet(sheet_rows([str(tmp_path / "a.jpg")], tmp_path), out)
    text = out.read_text(encoding="utf-8")
    assert text.startswith("source,filename,description*,licence*,categories,date,author")
    out.write_text(text.replace("a.jpg,A.jpg,,", "a.jpg,A.jpg,A photo,", 1), encoding="utf-8")
    template = tmp_path / "t.wiki"
    template.write_text("{description}: {gps.lat:.2f} {author}", encoding="utf-8")
    [item] = read_manifest(out, text_template=str(template), licence="cc0")
    assert item.error is None and item.text == "A photo: 1.25 Ada"
