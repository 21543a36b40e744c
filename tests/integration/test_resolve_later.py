"""A ``needs-review`` item resolved later, after the batch: from its stash key, or — when the wiki
has cleaned its stash in the meantime — by stashing the unchanged local file again."""

from __future__ import annotations

import hashlib

import pytest

from mwingest.job.settings import BatchSettings
from mwingest.ledger.ledger import Ledger, State
from mwingest.wiki import upload
from mwingest.wiki.credentials import Credentials
from mwingest.wiki.session import WikiSession
from tests.integration.wikihelpers import png_bytes

pytestmark = pytest.mark.wiki
#: A wiki whose stash cleanup removes every stashed file (age limit in the past).
CLEANS_STASH = "$wgUploadStashMaxAge = -3600;"


def _session(w) -> WikiSession:
    s = WikiSession(Credentials(w.api_url, w.username, w.password))
    s.login()
    return s


@pytest.mark.parametrize("stash_cleaned", [False, True], ids=["from-stash", "stash-cleaned"])
def test_needs_review_item_resolved_later(wiki_factory, prefect_harness, tmp_path, unique,
                                          monkeypatch, stash_cleaned):
    from flows.ingest import ingest_batch
    from flows.resolve import resolve_review

    w = wiki_factory(extra_settings=CLEANS_STASH)
    monkeypatch.setenv("MWINGEST_USERNAME", w.username)
    monkeypatch.setenv("MWINGEST_PASSWORD", w.password)
    monkeypatch.delenv("PREFECT_API_URL", raising=False)
    session = _session(w)
    name = f"Later {unique()}.png"
    upload.upload_bytes(session, png_bytes(), name)
    ours = tmp_path / name
    ours.write_bytes(png_bytes())
    ledger_path = tmp_path / "ledger.sqlite3"

    (first,) = ingest_batch(sources=[str(ours)], wiki=w.api_url, settings=BatchSettings.from_flat(
                   review_timeout_s=0, ledger_path=str(ledger_path), text="Our page text"))
    assert (first["outcome"], first["reason"]) == ("needs-review", "exists") and first["filekey"]
    item_id = first["ledger_id"]
    if stash_cleaned:
        w.run_maintenance("cleanupUploadStash.php")
        with pytest.raises(Exception, match="not found"):
            upload.stash_info(session, [first["filekey"]])

    new_name = f"Later renamed {unique()}.png"
    out = resolve_review(item_id=item_id, decision="rename", new_filename=new_name,
                         wiki=w.api_url, ledger_path=str(ledger_path))
    assert out["outcome"] == "uploaded", out
    # Bytes go again only when the stash copy was gone.
    assert (out["bytes_sent"] > 0) is stash_cleaned
    landed = upload.file_info(session, new_name)
    assert landed["sha1"] == hashlib.sha1(ours.read_bytes()).hexdigest()  # noqa: S324
    text = session.get({"action": "query", "titles": f"File:{new_name}", "prop": "revisions",
                        "rvprop": "content", "rvslots": "main"})
    assert text["query"]["pages"][0]["revisions"][0]["slots"]["main"]["content"] == "Our page text"
    assert len(upload.file_info(session, name, history=True)["versions"]) == 1  # old one untouched
    with Ledger(ledger_path) as led:
        row = led.get(item_id)
        assert row.state is State.UPLOADED and row.final_name == new_name.replace(" ", "_")
        assert row.decision["action"] == "rename" and row.decision["by"] == "resolve-review"


def test_a_rerun_s_new_page_text_is_what_a_later_decision_publishes(
        wiki, prefect_harness, tmp_path, unique, monkeypatch):
    """The row keeps the latest run's text: re-running a waiting file with a corrected text and
    then deciding publishes the corrected text (not the first run's), from the same stash key."""
    from flows.ingest import ingest_batch
    from flows.resolve import resolve_review

    monkeypatch.setenv("MWINGEST_USERNAME", wiki.username)
    monkeypatch.setenv("MWINGEST_PASSWORD", wiki.password)
    monkeypatch.delenv("PREFECT_API_URL", raising=False)
    session = _session(wiki)
    name = f"Retext {unique()}.png"
    upload.upload_bytes(session, png_bytes(), name)
    ours = tmp_path / name
    ours.write_bytes(png_bytes())
    ledger_path = str(tmp_path / "ledger.sqlite3")

    runs = [ingest_batch(sources=[str(ours)], wiki=wiki.api_url,
                         settings=BatchSettings.from_flat(review_timeout_s=0, text=text,
                                                          ledger_path=ledger_path))[0]
            for text in ("First text, with a typo", "Second text, corrected")]
    assert [(r["outcome"], r["reason"]) for r in runs] == [("needs-review", "exists")] * 2
    assert runs[0]["filekey"] == runs[1]["filekey"]  # the second run sent nothing again

    new_name = f"Retext renamed {unique()}.png"  # a new page: the wiki uses the text given
    out = resolve_review(item_id=runs[1]["ledger_id"], decision="rename", new_filename=new_name,
                         wiki=wiki.api_url, ledger_path=ledger_path)
    assert (out["outcome"], out["bytes_sent"]) == ("uploaded", 0), out  # from the stash
    landed = upload.file_info(session, new_name)
    assert landed["sha1"] == hashlib.sha1(ours.read_bytes()).hexdigest()  # noqa: S324
    answer = session.get({"action": "query", "titles": f"File:{new_name}", "prop": "revisions",
                          "rvprop": "content", "rvslots": "main"})
    page = answer["query"]["pages"][0]["revisions"][0]["slots"]["main"]["content"]
    assert page == "Second text, corrected"
