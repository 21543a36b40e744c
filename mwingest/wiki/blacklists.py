"""The wiki's own blacklists, asked before a byte is sent: TitleBlacklist and SpamBlacklist.

Why ask and not just upload: both extensions refuse an upload only after its bytes arrived (a
``stash=1`` upload even passes TitleBlacklist, which refuses at publish: a chunked scan would be
sent whole first). Both have read modules that answer the same question cheaply:

* ``action=titleblacklist&tbaction=upload&tbtitle=File:NAME`` (one title a request: the module
  takes no list) → ``{"result": "blacklisted", "line": …, "reason": …, "message": …}`` or
  ``{"result": "ok"}``;
* ``action=spamblacklist&url=U1|U2|…`` (up to 50 URLs a request) → ``{"result": "blacklisted",
  "matches": ["spam.example", …]}`` or ``{"result": "ok"}``.

Which modules a wiki has is read once from ``action=paraminfo``; a wiki without them (a bare
MediaWiki) costs that one request and nothing more. The answers are the wiki's: its lines, its
matches, its text (the line is HTML-escaped by the wiki and unescaped here).
"""

from __future__ import annotations

import html
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

TITLE_MODULE, SPAM_MODULE = "titleblacklist", "spamblacklist"
#: URLs per ``action=spamblacklist`` request (the API's limit for a multi-value parameter).
URLS_PER_REQUEST = 50


class ApiGetter(Protocol):
    def get(self, params: Mapping[str, Any]) -> dict[str, Any]: ...


def available(api: ApiGetter) -> frozenset[str]:
    """Which of the two modules the wiki has (``action=paraminfo``, one request)."""
    answer = api.get({"action": "paraminfo", "modules": f"{TITLE_MODULE}|{SPAM_MODULE}"})
    modules = answer.get("paraminfo", {}).get("modules", [])
    return frozenset(str(m.get("name")) for m in modules
                     if m.get("name") in (TITLE_MODULE, SPAM_MODULE) and not m.get("missing"))


@dataclass(frozen=True)
class TitleHit:
    """A title the wiki's TitleBlacklist forbids for uploads."""

    title: str  # as asked, ``File:NAME``
    line: str  # the blacklist's line that matched, as the page has it
    reason: str  # the wiki's message text
    message: str  # its message key (``titleblacklist-forbidden-upload``)


def check_title(api: ApiGetter, filename: str) -> TitleHit | None:
    """May ``File:filename`` be uploaded? None when the wiki says ``ok``."""
    title = f"File:{filename}"
    answer = api.get({"action": TITLE_MODULE, "tbaction": "upload", "tbtitle": title})
    result = answer.get(TITLE_MODULE, {})
    if result.get("result") != "blacklisted":
        return None
    return TitleHit(title, html.unescape(str(result.get("line", ""))),
                    html.unescape(str(result.get("reason", ""))), str(result.get("message", "")))


def spam_matches(api: ApiGetter, urls: Iterable[str]) -> list[str]:
    """What of ``urls`` the wiki's SpamBlacklist matches (its matched texts, e.g. the domain);
    ``[]`` when none. Batched, :data:`URLS_PER_REQUEST` a request."""
    wanted = sorted(set(urls))
    found: list[str] = []
    for start in range(0, len(wanted), URLS_PER_REQUEST):
        batch = wanted[start:start + URLS_PER_REQUEST]
        answer = api.get({"action": SPAM_MODULE, "url": batch})
        result = answer.get(SPAM_MODULE, {})
        if result.get("result") == "blacklisted":
            found += [str(m) for m in result.get("matches") or [] if str(m) not in found]
    return found
