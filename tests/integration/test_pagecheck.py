"""Templates, categories and the licence checked before a byte is sent, on a real wiki.

A JSONL manifest of four rows: one uses a template that does not exist, one a red category
(with the policy ``red-category=fail``), one has no licence although the batch requires one, one
is fine. The first three are ``rejected`` with their reason and the wiki has neither a file nor
a stashed upload of them afterwards; the fourth lands with the licence line added.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mwingest.job.settings import BatchSettings
from mwingest.wiki import upload
from tests.integration.wikihelpers import create_page, page_text, session_for
from tests.metafiles import jpeg_with_metadata

pytestmark = pytest.mark.wiki


def test_missing_template_red_category_and_licence_are_refused_before_upload(
        wiki, prefect_harness, tmp_path, unique, monkeypatch):
    from flows.ingest import ingest_batch

    for name, value in (("MWINGEST_API_URL", wiki.api_url), ("MWINGEST_USERNAME", wiki.username),
                        ("MWINGEST_PASSWORD", wiki.password)):
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("PREFECT_API_URL", raising=False)
    session = session_for(wiki)
    u = unique()
    create_page(session, "Template:Information", "{{{description|}}} ({{{date|}}})")
    create_page(session, f"Template:Licence {u}", "Licensed for the test.")
    create_page(session, f"Category:Harbours {u}", "Harbour photographs.")
    stash_before = {row["filekey"] for row in upload.my_stashed_files(session)}

    rows = {
        "no-template": f"{{{{Information|description=a}}}}\n{{{{No such licence {u}}}}}\n",
        "red-category": f"{{{{Information|description=b}}}}\n[[Category:Harboors {u}]]\n",
        "no-licence": f"{{{{Information|description=c}}}}\n[[Category:Harbours {u}]]\n",
        "good": f"{{{{Information|description=d|date={{{{CURRENTYEAR}}}}}}}}\n{{{{#if:x|y}}}}\n"
                f"[[Category:Harbours {u}|Sort key]]\n",
    }
    manifest = tmp_path / "batch.jsonl"
    with manifest.open("w", encoding="utf-8") as fh:
        for key, text in rows.items():
            (tmp_path / f"{key}.jpg").write_bytes(jpeg_with_metadata())
            row = {"source": f"{key}.jpg", "filename": f"Check {key} {u}.jpg", "text": text}
            if key != "no-licence":
                row["licence"] = f"Licence {u}"
            fh.write(json.dumps(row) + "\n")

    result = ingest_batch(sources=[str(manifest)], wiki=wiki.api_url, settings=BatchSettings.from_flat(
                 require_licence=True, on_warning={"red-category": "fail"}, review_timeout_s=0,
                 ledger_path=str(tmp_path / "ledger.db")))
    outcomes = {Path(r["source"]).stem: r for r in result}
    assert {k: (o["outcome"], o["reason"]) for k, o in outcomes.items()} == {
        "no-template": ("rejected", "missing-template"), "red-category": ("rejected", "red-category"),
        "no-licence": ("rejected", "missing-licence"), "good": ("uploaded", "verified")}, result
    assert f"Template:No such licence {u}" in outcomes["no-template"]["message"]
    assert f"Category:Harboors {u}" in outcomes["red-category"]["message"]
    for key in ("no-template", "red-category", "no-licence"):
        assert outcomes[key]["bytes_sent"] == 0
        assert upload.file_info(session, f"Check {key} {u}.jpg") is None
    assert {row["filekey"] for row in upload.my_stashed_files(session)} <= stash_before  # nothing stashed
    text = page_text(session, f"File:Check good {u}.jpg")
    assert f"{{{{Licence {u}}}}}\n[[Category:Harbours {u}|Sort key]]" in text  # added before categories
