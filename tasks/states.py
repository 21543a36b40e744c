"""Outcomes as Prefect states: what the Task Runs tab, the run graph and the run list show.

A file's task ends in a state named for its outcome (``Uploaded``, ``Skipped``, ``Rejected``,
``Failed``, ``Needs review``); the batch's run ends Completed with a message that counts them.
Rejected and failed files end their task *Failed*, so they stand out in red, yet never fail the
batch: the batch flow returns its own state (below), and Prefect only retries a task that returns
a Failed state when the task has retries, which the file tasks have not.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from typing import Any

from prefect.states import Completed, Failed, State

from mwingest.base.items import NEEDS_REVIEW, OUTCOMES, Outcome

#: The state name of each outcome, as a person reads it in the UI.
STATE_NAMES = {"uploaded": "Uploaded", "skipped": "Skipped", "rejected": "Rejected",
               "needs-review": "Needs review", "failed": "Failed"}
#: Outcomes whose task ends Failed (red); the others end Completed under their own name.
FAILED_OUTCOMES = frozenset({"rejected", "failed"})


def file_state(outcome: Outcome) -> State[Any]:
    """The final state of a file's task: named for its outcome, its reason in the message."""
    name = STATE_NAMES.get(outcome.outcome, outcome.outcome)
    message = f"{outcome.outcome} ({outcome.reason})" if outcome.reason else outcome.outcome
    if outcome.message:
        message += f": {outcome.message}"
    make = Failed if outcome.outcome in FAILED_OUTCOMES else Completed
    return make(name=name, message=message[:500])


def waiting_state(target: str) -> State[Any]:
    """The file task's state when its file waits for a person (the review comes later)."""
    return Completed(name=STATE_NAMES[NEEDS_REVIEW],
                     message=f"waits for a decision: open the run 'review · {target}' and press "
                             "Resume")


def counts_message(outcomes: Iterable[Outcome]) -> str:
    """``4 files: 2 uploaded, 1 skipped, 1 rejected`` (outcomes in the vocabulary's order)."""
    counts = Counter(o.outcome for o in outcomes)
    total = sum(counts.values())
    parts = [f"{counts[name]} {name}" for name in OUTCOMES if counts.get(name)]
    return f"{total} file{'s' * (total != 1)}" + (": " + ", ".join(parts) if parts else "")


def batch_state(outcomes: list[Outcome], rows: list[dict]) -> State[Any]:
    """The batch run's final state: Completed, its message the counts, its result the rows."""
    return Completed(message=counts_message(outcomes), data=rows)


def group_state(outcomes: list[Outcome]) -> State[Any]:
    """The final state of a task run of several small files: named by the counts (``7 uploaded
    · 1 rejected``); Failed (red) when one of them was rejected or failed, so it stands out."""
    counts = Counter(o.outcome for o in outcomes)
    name = " · ".join(f"{counts[o]} {o}" for o in OUTCOMES if counts.get(o))
    troubled = [o for o in outcomes if o.outcome in FAILED_OUTCOMES]
    message = counts_message(outcomes) + "".join(
        f"; {o.filename or o.source.rstrip('/').rsplit('/', 1)[-1]}: {o.outcome} ({o.reason})"
        for o in troubled[:10])
    make = Failed if troubled else Completed
    return make(name=name[:60], message=message[:500])
