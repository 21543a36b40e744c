"""`mwingest status` and `mwingest review` against a real ledger file (the CLI in this process).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from mwingest import api
from mwingest.base.items import Outcome
from mwingest.ledger.ledger import Ledger
from tests.unit.test_cli_unit import WIKI, _clean_env, json_rows, one_line, run  # noqa: F401 - fixture

# --- status and review against a real ledger file --------------------------------------------------

@pytest.fixture
def ledger_file(tmp_path: Path) -> tuple[Path, dict[str, int]]:
    """A ledger with one item per interesting state."""
    path = tmp_path / "ledger.sqlite3"
    ids: dict[str, int] = {}
    with Ledger(path) as led:
        def item(name: str) -> int:
            return led.begin(WIKI, f"/data/{name}", sha1=f"{len(ids):040x}", size=5, target=name).id

        ids["done"] = item("Done.png")
        led.transition(ids["done"], "validated")
        led.transition(ids["done"], "uploaded", reason="verified", final_name="Done.png")
        ids["review"] = item("Review.png")
        led.transition(ids["review"], "validated")
        led.transition(ids["review"], "stashed", filekey="abc.def.png",
                       stash_created_at=datetime.now(UTC))
        led.transition(ids["review"], "needs-review", reason="exists", message="name taken",
                       filekey="abc.def.png")
        ids["failed"] = item("Failed.png")
        led.transition(ids["failed"], "failed", reason="http-error", message="boom")
    return path, ids


def test_status_json_lists_needs_review_and_failed_with_the_filekey(ledger_file, capsys):
    path, ids = ledger_file

    code, out, err = run(["status", "--ledger", str(path), "--json"], capsys)

    assert (code, err) == (0, "")
    rows = {r["id"]: r for r in map(json.loads, out.splitlines())}
    assert rows[ids["review"]]["state"] == "needs-review"
    assert rows[ids["review"]]["filekey"] == "abc.def.png"
    assert rows[ids["review"]]["reason"] == "exists"
    assert rows[ids["failed"]]["state"] == "failed" and rows[ids["failed"]]["filekey"] is None
    assert rows[ids["done"]]["state"] == "uploaded"  # among the recent ones


def test_status_text_names_the_states_and_how_to_decide(ledger_file, capsys):
    path, _ = ledger_file

    code, out, _ = run(["status", "--ledger", str(path)], capsys)

    assert code == 0
    assert "1 needs-review" in out and "1 failed" in out and "1 uploaded" in out
    assert "Review.png" in out and "mwingest review" in out


def test_status_lists_files_on_their_way_and_landed_without_their_structured_data(tmp_path, capsys):
    path = tmp_path / "ledger.sqlite3"
    with Ledger(path) as led:
        def landed(n: int, reason: str) -> int:
            row = led.begin(WIKI, f"/data/{n}.png", sha1=f"{n:040x}", size=5, target=f"{n}.png")
            led.transition(row.id, "validated")
            led.transition(row.id, "uploaded", reason=reason, final_name=f"{n}.png")
            return row.id

        bare = landed(0, "structured-data-failed")
        for n in range(1, 30):  # newer rows: the bare one is not among the recent
            landed(n, "verified")
        row = led.begin(WIKI, "/data/big.wav", sha1="f" * 40, size=5, target="Big.wav")
        led.transition(row.id, "validated")
        led.transition(row.id, "stashing", filekey="k.wav", offset=2, stash_created_at=datetime.now(UTC))
        big = row.id

    code, out, _ = run(["status", "--ledger", str(path), "--limit", "2"], capsys)
    code_json, out_json, _ = run(["status", "--ledger", str(path), "--limit", "2", "--json"], capsys)

    assert code == code_json == 0
    assert "30 uploaded" in out and "1 of the uploaded without all their structured data" in out
    assert any("structured-data-failed" in line and "/data/0.png" in line for line in out.splitlines())
    assert any("stashing" in line and "/data/big.wav" in line for line in out.splitlines())
    listed = {r["id"]: r for r in map(json.loads, out_json.splitlines())}
    assert listed[bare]["reason"] == "structured-data-failed" and listed[big]["state"] == "stashing"
    assert len(listed) == 3  # the two open rows, and the newest landed one beside the stashing one


def test_status_without_a_ledger_exits_2_and_creates_none(tmp_path, capsys):
    missing = tmp_path / "none.sqlite3"

    code, _, err = run(["status", "--ledger", str(missing)], capsys)

    assert code == 2 and "no ledger" in one_line(err)
    assert not missing.exists()


@pytest.mark.parametrize(("which", "says"), [("done", "uploaded, not needs-review"),
                                            ("missing", "no item")])
def test_review_of_an_item_that_does_not_wait_exits_2(ledger_file, capsys, monkeypatch, which, says):
    path, ids = ledger_file
    called: list[Any] = []
    monkeypatch.setattr(api, "resolve", lambda *a, **k: called.append(a))

    code, _, err = run(["review", str(ids.get(which, 999)), "--decision", "skip",
                        "--ledger", str(path), "--wiki", WIKI], capsys)

    assert code == 2 and says in one_line(err)
    assert called == []


def test_review_hands_the_decision_to_resolve(ledger_file, capsys, monkeypatch):
    path, ids = ledger_file
    calls: list[tuple[Any, ...]] = []

    def fake_resolve(item_id: int, decision: str, **kwargs: Any) -> Outcome:
        calls.append((item_id, decision, kwargs))
        return Outcome("/data/Review.png", "New name.png", "uploaded", "decided-rename")

    monkeypatch.setattr(api, "resolve", fake_resolve)
    monkeypatch.setattr(api, "preflight", lambda wiki=None: None)

    code, out, _ = run(["review", str(ids["review"]), "--decision", "rename", "--filename",
                        "New name.png", "--ledger", str(path), "--wiki", WIKI, "--json"], capsys)

    assert code == 0
    assert json_rows(out)[0]["filename"] == "New name.png"
    [(item_id, decision, kwargs)] = calls
    with Ledger(path) as led:  # the row's reference travels, not this ledger's row id
        ref = led.get(ids["review"]).ref
    assert (item_id, decision, kwargs["new_filename"], kwargs["ledger_path"], kwargs["wiki"]) == (
        ref, "rename", "New name.png", str(path), WIKI)


def test_review_by_the_reference_status_prints(ledger_file, capsys, monkeypatch):
    path, ids = ledger_file
    calls: list[Any] = []
    monkeypatch.setattr(api, "resolve", lambda item, decision, **kw: calls.append(item) or Outcome(
        "/data/Review.png", "Review.png", "skipped", "decided-skip"))
    monkeypatch.setattr(api, "preflight", lambda wiki=None: None)
    _, out, _ = run(["status", "--ledger", str(path)], capsys)
    ref = next(line.split("  ")[0] for line in out.splitlines() if "needs-review" in line
               and "Review.png" in line)

    code, _, _ = run(["review", ref, "--decision", "skip", "--ledger", str(path), "--wiki", WIKI],
                     capsys)
    assert code == 0 and calls == [ref] and ref.endswith(":Review.png")
    # A prefix that fits several items names them instead of picking one.
    code, _, err = run(["review", ref.split(":")[0], "--decision", "skip", "--ledger", str(path),
                        "--wiki", WIKI], capsys)
    assert code == 2 and "matches 3 items" in one_line(err) and len(calls) == 1
