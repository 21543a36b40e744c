"""Pacing of writes per (wiki, account), shared by every worker through the ledger database.

Why in the ledger and not in each process: the wiki counts an account's uploads, not a
machine's. A normal Commons account may upload 380 files per 72 minutes (bot and autopatrolled
accounts are unlimited); ten workers each keeping "their" 380 would be refused (``ratelimited``)
after a tenth of the batch. So one token bucket per (wiki, account) lives in a table every worker
takes from (:class:`mwingest.ledger.pacing.PacingMixin`), and a ``Retry-After`` or ``ratelimited``
that one worker sees pauses all of them.

This module holds the wiki's side: the account's limits (``meta=userinfo&uiprop=ratelimits|rights``,
see https://www.mediawiki.org/wiki/API:Userinfo and ``$wgRateLimits``), the wait loop, and what
a wait says (:class:`PaceNote`) to the run's log and the progress display. The bucket's arithmetic
is :mod:`mwingest.base.ratelimit`. No I/O but the one query.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from mwingest.base.errors import ApiError
from mwingest.base.ratelimit import JITTER_S, Limit, Pace, duration, pace_for
from mwingest.base.retry import retry_after

#: Wait this long after ``ratelimited`` when neither the wiki nor the ledger says a limit.
RATELIMITED_PAUSE_S = 60.0
#: A wait for the limit shorter than this is not worth a line in the log.
NOTE_MIN_S = 1.0
#: Categories of ``$wgRateLimits`` that are not the account's own (``RateLimiter::limit``).
_SHARED_KINDS = ("anon", "ip", "subnet")


def limits_from_userinfo(userinfo: Mapping[str, Any], action: str = "upload") -> list[Limit]:
    """Every limit on ``action`` the wiki applies to the logged-in account, as MediaWiki 1.39's
    ``RateLimiter::limit`` picks them from what userinfo lists; empty when there is none (no
    entry, or the ``noratelimit`` right that bots and admins have).

    Userinfo lists ``user``, the groups', and for accounts that are not yet autoconfirmed
    ``newbie``, ``ip`` and ``subnet``. The wiki counts one of the account's own — ``newbie`` when
    it applies, else the most generous of ``user`` and the groups' — and every ``ip``/``subnet``
    one besides; each counts on its own, so all of them bind the pace.
    """
    if "noratelimit" in (userinfo.get("rights") or ()):
        return []
    found = (userinfo.get("ratelimits") or {}).get(action) or {}
    parsed = {kind: Limit(int(v["hits"]), float(v["seconds"])) for kind, v in found.items()
              if isinstance(v, Mapping) and v.get("hits") and v.get("seconds")}
    shared = [lim for kind, lim in parsed.items() if kind in _SHARED_KINDS]
    own = [lim for kind, lim in parsed.items() if kind not in (*_SHARED_KINDS, "newbie")]
    if "newbie" in parsed:
        own = [parsed["newbie"]]
    return ([max(own, key=lambda lim: lim.per_second)] if own else []) + shared


def limit_from_userinfo(userinfo: Mapping[str, Any], action: str = "upload") -> Limit | None:
    """The tightest of :func:`limits_from_userinfo` (None: no limit)."""
    limits = limits_from_userinfo(userinfo, action)
    return min(limits, key=lambda lim: lim.per_second) if limits else None


class _Getter(Protocol):
    def get(self, params: Mapping[str, Any]) -> dict[str, Any]: ...


def fetch_limits(session: _Getter, action: str = "upload") -> list[Limit]:
    """Ask the wiki for the logged-in account's limits on ``action`` (one GET)."""
    answer = session.get({"action": "query", "meta": "userinfo", "uiprop": "ratelimits|rights"})
    return limits_from_userinfo(answer.get("query", {}).get("userinfo", {}), action)


def fetch_limit(session: _Getter, action: str = "upload") -> Limit | None:
    """The tightest of :func:`fetch_limits` (None: no limit)."""
    limits = fetch_limits(session, action)
    return min(limits, key=lambda lim: lim.per_second) if limits else None


def pause_seconds(exc: BaseException) -> float | None:
    """How long every worker of the account should wait after ``exc``: the wiki's
    ``Retry-After`` (429/503, maxlag), or a minute for ``ratelimited``; None for other errors."""
    asked = retry_after(exc)
    if asked:
        return float(asked)
    if isinstance(exc, ApiError) and exc.code == "ratelimited":
        return RATELIMITED_PAUSE_S
    return None


def refusal_pause(limits: Sequence[Limit]) -> float:
    """How long to hold every worker after the wiki said ``ratelimited``: until it has forgotten
    every upload it counted (the longest window, one of its buckets and our jitter allowance).
    Shorter guesses only earn another refusal: the wiki says nothing of when it would let one
    through, and its counter was full."""
    if not limits:
        return RATELIMITED_PAUSE_S
    return max(lim.memory_s for lim in limits) + JITTER_S


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


