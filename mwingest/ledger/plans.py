"""Planned imports in the ledger database: the items a plan found, its shards and its runs.

Mixed into :class:`mwingest.ledger.ledger.Ledger`. Why in the ledger's database: it is the one store
every worker already shares (``MWINGEST_LEDGER_URL``). The plan reads the sources once and writes
each item here with its shard, so a shard run on any machine reads only its own items (re-reading
a 100,000-row manifest per shard cost ~12 s each, ``bench/bench_plan.py``), and URL items need no
shared storage at all. Which flow run drives each shard, and which run reports, is recorded here
too and changed only by compare-and-set (:meth:`PlanMixin.set_shard_run`,
:meth:`PlanMixin.adopt_report`): a report started again after its worker died knows the shards'
current runs, and two watchers never both start the same shard again.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager
from dataclasses import asdict, dataclass, fields
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from mwingest.base.items import IngestItem
from mwingest.ledger.model import LedgerError, normalise_wiki
from mwingest.ledger.outage import ridden_out
from mwingest.ledger.writes import _refuse_secret_names

_BATCH = 2000  # rows per INSERT round trip
_ITEM_FIELDS = {f.name for f in fields(IngestItem)}


class UnknownPlanError(LedgerError):
    """No plan with this id in this ledger database (another database, or a typo)."""


@dataclass(frozen=True)
class Plan:
    """One planned import: where it goes, how its shards run, and who reports on it."""

    id: str
    wiki: str
    login_block: str  # the credentials block's name (the shards log in with it)
    params: dict[str, Any]  # the shards' batch options (comment, chunk size, concurrency, …)
    files: int
    shards: int
    created_at: str
    report_run: str | None
    report_attempts: int


@dataclass(frozen=True)
class PlanShard:
    """One shard: its size, the flow run driving it now, and how many runs were started."""

    shard: int
    files: int
    bytes: int
    run_id: str | None
    attempts: int


def item_json(item: IngestItem) -> str:
    """An item as stored: JSON of its fields (tags as a list)."""
    return json.dumps(asdict(item), separators=(",", ":"), ensure_ascii=False)


def item_from_json(text: str) -> IngestItem:
    """The item back from :func:`item_json` (fields a later mwingest dropped are ignored)."""
    data = {k: v for k, v in json.loads(text).items() if k in _ITEM_FIELDS}
    data["tags"] = tuple(data.get("tags") or ())
    data["structured"] = tuple(tuple(pair) for pair in data.get("structured") or ())
    return IngestItem(**data)


class PlanMixin:
    """create_plan, plan, plan_ids, plan_items, shards_of, set_shard_run and adopt_report."""

    _now: Callable[..., datetime]
    _write: Callable[[], AbstractContextManager[sa.Connection]]
    _read: Callable[[], AbstractContextManager[sa.Connection]]
    _stamp: Callable[..., str]

    @ridden_out
    def create_plan(self, plan_id: str, *, wiki: str, login_block: str, params: dict[str, Any],
                    items: Sequence[IngestItem], sizes: Sequence[int],
                    shards: Sequence[tuple[int, int]]) -> Plan:
        """Write a plan, its items and its shards in one transaction (all of it or nothing)."""
        _refuse_secret_names(params)
        if len(sizes) != len(items):
            raise ValueError("one size per item")
        with self._write() as conn:
            conn.execute(sa.text(
                "INSERT INTO plans (id, wiki, login_block, params, files, shards, created_at)"
                " VALUES (:id, :wiki, :block, :params, :files, :shards, :at)"),
                {"id": plan_id, "wiki": normalise_wiki(wiki), "block": login_block,
                 "params": json.dumps(params, sort_keys=True), "files": len(items),
                 "shards": len(shards), "at": self._stamp(self._now(conn))})
            conn.execute(sa.text(
                "INSERT INTO plan_shards (plan, shard, files, bytes) VALUES"
                " (:plan, :shard, :files, :bytes)"),
                [{"plan": plan_id, "shard": n, "files": stop - start,
                  "bytes": sum(max(0, int(s)) for s in sizes[start:stop])}
                 for n, (start, stop) in enumerate(shards)])
            insert = sa.text("INSERT INTO plan_items (plan, seq, shard, size, item) VALUES"
                             " (:plan, :seq, :shard, :size, :item)")
            for batch in _batches(_item_rows(plan_id, items, sizes, shards), _BATCH):
                conn.execute(insert, batch)
            return self._plan(conn, plan_id)  # read in the transaction: a retry never re-inserts

    @ridden_out
    def plan(self, plan_id: str) -> Plan:
        with self._read() as conn:
            return self._plan(conn, plan_id)

    @staticmethod
    def _plan(conn: sa.Connection, plan_id: str) -> Plan:
        row = conn.execute(sa.text("SELECT * FROM plans WHERE id = :id"),
                           {"id": plan_id}).mappings().first()
        if row is None:
            raise UnknownPlanError(f"no plan {plan_id!r} in this ledger")
        return Plan(id=row["id"], wiki=row["wiki"], login_block=row["login_block"],
                    params=json.loads(row["params"]), files=row["files"], shards=row["shards"],
                    created_at=row["created_at"], report_run=row["report_run"],
                    report_attempts=row["report_attempts"])

    @ridden_out
    def plan_ids(self) -> list[str]:
        """Every plan in this database, the newest first."""
        with self._read() as conn:
            return list(conn.execute(sa.text(
                "SELECT id FROM plans ORDER BY created_at DESC, id")).scalars())

    @ridden_out
    def plan_items(self, plan_id: str, shard: int | None = None) -> list[IngestItem]:
        """The plan's items in the sources' order: all of them, or one shard's."""
        where, params = "plan = :plan", {"plan": plan_id}
        if shard is not None:
            where, params = "plan = :plan AND shard = :shard", {"plan": plan_id, "shard": shard}
        with self._read() as conn:
            rows = conn.execute(sa.text(f"SELECT item FROM plan_items WHERE {where} ORDER BY seq"),
                                params).scalars().all()
        return [item_from_json(text) for text in rows]

    @ridden_out
    def shards_of(self, plan_id: str) -> list[PlanShard]:
        with self._read() as conn:
            rows = conn.execute(sa.text(
                "SELECT shard, files, bytes, run_id, attempts FROM plan_shards WHERE plan = :plan"
                " ORDER BY shard"), {"plan": plan_id}).mappings().all()
        return [PlanShard(**row) for row in rows]

    @ridden_out
    def set_shard_run(self, plan_id: str, shard: int, run_id: str, *,
                      expect: str | None) -> bool:
        """Record ``run_id`` as the shard's run if its run is still ``expect`` (None: none yet);
        False when another watcher got there first (then its run stands)."""
        with self._write() as conn:
            done = conn.execute(sa.text(
                "UPDATE plan_shards SET run_id = :run, attempts = attempts + 1 WHERE plan = :plan"
                " AND shard = :shard AND " + ("run_id IS NULL" if expect is None
                                               else "run_id = :expect")),
                {"run": run_id, "plan": plan_id, "shard": shard, "expect": expect})
            return done.rowcount == 1

    @ridden_out
    def adopt_report(self, plan_id: str, run_id: str) -> Plan:
        """This run is the plan's report from now on (a report started again after its worker
        died takes over); the plan as it is then, ``report_attempts`` counting this run."""
        with self._write() as conn:
            done = conn.execute(sa.text(
                "UPDATE plans SET report_run = :run, report_attempts = report_attempts + 1"
                " WHERE id = :id AND (report_run IS NULL OR report_run <> :run)"),
                {"run": run_id, "id": plan_id})
            if done.rowcount == 0:
                exists = conn.execute(sa.text("SELECT 1 FROM plans WHERE id = :id"),
                                      {"id": plan_id}).first()
                if exists is None:
                    raise UnknownPlanError(f"no plan {plan_id!r} in this ledger")
        return self.plan(plan_id)


def _item_rows(plan_id: str, items: Sequence[IngestItem], sizes: Sequence[int],
               shards: Sequence[tuple[int, int]]) -> Iterator[dict[str, Any]]:
    for number, (start, stop) in enumerate(shards):
        for seq in range(start, stop):
            yield {"plan": plan_id, "seq": seq, "shard": number, "size": max(0, int(sizes[seq])),
                   "item": item_json(items[seq])}


def _batches(rows: Iterator[dict[str, Any]], size: int) -> Iterator[list[dict[str, Any]]]:
    batch: list[dict[str, Any]] = []
    for row in rows:
        batch.append(row)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch
