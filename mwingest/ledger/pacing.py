"""The shared token bucket and pause per (wiki, account), stored in the ledger database.

Mixed into :class:`mwingest.ledger.ledger.Ledger`. Every operation is one short transaction with the
pacing row locked (``FOR UPDATE`` on PostgreSQL, the write lock on SQLite), so workers on any
number of machines take tokens from one bucket and never both spend the last one. The bucket
is timed by the ledger's time (:meth:`Ledger._now`): on PostgreSQL the database's clock, read with
the locked row, so a machine whose clock runs ahead neither finds the bucket refilled early nor
sets a pause that holds the others for hours. See
:mod:`mwingest.wiki.pacing` for the arithmetic and where the limits come from.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import datetime
from typing import TypeVar

import sqlalchemy as sa

from mwingest.base.ratelimit import Limit, pace_for, refill
from mwingest.ledger.model import normalise_account, normalise_wiki
from mwingest.ledger.outage import ridden_out

T = TypeVar("T")


def _twice(write: Callable[[], T]) -> T:
    """Run a write again when another worker created the account's row at the same moment
    (the primary key refused our insert): the second time it finds the row and updates it."""
    try:
        return write()
    except sa.exc.IntegrityError:
        return write()


@dataclass(frozen=True)
class PaceState:
    """One account's pacing row as it is (``capacity`` None: no limit); ``limit`` is the tightest
    of ``limits``, ``read_at`` the ledger's clock when the row was read (tokens as stored then,
    not refilled)."""

    capacity: float | None
    refill_per_s: float | None
    tokens: float
    paused_until: float | None
    pause_reason: str | None
    limit: Limit | None
    limits: tuple[Limit, ...] = ()
    read_at: float = 0.0


def _limits(limit: Limit | Sequence[Limit] | None) -> tuple[Limit, ...]:
    if limit is None:
        return ()
    return (limit,) if isinstance(limit, Limit) else tuple(limit)


def _stored_limits(text: str | None) -> tuple[Limit, ...]:
    """The ``limits`` column: a JSON list of ``{hits, seconds}`` (one object before issue 28)."""
    if not text:
        return ()
    data = json.loads(text)
    return tuple(Limit(**d) for d in (data if isinstance(data, list) else [data]))


class PacingMixin:
    """set_limit, take_token, pause and pace_state on the ledger's database."""

    _write: Callable[[], AbstractContextManager[sa.Connection]]
    _row_lock: Callable[[], str]
    _now: Callable[..., datetime]
    _clock_column: Callable[[], str]

    @ridden_out
    def set_limit(self, wiki: str, account: str,
                  limit: Limit | Sequence[Limit] | None) -> None:
        """Record the account's limits (None or none: unlimited); the bucket keeps all of them
        (:func:`mwingest.base.ratelimit.pace_for`). A new bucket starts full; a changed limit
        keeps the tokens left (capped), so re-reading limits at every run's start does not hand
        out a fresh burst, and a pause in force keeps its empty bucket."""
        _twice(lambda: self._set_limit(wiki, account, _limits(limit)))

    def _set_limit(self, wiki: str, account: str, limits: tuple[Limit, ...]) -> None:
        paced = pace_for(limits)
        capacity, rate = (paced.capacity, paced.refill_per_s) if paced else (None, None)
        stored = json.dumps([{"hits": x.hits, "seconds": x.seconds} for x in limits]) if limits else None
        with self._write() as conn:
            row = self._pace_row(conn, wiki, account)
            now = self._now(conn, row).timestamp()
            if row is None:
                conn.execute(sa.text(
                    "INSERT INTO pacing (wiki, account, capacity, refill_per_s, tokens, updated_at,"
                    " limits) VALUES (:wiki, :account, :cap, :rate, :tokens, :now, :limits)"),
                    {**self._pace_key(wiki, account), "cap": capacity, "rate": rate,
                     "tokens": capacity or 0.0, "now": now, "limits": stored})
                return
            tokens = self._refilled(row, now)
            conn.execute(sa.text(
                "UPDATE pacing SET capacity = :cap, refill_per_s = :rate, tokens = :tokens,"
                " updated_at = :now, limits = :limits WHERE wiki = :wiki AND account = :account"),
                {**self._pace_key(wiki, account), "cap": capacity, "rate": rate,
                 "tokens": min(tokens, capacity) if capacity is not None else 0.0,
                 "now": max(now, row["updated_at"]),  # a pause's end, when one is in force
                 "limits": stored})

    @ridden_out
    def take_token(self, wiki: str, account: str) -> float:
        """Take one write's token: 0.0 when taken, else the seconds to wait before asking again
        (a pause, or an empty bucket). An account with no recorded limit is not held back,
        except by a pause."""
        with self._write() as conn:
            row = self._pace_row(conn, wiki, account)
            if row is None:
                return 0.0
            now = self._now(conn, row).timestamp()
            if row["paused_until"] is not None and row["paused_until"] > now:
                return float(row["paused_until"] - now)
            if row["capacity"] is None:
                return 0.0
            tokens = self._refilled(row, now)
            wait = 0.0 if tokens >= 1.0 else (1.0 - tokens) / row["refill_per_s"]
            conn.execute(sa.text("UPDATE pacing SET tokens = :tokens, updated_at = :now"
                                 " WHERE wiki = :wiki AND account = :account"),
                         {**self._pace_key(wiki, account), "now": now,
                          "tokens": tokens - 1.0 if wait == 0.0 else tokens})
            return wait

    @ridden_out
    def pause(self, wiki: str, account: str, seconds: float, reason: str) -> float:
        """Hold every worker of the account for ``seconds`` (a later pause already set wins)
        and empty the bucket, which refills from the pause's end: the workers resume at the
        paced rate, not with a burst. The Unix time the pause ends."""
        return _twice(lambda: self._pause(wiki, account, seconds, reason))

    def _pause(self, wiki: str, account: str, seconds: float, reason: str) -> float:
        with self._write() as conn:
            row = self._pace_row(conn, wiki, account)
            now = self._now(conn, row).timestamp()
            until = now + max(0.0, seconds)
            if row is None:
                conn.execute(sa.text(
                    "INSERT INTO pacing (wiki, account, tokens, updated_at, paused_until, pause_reason)"
                    " VALUES (:wiki, :account, 0, :now, :until, :reason)"),
                    {**self._pace_key(wiki, account), "now": now, "until": until, "reason": reason})
                return until
            until = max(until, row["paused_until"] or 0.0)
            conn.execute(sa.text(
                "UPDATE pacing SET tokens = 0, updated_at = :until, paused_until = :until,"
                " pause_reason = :reason WHERE wiki = :wiki AND account = :account"),
                {**self._pace_key(wiki, account), "until": until, "reason": reason})
            return until

    @ridden_out
    def pace_state(self, wiki: str, account: str) -> PaceState | None:
        """The account's pacing row, or None before anything was recorded."""
        with self._write() as conn:
            row = self._pace_row(conn, wiki, account)
            if row is None:
                return None
            now = self._now(conn, row).timestamp()
        limits = _stored_limits(row["limits"])
        limit = min(limits, key=lambda x: x.per_second) if limits else None
        return PaceState(row["capacity"], row["refill_per_s"], row["tokens"], row["paused_until"],
                         row["pause_reason"], limit, limits, now)

    # --- helpers ----------------------------------------------------------------------------------
    @staticmethod
    def _pace_key(wiki: str, account: str) -> dict[str, str]:
        return {"wiki": normalise_wiki(wiki), "account": normalise_account(account)}

    def _pace_row(self, conn: sa.Connection, wiki: str, account: str) -> sa.RowMapping | None:
        """The account's row, locked, with the database's clock on PostgreSQL (``db_now``)."""
        return conn.execute(sa.text(f"SELECT *{self._clock_column()} FROM pacing WHERE wiki = :wiki"
                                    " AND account = :account" + self._row_lock()),
                            self._pace_key(wiki, account)).mappings().first()

    @staticmethod
    def _refilled(row: sa.RowMapping, now: float) -> float:
        if row["capacity"] is None:
            return 0.0
        return refill(row["tokens"], row["capacity"], row["refill_per_s"], now - row["updated_at"])
