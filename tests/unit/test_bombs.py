"""Hostile XML and images are refused from their headers, with bounded memory and no connection.

Each bomb is validated in a **fresh Python process**: ``ru_maxrss`` is a high-water mark, so only a
new process can say how much one file cost. The child first validates a small good file of the same
kind (imports, Pillow's plugin registry and expat warm up there), then records ``ru_maxrss`` and
``VmHWM`` and runs the bomb under ``tracemalloc``; the growth of all three must stay well under
100 MiB. There are no timing asserts; a hang is caught by the child's timeout.

The child is started through a bare launcher process: on Linux a process exec'd straight from
pytest starts with pytest's own RSS as its ``ru_maxrss`` (exec records the old address space's
high-water mark), which would hide any growth below it.

The SVGs that point outside (an external DTD, an external parameter entity, a stylesheet, an image)
all point at a canary HTTP server on 127.0.0.1, which must see zero connections.

Reason codes (``mwingest.checks.validate``): ``svg-invalid`` for entity/DTD declarations and oversized
tokens, ``svg-script`` for a non-W3C DTD and external references, ``decompression-bomb`` for an
``.svgz`` past its inflated cap and for declared pixels over Pillow's ``MAX_IMAGE_PIXELS``.
"""

from __future__ import annotations

import gzip
import io
import json
import os
import struct
import subprocess
import sys
import threading
import urllib.request
import warnings
import zlib
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from PIL import Image

from mwingest.checks import content
from mwingest.checks.svgcheck import MAX_TOKEN_BYTES, SVGZ_MAX_BYTES

REPO = Path(__file__).resolve().parents[2]
MIB = 1024 * 1024
#: "Well under 100 MiB": the most any single bomb may add to the process.
BUDGET = 50 * MIB
SVG_OPEN = b'<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"><rect width="5" height="5"/>'
XML_DECL = b'<?xml version="1.0" encoding="UTF-8"?>\n'

_CHILD = r"""
import resource

def maxrss():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # KiB on Linux

def hwm():
    with open("/proc/self/status") as status:
        return next(int(l.split()[1]) * 1024 for l in status if l.startswith("VmHWM:"))

at_start = maxrss()
import json, sys, tracemalloc
from mwingest.wiki.siteinfo import WikiRules
from mwingest.checks.validate import validate_file

bomb, warm, max_pixels = sys.argv[1], sys.argv[2], (int(sys.argv[3]) or None)
rules = WikiRules(file_extensions=frozenset({"png", "gif", "svg", "svgz"}), max_upload_size=5 << 30)
assert validate_file(warm, rules).ok, "the warm-up file must be good"
before, hwm_before = maxrss(), hwm()
tracemalloc.start()
verdict = validate_file(bomb, rules, max_pixels=max_pixels)
_now, peak = tracemalloc.get_traced_memory()
tracemalloc.stop()
print(json.dumps({"reason": verdict.reason, "codes": list(verdict.codes),
                  "messages": [f.message for f in verdict.findings], "maxrss_at_start": at_start,
                  "maxrss_before": before, "rss_growth": maxrss() - before,
                  "hwm_growth": hwm() - hwm_before, "traced_peak": peak}))
"""
#: Runs the child as *its* child, so the child's ru_maxrss starts from a bare interpreter.
_LAUNCHER = "import subprocess, sys; sys.exit(subprocess.run(sys.argv[1:]).returncode)"


def _measure(bomb: Path, warm: Path, max_pixels: int = 0) -> dict:
    """Validate ``bomb`` in a fresh interpreter; its verdict and memory growth in bytes."""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    child = [sys.executable, "-c", _CHILD, str(bomb), str(warm), str(max_pixels)]
    done = subprocess.run([sys.executable, "-c", _LAUNCHER, *child], capture_output=True, text=True,
                          cwd=REPO, env=env, timeout=300, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    # The high-water mark is the child's own: its imports raised it above where it started.
    assert result["maxrss_at_start"] < result["maxrss_before"], result
    print(f"{bomb.name}: {result['reason']}, ru_maxrss +{result['rss_growth'] / MIB:.1f} MiB, "
          f"VmHWM +{result['hwm_growth'] / MIB:.1f} MiB, "
          f"tracemalloc peak {result['traced_peak'] / MIB:.1f} MiB")
    return result


# --- a canary on loopback ---------------------------------------------------------------------------

class _Canary(ThreadingHTTPServer):
    """Counts every connection (not just well-formed requests) made to it."""

    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _CanaryHandler)
        self.connections = 0
        self.paths: list[str] = []

    def verify_request(self, request: object, client_address: object) -> bool:
        self.connections += 1
        return True


