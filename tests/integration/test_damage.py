"""Damage the wiki stores without a word, and our refusal of it (issue 14).

Good audio, video, PDF and animated images are made here (or taken from the real-media corpus
where no encoder is at hand: FLAC, which the test wiki does not allow, so it is not sent), then
cut short or corrupted in targeted ways. Each original and each damaged copy is sent to the
throwaway wiki (``stash=1``): the wiki takes them all, which is why the check exists. The claims:
every original passes our validation, every damaged copy is refused with the reason code for its
kind of damage.
"""

from __future__ import annotations

import io
import random
import secrets
import struct
import wave
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import pytest
from PIL import Image

from mwingest.checks.validate import validate_file
from tests.corpus import REAL_MEDIA, mp3, ogg_opus, webm
from tests.integration.test_validation_agreement import RawApi, api, rules  # noqa: F401
from tests.unit.test_tiffcheck_damage import g4_tiff, garble_strip
from tests.unit.test_webplossless import lossless, noise, zero_middle

pytestmark = pytest.mark.wiki



# --- originals ---------------------------------------------------------------------------------------

def _wav(rng: random.Random) -> bytes:
    buf = io.BytesIO()
    with wave.open(buf, "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(8000)
        out.writeframes(rng.randbytes(16000))
    return buf.getvalue()


def _pdf(rng: random.Random) -> bytes:
    import pypdf

    writer = pypdf.PdfWriter()
    for _ in range(3):
        writer.add_blank_page(72, 72)
    writer.add_metadata({"/Title": f"mwingest damage test {rng.randbytes(6).hex()}"})
    buf = io.BytesIO()
    writer.write(buf)
    return buf.getvalue()


def _animation(rng: random.Random, fmt: str) -> bytes:
    frames = [Image.frombytes("RGB", (48, 32), rng.randbytes(48 * 32 * 3)) for _ in range(4)]
    if fmt == "GIF":
        frames = [f.convert("P") for f in frames]
    buf = io.BytesIO()
    extra = {"lossless": True} if fmt == "WEBP" else {}
    frames[0].save(buf, format=fmt, save_all=True, append_images=frames[1:], duration=100, loop=0, **extra)
    return buf.getvalue()


def _flac(_rng: random.Random) -> bytes:
    source = REAL_MEDIA / "tmh-bunny.stereo.audio.flac"
    if not source.is_file():
        pytest.skip(f"{source} is not there")
    return source.read_bytes()


# --- damage ------------------------------------------------------------------------------------------

def cut(fraction: float) -> Callable[[bytes], bytes]:
    return lambda data: data[: int(len(data) * fraction)]


def flip_in_last_ogg_page(data: bytes) -> bytes:
    """One byte of the last page's body changed: its CRC no longer matches."""
    pos = len(data) - 3
    return data[:pos] + bytes([data[pos] ^ 0x5A]) + data[pos + 1:]


def mp3_garbage_in_middle(data: bytes) -> bytes:
    """300 bytes that are no frame, after the tenth of the (417-byte) frames; the rest follows."""
    cut_at = data.index(b"\xff\xfb") + 10 * 417
    return data[:cut_at] + bytes(300) + data[cut_at:]


def _mp3_crc16(data: bytes) -> int:
    """ISO 11172-3's CRC-16: polynomial x^16 + x^15 + x^2 + 1, all ones to start."""
    crc = 0xFFFF
    for byte in data:
        for bit in range(7, -1, -1):
            top = (crc >> 15) ^ ((byte >> bit) & 1)
            crc = ((crc << 1) & 0xFFFF) ^ (0x8005 if top else 0)
    return crc


def mp3_protected(rng: random.Random, frames: int = 30) -> bytes:
    """MPEG-1 Layer III mono frames with a CRC (protection bit 0): header, CRC over header bytes
    2-3 and the 17 bytes of side information, then the (zero: silent) side information and data."""
    header, side = b"\xff\xfa\x90\xc0", bytes(17)
    crc = _mp3_crc16(header[2:] + side).to_bytes(2, "big")
    one = header + crc + side + bytes(417 - 4 - 2 - 17)
    return b"".join(one[:-8] + rng.randbytes(8) for _ in range(frames))  # main data: any bytes


def mp3_side_info_hit(data: bytes) -> bytes:
    """Two bytes of the 15th frame's side information changed: its CRC no longer matches."""
    pos = 14 * 417 + 6 + 3
    return data[:pos] + bytes([data[pos] ^ 0x40, data[pos + 1] ^ 0x01]) + data[pos + 2:]


def flac_middle_overwritten(data: bytes) -> bytes:
    """64 bytes in the middle of the audio zeroed (one frame's data): its CRC-16 fails."""
    pos = len(data) // 2
    return data[:pos] + bytes(64) + data[pos + 64:]


def flac_middle_lost(data: bytes) -> bytes:
    """4096 bytes gone from the middle (a lost disk block): frames are missing there."""
    pos = len(data) // 2
    return data[:pos] + data[pos + 4096:]


def wav_without_format(data: bytes) -> bytes:
    return data.replace(b"fmt ", b"fmx ", 1)


def webm_bad_segment_size(data: bytes) -> bytes:
    """The Segment's size becomes 0x00, which no EBML size can start with."""
    pos = data.index(b"\x18\x53\x80\x67") + 4
    return data[:pos] + b"\x00" + data[pos + 1:]


def webm_block_overruns_cluster(data: bytes) -> bytes:
    """The Cluster announces 10 bytes fewer than its block needs (the file still holds them)."""
    pos = data.index(b"\x1f\x43\xb6\x75") + 4
    if data[pos] & 0x80:  # one-byte size
        return data[:pos] + bytes([data[pos] - 10]) + data[pos + 1:]
    size = int.from_bytes(data[pos:pos + 8], "big") - 10
    return data[:pos] + size.to_bytes(8, "big") + data[pos + 8:]


def pdf_broken_trailer(data: bytes) -> bytes:
    trailer = data.rindex(b"trailer")
    return data[:trailer] + data[trailer:].replace(b"/Root", b"/Rxxx", 1)


def pdf_broken_xref(data: bytes) -> bytes:
    xref = data.rindex(b"\nxref") + 1
    return data[:xref] + b"xref\n0 9\nGARBAGE\n" + data[data.index(b"trailer", xref):]


def apng_last_frame_corrupted(data: bytes) -> bytes:
    """Two bytes in the middle of the last frame's ``fdAT`` data changed (its CRC kept)."""
    start = data.rindex(b"fdAT")
    pos = start + 4 + struct.unpack(">I", data[start - 4:start])[0] // 2
    return data[:pos] + bytes([data[pos] ^ 0xFF, data[pos + 1] ^ 0xFF]) + data[pos + 2:]


def webp_last_frame_corrupted(data: bytes) -> bytes:
    """The last frame's lossless bitstream loses its signature byte (0x2F). Changed pixel data
    alone is no proof: libwebp decodes most such damage without an error, as garbage."""
    pos = data.rindex(b"VP8L") + 8
    return data[:pos] + b"\x00" + data[pos + 1:]


#: (key, extension, original maker, {damage name: (damage, expected reason)})
_Damages = dict[str, tuple[Callable[[bytes], bytes], str]]
CASES: list[tuple[str, str, Callable[[random.Random], bytes], _Damages]] = [
    ("wav", "wav", _wav, {"cut": (cut(0.6), "truncated-media"),
                          "no-format": (wav_without_format, "corrupt-media")}),
    ("ogg", "ogg", lambda rng: ogg_opus(rng, secrets.token_hex(4), frames=60),
     {"cut": (cut(0.6), "truncated-media"), "bad-crc": (flip_in_last_ogg_page, "corrupt-media")}),
    ("mp3", "mp3", lambda rng: mp3(rng, secrets.token_hex(4), frames=30),
     {"cut": (lambda d: d[:-200], "truncated-media"), "garbage": (mp3_garbage_in_middle, "corrupt-media")}),
    ("mp3-crc", "mp3", mp3_protected, {"side-info": (mp3_side_info_hit, "corrupt-media")}),
    ("flac", "flac", _flac, {"cut": (cut(0.6), "truncated-media"),
                             "middle-overwritten": (flac_middle_overwritten, "corrupt-media"),
                             "middle-lost": (flac_middle_lost, "corrupt-media")}),
    ("webm", "webm", lambda rng: webm(rng, secrets.token_hex(4)),
     {"cut": (cut(0.7), "truncated-media"), "bad-size": (webm_bad_segment_size, "corrupt-media"),
      "block-overrun": (webm_block_overruns_cluster, "corrupt-media")}),
    ("pdf", "pdf", _pdf, {"cut": (cut(0.6), "corrupt-pdf"), "trailer": (pdf_broken_trailer, "corrupt-pdf"),
                          "xref": (pdf_broken_xref, "corrupt-pdf")}),
    ("gif", "gif", lambda rng: _animation(rng, "GIF"), {"cut": (cut(0.7), "corrupt-image")}),
    ("apng", "png", lambda rng: _animation(rng, "PNG"),
     {"cut": (cut(0.8), "corrupt-image"), "last-frame": (apng_last_frame_corrupted, "corrupt-image")}),
    ("webp-lossless", "webp", lambda _rng: lossless(noise(26)),
     {"middle-zeroed": (zero_middle, "corrupt-image")}),
    ("tiff-g4", "tif", g4_tiff, {"garbled": (lambda d: garble_strip(d, random.Random(26)), "corrupt-image")}),
    ("webp", "webp", lambda rng: _animation(rng, "WEBP"),
     {"cut": (cut(0.7), "corrupt-image"), "last-frame": (webp_last_frame_corrupted, "corrupt-image")}),
]


@pytest.fixture(scope="module")
def results(api: RawApi, rules: Any, tmp_path_factory: pytest.TempPathFactory  # noqa: F811
            ) -> list[tuple[str, str | None, bool | None, Any]]:
    """(case, expected reason or None for an original, wiki accepted?, our verdict) for each file."""
    folder = tmp_path_factory.mktemp("damage")
    rng = random.Random(secrets.randbits(64))
    token = secrets.token_hex(4)
    out = []
    for key, ext, make, damages in CASES:
        original = make(rng)
        variants: list[tuple[str, bytes, str | None]] = [(f"{key}-original", original, None)]
        variants += [(f"{key}-{name}", hurt(original), why) for name, (hurt, why) in damages.items()]
        for case, data, expected in variants:
            assert expected is None or data != original, case
            name = f"Damage-{case}-{token}.{ext}"
            path = folder / name
            path.write_bytes(data)
            if ext in rules.file_extensions:
                accepted: bool | None = "upload" in api.upload(data, name, stash="1", ignorewarnings="1")
                verdict = validate_file(path, rules, filename=name)
            else:  # FLAC: not allowed on the test wiki; checked as on a wiki that allows it
                accepted = None
                wider = replace(rules, file_extensions=rules.file_extensions | {ext})
                verdict = validate_file(path, wider, filename=name)
            out.append((case, expected, accepted, verdict))
            path.unlink()
    return out


def _wrong(expected: str | None, verdict: Any) -> str | None:
    said = "ok" if verdict.ok else verdict.reason
    why = f" ({verdict.findings[0].message})" if verdict.findings else ""
    if (expected is None and verdict.ok) or (expected is not None and verdict.reason == expected):
        return None
    return f"expected {expected or 'ok'}, we say {said}{why}"


def test_originals_pass_and_damage_is_refused_with_its_reason(
        results: list[tuple[str, str | None, bool | None, Any]]) -> None:
    wrong = {case: why for case, expected, _accepted, verdict in results
             if (why := _wrong(expected, verdict)) is not None}
    damaged = sum(1 for _c, expected, _a, _v in results if expected)
    print(f"{len(results) - damaged} originals, {damaged} damaged copies; {len(wrong)} wrong verdicts")
    assert not wrong, "\n".join(f"{k}: {v}" for k, v in wrong.items())


def test_the_wiki_stores_every_one_of_them(results: list[tuple[str, str | None, bool | None, Any]]) -> None:
    """Why the checks exist: the wiki takes the damaged copies as readily as the originals."""
    refused = [case for case, _expected, accepted, _verdict in results if accepted is False]
    assert refused == []
    assert sum(1 for _c, expected, _a, _v in results if expected) >= 15
