"""Unit tests of the single checks: hashing, MIME sniffing, IE sniffing, detectScript, SVG, Pillow.

The whole-corpus verdicts are in ``test_validate.py``; here each rule is pinned on its own, with
inputs chosen so that the rule (and not an earlier one) decides.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import random
import tracemalloc
from pathlib import Path

import pytest
from PIL import Image

from mwingest.base.hashing import FileDigest, sha1_bytes, sha1_file
from mwingest.checks import content, iesniff, mimesniff
from mwingest.checks.svgcheck import check_svg
from mwingest.checks.validate import validate_file
from mwingest.wiki.siteinfo import WikiRules
from tests.corpus import SVG_NS, ogg_opus, png, svg, webm

RNG = random.Random(1234)


def _file(tmp_path: Path, name: str, data: bytes) -> str:
    path = tmp_path / name
    path.write_bytes(data)
    return str(path)


def _sample(tmp_path: Path, data: bytes, name: str = "f.bin") -> mimesniff.Sample:
    path = _file(tmp_path, name, data)
    return mimesniff.read_sample(path, len(data))


# --- hashing --------------------------------------------------------------------------------------

@pytest.mark.parametrize("size", [0, 1, 7, 8, 9, 17, 100])
def test_sha1_file_streams_in_chunks_and_matches_hashlib(tmp_path: Path, size: int) -> None:
    data = RNG.randbytes(size)
    path = _file(tmp_path, "x", data)
    expected = hashlib.sha1(data).hexdigest()
    assert sha1_file(path, chunk_size=8) == expected == sha1_bytes(data)
    assert FileDigest.of(path, chunk_size=8) == FileDigest(size=size, sha1=expected)


def test_sha1_rejects_a_useless_chunk_size(tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        sha1_file(_file(tmp_path, "x", b"a"), chunk_size=0)


# --- MIME sniffing in MediaWiki's order ------------------------------------------------------------

def _jpeg() -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (8, 8), (9, 9, 9)).save(buf, "JPEG")
    return buf.getvalue()


@pytest.mark.parametrize(("data", "mime"), [
    (png(RNG, "t"), "image/png"),
    (_jpeg(), "image/jpeg"),
    (b"GIF89a\x01\x00\x01\x00", "image/gif"),
    (b"%PDF-1.4\n%%EOF\n", "application/pdf"),
    (b"MZ\x90\x00" + bytes(64), "unknown/unknown"),  # MW: octet-stream, an alias of unknown
    (b"ID3\x03\x00" + bytes(40), "audio/mpeg"),
    (b"GIF89a<?php echo 1; ?>", "application/x-php"),  # <?php beats the GIF signature
    (b"#!/bin/sh\necho hi\n", "application/x-sh"),
    (svg("t"), "image/svg+xml"),
    (b"<svg><g></svg>", "image/svg+xml"),  # malformed: libmagic still says SVG
    (b'<?xml version="1.0"?><data/>', "application/xml"),
    (b"<!DOCTYPE html>\n<p>x</p>", "application/xml"),  # well-formed XML wins over "HTML"
    (b"<html><body>x</body></html>", "text/html"),
    (b"hello world\n", "text/plain"),
])
def test_detect_mime(tmp_path: Path, data: bytes, mime: str) -> None:
    assert mimesniff.detect_mime(_sample(tmp_path, data)) == mime


def test_detect_mime_media_containers(tmp_path: Path) -> None:
    assert mimesniff.detect_mime(_sample(tmp_path, webm(RNG, "t"))) == "video/webm"
    assert mimesniff.detect_mime(_sample(tmp_path, ogg_opus(RNG, "t"))) == "application/ogg"
    buf = io.BytesIO()
    Image.new("RGB", (8, 8)).save(buf, "WEBP")
    assert mimesniff.detect_mime(_sample(tmp_path, buf.getvalue())) == "image/webp"


def test_zip_is_found_by_its_end_record_even_behind_a_prefix(tmp_path: Path) -> None:
    import zipfile

    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("a.txt", "hello")
    assert mimesniff.detect_mime(_sample(tmp_path, b"\x00\x01junk" + buf.getvalue())) == "application/zip"


def test_logical_mime_trusts_the_extension_only_for_undetectable_types() -> None:
    assert mimesniff.logical_mime("unknown/unknown", "wav") == "audio/wav"  # wav is not "recognizable"
    assert mimesniff.logical_mime("unknown/unknown", "png") == "unknown/unknown"
    assert mimesniff.extension_for_mime("image/jpeg") == "jpeg"


# --- IE sniffing ----------------------------------------------------------------------------------

def test_ie_sniffing_sees_html_in_a_png_only_for_old_versions() -> None:
    clean = png(RNG, "t")[:256]
    assert iesniff.ie_mime_types(clean, "image/png") == ["image/png"]
    scripted = png(RNG, "t", text="<script>alert(1)</script>")[:256]
    assert "text/html" in iesniff.ie_mime_types(scripted, "image/png")


def test_ie_sniffing_trusts_jpeg_and_unknown_proposals() -> None:
    jpeg_html = b"\xff\xd8\xff\xfe\x00\x20<html><body>x</body></html>"
    assert iesniff.ie_mime_types(jpeg_html, "image/jpeg") == ["image/jpeg"]
    assert iesniff.ie_mime_types(b"<html>", "image/webp") == ["image/webp"]  # IE has no entry


def test_ie_sniffing_flags_executables_and_xml() -> None:
    assert iesniff.ie_mime_types(b"MZ\x90\x00" + bytes(60), "application/octet-stream") == [
        "application/x-msdownload"]
    assert "text/xml" in iesniff.ie_mime_types(b'<?xml version="1.0"?><svg/>', "image/png")


# --- partial checks: banned types, detectScript ---------------------------------------------------

def test_check_partial_names_the_wiki_check(tmp_path: Path) -> None:
    sample = _sample(tmp_path, b"GIF89a<?php echo 1; ?>")
    issue, = content.check_partial(sample, mimesniff.detect_mime(sample), "gif")
    assert (issue.code, issue.detail["wiki_check"]) == ("script-content", "filetype-badmime")
    sample = _sample(tmp_path, b"MZ" + bytes(100))
    issue, = content.check_partial(sample, mimesniff.detect_mime(sample), "exe")
    assert (issue.code, issue.detail["wiki_check"]) == ("banned-type", "filetype-bad-ie-mime")


@pytest.mark.parametrize("data", [
    b"\x89PNG....<ScRiPt>",
    "\ufeff<body>".encode("utf-16-le"),
    b'<a href="&#106;avascript:alert(1)">',  # entity-encoded scheme
    b'<x style="background:url( javascript:alert(1))">',
    b'<x type="text/javascript">',
])
def test_detect_script_finds_markers(tmp_path: Path, data: bytes) -> None:
    assert content.detect_script(_sample(tmp_path, data), "application/octet-stream", "png")


def test_detect_script_reads_only_the_first_kib_of_binary_files(tmp_path: Path) -> None:
    late = bytes(2048) + b"<script>"
    assert content.detect_script(_sample(tmp_path, late), "image/png", "png") is None
    assert content.detect_script(_sample(tmp_path, late), "text/plain", "txt") == "<script"


def test_svg_with_an_unsafe_xml_encoding_is_scripted(tmp_path: Path) -> None:
    data = b'<?xml version="1.0" encoding="UTF-7"?><svg xmlns="http://www.w3.org/2000/svg"/>'
    assert content.detect_script(_sample(tmp_path, data, "a.svg"), "image/svg+xml", "svg")
    assert content.xml_encoding_mismatch(_file(tmp_path, "b.svg", b"<?xml version='1.0'"))
    assert not content.xml_encoding_mismatch(_file(tmp_path, "c.svg", svg("t")))


# --- extension vs content --------------------------------------------------------------------------

def test_check_extension() -> None:
    assert content.check_extension("image/png", "PNG") == []
    assert content.check_extension("image/x-png", "png") == []  # alias
    issue, = content.check_extension("image/jpeg", "png")
    assert issue.detail == {"wiki_check": "filetype-mime-mismatch", "extension": "png", "mime": "image/jpeg",
                            "expected": ["image/png", "image/x-png"]}
    assert content.check_extension("unknown/unknown", "png")[0].code == "mime-mismatch"
    # MW's isMatchingExtension: a type with known extensions mismatches an extension it lacks …
    assert content.check_extension("text/plain", "xyz")[0].code == "mime-mismatch"
    # … and a type nobody knows an extension for passes under an extension nobody knows
    assert content.check_extension("application/x-nothing-known", "xyz") == []


# --- raster integrity ------------------------------------------------------------------------------

def _png_declaring(width: int, height: int) -> bytes:
    """IHDR with the given size, then one small IDAT and IEND: Pillow opens it, decoding would fail."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    idat = chunk(b"IDAT", zlib.compress(bytes(64)))
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + idat + chunk(b"IEND", b"")


