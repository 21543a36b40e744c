"""Reading ledger rows: one by id, path or reference, filtered lists, a row's history, counts.

Mixed into :class:`mwingest.ledger.ledger.Ledger`, whose connections and row helpers it uses. Every
read is one short transaction, run again on a new connection when a PostgreSQL ledger went away
for a moment (:func:`mwingest.ledger.outage.ridden_out`).
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterable, Iterator
from contextlib import AbstractContextManager
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from mwingest.ledger.model import (
    AmbiguousItemError,
    LedgerEvent,
    LedgerItem,
    State,
    UnknownItemError,
    normalise_account,
    normalise_source,
    normalise_wiki,
)
from mwingest.ledger.outage import ridden_out

_HEX_PREFIX = re.compile(r"[0-9a-fA-F]{6,40}")


class ReadsMixin:
    """The read half of the ledger: item, get, find, find_by_sha1, items, history, summary."""

    host: str
    where: str
    _read: Callable[[], AbstractContextManager[sa.Connection]]
    _stamp: Callable[..., str]
    _items_where: Callable[..., Iterator[LedgerItem]]
    _get: Callable[..., LedgerItem]

    @ridden_out
    def item(self, wiki: str, source: str | os.PathLike[str], *,
             account: str | None = None) -> LedgerItem | None:
        """The row this machine last saw at this path for this wiki (of any account, or of this
        one), or None."""
        where = "wiki = :wiki AND source = :source AND (host = :host OR host IS NULL)"
        params = {"wiki": normalise_wiki(wiki), "source": normalise_source(source), "host": self.host}
        if account is not None:
            where += " AND account IN (:account, '')"
            params["account"] = normalise_account(account)
        with self._read() as conn:
            return next(self._items_where(conn, where, order="updated_at DESC, id DESC", **params),
                        None)

    @ridden_out
    def get(self, item_id: int) -> LedgerItem:
        """The row with this id; :class:`UnknownItemError` if there is none."""
        with self._read() as conn:
            return self._get(conn, item_id)

    @ridden_out
    def find(self, ref: str | int, *, wiki: str | None = None, account: str | None = None) -> LedgerItem:
        """The one row ``ref`` names, on any machine: a :attr:`LedgerItem.ref`
        (``<SHA-1 or its first 6+ hex>[:<title>]``), ``manifest:<id>``, ``url:<url>:<title>``
        or this database's
        row id. ``wiki``/``account`` narrow it to a login's rows (a row of another wiki or
        account is not found). Raises :class:`UnknownItemError` or :class:`AmbiguousItemError`."""
        text = str(ref).strip()
        head, _, title = text.partition(":")
        if head == "sha1":  # the full ident: sha1:<40 hex>:<title>
            head, _, title = title.partition(":")
        scope, params = _scope(wiki, account)
        # Digits are a row id (``mwingest review 42``) unless no row has it and they can be the
        # start of a SHA-1; the 12 digits status prints are always a SHA-1's.
        tries: list[tuple[str, dict[str, Any]]] = []
        if text.isdigit() and len(text) < 12:
            tries.append(("id = :id", {"id": int(text)}))
        if head in ("manifest", "url"):
            tries.append(("ident = :ident", {"ident": text}))
        elif _HEX_PREFIX.fullmatch(head):
            tries.append(("sha1 LIKE :prefix" + (" AND ident = 'sha1:' || sha1 || ':' || :title"
                                                 if title else ""),
                          {"prefix": head.lower() + "%", **({"title": title} if title else {})}))
        if not tries:
            raise UnknownItemError(f"{text!r} is neither a row id, a reference (6 or more hex digits "
                                   "of the SHA-1[:title]) nor manifest:ID")
        rows: list[LedgerItem] = []
        with self._read() as conn:
            for where, extra in tries:
                rows = list(self._items_where(conn, " AND ".join([where, *scope]), **params, **extra))
                if rows:
                    break
        if not rows:
            raise UnknownItemError(f"no item {text} in {self.where}"
                                   + (f" for {wiki}" if wiki else ""))
        if len(rows) > 1:
            refs = [r.ref for r in rows]
            raise AmbiguousItemError(f"{text} matches {len(rows)} items: {', '.join(refs)}", refs)
        return rows[0]

    @ridden_out
    def find_by_sha1(self, wiki: str, sha1: str) -> list[LedgerItem]:
        """Every row on this wiki with these bytes, whatever path they came from."""
        with self._read() as conn:
            return list(self._items_where(conn, "wiki = :wiki AND sha1 = :sha1",
                                          wiki=normalise_wiki(wiki), sha1=sha1.lower()))

    @ridden_out
    def items(self, *, wiki: str | None = None, states: Iterable[State | str] | None = None,
              since: datetime | None = None, limit: int | None = None,
              account: str | None = None, reason: str | None = None) -> list[LedgerItem]:
        """Rows filtered by wiki, account, states, reason code and last change
        (``updated_at >= since``), oldest id first."""
        where, params = _scope(wiki, account)
        where.insert(0, "TRUE")
        if states is not None:
            wanted = [State(s).value for s in states]
            if not wanted:
                return []
            where.append("state IN :states")
            params["states"] = wanted
        if reason is not None:
            where.append("reason = :reason")
            params["reason"] = reason
        if since is not None:
            where.append("updated_at >= :since")
            params["since"] = self._stamp(since)
        order = "id" if limit is None else f"id LIMIT {int(limit)}"
        with self._read() as conn:
            return list(self._items_where(conn, " AND ".join(where), order=order, **params))

    @ridden_out
    def history(self, item_id: int) -> list[LedgerEvent]:
        """Every event of one item, oldest first."""
        with self._read() as conn:
            rows = conn.execute(sa.text("SELECT * FROM events WHERE item_id = :id ORDER BY id"),
                                {"id": item_id}).mappings().all()
        return [LedgerEvent(r["id"], r["item_id"], State(r["from_state"]) if r["from_state"] else None,
                            State(r["to_state"]), r["reason"], r["message"],
                            datetime.fromisoformat(r["at"]), r["run_id"]) for r in rows]

    @ridden_out
    def summary(self, wiki: str | None = None) -> dict[str, int]:
        """Count of rows per state (every state present, zeros included)."""
        sql, params = "SELECT state, COUNT(*) FROM items", {}
        if wiki is not None:
            sql, params = sql + " WHERE wiki = :wiki", {"wiki": normalise_wiki(wiki)}
        with self._read() as conn:
            rows = conn.execute(sa.text(sql + " GROUP BY state"), params).all()
        return {**{s.value: 0 for s in State}, **{state: int(n) for state, n in rows}}


def _scope(wiki: str | None, account: str | None) -> tuple[list[str], dict[str, Any]]:
    """The WHERE clauses (and their parameters) that narrow rows to a login's wiki and account;
    a row with no account (made before accounts were recorded) belongs to any account."""
    clauses: list[str] = []
    params: dict[str, Any] = {}
    if wiki is not None:
        clauses.append("wiki = :wiki")
        params["wiki"] = normalise_wiki(wiki)
    if account is not None:
        clauses.append("account IN (:account, '')")
        params["account"] = normalise_account(account)
    return clauses, params