class _CanaryHandler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        self.server.paths.append(self.path)  # type: ignore[attr-defined]
        body = b'<!ENTITY canary "reached">'
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        """Quiet."""


@pytest.fixture
def canary() -> Iterator[_Canary]:
    server = _Canary()
    port = server.server_address[1]
    assert not 8000 <= port <= 8999, "keep test servers off 8000-8999"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        # Positive control: the canary does count a real fetch (so zero below means zero).
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/control") as answer:  # noqa: S310
            answer.read()
        assert (server.connections, server.paths) == (1, ["/control"])
        server.connections, server.paths = 0, []
        yield server
    finally:
        server.shutdown()
        server.server_close()


# --- builders -----------------------------------------------------------------------------------------

def _svg(prolog: str, body: str = "") -> bytes:
    return XML_DECL + prolog.encode() + b"\n" + SVG_OPEN + body.encode() + b"</svg>\n"


def billion_laughs() -> bytes:
    ents = ['<!ENTITY lol0 "lol">'] + [f'<!ENTITY lol{i} "{f"&lol{i - 1};" * 10}">' for i in range(1, 10)]
    return _svg(f"<!DOCTYPE svg [{''.join(ents)}]>", "<text>&lol9;</text>")


def quadratic_blowup() -> bytes:
    """One 64 KB entity referenced 40,000 times: 2.6 GB once expanded, no nesting needed."""
    return _svg(f'<!DOCTYPE svg [<!ENTITY a "{"a" * 65536}">]>', f"<text>{'&a;' * 40000}</text>")


def _raw_deflate(data: bytes, *, last: bool) -> bytes:
    packer = zlib.compressobj(9, zlib.DEFLATED, -15)
    return packer.compress(data) + packer.flush(zlib.Z_FINISH if last else zlib.Z_FULL_FLUSH)


def gzip_bomb(path: Path, head: bytes, block: bytes, count: int, tail: bytes = b"") -> Path:
    """A single-member gzip of ``head + block * count + tail``, written in well under a second.

    The block is deflated once, ending in a full flush, so its compressed form needs no history and
    can simply be repeated; only the CRC has to run over all the inflated bytes.
    """
    crc = zlib.crc32(head)
    for _ in range(count):
        crc = zlib.crc32(block, crc)
    crc = zlib.crc32(tail, crc)
    inflated = len(head) + count * len(block) + len(tail)
    piece = _raw_deflate(block, last=False)
    with open(path, "wb") as fh:
        fh.write(b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff")  # gzip header: deflate, no name, Unix
        fh.write(_raw_deflate(head, last=False))
        for _ in range(count):
            fh.write(piece)
        fh.write(_raw_deflate(tail, last=True))
        fh.write(struct.pack("<II", crc, inflated & 0xFFFFFFFF))
    return path


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png_declaring(width: int, height: int) -> bytes:
    """A PNG whose header claims ``width`` × ``height`` RGB pixels, with a 64-byte IDAT."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", ihdr)
            + _png_chunk(b"IDAT", zlib.compress(bytes(64))) + _png_chunk(b"IEND", b""))


def gif_frames(screen: tuple[int, int], frames: list[tuple[int, int, int]]) -> bytes:
    """A GIF with a logical screen of ``screen`` and frames ``(width, height, disposal)``; every frame
    holds the same one-pixel LZW stream whatever size it claims."""
    out = b"GIF89a" + struct.pack("<HHBBB", *screen, 0x80, 0, 0) + b"\x00\x00\x00\xff\xff\xff"
    for width, height, disposal in frames:
        out += b"\x21\xf9\x04" + bytes([disposal << 2, 0, 0, 0]) + b"\x00"  # graphic control
        out += b"," + struct.pack("<HHHHB", 0, 0, width, height, 0) + b"\x02\x02\x44\x01\x00"
    return out + b";"


def _good(kind: str) -> bytes:
    """A small valid file of each kind, for the child's warm-up."""
    if kind in ("svg", "svgz"):
        data = _svg("", "<circle r='2'/>")
        return gzip.compress(data) if kind == "svgz" else data
    buf = io.BytesIO()
    Image.new("RGB", (16, 16), (10, 120, 200)).save(buf, format=kind.upper())
    return buf.getvalue()


def _write(tmp_path: Path, name: str, data: bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


def _warm(tmp_path: Path, ext: str) -> Path:
    return _write(tmp_path, f"warm.{ext}", _good(ext))


def _assert_bounded(result: dict) -> None:
    assert result["rss_growth"] < BUDGET, result
    assert result["hwm_growth"] < BUDGET, result
    assert result["traced_peak"] < BUDGET, result


# --- XML ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize(("name", "build"), [
    ("laughs.svg", billion_laughs),
    ("quadratic.svg", quadratic_blowup),
    ("xxe.svg", lambda: _svg('<!DOCTYPE svg [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>',
                             "<text>&xxe;</text>")),
])
def test_entity_bombs_are_refused_before_expansion(tmp_path: Path, name: str,
                                                   build: Callable[[], bytes]) -> None:
    result = _measure(_write(tmp_path, name, build()), _warm(tmp_path, "svg"))
    assert result["reason"] == "svg-invalid"
    _assert_bounded(result)
    assert not any("root:" in m or "/bin/" in m for m in result["messages"])  # nothing was read


