"""Outcomes as Prefect states (issue 29): names a person reads in the UI, counts in the batch's."""

from __future__ import annotations

from mwingest.base.items import Outcome
from tasks.states import batch_state, counts_message, file_state, waiting_state


def _o(outcome: str, reason: str | None = None, message: str | None = None) -> Outcome:
    return Outcome(source="/scans/a.png", filename="A.png", outcome=outcome, reason=reason,
                   message=message)


def test_each_outcome_names_its_state_and_only_refusals_and_failures_are_failed():
    states = {o: file_state(_o(o, "why")) for o in
              ("uploaded", "skipped", "rejected", "needs-review", "failed")}
    assert {o: s.name for o, s in states.items()} == {
        "uploaded": "Uploaded", "skipped": "Skipped", "rejected": "Rejected",
        "needs-review": "Needs review", "failed": "Failed"}
    assert [o for o, s in states.items() if s.is_failed()] == ["rejected", "failed"]
    assert file_state(_o("skipped", "duplicate", "same as File:B.png")).message == \
        "skipped (duplicate): same as File:B.png"


def test_a_waiting_file_says_where_to_decide():
    state = waiting_state("Harbour 1911.jpg")
    assert state.is_completed() and state.name == "Needs review"
    assert "review · Harbour 1911.jpg" in state.message and "Resume" in state.message


def test_the_batch_state_counts_outcomes_in_the_vocabulary_order():
    outcomes = [_o("rejected"), _o("uploaded"), _o("uploaded"), _o("needs-review")]
    assert counts_message(outcomes) == "4 files: 2 uploaded, 1 rejected, 1 needs-review"
    assert counts_message([]) == "0 files"
    assert counts_message([_o("skipped")]) == "1 file: 1 skipped"
    state = batch_state(outcomes, [{"a": 1}])
    assert state.is_completed() and state.data == [{"a": 1}]
