"""The Python API (``mwingest.api.ingest``) end to end: outcomes returned and heard, what the wiki
holds, and a refused login raised as a setup error before anything starts."""

from __future__ import annotations

from pathlib import Path

import pytest

from mwingest.base.items import Outcome
from mwingest.wiki import upload
from tests.integration.clihelpers import sha1_of
from tests.integration.wikihelpers import page_text, png_bytes, session_for

pytestmark = pytest.mark.wiki


def test_python_api_ingest_returns_outcomes(wiki, prefect_harness, monkeypatch, tmp_path, unique):
    from mwingest.api import IngestSetupError, ingest

    monkeypatch.setenv("MWINGEST_USERNAME", wiki.username)
    monkeypatch.setenv("MWINGEST_PASSWORD", wiki.password)
    monkeypatch.delenv("MWINGEST_API_URL", raising=False)
    u = unique()
    good = tmp_path / f"Api good {u}.png"
    good.write_bytes(png_bytes())
    empty = tmp_path / f"Api empty {u}.png"
    empty.write_bytes(b"")
    heard: list[Outcome] = []

    outcomes = ingest([str(good), str(empty)], wiki=wiki.api_url, text=f"API {u}",
                      ledger_path=str(tmp_path / "ledger.sqlite3"), on_outcome=heard.append,
                      review_timeout_s=0)

    assert all(isinstance(o, Outcome) for o in outcomes)
    by_name = {Path(o.source).name: o for o in outcomes}
    assert (by_name[good.name].outcome, by_name[empty.name].outcome) == ("uploaded", "rejected")
    assert sorted(heard, key=lambda o: o.source) == sorted(outcomes, key=lambda o: o.source)
    session = session_for(wiki)
    assert upload.file_info(session, good.name)["sha1"] == sha1_of(good)
    assert page_text(session, f"File:{good.name}") == f"API {u}"

    monkeypatch.setenv("MWINGEST_PASSWORD", "not-the-password-42")
    with pytest.raises(IngestSetupError, match="login refused"):
        ingest([str(good)], wiki=wiki.api_url, ledger_path=str(tmp_path / "ledger.sqlite3"))
