"""Pictures in the review, on a wiki that makes thumbnails: the pause form shows the file already
on the wiki and our stashed copy side by side, and the run's summary shows each landed file.

The reviewer's side is played as in ``test_flow_review``: the flow runs in a child process
against a real Prefect server; this process reads the form's markdown and resumes it. Every
picture URL found in the markdown is fetched and must answer with an image — the stashed one
in a browser-like session of the uploading account, the only one the wiki shows a stashed file
to. (Bot-password sessions work for the API only, so the flow uploads through the Admin's bot
password and the "reviewer's browser" is the Admin's own login, as a person whose bot password
the batch uses would be logged in.)
"""

from __future__ import annotations

import io
import os
import re
import time
from typing import Any

import pytest

from mwingest.wiki import upload
from tests.integration.test_flow_review import FlowProcess, _client, _resume, _wait_for_form
from tests.integration.wikihelpers import (
    SCALER_SETTINGS,
    _http,
    admin_main_session,
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
        assert "/thumb/" in theirs and "240px" in theirs  # a thumbnail the wiki made, not the file
        assert "UploadStash/thumb/" in ours
        assert "400×300 px" in text and "300×400 px" in text  # both sizes, beside the pictures
        _is_image(_http(), theirs)  # public
        _is_image(admin_main_session(wiki).http, ours)  # the stash shows only to its own account
        new_name = name.replace(".png", " (blue).png")
        _resume(prefect_server, paused, {"action": "rename", "new_filename": new_name})
        [outcome] = proc.result()
    finally:
        proc.stop()
    assert outcome["outcome"] == "uploaded"
    summary = _summary(prefect_server, outcome["filename"])
    landed = next(line for line in summary.splitlines() if outcome["filename"] in line)
    [(alt, thumb)] = _IMAGE.findall(landed)
    assert outcome["url"] in landed and "120px" in thumb
    _is_image(_http(), thumb)