@pytest.mark.parametrize(("name", "prolog", "body", "reason"), [
    ("system-dtd.svg", '<!DOCTYPE svg SYSTEM "{url}/x.dtd">', "", "svg-script"),
    ("w3c-public-our-system.svg", '<!DOCTYPE svg PUBLIC "-//W3C//DTD SVG 1.1//EN" "{url}/x.dtd">', "",
     "svg-script"),
    ("param-entity.svg", '<!DOCTYPE svg [<!ENTITY % ext SYSTEM "{url}/x.dtd"> %ext;]>', "", "svg-invalid"),
    ("general-entity.svg", '<!DOCTYPE svg [<!ENTITY ext SYSTEM "{url}/x.xml">]>', "<text>&ext;</text>",
     "svg-invalid"),
    ("stylesheet.svg", '<?xml-stylesheet type="text/css" href="{url}/x.css"?>', "", "svg-script"),
    ("image.svg", "", '<image href="{url}/x.png" width="5" height="5"/>', "svg-script"),
])
def test_external_references_are_refused_without_a_connection(
        tmp_path: Path, canary: _Canary, name: str, prolog: str, body: str, reason: str) -> None:
    url = f"http://127.0.0.1:{canary.server_address[1]}"
    path = _write(tmp_path, name, _svg(prolog.format(url=url), body.format(url=url)))
    result = _measure(path, _warm(tmp_path, "svg"))
    assert result["reason"] == reason
    _assert_bounded(result)
    assert (canary.connections, canary.paths) == (0, [])


def test_svgz_of_a_gigabyte_of_zeros(tmp_path: Path) -> None:
    """The plain bomb: NUL bytes are not XML, so the very first block ends it."""
    path = gzip_bomb(tmp_path / "zeros.svgz", b"", bytes(MIB), 1024)
    assert path.stat().st_size < 2 * MIB
    result = _measure(path, _warm(tmp_path, "svgz"))
    assert result["reason"] == "svg-invalid"
    _assert_bounded(result)


def test_svgz_that_stays_well_formed_hits_the_inflated_cap(tmp_path: Path) -> None:
    """An element with a gigabyte of whitespace inside: valid XML all the way, so only the cap on
    inflated bytes can stop it, and it must stop before inflating more than the cap."""
    path = gzip_bomb(tmp_path / "spaces.svgz", XML_DECL + SVG_OPEN, b" " * MIB, 1024, b"</svg>")
    with gzip.open(path) as fh:  # the file really is what it claims: the cap, then more
        assert len(fh.read(SVGZ_MAX_BYTES + 1)) == SVGZ_MAX_BYTES + 1
    result = _measure(path, _warm(tmp_path, "svgz"))
    assert result["reason"] == "decompression-bomb"
    _assert_bounded(result)


@pytest.mark.parametrize(("name", "opener", "closer"), [
    ("comment.svgz", b"<!--", b"--></svg>"),
    ("attribute.svgz", b'<rect id="', b'"/></svg>'),
], ids=["comment", "attribute"])
def test_svgz_with_one_endless_token_is_refused_before_expat_buffers_it(
        tmp_path: Path, name: str, opener: bytes, closer: bytes) -> None:
    """expat holds an unfinished token whole (and re-scans it per block): a gigabyte comment inside
    the cap would cost ~3x the cap in memory. The wiki's libxml2 refuses tokens over 10 MB."""
    path = gzip_bomb(tmp_path / name, XML_DECL + SVG_OPEN + opener, b" " * MIB, 1024, closer)
    result = _measure(path, _warm(tmp_path, "svgz"))
    assert result["reason"] == "svg-invalid"
    assert f"{MAX_TOKEN_BYTES:,}" in result["messages"][0]
    _assert_bounded(result)


