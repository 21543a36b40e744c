"""Pacing of writes per (wiki, account), shared by every worker through the ledger database.

Why in the ledger and not in each process: the wiki counts an account's uploads, not a
machine's. A normal Commons account may upload 380 files per 72 minutes (bot and autopatrolled
accounts are unlimited); ten workers each keeping "their" 380 would be refused (``ratelimited``)
after a tenth of the batch. So one token bucket per (wiki, account) lives in a table every worker
takes from (:class:`mwingest.ledger.pacing.PacingMixin`), and a ``Retry-After`` or ``ratelimited``
that one worker sees pauses all of them.

This module holds the arithmetic and the wiki's side: the account's limits
(``meta=userinfo&uiprop=ratelimits|rights``, see https://www.mediawiki.org/wiki/API:Userinfo and
``$wgRateLimits``) turned into a bucket, and the wait loop. No I/O but the one query.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Any, Protocol

from mwingest.base.errors import ApiError
from mwingest.base.ratelimit import Limit
from mwingest.base.retry import retry_after

#: Wait this long after ``ratelimited`` when the wiki gave no ``Retry-After``.
RATELIMITED_PAUSE_S = 60.0


def limit_from_userinfo(userinfo: Mapping[str, Any], action: str = "upload") -> Limit | None:
    """The strictest limit on ``action`` that applies to the logged-in account; None when
    there is none (no entry, or the ``noratelimit`` right that bots and admins have).

    The wiki lists only the limits that apply to this user, per kind (``user``, ``newbie``,
    ``ip``, ``subnet``, …); all of them count, so the tightest rate wins.
    """
    if "noratelimit" in (userinfo.get("rights") or ()):
        return None
    found = (userinfo.get("ratelimits") or {}).get(action) or {}
    limits = [Limit(int(v["hits"]), float(v["seconds"])) for v in found.values()
              if isinstance(v, Mapping) and v.get("hits") and v.get("seconds")]
    return min(limits, key=lambda lim: lim.hits / lim.seconds) if limits else None


class _Getter(Protocol):
    def get(self, params: Mapping[str, Any]) -> dict[str, Any]: ...


def fetch_limit(session: _Getter, action: str = "upload") -> Limit | None:
    """Ask the wiki for the logged-in account's limit on ``action`` (one GET)."""
    answer = session.get({"action": "query", "meta": "userinfo", "uiprop": "ratelimits|rights"})
    return limit_from_userinfo(answer.get("query", {}).get("userinfo", {}), action)


def pause_seconds(exc: BaseException) -> float | None:
    """How long every worker of the account should wait after ``exc``: the wiki's
    ``Retry-After`` (429/503, maxlag), or a minute for ``ratelimited``; None for other errors."""
    asked = retry_after(exc)
    if asked:
        return float(asked)
    if isinstance(exc, ApiError) and exc.code == "ratelimited":
        return RATELIMITED_PAUSE_S
    return None


class _Pacing(Protocol):
    def take_token(self, wiki: str, account: str) -> float: ...


def wait_for_token(ledger: _Pacing, wiki: str, account: str, *, timeout_s: float | None = None,
                   sleep: Callable[[float], None] = time.sleep,
                   clock: Callable[[], float] = time.monotonic) -> float:
    """Block until the account may make one more write; the seconds waited.

    Each try is one short transaction (:meth:`take_token`); between tries we sleep for the time
    it said, so waiting workers hold no lock. Raises ``TimeoutError`` after ``timeout_s``.
    """
    started = clock()
    while True:
        wait = ledger.take_token(wiki, account)
        if wait <= 0:
            return clock() - started
        if timeout_s is not None and clock() - started + wait > timeout_s:
            raise TimeoutError(f"no write allowed for {account or 'this login'} on {wiki} within "
                               f"{timeout_s:.0f} s")
        sleep(min(wait, 30.0))  # re-read at least every 30 s: a pause may be lifted or extended


class SharedPace:
    """The account's pace as every worker keeps it: a session asks :meth:`before_write` before
    each upload the wiki counts against its limit, and reports a throttle with :meth:`throttled`
    so that all workers of the account hold back, not only the one that was told."""

    def __init__(self, ledger: Any, wiki: str, account: str, *, timeout_s: float | None = None,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self.ledger, self.wiki, self.account = ledger, wiki, account
        self.timeout_s = timeout_s
        self._sleep = sleep
        self.waited_s = 0.0

    def before_write(self) -> None:
        self.waited_s += wait_for_token(self.ledger, self.wiki, self.account,
                                        timeout_s=self.timeout_s, sleep=self._sleep)

    def throttled(self, seconds: float, reason: str) -> None:
        self.ledger.pause(self.wiki, self.account, seconds, reason)


def counted_upload(params: Mapping[str, Any]) -> bool:
    """Whether a request is one the wiki counts against ``$wgRateLimits['upload']``: a direct
    upload or a publish of a stashed file; chunks and stash uploads are not (``ApiUpload``
    checks the throttle only after those are handled)."""
    return params.get("action") == "upload" and not params.get("stash") and not params.get("chunk")
