"""A second TIFF decoder, asked before a TIFF is called corrupt.

Why: Pillow decodes TIFF through its build's libtiff, which may lack codecs that are part of the
format (WebP, JPEG XL, Zstandard compression) or sample layouts (32-bit integer samples, some
extra-sample mixes). A file Pillow cannot read is not proof of damage. tifffile with imagecodecs
reads them; only when it fails too is the file refused. When neither can tell (tifffile is not
installed, or has no codec for the compression), the file passes with a warning.

Memory: pages are decoded one at a time, and only those whose decoded size fits the pixel limit
the caller already enforced through the header.
"""

from __future__ import annotations

from dataclasses import dataclass


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


def second_opinion(path: str, *, max_pages: int = 1000) -> SecondOpinion:
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