# --- rasters -------------------------------------------------------------------------------------------

def test_pillow_thresholds_are_what_these_cases_assume() -> None:
    assert Image.MAX_IMAGE_PIXELS == 89_478_485
    assert Image.MAX_IMAGE_PIXELS < 10_000 * 10_000 < 2 * Image.MAX_IMAGE_PIXELS  # warning band


@pytest.mark.parametrize(("name", "data"), [
    ("gigapixel.png", png_declaring(40_000, 25_000)),
    # Pillow itself would only *warn* here (Image.open lets it through): we refuse.
    ("hundred-megapixel.png", png_declaring(10_000, 10_000)),
    ("frame0.gif", gif_frames((1, 1), [(65535, 65535, 0)])),
    ("screen.gif", gif_frames((65535, 65535), [(1, 1, 0)])),
    # Frame 0 is fine; only the second frame claims the huge canvas (Pillow sees it only on seek).
    ("frame1.gif", gif_frames((1, 1), [(1, 1, 0), (65535, 65535, 0)])),
    # In Pillow's warning band, with "restore to background": Pillow fills the frame's area
    # (100 MB) while opening, before any size check of ours, unless its warning is an error.
    ("dispose.gif", gif_frames((1, 1), [(10_000, 10_000, 2)])),
], ids=lambda value: value if isinstance(value, str) else "")
def test_raster_bombs_are_refused_from_the_header(tmp_path: Path, name: str, data: bytes) -> None:
    path = _write(tmp_path, name, data)
    assert path.stat().st_size < 1024
    result = _measure(path, _warm(tmp_path, name.rsplit(".", 1)[1]))
    assert result["reason"] == "decompression-bomb"
    _assert_bounded(result)


def test_pillows_bomb_warning_is_an_error(tmp_path: Path) -> None:
    """With our own pixel limit out of the way, only Pillow's check (a warning, below twice its
    limit) stands between the GIF reader and a 100 MB disposal buffer: it must raise, so nothing
    is allocated. The caller raised the limit on purpose, so the image is not called a bomb: it
    passes unchecked, with the ``unverified-image`` warning (issue 14)."""
    path = _write(tmp_path, "dispose.gif", gif_frames((1, 1), [(10_000, 10_000, 2)]))
    result = _measure(path, _warm(tmp_path, "gif"), max_pixels=1 << 62)
    assert result["reason"] == "unverified-image"
    assert "could be decompression bomb" in result["messages"][0]  # Pillow's words, raised
    _assert_bounded(result)
    assert _measure(path, _warm(tmp_path, "gif"))["reason"] == "decompression-bomb"  # default limit


def test_images_are_opened_only_with_the_plugin_their_extension_names(tmp_path: Path) -> None:
    """An explicit format, never Pillow's guess: PNG bytes are not a GIF or a JPEG to us, so a
    PNG bomb behind a .jpg name never reaches the PNG reader at all."""
    good_png = str(_write(tmp_path, "a.png", _good("png")))
    assert content.check_raster(good_png, "png") == []
    assert [i.code for i in content.check_raster(good_png, "gif")] == ["corrupt-image"]
    bomb = str(_write(tmp_path, "b.png", png_declaring(40_000, 25_000)))
    assert [i.code for i in content.check_raster(bomb, "jpg")] == ["corrupt-image"]
    assert [i.code for i in content.check_raster(bomb, "png")] == ["decompression-bomb"]


def test_the_bomb_warning_stays_an_error_after_the_filters_are_reset(tmp_path: Path) -> None:
    """A host program (or a test runner) may reset the warning filters after our import."""
    path = _write(tmp_path, "dispose.gif", gif_frames((1, 1), [(10_000, 10_000, 2)]))
    with warnings.catch_warnings():
        warnings.resetwarnings()
        issues = content.check_raster(str(path), "gif", max_pixels=1 << 62)
    # raised, not printed: the image goes unchecked with a warning (the limit was raised on purpose)
    assert [(i.code, i.severity) for i in issues] == [("unverified-image", "warn")]
    assert "could be decompression bomb" in issues[0].what
