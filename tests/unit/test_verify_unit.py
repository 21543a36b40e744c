"""Verification from the publish answer: the wiki's SHA-1 and size must be ours.

Unit tier: the publish answer's ``imageinfo`` is given directly (no wiki needed to make the wiki's
record disagree with ours, which a real wiki cannot be made to do on demand)."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from mwingest.items import IngestItem, ItemWork
from mwingest.ledger import Ledger
from mwingest.pipeline import Ingestor
from mwingest.siteinfo import WikiRules

SHA1 = "a" * 40


@pytest.fixture
def ingestor(tmp_path):
    session = SimpleNamespace(api_url="http://127.0.0.1:1/api.php")
    with Ledger(tmp_path / "l.sqlite3") as ledger:
        yield Ingestor(session, WikiRules(), ledger)  # type: ignore[arg-type]


def _work(landed: dict) -> ItemWork:
    return ItemWork(item=IngestItem(source="/x/a.png"), sha1=SHA1, size=10, published=True,
                    final_name="A.png", landed=landed)


@pytest.mark.parametrize(("landed", "outcome", "reason"), [
    ({"sha1": SHA1, "size": 10, "descriptionurl": "http://w/File:A.png"}, "uploaded", "verified"),
    ({"sha1": "b" * 40, "size": 10}, "failed", "sha1-mismatch"),
    ({"sha1": SHA1.upper(), "size": 11}, "failed", "size-mismatch"),
])
def test_verify_uses_the_wikis_record_from_the_publish_answer(ingestor, landed, outcome, reason):
    done = ingestor.verify(_work(landed))
    assert (done.outcome, done.reason) == (outcome, reason)
    if outcome == "uploaded":
        assert done.url == "http://w/File:A.png"
