"""MP4/M4A and FLAC damage on a wiki that allows them (issue 26), against the real wiki.

The test wiki allows neither, so a variant allows ``mp4``, ``m4a`` and ``flac``. Originals are
real files of TimedMediaHandler's test media (the real-media corpus); damaged copies are made here
by writing bytes: cut short, the index box (``moov``) gone, a box that runs past its parent, a
frame's data overwritten in the middle, a block of frames lost. Each is sent with ``stash=1``:
the wiki stores every one (that is the premise, asserted), and the claim is ours: originals
pass, each damaged copy is refused with the reason for its kind of damage.
"""

from __future__ import annotations

import secrets
import struct
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from mwingest.checks.validate import validate_file
from mwingest.wiki.siteinfo import WikiRules
from tests.corpus import REAL_MEDIA
from tests.integration.test_validation_agreement import RawApi

pytestmark = pytest.mark.wiki

ALLOW = '$wgFileExtensions = array_merge($wgFileExtensions, ["mp4", "m4a", "flac"]);'


def _cut(data: bytes) -> bytes:
    return data[: int(len(data) * 0.7)]


def _no_moov(data: bytes) -> bytes:
    return data.replace(b"moov", b"free", 1)


def _stsd_overrun(data: bytes) -> bytes:
    pos = data.index(b"stsd") - 4
    return data[:pos] + struct.pack(">I", 5000) + data[pos + 4:]


def _middle_overwritten(data: bytes) -> bytes:
    pos = len(data) // 2
    return data[:pos] + bytes(64) + data[pos + 64:]


def _middle_lost(data: bytes) -> bytes:
    pos = len(data) // 2
    return data[:pos] + data[pos + 4096:]


#: (corpus file, extension sent, {damage: (how, our reason)})
CASES: list[tuple[str, str, dict[str, tuple[Callable[[bytes], bytes], str]]]] = [
    ("tmh-stream.240p.video.vp9.mp4", "mp4", {"cut": (_cut, "truncated-media"),
                                              "no-moov": (_no_moov, "corrupt-media"),
                                              "stsd-overrun": (_stsd_overrun, "corrupt-media")}),
    ("tmh-bunny.stereo.audio.opus.mp4", "m4a", {"cut": (_cut, "truncated-media"),
                                                "no-moov": (_no_moov, "corrupt-media")}),
    ("tmh-bunny.stereo.audio.flac", "flac", {"middle-overwritten": (_middle_overwritten, "corrupt-media"),
                                             "middle-lost": (_middle_lost, "corrupt-media")}),
    ("tmh-bunny.surround.audio.flac", "flac", {"middle-overwritten": (_middle_overwritten, "corrupt-media")}),
]


@pytest.fixture(scope="module")
def results(wiki_factory: Callable[..., Any], tmp_path_factory: pytest.TempPathFactory
            ) -> list[tuple[str, str | None, dict[str, Any], Any]]:
    variant = wiki_factory(extra_settings=ALLOW)
    api = RawApi(variant.api_url, variant.username, variant.password)
    rules = WikiRules.from_siteinfo(api.get({"action": "query", "meta": "siteinfo",
                                             "siprop": "general|fileextensions|namespaces|namespacealiases"}))
    assert {"mp4", "m4a", "flac"} <= rules.file_extensions
    folder: Path = tmp_path_factory.mktemp("containers")
    token = secrets.token_hex(4)
    out = []
    for number, (source, ext, damages) in enumerate(CASES):
        original = (REAL_MEDIA / source).read_bytes() if (REAL_MEDIA / source).is_file() else None
        if original is None:
            pytest.skip(f"{REAL_MEDIA / source} is not there")
        variants = [("original", original, None)]
        variants += [(key, hurt(original), why) for key, (hurt, why) in damages.items()]
        for key, data, expected in variants:
            name = f"Container-{number}-{key}-{token}.{ext}"
            path = folder / name
            path.write_bytes(data)
            answer = api.upload(data, name, stash="1", ignorewarnings="1")
            out.append((f"{source}/{ext}/{key}", expected, answer, validate_file(path, rules, filename=name)))
    return out


def test_the_wiki_stores_them_all_and_we_refuse_the_damage(
        results: list[tuple[str, str | None, dict[str, Any], Any]]) -> None:
    refused_by_wiki = {case: answer["error"] for case, _e, answer, _v in results if "error" in answer}
    assert not refused_by_wiki, refused_by_wiki
    wrong = {}
    for case, expected, _answer, verdict in results:
        said = "ok" if verdict.ok else verdict.reason
        if said != (expected or "ok"):
            messages = [f.message for f in verdict.findings]
            wrong[case] = f"expected {expected or 'ok'}, we say {said} {messages}"
    print(f"{len(results)} files, all stored by the wiki; {len(wrong)} verdicts wrong")
    assert not wrong, wrong
    assert sum(1 for _c, e, _a, _v in results if e) >= 8
