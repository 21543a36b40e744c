"""A second TIFF decoder, asked before a TIFF is called corrupt.

Why: Pillow decodes TIFF through its build's libtiff, which may lack codecs that are part of the
format (WebP, JPEG XL, Zstandard compression) or sample layouts (32-bit integer samples, some
extra-sample mixes). A file Pillow cannot read is not proof of damage. tifffile with imagecodecs
reads them; only when it fails too is the file refused. When neither can tell (tifffile is not
installed, or has no codec for the compression), the file passes with a warning.

Memory: pages are decoded one at a time, and only those whose decoded size fits the pixel limit
the caller already enforced through the header.

Two more kinds of evidence (issue 26, files of Pillow's crash corpus the wiki stores):

* libtiff can return a whole image and still say, on stderr, that a codec met garbage
  (``Fax4Decode: Bad code word at line 27 of strip 0``): the rows after it are noise.
  :func:`decoder_damage` picks such codec errors out of what libtiff wrote (warnings do not count).
* when neither decoder can tell (a codec or sample layout missing, a size too large to decode),
  :func:`structure_problem` checks what needs no decoding: every page has as many strip (or tile)
  offsets and byte counts as its size and layout call for. A table that does not match is no
  missing codec: the file is damaged.
"""

from __future__ import annotations

import logging
import math
import re
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class SecondOpinion:
    """What tifffile says: ``ok`` (decoded every page), ``damaged`` (it failed: *error*), or
    ``unknown`` (it cannot tell: missing library or codec)."""

    verdict: str
    error: str = ""


#: Decoded bytes above which a page is not decoded here (≈ the raster check's in-memory cap).
MAX_PAGE_BYTES = 384 << 20
#: Decoded bytes, summed over pages, after which the remaining pages are left unchecked.
TOTAL_BYTES_BUDGET = 2 << 30


#: A libtiff codec (or strip/tile reader) error: "Module: message", not "Module: Warning, …".
_CODEC_ERROR = re.compile(r"^(\w*Decode\w*|TIFFFill(?:Strip|Tile)|TIFFRead(?:Encoded|Raw)(?:Strip|Tile)): "
                          r"(?!Warning)(.+)$", re.M)
#: Pages whose strip tables are checked.
MAX_STRUCTURE_PAGES = 1000


def decoder_damage(stderr_text: str) -> str | None:
    """The first codec error in what libtiff wrote while decoding, or None."""
    found = _CODEC_ERROR.search(stderr_text)
    return f"{found.group(1)}: {found.group(2).strip()}"[:300] if found else None


def second_opinion(path: str, *, max_pages: int = 1000) -> SecondOpinion:
    opinion = _decoded(path, max_pages)
    if opinion.verdict == "unknown":
        problem = structure_problem(path)
        if problem:
            return SecondOpinion("damaged", f"{problem} (and: {opinion.error})"[:300])
    return opinion


def structure_problem(path: str) -> str | None:
    """What contradicts itself in the pages' strip or tile tables, read without decoding, or None
    (also when tifffile cannot read the tables at all: that is its decoder's verdict to give)."""
    try:
        import tifffile
    except ImportError:
        return None
    logging.getLogger("tifffile").disabled = True  # it logs each bad tag; the verdict says enough
    try:
        with tifffile.TiffFile(path) as tif:
            for number, page in enumerate(tif.pages):
                if number >= MAX_STRUCTURE_PAGES:
                    break
                problem = _table_problem(page) if isinstance(page, tifffile.TiffPage) else None
                if problem:
                    return f"page {number + 1}: {problem}"
    except Exception:  # noqa: BLE001 - unreadable tables: the decoders have spoken
        return None
    return None


def _table_problem(page: Any) -> str | None:
    tags = page.tags
    tiled = "TileOffsets" in tags
    offsets = tags.get("TileOffsets" if tiled else "StripOffsets")
    counts = tags.get("TileByteCounts" if tiled else "StripByteCounts")
    kind = "tile" if tiled else "strip"
    if offsets is None:
        return f"it has no {kind} offsets"
    if counts is None:
        return f"it has {kind} offsets but no {kind} byte counts"
    planes = page.samplesperpixel if page.planarconfig == 2 else 1
    width, length = page.imagewidth, page.imagelength
    if tiled:
        if not page.tilewidth or not page.tilelength:
            return "its tiles have no size"
        wanted = math.ceil(width / page.tilewidth) * math.ceil(length / page.tilelength) * planes
        wanted *= math.ceil(max(1, page.imagedepth) / max(1, page.tiledepth))
    else:
        rows = min(page.rowsperstrip or length, length) or 1
        wanted = math.ceil(length / rows) * planes
    if offsets.count != wanted or counts.count != offsets.count:
        return (f"its size ({width}x{length}, {page.samplesperpixel} samples per pixel) needs {wanted:,} "
                f"{kind}s, its tables list {offsets.count:,} offsets and {counts.count:,} byte counts")
    return None


def _decoded(path: str, max_pages: int) -> SecondOpinion:
    try:
        import tifffile
    except ImportError:
        return SecondOpinion("unknown", "tifffile is not installed")
    try:
        with tifffile.TiffFile(path) as tif:
            pages = tif.pages
            if not len(pages):
                return SecondOpinion("damaged", "it holds no image")
            spent = 0
            for number, page in enumerate(pages):
                nbytes = getattr(page, "nbytes", 0)
                if nbytes > MAX_PAGE_BYTES:
                    return SecondOpinion("unknown", f"page {number + 1} is too large to decode here")
                if number >= max_pages or spent + nbytes > TOTAL_BYTES_BUDGET:
                    break
                page.asarray()
                spent += nbytes
    except (ImportError, NotImplementedError) as exc:  # no codec for its compression
        return SecondOpinion("unknown", f"{type(exc).__name__}: {exc}"[:300])
    except ValueError as exc:
        if "codec" in str(exc).lower() or "compression" in str(exc).lower() and "not" in str(exc).lower():
            return SecondOpinion("unknown", f"{type(exc).__name__}: {exc}"[:300])
        return SecondOpinion("damaged", f"{type(exc).__name__}: {exc}"[:300])
    except MemoryError:
        return SecondOpinion("unknown", "too large to decode here")
    except Exception as exc:  # tifffile raises TiffFileError, struct.error, IndexError …
        return SecondOpinion("damaged", f"{type(exc).__name__}: {exc}"[:300])
    return SecondOpinion("ok")
