"""Moved out of :mod:`mwingest.checks.mediacheck` so that its importers need not import it (issue 25)."""

from __future__ import annotations

from mwingest.checks.content import Issue


class Damage(Exception):
    """Raised by a structure walk at the first proof of damage; carries the finding."""

    def __init__(self, code: str, what: str, **detail: object) -> None:
        super().__init__(what)
        self.issue = Issue(code, what, {"format": detail.pop("fmt", None), **detail})


def truncated(fmt: str, what: str, **detail: object) -> Damage:
    return Damage("truncated-media", f"is cut short: {what}", fmt=fmt, **detail)


def corrupt(fmt: str, what: str, **detail: object) -> Damage:
    return Damage("corrupt-media", f"is damaged: {what}", fmt=fmt, **detail)
