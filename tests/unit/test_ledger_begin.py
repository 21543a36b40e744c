"""``Ledger.begin`` with ``params``: a new file is admitted and validated in one transaction.

Why: every commit of the SQLite ledger is an fsync (``synchronous=FULL``), and a small file's
journey had one commit for ``pending`` and one for ``validated`` with nothing sent to the wiki
between them (issue 27). The history must still show both moves, and a known row must come back
exactly as it stands (its caller decides how to continue it). Both backends (tests/unit/conftest.py).
"""

from __future__ import annotations

from mwingest.ledger.ledger import Ledger, State

WIKI = "http://127.0.0.1:9412/w/api.php"
SHA_A = "a" * 40
PARAMS = {"comment": "c", "text": "t", "tags": None, "watchlist": "nochange"}


def test_a_new_row_is_validated_with_its_params_in_one_begin(ledger: Ledger) -> None:
    row = ledger.begin(WIKI, "/data/a.png", sha1=SHA_A, size=10, target="A.png", run_id="run-1",
                       params=PARAMS)
    assert (row.state, row.params, row.attempts, row.reason) == (State.VALIDATED, PARAMS, 1, None)
    assert [(e.from_state, e.to_state, e.run_id) for e in ledger.history(row.id)] == [
        (None, State.PENDING, "run-1"), (State.PENDING, State.VALIDATED, "run-1")]
    # The next steps of a file move on from there as from any validated row.
    assert ledger.transition(row.id, State.PUBLISHING, intent={"op": "upload", "name": "A.png"}
                             ).state is State.PUBLISHING


def test_a_known_row_ignores_the_params(ledger: Ledger) -> None:
    first = ledger.begin(WIKI, "/data/b.png", sha1=SHA_A, size=10, target="B.png", run_id="run-1",
                         params=PARAMS)
    ledger.transition(first.id, State.PUBLISHING, intent={"op": "upload", "name": "B.png"})
    again = ledger.begin(WIKI, "/data/b.png", sha1=SHA_A, size=10, target="B.png",
                         run_id="run-2", params={**PARAMS, "text": "other"})
    assert (again.id, again.state, again.params, again.attempts) == (
        first.id, State.PUBLISHING, PARAMS, 2)


def test_without_params_a_new_row_is_pending_as_before(ledger: Ledger) -> None:
    row = ledger.begin(WIKI, "/data/c.png", sha1=SHA_A, size=10, target="C.png")
    assert (row.state, row.params) == (State.PENDING, None)
