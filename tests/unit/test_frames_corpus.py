"""No false alarm from the frame walks (FLAC CRC-16 chain, MP3 frames and CRCs, MP4 boxes) on
real files other projects wrote: every whole audio/video file of the real-media corpus passes.

The test wiki allows neither FLAC nor MP4, so tests/integration/test_real_media_agreement.py
never reaches these checks for them; here they run as on a wiki that allows them.
"""

from __future__ import annotations

import pytest

from mwingest.checks import mimesniff
from mwingest.checks.mediacheck import check_media
from tests.corpus import REAL_MEDIA

WHOLE = ["tmh-bunny.stereo.audio.flac", "tmh-bunny.surround.audio.flac", "tmh-bunny.stereo.audio.mp3",
         "tmh-stream.stereo.audio.mp3", "tmh-silence.mp3", "tmh-bunny.stereo.audio.opus.mp4",
         "tmh-stream.240p.video.vp9.mp4", "mis-mp4-named.webm", "mis-flac-named.ogg", "mis-mp3-named.ogg"]


@pytest.mark.parametrize("name", WHOLE)
def test_whole_real_media_passes(name: str) -> None:
    path = REAL_MEDIA / name
    if not path.is_file():
        pytest.skip(f"{path} is not there")
    mime = mimesniff.detect_mime(mimesniff.read_sample(str(path), path.stat().st_size))
    assert check_media(str(path), mime) == [], (name, mime)