def test_raster_good_truncated_and_zero_sized(tmp_path: Path) -> None:
    good = png(RNG, "t", size=(64, 64))
    assert content.check_raster(_file(tmp_path, "a.png", good), "png") == []
    assert content.check_raster(_file(tmp_path, "b.png", good[:-20]), "png")[0].code == "corrupt-image"
    assert content.check_raster(_file(tmp_path, "c.jpg", _jpeg()[:-40]), "jpg")[0].code == "corrupt-image"
    zero = content.check_raster(_file(tmp_path, "d.png", _png_declaring(0, 10)), "png")
    assert [i.code for i in zero] == ["corrupt-image"]
    assert content.check_raster(_file(tmp_path, "e.mp3", b"whatever"), "mp3") == []  # not raster


def test_raster_bomb_is_refused_from_the_header_with_bounded_memory(tmp_path: Path) -> None:
    path = _file(tmp_path, "bomb.png", _png_declaring(100_000, 100_000))
    tracemalloc.start()
    try:
        issues = content.check_raster(path, "png")
        _size, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert [i.code for i in issues] == ["decompression-bomb"]
    assert issues[0].detail["pixels"] == 10_000_000_000
    assert peak < 100 * 1024 * 1024


def test_raster_pixel_limit_is_configurable(tmp_path: Path) -> None:
    path = _file(tmp_path, "a.png", png(RNG, "t", size=(40, 40)))
    assert content.check_raster(path, "png", max_pixels=1599)[0].code == "decompression-bomb"
    assert content.check_raster(path, "png", max_pixels=1600) == []


