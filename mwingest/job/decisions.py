"""What a decision on a warned file means: the record the ledger keeps, the names a rename tries,
and the plain words for each warning.

Why apart from :mod:`mwingest.job.machine`: these are pure functions (no wiki, no ledger) that the job,
the review form and the reports share, and that a test can read on their own.
"""

from __future__ import annotations

import shlex
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from mwingest.base.policy import Action, WarningPolicy
from mwingest.ledger.model import LedgerItem
from mwingest.wiki import names
from mwingest.wiki.siteinfo import WikiRules

#: Warnings a renamed publish may still give and be published anyway: the bytes being elsewhere
#: too (the policy already chose to rename, not skip) and the wiki normalising the new name.
BENIGN_AFTER_RENAME = frozenset({"duplicate", "badfilename"})
#: How many ``Name (n).ext`` variants an automatic rename tries before asking a person.
MAX_RENAMES = 10
#: The placeholder name of an automatic rename (the ledger wants a name on every rename).
AUTO_NAME = "(first free name)"


def record(action: Action | str, *, name: str | None = None, by: str = "policy",
           note: str | None = None) -> dict[str, Any]:
    """A decision as the ledger stores it (``tried`` grows with each name a rename tried)."""
    action = Action(action)
    return {"action": action.value, "name": name or (AUTO_NAME if action is Action.RENAME else None),
            "by": by, "note": note or None, "at": datetime.now(UTC).isoformat(timespec="seconds"),
            "tried": []}


def human_name(decision: Mapping[str, Any]) -> str | None:
    """The name a person chose for a rename, or None when mwingest picks one."""
    name = decision.get("name")
    return None if name in (None, "", AUTO_NAME) else str(name)


def next_candidate(decision: Mapping[str, Any], base: str, rules: WikiRules) -> str | None:
    """The next name a rename tries: the person's name once, else ``base (2)`` … ``base (11)``."""
    tried = {names.title_key(t) for t in decision.get("tried") or ()}
    chosen = human_name(decision)
    pool = ([names.sanitise(chosen, rules)] if chosen else
            [names.sanitise(names.unique_variant(base, n), rules)
             for n in range(2, 2 + MAX_RENAMES)])
    return next((c for c in pool if names.title_key(c) not in tried), None)


@dataclass(frozen=True)
class Move:
    """A stashed file's next step: publish under ``name``, record ``action``, or end ``outcome``."""

    name: str | None = None
    ignorewarnings: bool = False
    decision: dict[str, Any] | None = None  # the decision to record with the publish (``tried``)
    action: Action | None = None  # the policy decided: record it first
    outcome: str | None = None  # skipped / failed / needs-review
    reason: str | None = None
    message: str | None = None


def next_move(row: LedgerItem, policy: WarningPolicy, rules: WikiRules,
              is_free: Callable[[str], bool]) -> Move:
    """What to do with a stashed file, from its row alone (``is_free`` asks the wiki about a name).

    No warnings and no decision: publish. Warnings: the policy's action (skip, fail and review end
    the file; publish and rename are recorded as a decision first, so a retry carries out the same
    one). A rename tries the person's name, or ``Name (2)`` … ``Name (11)`` that are free; a new
    name that only warns ``duplicate``/``badfilename`` is published anyway.
    """
    warnings = row.warnings or {}
    decision = row.decision
    verdict = policy.decide(warnings.keys())
    code = verdict.code or "warning"
    if decision is None:
        if not warnings:
            return Move(name=row.target)
        if verdict.action in (Action.SKIP, Action.FAIL):
            return Move(outcome="skipped" if verdict.action is Action.SKIP else "failed",
                        reason=code, message=explain(code, warnings))
        if verdict.action is Action.REVIEW:
            return Move(outcome="needs-review", reason=code,
                        message=f"{explain(code, warnings)}; decide with `mwingest review "
                                f"{shlex.quote(row.ref)} --decision skip|publish|rename`")
        return Move(action=verdict.action)
    action = Action(decision["action"])
    if action in (Action.SKIP, Action.FAIL):
        return Move(outcome="skipped" if action is Action.SKIP else "failed", reason=code,
                    message=explain(code, warnings))
    if action is Action.PUBLISH:
        return Move(name=row.target, ignorewarnings=True)
    tried = list(decision.get("tried") or [])
    if tried and set(warnings) <= BENIGN_AFTER_RENAME:
        return Move(name=tried[-1], ignorewarnings=True)
    if tried and human_name(decision):
        return Move(outcome="needs-review", reason="rename-warned",
                    message=f"File:{tried[-1]} warned too: {', '.join(warnings)}; "
                            "choose another name")
    base = warnings.get("badfilename") or row.target
    while (candidate := next_candidate({**decision, "tried": tried}, base, rules)) is not None:
        tried.append(candidate)
        if human_name(decision) or is_free(candidate):
            return Move(name=candidate, decision={**decision, "tried": tried})
    return Move(outcome="needs-review", reason="rename-failed",
                message="no free name found; choose one with `mwingest review`")


def explain(code: str, warnings: Any) -> str:
    """One warning in plain words, with the wiki's value."""
    value = warnings.get(code) if hasattr(warnings, "get") else None
    texts = {
        "exists": "a file with this name already exists on the wiki",
        "nochange": "the wiki already has these bytes as the current version",
        "duplicate": "the same bytes are already on the wiki under another name",
        "duplicateversions": "these bytes are an older version of the file",
        "duplicate-archive": "a deleted file had these bytes",
        "was-deleted": "a file with this name was deleted before",
        "exists-normalized": "a file with a similar name exists",
        "page-exists": "a description page with this name exists without a file",
        "thumb": "the name looks like a thumbnail of an existing file",
        "thumb-name": "the name looks like a thumbnail",
        "bad-prefix": "the name starts with a camera prefix",
        "badfilename": "the wiki would change the name",
        "abusefilter-warning": "the wiki's abuse filter warns about this upload; publishing "
                               "confirms it",
        "captcha": "the wiki asks this account for a captcha (it needs the skipcaptcha right)",
    }
    text = texts.get(code, f"the wiki warned {code}")
    if isinstance(value, Mapping) and value.get("description"):  # an abuse filter's warning
        return f"{text} (filter {value.get('id', '?')}: {value['description']})"
    return f"{text} ({code}: {value})" if value not in (None, "", [], True) else f"{text} ({code})"
