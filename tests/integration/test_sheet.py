"""The sheet round trip as a person does it: ``mwingest sheet`` writes it, two columns are filled
in (openpyxl, as a spreadsheet program would save them), ``mwingest import batch.xlsx
--text-template examples/information.wiki`` uploads it. The rows without a required value are
rejected naming the column; the others land with the text (read back from the wiki)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.integration.clihelpers import PROXY_VARS, mwingest
from tests.integration.wikihelpers import create_page, page_text, session_for
from tests.metafiles import jpeg_with_metadata, xmp_packet
from tests.prefect_server import seed_env_homes

pytestmark = pytest.mark.wiki

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "information.wiki"


def test_sheet_filled_in_and_imported(wiki, tmp_path, unique):
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("PREFECT_", "MWINGEST_")) and k.lower() not in PROXY_VARS}
    env.update(MWINGEST_API_URL=wiki.api_url, MWINGEST_USERNAME=wiki.username,
               MWINGEST_PASSWORD=wiki.password, MWINGEST_LEDGER=str(tmp_path / "ledger.db"),
               MWINGEST_HOME=str(tmp_path / "home"), PREFECT_HOME=str(tmp_path / "prefect"),
               MWINGEST_PREFECT="ephemeral", DO_NOT_TRACK="1", PREFECT_SERVER_ANALYTICS_ENABLED="false")
    seed_env_homes(env)
    # The example's templates must exist (looked up before the upload); its categories may be red.
    for title in ("Template:Information", "Template:Cc-by-4.0"):
        create_page(session_for(wiki), title, "{{{description|}}}")
    u = unique()
    scans = tmp_path / "scans"
    scans.mkdir()
    (scans / f"Quay {u}.jpg").write_bytes(jpeg_with_metadata(
        artist="Ada Lovelace", date="1911:06:01 10:00:00",
        xmp=xmp_packet(title="Archive box 7", description="The quay in 1911")))
    (scans / f"Pier {u}.jpg").write_bytes(jpeg_with_metadata(artist="Grace Hopper"))
    (scans / f"Boats {u}.jpg").write_bytes(jpeg_with_metadata(artist="Mary Somerville"))

    mwingest(env, "sheet", str(scans), "-o", "batch.xlsx", cwd=tmp_path).expect(0)

    from openpyxl import load_workbook

    book = load_workbook(tmp_path / "batch.xlsx")
    ws = book.active
    header = [c.value for c in ws[1]]
    col = {name: header.index(name) + 1 for name in header}
    rows = {Path(ws.cell(r, col["source"]).value).name: r for r in range(2, ws.max_row + 1)}
    assert ws.cell(rows[f"Quay {u}.jpg"], col["description*"]).value == "The quay in 1911"
    assert ws.cell(rows[f"Quay {u}.jpg"], col["date"]).value == "1911-06-01 10:00:00"
    # A person fills in two columns: a licence for Quay and Pier, a description for Pier only.
    for name in (f"Quay {u}.jpg", f"Pier {u}.jpg"):
        ws.cell(rows[name], col["licence*"]).value = "cc-by-4.0"
    ws.cell(rows[f"Pier {u}.jpg"], col["description*"]).value = "The pier, from the sea"
    ws.cell(rows[f"Pier {u}.jpg"], col["categories"]).value = "Piers; Harbour of Examplestad"
    book.save(tmp_path / "batch.xlsx")

    ran = mwingest(env, "import", "batch.xlsx", "--text-template", str(EXAMPLE), "--json",
                   cwd=tmp_path).expect(1)
    outcomes = {Path(r["source"]).name: r for r in ran.rows()}
    assert {n: o["outcome"] for n, o in outcomes.items()} == {
        f"Quay {u}.jpg": "uploaded", f"Pier {u}.jpg": "uploaded", f"Boats {u}.jpg": "rejected"}
    boats = outcomes[f"Boats {u}.jpg"]
    assert boats["reason"] == "missing-column-value"
    assert "'description', 'licence'" in boats["message"]

    session = session_for(wiki)
    quay = page_text(session, f"File:Quay {u}.jpg")
    assert "|description=The quay in 1911\n|date=1911-06-01 10:00:00\n" in quay
    assert "|source=Archive box 7\n|author=Ada Lovelace\n" in quay and "{{cc-by-4.0}}" in quay
    pier = page_text(session, f"File:Pier {u}.jpg")
    assert "|description=The pier, from the sea" in pier and "|author=Grace Hopper" in pier
    assert "[[Category:Piers]]\n[[Category:Harbour of Examplestad]]" in pier
    assert page_text(session, f"File:Boats {u}.jpg") is None
