"""The run's story as a person reads it (issue 29): run names, one spelling, what waits."""

from __future__ import annotations

from mwingest.base.items import Outcome
from tasks.report import outcome_rows, run_name, shown_name, summary_markdown


def test_run_names_say_what_is_imported(tmp_path):
    folder = tmp_path / "scans"
    folder.mkdir()
    assert run_name([str(folder)], 3) == "import · scans/ · 3 files"
    assert run_name([str(folder) + "/"], 1) == "import · scans/ · 1 file"
    assert run_name(["/data/list.csv", "/data/more.csv"], 9) == "import · list.csv + 1 more · 9 files"
    assert run_name(["https://example.org/a/Pier.jpg"], 1) == "import · Pier.jpg · 1 file"


def test_a_file_has_one_spelling_the_wikis_title_with_spaces():
    assert shown_name("Harbour_1911.jpg") == "Harbour 1911.jpg"
    o = Outcome(source="/scans/Harbour 1911.jpg", filename="Harbour_1911.jpg", outcome="uploaded",
                reason="new", url="http://wiki/File:Harbour_1911.jpg")
    [row] = outcome_rows([o])
    assert row == {"file": "Harbour 1911.jpg", "outcome": "uploaded", "reason": "new"}
    assert "[Harbour 1911.jpg](" in summary_markdown([o], wiki="w", seconds=1, ledger_path="l")


def test_a_waiting_summary_starts_with_where_to_decide():
    o = Outcome(source="/scans/Harbour 1911.jpg", filename="Harbour_1911.jpg",
                outcome="needs-review", reason="exists", ledger_id=3)
    text = summary_markdown([o], wiki="w", seconds=1, ledger_path="l", waiting=True)
    first = text.split("| outcome |")[0]
    assert "Waiting for a decision (1)" in first and "review · Harbour 1911.jpg" in first
    assert "Resume" in first
    assert "Waiting for a decision" not in summary_markdown([o], wiki="w", seconds=1,
                                                            ledger_path="l")


def test_the_summary_says_who_decided_what_and_when():
    o = Outcome(source="/scans/Harbour.jpg", filename="Harbour_(pier).jpg", outcome="uploaded",
                reason="decided-rename", ledger_id=7)
    text = summary_markdown([o], wiki="w", seconds=1, ledger_path="l", decisions={7: {
        "action": "rename", "by": "reviewer", "at": "2026-12-07T12:00:00+00:00", "note": "pier"}})
    from mwingest.base import markdown as md

    # Names and the note escaped like every word of the summary: shown as written, never markup.
    assert (f"* **{md.text('Harbour (pier).jpg')}** (`Harbour.jpg`): "
            + md.text("rename by reviewer, 2026-12-07 12:00:00 UTC (pier)")) in text
