"""What only the upload reveals: the extensions' refusals of an upload, classified.

Shapes seen on MediaWiki 1.39 with Debian's extensions (each refusal of an upload leaves the file
in the user's stash, and the error carries its ``filekey``):

============================== ================================================ =================
wiki's code                    what it means                                    outcome, reason
============================== ================================================ =================
``abusefilter-disallowed``     a filter refuses it; ``abusefilter.description``  ``rejected``,
                               says which                                       ``abusefilter-disallowed``
``abusefilter-warning``        a filter warns; an identical second attempt of    ``needs-review``,
                               the same login session passes. A question for a   ``abusefilter-warning``
                               person: a blind retry would defeat it
``titleblacklist-forbidden*``  TitleBlacklist (when asking before was not        ``rejected``,
                               possible, or the list changed since)             ``title-blacklisted``
``spamblacklist``              SpamBlacklist matched ``spamblacklist.matches``   ``rejected``, ``spam-url``
a captcha (ConfirmEdit)        the account must solve a captcha (no             ``needs-review``,
                               ``skipcaptcha`` right)                           ``captcha-required``
============================== ================================================ =================

ConfirmEdit 1.39 asks no captcha on ``action=upload`` (it hooks edits only); a later release, or
another captcha extension, may answer an upload as ``action=edit`` answers: ``result: Failure``
with a ``captcha`` object (:class:`mwingest.wiki.upload.UploadResult` raises it as the error
``captcha``), or an error whose code names a captcha. Both are read here.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from mwingest.base.errors import ApiError
from mwingest.base.items import NEEDS_REVIEW, REJECTED
from mwingest.checks.blacklists import SPAM_URL, TITLE_BLACKLISTED, camera_hint

ABUSEFILTER_DISALLOWED, ABUSEFILTER_WARNING = "abusefilter-disallowed", "abusefilter-warning"
CAPTCHA_REQUIRED = "captcha-required"
#: Refusals of a row's input (its text, its name): a re-run sends it again once that changed.
INPUT_REFUSALS = frozenset({ABUSEFILTER_DISALLOWED, SPAM_URL})
CAPTCHA_ADVICE = ("the wiki asks this account to solve a captcha (ConfirmEdit) before it may "
                  "upload this: the account needs the skipcaptcha right (a bot account, or the "
                  "group the wiki gives it to, e.g. confirmed); once it has it, publish the kept "
                  "copy with `mwingest review`")


@dataclass(frozen=True)
class Refusal:
    """How an upload refusal ends the file (``outcome``, ``reason``, ``message``); ``warning``
    is what a ``needs-review`` row keeps for the person who decides."""

    outcome: str
    reason: str
    message: str
    filekey: str | None = None
    warning: Mapping[str, Any] = field(default_factory=dict)


def classify(exc: ApiError, name: str) -> Refusal | None:
    """The refusal ``exc`` stands for (uploading as ``name``), or None for any other error."""
    code, data, key = exc.code, exc.data, exc.filekey
    shown = name.replace("_", " ")
    if code in (ABUSEFILTER_DISALLOWED, ABUSEFILTER_WARNING):
        filt = data.get("abusefilter") or {}
        described = filt.get("description") or "(no description)"
        which = f"filter {filt.get('id', '?')}: {described}"
        if code == ABUSEFILTER_DISALLOWED:
            return Refusal(REJECTED, code, f"{shown}: the wiki's abuse filter refuses it ({which})",
                           key)
        return Refusal(NEEDS_REVIEW, code,
                       f"{shown}: the wiki's abuse filter warns ({which}): {exc.info}", key,
                       {code: {"id": filt.get("id"), "description": described,
                               "actions": filt.get("actions")}})
    if code.startswith("titleblacklist-forbidden"):
        return Refusal(REJECTED, TITLE_BLACKLISTED,
                       f"{shown}: the wiki's title blacklist forbids File:{shown}: {exc.info}"
                       f"{camera_hint(shown) or ' Choose another name.'}", key)
    if code == "spamblacklist":
        matches = (data.get("spamblacklist") or {}).get("matches") or []
        return Refusal(REJECTED, SPAM_URL, f"{shown}: its page text links to a site the wiki's "
                       f"spam blacklist lists: {', '.join(map(str, matches)) or exc.info}. "
                       "Remove or replace the link in the text.", key)
    if "captcha" in code.lower() or data.get("captcha"):
        return Refusal(NEEDS_REVIEW, CAPTCHA_REQUIRED, f"{shown}: {CAPTCHA_ADVICE}", key,
                       {"captcha": dict(data.get("captcha") or {"code": code})})
    return None
