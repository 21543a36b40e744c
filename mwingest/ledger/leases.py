"""Claims and leases on ledger rows: which worker drives a file, until when.

Why leases and not locks held for the whole upload: a chunked upload lasts minutes to hours and
a database transaction must not. A worker *claims* rows (owner ``host:pid:run``, an expiry) in a
short transaction and renews the lease while it works; a worker that dies stops renewing, its
lease runs out, and another worker claims the row and continues from what the row (and the wiki's
offset) says. On PostgreSQL the claim reads with ``FOR UPDATE SKIP LOCKED``, so concurrent
claimers never wait on, nor both get, one row; on SQLite the write lock (``BEGIN IMMEDIATE``)
serialises claimers, which gives the same result.

Every expiry is set and judged by the ledger's time (:meth:`Ledger._now`): on PostgreSQL the
database's clock, read with the row or inside the statement, so machines whose clocks disagree
never take each other's live leases; on SQLite, one machine's clock.

Mixed into :class:`mwingest.ledger.ledger.Ledger`, whose transactions and clock it uses.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from contextlib import AbstractContextManager
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa

from mwingest.ledger.model import (
    Lease,
    LedgerItem,
    State,
    UnknownItemError,
    normalise_account,
    normalise_wiki,
)
from mwingest.ledger.outage import ridden_out

#: Rows a worker may claim by default: every unfinished state that needs no person. ``failed``
#: rows are retried only when asked for (their failure may be one a re-run does not fix).
CLAIMABLE: frozenset[State] = frozenset({State.PENDING, State.VALIDATED, State.STASHING,
                                         State.STASHED, State.PUBLISHING, State.PUBLISHED})


class LeaseMixin:
    """The lease half of the ledger: claim, claim_next, renew, release."""

    dialect: str
    _write: Callable[[], AbstractContextManager[sa.Connection]]
    _stamp: Callable[..., str]
    _now: Callable[..., datetime]
    _clock_column: Callable[[], str]
    _sql_stamp: Callable[..., tuple[str, dict[str, Any]]]
    _items_where: Callable[..., Iterator[LedgerItem]]

    @ridden_out
    def claim(self, item_id: int, owner: str, *, ttl: timedelta,
              is_stale: Callable[[str], bool] | None = None) -> bool:
        """Take (or renew) the lease on one row for ``ttl``; False when another live run holds it.

        A lease runs out after ``ttl`` without renewal; ``is_stale(owner)`` may free it earlier,
        e.g. when the owner is a process on this machine that no longer exists (``kill -9``).
        """
        lease = Lease(owner, ttl, is_stale)
        with self._write() as conn:
            row = conn.execute(sa.text(f"SELECT lease_owner, lease_until{self._clock_column()}"
                                       " FROM items WHERE id = :id" + self._row_lock()),
                               {"id": item_id}).mappings().first()
            if row is None:
                raise UnknownItemError(f"no ledger item {item_id}")
            now = self._now(conn, row)
            until = datetime.fromisoformat(row["lease_until"]) if row["lease_until"] else None
            if self._held(row["lease_owner"], until, lease, now):
                return False
            self._lease(conn, item_id, lease, now)
            return True

    @ridden_out
    def claim_next(self, owner: str, *, wiki: str, account: str = "", ttl: timedelta,
                   limit: int = 1, states: Iterable[State | str] = CLAIMABLE) -> list[LedgerItem]:
        """Claim up to ``limit`` rows of (wiki, account) that no live lease holds, oldest first.

        Rows the caller already holds are not returned again (:meth:`renew` keeps them), so a
        worker can loop until this answers ``[]``. Two workers calling this at
        the same moment never get the same row: on PostgreSQL rows another transaction is
        claiming are skipped (``SKIP LOCKED``), on SQLite the claims run one after the other.
        """
        wanted = sorted(State(s).value for s in states)
        if limit < 1 or not wanted:
            return []
        names = {f"s{n}": v for n, v in enumerate(wanted)}
        skip = " FOR UPDATE SKIP LOCKED" if self.dialect == "postgresql" else ""
        now, now_param = self._sql_stamp("now")
        with self._write() as conn:
            ids = conn.execute(sa.text(
                "SELECT id FROM items WHERE wiki = :wiki AND account IN (:account, '')"
                f" AND state IN ({', '.join(':' + n for n in names)})"
                f" AND (lease_owner IS NULL OR lease_until IS NULL OR lease_until <= {now})"
                f" ORDER BY id LIMIT :limit{skip}"),
                {"wiki": normalise_wiki(wiki), "account": normalise_account(account), **now_param,
                 "limit": int(limit), **names}).scalars().all()
            if not ids:
                return []
            until, until_param = self._sql_stamp("until", ttl)
            conn.execute(sa.text("UPDATE items SET lease_owner = :owner, lease_until = " + until
                                 + " WHERE id IN :ids").bindparams(
                                     sa.bindparam("ids", expanding=True)),
                         {"owner": owner, **until_param, "ids": list(ids)})
            return list(self._items_where(conn, "id IN :ids", ids=list(ids)))

    @ridden_out
    def renew(self, owner: str, *, ttl: timedelta, item_ids: Iterable[int] | None = None) -> list[int]:
        """Push the expiry of ``owner``'s leases (all, or these rows) to now + ``ttl``; the ids
        still held. A row missing from the answer was taken over after the lease ran out: the
        worker must stop driving it."""
        until, params = self._sql_stamp("until", ttl)
        params["owner"] = owner
        sql = f"UPDATE items SET lease_until = {until} WHERE lease_owner = :owner"
        stmt = sa.text(sql + " RETURNING id")
        if item_ids is not None:
            params["ids"] = list(item_ids)
            if not params["ids"]:
                return []
            stmt = sa.text(sql + " AND id IN :ids RETURNING id").bindparams(
                sa.bindparam("ids", expanding=True))
        with self._write() as conn:
            return sorted(conn.execute(stmt, params).scalars().all())

    @ridden_out
    def release(self, item_id: int, owner: str) -> None:
        """Give the lease back (only the holder's release counts)."""
        with self._write() as conn:
            conn.execute(sa.text("UPDATE items SET lease_owner = NULL, lease_until = NULL"
                                 " WHERE id = :id AND lease_owner = :owner"),
                         {"id": item_id, "owner": owner})

    # --- helpers ----------------------------------------------------------------------------------
    def _row_lock(self) -> str:
        """``FOR UPDATE`` on PostgreSQL: a write that reads a row first keeps others off it until
        commit. SQLite's write transaction already excludes every other writer."""
        return " FOR UPDATE" if self.dialect == "postgresql" else ""

    @staticmethod
    def _held(holder: str | None, until: datetime | None, lease: Lease, now: datetime) -> bool:
        """True when another run's lease on the row is still good at ``now`` (the ledger's time)."""
        return bool(holder and holder != lease.owner and until and until > now
                    and not (lease.is_stale is not None and lease.is_stale(holder)))

    def _lease(self, conn: sa.Connection, item_id: int, lease: Lease | None, now: datetime) -> None:
        if lease is not None:
            conn.execute(sa.text("UPDATE items SET lease_owner = :owner, lease_until = :until"
                                 " WHERE id = :id"),
                         {"owner": lease.owner, "until": self._stamp(now + lease.ttl),
                          "id": item_id})
