"""What to do about each upload warning: a policy per warning code, and how they combine.

Why a policy and not ``ignorewarnings=1`` everywhere: each warning means something different to an
archive import. ``nochange``/``duplicate`` mean the bytes are already there (skip), ``exists`` means
someone else's file has our name (a human should decide: new version, other name, or leave it),
``badfilename`` only means the wiki would normalise our name (rename to the clean name).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum


class Action(StrEnum):
    """What to do with a file whose publish warned."""

    SKIP = "skip"  # leave it: the outcome is `skipped` with the warning as reason
    PUBLISH = "publish"  # ignore the warning: publish anyway (new version / overwrite)
    RENAME = "rename"  # publish under a sanitised, unused name
    REVIEW = "review"  # a human decides (Prefect form), else `needs-review`
    FAIL = "fail"  # stop this file: outcome `failed`


#: Defaults users of an archive import expect (issue 4).
DEFAULT_ACTIONS: Mapping[str, Action] = {
    "nochange": Action.SKIP,
    "duplicate": Action.SKIP,
    "duplicateversions": Action.REVIEW,
    "exists": Action.REVIEW,
    "duplicate-archive": Action.REVIEW,
    "was-deleted": Action.REVIEW,
    "badfilename": Action.RENAME,
    "exists-normalized": Action.REVIEW,
    "page-exists": Action.REVIEW,
    "thumb": Action.REVIEW,
    "thumb-name": Action.REVIEW,
    "bad-prefix": Action.REVIEW,
    "large-file": Action.PUBLISH,
    "filetype-unwanted-type": Action.FAIL,
    "empty-file": Action.FAIL,
    # Not the wiki's warnings but ours, found before the upload (mwingest.describe.pagecheck): ``publish``
    # lets the file go up with a warning, any other action refuses it (``rejected``).
    "missing-template": Action.FAIL,
    "red-category": Action.PUBLISH,
}
#: For codes nobody configured (a newer MediaWiki's warnings): ask a human.
FALLBACK_ACTION = Action.REVIEW
#: When several warnings come at once, the strongest action wins.
_STRENGTH = {Action.FAIL: 5, Action.SKIP: 4, Action.REVIEW: 3, Action.RENAME: 2, Action.PUBLISH: 1}


@dataclass(frozen=True)
class Decision:
    """The policy's verdict on a set of warnings: the action and the code that decided it."""

    action: Action
    code: str | None  # the warning code that decided (the outcome's reason), None if no warnings
    codes: tuple[str, ...] = ()


@dataclass(frozen=True)
class WarningPolicy:
    """Warning code → action, on top of :data:`DEFAULT_ACTIONS`."""

    overrides: Mapping[str, Action] | None = None

    def action_for(self, code: str) -> Action:
        if self.overrides and code in self.overrides:
            return Action(self.overrides[code])
        return DEFAULT_ACTIONS.get(code, FALLBACK_ACTION)

    def decide(self, codes: Iterable[str]) -> Decision:
        """The action for a set of warnings (e.g. ``["exists", "nochange"]`` → skip)."""
        codes = tuple(codes)
        if not codes:
            return Decision(Action.PUBLISH, None, ())
        best = max(codes, key=lambda c: (_STRENGTH[self.action_for(c)], -codes.index(c)))
        return Decision(self.action_for(best), best, codes)

    def as_dict(self) -> dict[str, str]:
        """The effective action of every known code (for artifacts and ``--json``)."""
        keys = set(DEFAULT_ACTIONS) | set(self.overrides or {})
        return {code: self.action_for(code).value for code in sorted(keys)}

    @classmethod
    def parse(cls, spec: str | Mapping[str, str] | None) -> WarningPolicy:
        """``"exists=rename,duplicate=publish"`` (the CLI's ``--on-warning``) or a mapping.

        Unknown actions raise ``ValueError`` naming the allowed ones; unknown codes are accepted
        (a newer wiki may send them).
        """
        if not spec:
            return cls()
        pairs: Iterable[tuple[str, str]]
        if isinstance(spec, Mapping):
            pairs = spec.items()
        else:
            pairs = []
            for part in filter(None, (p.strip() for p in spec.split(","))):
                code, sep, action = part.partition("=")
                if not sep:
                    raise ValueError(f"--on-warning wants CODE=ACTION, got {part!r}")
                pairs.append((code.strip(), action.strip()))
        out: dict[str, Action] = {}
        for code, action in pairs:
            try:
                out[code] = Action(action)
            except ValueError:
                allowed = "|".join(a.value for a in Action)
                raise ValueError(f"unknown action {action!r} for {code!r}; use {allowed}") from None
        return cls(out)