# --- SVG rules -------------------------------------------------------------------------------------

@pytest.mark.parametrize(("body", "wiki_check"), [
    ('<set attributeName="onclick" to="alert(1)"/>', "uploaded-setting-event-handler-svg"),
    ('<animate attributeName="xlink:href" values="javascript:alert(1)"/>', "uploaded-animate-svg"),
    ('<style>@import url(http://example.org/x.css);</style>', "uploaded-hostile-svg"),
    ('<rect style="fill: url(http://example.org/p.svg#x)"/>', "uploaded-remote-url-svg"),
    ('<rect fill="url(http://example.org/p.svg#x)"/>', "uploaded-remote-url-svg"),
    ('<image xlink:href="data:image/svg+xml;base64,PHN2Zz4="/>', "uploaded-href-unsafe-target-svg"),
    ('<use href="other.svg#a"/>', "uploaded-href-attribute-svg"),
    ("<handler>alert(1)</handler>", "uploaded-script-svg"),
    ('<iframe xmlns="http://www.w3.org/2000/svg"/>', "uploaded-script-svg"),
])
def test_svg_rules(tmp_path: Path, body: str, wiki_check: str) -> None:
    issue, = check_svg(_file(tmp_path, "x.svg", svg("t", body)))
    assert (issue.code, issue.detail["wiki_check"]) == ("svg-script", wiki_check)


@pytest.mark.parametrize("body", [
    '<a xlink:href="https://example.org/"><circle r="1"/></a>',
    '<image xlink:href="data:image/png;base64,iVBORw0KGgo="/>',
    '<use xlink:href="#a"/><style>rect { fill: url(#grad) }</style>',
    '<metadata><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#"/></metadata>',
])
def test_svg_allowed_constructs(tmp_path: Path, body: str) -> None:
    assert check_svg(_file(tmp_path, "x.svg", svg("t", body))) == []


def test_svg_dtd_internal_subset_rules(tmp_path: Path) -> None:
    attlist = '<!ATTLIST svg xmlns:xlink CDATA #FIXED "http://www.w3.org/1999/xlink">'
    allowed = f"<!DOCTYPE svg [{attlist}]><svg {SVG_NS}/>"
    assert check_svg(_file(tmp_path, "a.svg", allowed.encode())) == []
    element = f"<!DOCTYPE svg [<!ELEMENT svg ANY>]><svg {SVG_NS}/>"
    assert check_svg(_file(tmp_path, "b.svg", element.encode()))[0].code == "svg-invalid"
    empty = check_svg(_file(tmp_path, "c.svg", b"<?xml version='1.0'?>"))
    assert empty[0].code == "svg-invalid"


def test_svgz_is_inflated_with_a_cap(tmp_path: Path) -> None:
    good = tmp_path / "good.svgz"
    good.write_bytes(gzip.compress(svg("t")))
    assert check_svg(str(good), compressed=True) == []
    bomb = tmp_path / "bomb.svgz"
    with gzip.open(bomb, "wb") as fh:
        fh.write(svg("t").replace(b"</svg>", b""))
        for _ in range(64):
            fh.write(b"<!--" + b" " * (1 << 20) + b"-->")
    assert bomb.stat().st_size < 1 << 20
    tracemalloc.start()
    try:
        issues = check_svg(str(bomb), compressed=True, max_bytes=16 << 20)
        _size, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert [i.code for i in issues] == ["decompression-bomb"]
    assert peak < 100 * 1024 * 1024
    broken = tmp_path / "broken.svgz"
    broken.write_bytes(b"\x1f\x8b not really gzip")
    assert check_svg(str(broken), compressed=True)[0].code == "svg-invalid"


def test_pixel_limit_is_a_setting_and_memory_stays_bounded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch
                                                           ) -> None:
    """An image over the default limit passes once the limit is raised; past what we decode in
    memory it is not decoded (header and checksums only) and passes with a warning."""
    path = _file(tmp_path, "a.png", png(random.Random(3), "t", size=(40, 40)))
    monkeypatch.setattr(content, "DEFAULT_MAX_PIXELS", 1000)
    assert content.check_raster(path, "png")[0].code == "decompression-bomb"
    assert content.check_raster(path, "png", max_pixels=1600) == []
    monkeypatch.setattr(content, "FULL_DECODE_PIXELS", 1000)
    issue, = content.check_raster(path, "png", max_pixels=1600)
    assert (issue.code, issue.severity) == ("unverified-image", "warn")
    verdict = validate_file(path, WikiRules(), max_pixels=1600)
    assert verdict.ok and verdict.codes == ("unverified-image",)
