"""TIFFs this Pillow cannot decode get a second decoder before they are called corrupt (issue 14).

Files are written here with tifffile (WebP and Zstandard compression through imagecodecs, 32-bit
integer samples). Whether Pillow reads them depends on its build; the claims hold either way:
whole files pass, and a copy cut short is refused as ``corrupt-image``.
"""

from __future__ import annotations

from pathlib import Path

import numpy
import pytest
import tifffile

from mwingest.checks import content, tiffcheck

CASES = {
    "webp": dict(data=numpy.random.default_rng(1).integers(0, 255, (64, 48, 3), dtype=numpy.uint8),
                 compression="webp", photometric="rgb"),
    "zstd": dict(data=numpy.random.default_rng(2).integers(0, 255, (64, 48), dtype=numpy.uint8),
                 compression="zstd"),
    "uint32": dict(data=numpy.random.default_rng(3).integers(0, 2**32 - 1, (32, 16), dtype=numpy.uint32)),
}


@pytest.mark.parametrize("kind", sorted(CASES))
def test_whole_tiffs_pass_and_cut_ones_are_refused(tmp_path: Path, kind: str) -> None:
    spec = dict(CASES[kind])
    path = tmp_path / f"{kind}.tif"
    tifffile.imwrite(path, spec.pop("data"), **spec)
    assert tiffcheck.second_opinion(str(path)).verdict == "ok"
    assert content.check_raster(str(path), "tif") == []
    cut = tmp_path / f"{kind}-cut.tif"
    data = path.read_bytes()
    cut.write_bytes(data[: len(data) * 2 // 3])  # tifffile writes the directory first: pixels lost
    assert [i.code for i in content.check_raster(str(cut), "tif")] == ["corrupt-image"]
    assert tiffcheck.second_opinion(str(cut)).verdict == "damaged"
