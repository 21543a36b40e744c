"""Lossless WebP damage libwebp decodes without a word (issue 26), and no false alarm.

libwebp (through Pillow) decodes a lossless image with 64 zeroed bytes in its middle as garbage
and reports nothing; :mod:`mwingest.checks.webplossless` walks the bitstream and finds it complete with
whole bytes of its chunk unread. Images are written here by Pillow (libwebp's encoder) with every
kind of content that selects a different coding (noise, gradients, drawings with transparency, a
palette, one colour, an animation), at several effort levels; the real-media corpus adds
Pillow's own lossless test files. The wiki's side: tests/integration/test_damage.py sends a
damaged one, and the wiki stores it.
"""

from __future__ import annotations

import io
import random
from pathlib import Path

import pytest
from PIL import Image, ImageDraw

from mwingest.checks.content import check_raster
from mwingest.checks.webplossless import check_vp8l, damage_in, vp8l_chunks
from tests.corpus import REAL_MEDIA


def lossless(image: Image.Image, **options: object) -> bytes:
    buf = io.BytesIO()
    image.save(buf, format="WEBP", lossless=True, **options)
    return buf.getvalue()


def noise(seed: int, size: tuple[int, int] = (64, 48)) -> Image.Image:
    rng = random.Random(seed)
    return Image.frombytes("RGB", size, rng.randbytes(size[0] * size[1] * 3))


def drawing(seed: int) -> Image.Image:
    rng = random.Random(seed)
    image = Image.new("RGBA", (300, 200), (255, 255, 255, 0))
    draw = ImageDraw.Draw(image)
    for _ in range(40):
        draw.line([rng.randrange(300), rng.randrange(200), rng.randrange(300), rng.randrange(200)],
                  fill=(rng.randrange(256), 0, 90, 255), width=3)
    return image


IMAGES = {
    "noise": noise(1), "noise-2": noise(2), "gradient": Image.radial_gradient("L").convert("RGB"),
    "drawing": drawing(3), "palette": Image.linear_gradient("L").convert("P").convert("RGB"),
    "one-colour": Image.new("RGB", (50, 50), (10, 200, 30)),
}


def zero_middle(data: bytes, count: int = 64) -> bytes:
    middle = len(data) // 2
    return data[:middle] + bytes(count) + data[middle + count:]


@pytest.mark.parametrize("key", sorted(IMAGES))
@pytest.mark.parametrize("quality", [0, 50, 100])
def test_whole_lossless_images_pass(key: str, quality: int) -> None:
    streams = vp8l_chunks(lossless(IMAGES[key], quality=quality))
    assert streams and [check_vp8l(s) for s in streams] == [None] * len(streams)


def test_an_animation_passes_frame_by_frame(tmp_path: Path) -> None:
    frames = [noise(seed, (48, 32)) for seed in range(4)]
    path = tmp_path / "a.webp"
    frames[0].save(path, format="WEBP", lossless=True, save_all=True, append_images=frames[1:], duration=100)
    assert len(vp8l_chunks(path.read_bytes())) == 4
    assert damage_in(str(path)) is None and check_raster(str(path), "webp") == []


@pytest.mark.parametrize("seed", range(6))
def test_zeroed_bytes_in_the_middle_are_found(tmp_path: Path, seed: int) -> None:
    path = tmp_path / "x.webp"
    path.write_bytes(zero_middle(lossless(noise(seed))))
    Image.open(path).load()  # libwebp decodes it without an error: why the walk exists
    issues = check_raster(str(path), "webp")
    assert [i.code for i in issues] == ["corrupt-image"], issues
    assert "before its chunk does" in issues[0].what


def test_the_corpus_lossless_webps_pass() -> None:
    if not REAL_MEDIA.is_dir():
        pytest.skip("no real-media corpus")
    walked = 0
    for path in sorted(REAL_MEDIA.glob("*.webp")):
        if path.name.startswith("cut-"):
            continue
        streams = vp8l_chunks(path.read_bytes())
        assert [check_vp8l(s) for s in streams] == [None] * len(streams), path.name
        walked += len(streams)
    assert walked > 0