@dataclass(frozen=True)
class PaceNote:
    """What a wait for the account's limit says: which file waits, how long, why, and how long
    the rest of the batch takes at the pace (from the limit, not from the speed so far)."""

    label: str | None
    wait_s: float
    reason: str  # "limit", or what paused every worker: "ratelimited", "maxlag", "http-429"
    pace: Pace | None
    remaining: int | None = None  # uploads the batch still has to make, this one included
    eta_s: float | None = None

    def message(self) -> str:
        who = self.label or "the next upload"
        if self.reason == "limit":
            text = f"{who} waits {duration(self.wait_s)} for the account's upload limit"
        else:
            text = (f"{who} waits {duration(self.wait_s)}: every worker of the account is paused "
                    f"({self.reason})")
        if self.pace is not None:
            text += f"; paced at {self.pace.describe()}"
        if self.eta_s is not None and self.remaining:
            text += (f"; at that pace the remaining {self.remaining} uploads take about "
                     f"{duration(self.eta_s)}")
        return text


class SharedPace:
    """The account's pace as every worker keeps it: a session asks :meth:`before_write` before
    each upload the wiki counts against its limit, and reports a throttle with :meth:`throttled`
    so that all workers of the account hold back, not only the one that was told.

    ``refresh`` reads the account's limits again (after ``ratelimited``: they may have been
    lowered); ``on_wait`` is told a :class:`PaceNote` when a write waits a second or more;
    ``remaining`` says how many uploads the batch still has to make (for the note's ETA).
    :meth:`working_on` names the file the calling thread works on, for the notes."""

    def __init__(self, ledger: Any, wiki: str, account: str, *, timeout_s: float | None = None,
                 sleep: Callable[[float], None] = time.sleep,
                 refresh: Callable[[], list[Limit]] | None = None,
                 on_wait: Callable[[PaceNote], None] | None = None,
                 remaining: Callable[[], int] | None = None) -> None:
        self.ledger, self.wiki, self.account = ledger, wiki, account
        self.timeout_s = timeout_s
        self._sleep = sleep
        self.refresh, self.on_wait, self.remaining = refresh, on_wait, remaining
        self.waited_s = 0.0
        self._local = threading.local()

    def working_on(self, label: str | None) -> None:
        """Name the file this thread's next writes are for (None: none)."""
        self._local.label = label

    def before_write(self) -> None:
        wait = self.ledger.take_token(self.wiki, self.account)
        if wait <= 0:
            return
        if wait >= NOTE_MIN_S:
            self._tell(wait)
        self.waited_s += wait_for_token(self.ledger, self.wiki, self.account,
                                        timeout_s=self.timeout_s, sleep=self._sleep)

    def throttled(self, seconds: float | None, reason: str) -> None:
        """Pause every worker: for ``seconds`` (the wiki's ``Retry-After``), or after a
        ``ratelimited`` without one, for :func:`refusal_pause` of the account's limits as the wiki
        says them now (read again: they may have been lowered; the bucket takes the new ones)."""
        if not seconds:
            limits = self._limits_now()
            seconds = refusal_pause(limits)
        self.ledger.pause(self.wiki, self.account, seconds, reason)

    def _limits_now(self) -> list[Limit]:
        if self.refresh is not None:
            try:
                limits = self.refresh()
            except Exception:  # noqa: BLE001 - the pause matters more than the re-read
                limits = None
            if limits is not None:
                self.ledger.set_limit(self.wiki, self.account, limits or None)
                return limits
        state = self.ledger.pace_state(self.wiki, self.account)
        return list(state.limits) if state is not None else []

    def pace(self) -> Pace | None:
        """The pace the ledger holds for the account now (None: no limit recorded)."""
        state = self.ledger.pace_state(self.wiki, self.account)
        return pace_for(state.limits) if state is not None and state.limits else None

    def eta_s(self, uploads: int) -> float | None:
        """How long ``uploads`` more take at the account's pace (None: no limit)."""
        state = self.ledger.pace_state(self.wiki, self.account)
        if state is None or not state.refill_per_s:
            return None
        paused = max(0.0, (state.paused_until or 0.0) - state.read_at)
        return paused + max(0.0, uploads - state.tokens) / state.refill_per_s

    def _tell(self, wait: float) -> None:
        if self.on_wait is None:
            return
        state = self.ledger.pace_state(self.wiki, self.account)
        paused = state is not None and (state.paused_until or 0.0) > state.read_at
        reason = (state.pause_reason or "paused") if paused and state is not None else "limit"
        remaining = self.remaining() if self.remaining is not None else None
        eta = None
        if state is not None and state.refill_per_s and remaining:
            eta = wait + (remaining - 1) / state.refill_per_s
        note = PaceNote(getattr(self._local, "label", None), wait, reason,
                        pace_for(state.limits) if state is not None and state.limits else None,
                        remaining, eta)
        self.on_wait(note)


def counted_upload(params: Mapping[str, Any]) -> bool:
    """Whether a request is one the wiki counts against ``$wgRateLimits['upload']``: a direct
    upload or a publish of a stashed file; chunks and stash uploads are not (``ApiUpload``
    checks the throttle only after those are handled)."""
    return params.get("action") == "upload" and not params.get("stash") and not params.get("chunk")
