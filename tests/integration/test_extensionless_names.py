"""A file without an extension: the name we send is the one the wiki gives it (issue 14).

The wiki takes a name without extension and appends the extension of the content (answering
``badfilename`` with the name it will use). :func:`mwingest.intake.check` used to pass such a file
and then raise ``ValueError`` building the target name; now it predicts the wiki's name. Checked
here against the real wiki: the name it announces for the bare name is ours, and our name goes
up unchanged (no ``badfilename`` warning).
"""

from __future__ import annotations

import secrets
from pathlib import Path
from typing import Any

import pytest

from mwingest import intake, netsafe
from mwingest.items import IngestItem
from mwingest.options import IngestOptions
from tests.corpus import jpeg, png
from tests.integration.test_validation_agreement import RawApi, api, ours_for, rules  # noqa: F401

pytestmark = pytest.mark.wiki


@pytest.mark.parametrize("kind", ["png", "jpeg"])
def test_name_without_extension_gets_the_wikis_extension(api: RawApi, rules: Any,  # noqa: F811
                                                         tmp_path: Path, kind: str) -> None:
    import random

    rng = random.Random(secrets.randbits(64))
    token = secrets.token_hex(4)
    data = png(rng, token) if kind == "png" else jpeg(rng, token)
    bare = f"Scan {token} {kind}"
    path = tmp_path / bare
    path.write_bytes(data)
    checked = intake.check(IngestItem(source=str(path)), rules, IngestOptions(), netsafe.AllowList())
    assert checked.ok, checked.message
    answer = api.upload(data, bare, stash="1", ignorewarnings="1")
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
