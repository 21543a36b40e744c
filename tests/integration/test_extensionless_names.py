"""A file without an extension: the name we send is the one the wiki gives it (issue 14).

The wiki takes a name without extension and appends the extension of the content (answering
``badfilename`` with the name it will use). :func:`mwingest.job.intake.check` used to pass such a file
and then raise ``ValueError`` building the target name; now it predicts the wiki's name. Checked
here against the real wiki: the name it announces for the bare name is ours, and our name goes
up unchanged (no ``badfilename`` warning).
"""

from __future__ import annotations

import io
import random
import secrets
from pathlib import Path
from typing import Any

import pytest

from mwingest.base.items import IngestItem
from mwingest.base.options import IngestOptions
from mwingest.checks import netsafe
from mwingest.job import intake
from tests.corpus import jpeg, mp3, ogg_opus, png, svg, wav, webm
from tests.integration.test_validation_agreement import RawApi, api, ours_for, rules  # noqa: F401

pytestmark = pytest.mark.wiki


def _make(kind: str, rng: random.Random, token: str) -> bytes:
    if kind == "png":
        return png(rng, token)
    if kind == "jpeg":
        return jpeg(rng, token)
    if kind == "svg":
        return svg(token)
    if kind == "wav":
        return wav(rng, token)
    if kind == "webm":
        return webm(rng, token)
    if kind == "mp3":
        return mp3(rng, token)
    if kind == "ogg":
        return ogg_opus(rng, token)
    import pypdf

    writer = pypdf.PdfWriter()
    writer.add_blank_page(72, 72)
    writer.add_metadata({"/Title": token})
    buf = io.BytesIO()
    writer.write(buf)
    return buf.getvalue()


@pytest.mark.parametrize("kind", ["png", "jpeg", "svg", "pdf", "wav", "webm", "mp3", "ogg"])
def test_name_without_extension_gets_the_wikis_extension(api: RawApi, rules: Any,  # noqa: F811
                                                         tmp_path: Path, kind: str) -> None:
    """Where the wiki accepts the bare name, it announces the name ours must equal; where the
    extension of the content is not allowed (.mpga, .ogx here), both refuse for the same reason."""
    rng = random.Random(secrets.randbits(64))
    token = secrets.token_hex(4)
    data = _make(kind, rng, token)
    bare = f"Scan {token} {kind}"
    path = tmp_path / bare
    path.write_bytes(data)
    checked = intake.check(IngestItem(source=str(path)), rules, IngestOptions(), netsafe.AllowList())
    answer = api.upload(data, bare, stash="1", ignorewarnings="1")
    if "error" in answer:
        assert not checked.ok and checked.reason == ours_for(answer["error"]), (checked, answer)
        return
    assert checked.ok, checked.message
    announced = answer["upload"]["warnings"]["badfilename"]
    assert checked.target is not None and checked.target.replace(" ", "_") == announced
    ours = api.upload(data, checked.target, stash="1", ignorewarnings="1")
    assert ours["upload"]["result"] == "Success" and "badfilename" not in ours["upload"].get("warnings", {})


def test_content_without_a_known_extension_is_rejected_cleanly(api: RawApi, rules: Any,  # noqa: F811
                                                               tmp_path: Path) -> None:
    """Plain text under a bare name: the extension its content gives is not allowed; the wiki
    refuses it, and we reject it for the wiki's reason instead of raising."""
    data = f"just text {secrets.token_hex(8)}\n".encode()
    bare = f"Notes {secrets.token_hex(4)}"
    path = tmp_path / bare
    path.write_bytes(data)
    checked = intake.check(IngestItem(source=str(path)), rules, IngestOptions(), netsafe.AllowList())
    answer = api.upload(data, bare, stash="1", ignorewarnings="1")
    assert not checked.ok and checked.reason == ours_for(answer["error"]), (checked, answer)
