"""Pictures in the review, on a wiki that makes thumbnails: the pause form shows the file already
on the wiki and our file side by side, and the run's summary shows each landed file.

The reviewer's side is played as in ``test_flow_review``: the flow runs in a child process
against a real Prefect server; this process reads the form's markdown and resumes it. The wiki's
picture URL is fetched anonymously and must answer with an image; ours is embedded in the form
(a PNG made from the local bytes, as a ``data:`` URI), so it needs no wiki login at all.
"""

from __future__ import annotations

import base64
import io
import os
import re
import time
from typing import Any

import pytest

from mwingest.base import markdown as md
from mwingest.wiki import upload
from tests.integration.test_flow_review import FlowProcess, _client, _resume, _wait_for_form
from tests.integration.wikihelpers import (
    SCALER_SETTINGS,
    _http,
    admin_session,
)

pytestmark = pytest.mark.wiki

_IMAGE = re.compile(r"!\[([^\]]*)\]\(([^)\s]+)\)")


def _png(size: tuple[int, int], colour: tuple[int, int, int]) -> bytes:
    from PIL import Image, ImageDraw

    image = Image.new("RGB", size, colour)
    ImageDraw.Draw(image).text((10, 10), os.urandom(4).hex(), fill=(255, 255, 255))
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    return buf.getvalue()


def _is_image(http: Any, url: str) -> None:
    answer = http.get(url, timeout=60)
    assert answer.status_code == 200, (url, answer.status_code, answer.text[:300])
    assert answer.headers["content-type"].startswith("image/"), (url, answer.headers)
    assert len(answer.content) > 100


def _summary(prefect_server, containing: str) -> str:
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey

    with _client(prefect_server) as client:
        for _ in range(20):
            arts = client.read_artifacts(artifact_filter=ArtifactFilter(
                key=ArtifactFilterKey(any_=["ingest-summary"])))
            for art in arts:
                if containing in str(art.data):
                    return str(art.data)
            time.sleep(0.5)
    pytest.fail(f"no summary artifact mentions {containing}")


def test_review_form_and_summary_show_the_pictures(wiki_factory, prefect_server, tmp_path, unique):
    wiki = wiki_factory(extra_settings=SCALER_SETTINGS)
    session = admin_session(wiki)
    name = f"Picture review {unique()}.png"
    upload.upload_bytes(session, _png((400, 300), (200, 30, 30)), name)
    folder = tmp_path / "batch"
    folder.mkdir()
    (folder / name).write_bytes(_png((300, 400), (30, 30, 200)))
    env = {**{k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "MWINGEST_"))},
           **prefect_server.env, "MWINGEST_API_URL": wiki.api_url,
           "MWINGEST_USERNAME": wiki.admin_bot_username, "MWINGEST_PASSWORD": wiki.admin_bot_password}
    logs = tmp_path / "proc"
    logs.mkdir()
    proc = FlowProcess("flows.ingest:ingest_batch",
                       {"sources": [str(folder)], "wiki": wiki.api_url,
                        "settings": {"review_timeout_s": 120,
                                     "ledger_path": str(tmp_path / "ledger.db")}}, env, logs)
    try:
        paused, text = _wait_for_form(prefect_server, proc, name)
        pictures = dict(_IMAGE.findall(text))
        print(text)
        theirs, ours = pictures["on the wiki"], pictures["this file"]
        assert "/thumb/" in theirs and "180px" in theirs  # a thumbnail the wiki made, not the file
        assert ours.startswith("data:image/png;base64,")  # any browser shows it, no login
        from PIL import Image

        with Image.open(io.BytesIO(base64.b64decode(ours.split(",", 1)[1]))) as thumb:
            assert thumb.size == (180, 240)  # made from our 300×400 file, 180 px wide as the wiki's
        assert "400×300 px" in text and "300×400 px" in text  # both sizes, beside the pictures
        _is_image(_http(), theirs)  # public
        new_name = name.replace(".png", " (blue).png")
        _resume(prefect_server, paused, {"action": "rename", "new_filename": new_name})
        [outcome] = proc.result()
    finally:
        proc.stop()
    assert outcome["outcome"] == "uploaded"
    # The wiki's title, with spaces, escaped as every name in the summary (mwingest.base.markdown).
    shown = md.text(outcome["filename"].replace("_", " "))
    summary = _summary(prefect_server, shown)
    landed = next(line for line in summary.splitlines() if shown in line)
    [(alt, thumb)] = _IMAGE.findall(landed)
    assert md.url(outcome["url"]) in landed and "120px" in thumb
    _is_image(_http(), thumb)
