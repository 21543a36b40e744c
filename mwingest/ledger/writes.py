"""The ledger's writes: a run's interest in a file (:meth:`begin`), the state machine's moves
(:meth:`transition`) and chunk progress (:meth:`record_chunk`), each one transaction with its event.

Mixed into :class:`mwingest.ledger.ledger.Ledger`, whose transactions, clock and row lock it uses. Free
text passes the redactor and credential-like field names are refused here, at the one place
rows are written, so no backend stores a secret.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable, Mapping
from contextlib import AbstractContextManager
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa

from mwingest.base.redact import redact
from mwingest.ledger.model import (
    DECISION_ACTIONS,
    JSON_COLUMNS,
    OUTCOMES,
    TRANSITIONS,
    IllegalTransitionError,
    Lease,
    LedgerItem,
    RowLeasedError,
    State,
    item_from_row,
    make_ident,
    normalise_account,
    normalise_source,
    normalise_wiki,
)
from mwingest.ledger.outage import ridden_out

_FIELDS = frozenset({"filekey", "offset", "chunk_size", "stash_created_at", "final_name", "target",
                     "warnings", "decision", "params", "intent", "flow_run_id", "task_run_id"})
#: States that keep the intent of the write in flight (a failed row keeps it for the re-run).
_KEEPS_INTENT = frozenset({State.PUBLISHING, State.FAILED})
_SECRETISH = re.compile(r"pass(word|wd)?|token|cookie|secret|credential|api_?key", re.IGNORECASE)
_SHA1 = re.compile(r"[0-9a-f]{40}")

#: By default every secret the process has seen (passwords, tokens, cookies) is masked.
_redactor: Callable[[str], str] = redact


def set_redactor(redactor: Callable[[str], str] | None) -> None:
    """Install the function that scrubs reasons and messages before they are stored (None: the
    default, :func:`mwingest.base.redact.redact`)."""
    global _redactor
    _redactor = redactor or redact


def _refuse_secret_names(value: Any) -> None:
    """Raise if a field name, or a key anywhere inside a JSON value, looks like a credential."""
    if isinstance(value, Mapping):
        if any(_SECRETISH.search(str(key)) for key in value):
            raise ValueError("the ledger never stores credentials; refused a field that looks like one")
        value = list(value.values())
    if isinstance(value, list | tuple):
        for inner in value:
            _refuse_secret_names(inner)


def _redact(text: str | None) -> str | None:
    return None if text is None else _redactor(str(text))


def _one(conn: sa.Connection, sql: str, **params: Any) -> tuple[LedgerItem | None, Any]:
    """The row (or None) and the ``db_now`` read with it, if the select asked for it."""
    row = conn.execute(sa.text(sql), params).mappings().first()
    if row is None:
        return None, None
    return item_from_row({k: v for k, v in row.items() if k != "db_now"}), row.get("db_now")


class WritesMixin:
    """The write half of the ledger."""

    host: str
    _write: Callable[[], AbstractContextManager[sa.Connection]]
    _stamp: Callable[..., str]
    _now: Callable[..., datetime]
    _clock_column: Callable[[], str]
    _sql_stamp: Callable[..., tuple[str, dict[str, Any]]]
    _get_locked: Callable[..., tuple[LedgerItem, datetime]]
    _row_lock: Callable[[], str]
    _held: Callable[..., bool]
    _lease: Callable[..., None]
    _get: Callable[..., LedgerItem]

    @ridden_out
    def begin(self, wiki: str, source: str | os.PathLike[str], *, sha1: str, size: int, target: str,
              run_id: str | None = None, lease: Lease | None = None, account: str = "",
              key: str | None = None, params: Mapping[str, Any] | None = None) -> LedgerItem:
        """Register a run's interest in a file and return its row.

        The row is the one with this identity — (wiki, account, ``key`` or these bytes under this
        title) — wherever and on whichever machine it was made; failing that, the row this
        machine made for this path (its bytes or name changed since). With ``lease`` the row is
        claimed in the same transaction; a row another live run holds raises
        :class:`RowLeasedError` and is left exactly as it was.

        A new file starts ``pending``. A known one comes back as it is, so the caller sees that it
        is uploaded or can resume its stash; ``attempts`` counts the runs that picked it up while
        unfinished. Changed bytes (SHA-1 or size) start the row over, as does a new target for a
        rejected file (the rejection may have been the name).

        With ``params`` (the text, comment and tags it will be sent with) a **new** row is moved
        on to ``validated`` in the same transaction, both events recorded: one commit (one fsync)
        less per new file. No crash point is lost, since nothing is sent to the wiki between the
        two; a known row ignores ``params`` (its caller moves it as it stands).
        """
        sha1 = sha1.lower()
        if not _SHA1.fullmatch(sha1) or size < 0:
            raise ValueError("sha1 must be 40 hex digits and size ≥ 0")
        args = dict(wiki=normalise_wiki(wiki), source=normalise_source(source), sha1=sha1, size=size,
                    target=target, run_id=run_id, lease=lease, account=normalise_account(account),
                    ident=make_ident(sha1, target, key, source=normalise_source(source)),
                    params=params)
        try:
            with self._write() as conn:
                return self._begin(conn, **args)
        except sa.exc.IntegrityError:  # another machine inserted this identity a moment ago
            with self._write() as conn:
                return self._begin(conn, **args)

    def _begin(self, conn: sa.Connection, *, wiki: str, source: str, sha1: str, size: int,
               target: str, run_id: str | None, lease: Lease | None, account: str,
               ident: str, params: Mapping[str, Any] | None = None) -> LedgerItem:
        lock, clock = self._row_lock(), self._clock_column()
        who = {"wiki": wiki, "account": account}
        old, db_now = _one(conn, f"SELECT *{clock} FROM items WHERE wiki = :wiki"
                           " AND account IN (:account, '') AND ident = :ident"
                           f" ORDER BY account DESC LIMIT 1{lock}", **who, ident=ident)
        if old is None and ident.startswith("sha1:"):  # this machine's path, other bytes or name
            old, db_now = _one(conn, f"SELECT *{clock} FROM items WHERE wiki = :wiki"
                               " AND account IN (:account, '') AND source = :source"
                               " AND (host = :host OR host IS NULL) AND ident LIKE 'sha1:%'"
                               f" ORDER BY updated_at DESC, id DESC LIMIT 1{lock}",
                               **who, source=source, host=self.host)
        if old is None:  # the insert stamps the row and tells the time (no read of the clock)
            stamp, stamp_param = self._sql_stamp("now")
            item_id, now = conn.execute(sa.text(
                "INSERT INTO items (wiki, account, ident, host, source, sha1, size, target, state,"
                " flow_run_id, created_at, updated_at, attempts) VALUES (:wiki, :account, :ident,"
                f" :host, :source, :sha1, :size, :target, 'pending', :run, {stamp}, {stamp}, 1)"
                " RETURNING id, created_at"),
                {**who, "ident": ident, "host": self.host, "source": source, "sha1": sha1,
                 "size": size, "target": target, "run": run_id, **stamp_param}).one()
            when = datetime.fromisoformat(now)
            self._event(conn, item_id, None, State.PENDING, "new", None, run_id, now)
            if params is not None:  # validated at once: see begin()
                _refuse_secret_names(params)
                conn.execute(sa.text("UPDATE items SET state = 'validated', params = :params"
                                     " WHERE id = :id"),
                             {"params": json.dumps(params, sort_keys=True), "id": item_id})
                self._event(conn, item_id, State.PENDING, State.VALIDATED, None, None, run_id, now)
            self._lease(conn, item_id, lease, when)
            return self._get(conn, item_id)
        when = self._now(conn, {"db_now": db_now})
        now = self._stamp(when)
        if lease is not None and self._held(old.lease_owner, old.lease_until, lease, when):
            raise RowLeasedError(f"item {old.ref} is leased by another run", old)
        keys = {"ident": ident, "source": source, "host": self.host, "account": account or old.account}
        if (old.sha1, old.size) != (sha1, size) or (old.state is State.REJECTED and old.target != target):
            why = "source-changed" if old.sha1 != sha1 or old.size != size else "target-changed"
            self._reset(conn, old, why, run_id, now, sha1=sha1, size=size, target=target, **keys)
        elif not old.done:
            conn.execute(sa.text(
                "UPDATE items SET target = :target, ident = :ident, source = :source, host = :host,"
                " account = :account, flow_run_id = COALESCE(:run, flow_run_id),"
                " attempts = attempts + 1, updated_at = :now WHERE id = :id"),
                {**keys, "target": target, "run": run_id, "now": now, "id": old.id})
            self._event(conn, old.id, old.state, old.state, "begin", None, run_id, now)
        self._lease(conn, old.id, lease, when)
        return self._get(conn, old.id)

    @ridden_out
    def transition(self, item_id: int, to: State | str, *, reason: str | None = None,
                   message: str | None = None, owner: str | None = None, **fields: Any) -> LedgerItem:
        """Move one item to ``to`` in one transaction, with an event; illegal moves raise.

        With ``owner`` (the worker's lease id) the move is refused with :class:`RowLeasedError`,
        and nothing written, when another worker holds a live lease on the row: a worker that
        stalled past its lease and was taken over can no longer move the row (a fence).

        ``fields`` may set filekey, offset, chunk_size, stash_created_at, final_name, target,
        warnings (JSON), decision (``{"action": "skip"|"publish"|"rename"|"fail", "name", "by", "at"}``),
        flow_run_id and task_run_id (None keeps the old run id). Outcomes need a reason code.
        Moving to ``validated`` or ``pending`` forgets the stash (the wiki's copy is gone or unwanted).
        """
        _refuse_secret_names(fields)
        fields = {k: v for k, v in fields.items() if v is not None or not k.endswith("run_id")}
        if unknown := set(fields) - _FIELDS:
            raise ValueError(f"unknown ledger fields: {sorted(unknown)}")
        to = State(to)
        if to in OUTCOMES and not reason:
            raise ValueError(f"moving to {to} needs a reason code")
        with self._write() as conn:
            old, when = self._get_locked(conn, item_id)
            now = self._stamp(when)
            self._fence(old, owner, when)
            if to not in TRANSITIONS[old.state]:
                raise IllegalTransitionError(f"item {item_id}: {old.state} → {to} is not allowed")
            if to in (State.VALIDATED, State.PENDING):
                fields = {"filekey": None, "offset": 0, "chunk_size": None, "stash_created_at": None,
                          **fields}
            if to not in _KEEPS_INTENT:
                fields = {"intent": None, **fields}
            values = self._columns(old, fields, now)
            if to in OUTCOMES:  # the run is done with the row: its lease ends with the move
                values.update(lease_owner=None, lease_until=None)
            if to is State.FAILED:  # where a re-run picks it up (a failed row failing again keeps it)
                values["failed_from"] = (old.failed_from or State.VALIDATED).value if (
                    old.state is State.FAILED) else old.state.value
            else:
                values["failed_from"] = None
            values.update(state=to.value, reason=_redact(reason), message=_redact(message),
                          updated_at=now)
            assignments = ", ".join(f'"{col}" = :v_{col}' for col in values)
            conn.execute(sa.text(f"UPDATE items SET {assignments} WHERE id = :id"),
                         {**{f"v_{col}": v for col, v in values.items()}, "id": item_id})
            run_id = fields.get("flow_run_id") or old.flow_run_id
            self._event(conn, item_id, old.state, to, reason, message, run_id, now)
            return self._get(conn, item_id)

    @ridden_out
    def record_chunk(self, item_id: int, *, filekey: str, offset: int, chunk_size: int,
                     owner: str | None = None) -> None:
        """Store the stash key and next offset after a chunk landed: one statement, one commit.

        A new filekey (first chunk, or a restarted session) restarts the 6-hour stash clock.
        ``owner`` fences as in :meth:`transition`.
        """
        if offset < 0 or chunk_size <= 0 or not filekey:
            raise ValueError("record_chunk needs a filekey, offset ≥ 0 and chunk_size > 0")
        now, now_param = self._sql_stamp("now")  # in the statement: no round trip for the time
        fence = (" AND (lease_owner IS NULL OR lease_owner = :owner OR lease_until IS NULL"
                 f" OR lease_until <= {now})") if owner else ""
        with self._write() as conn:
            cur = conn.execute(sa.text(
                f"""UPDATE items SET "offset" = :offset, chunk_size = :chunk, updated_at = {now},
                     stash_created_at = CASE WHEN filekey = :fk AND stash_created_at IS NOT NULL
                                             THEN stash_created_at ELSE {now} END, filekey = :fk
                   WHERE id = :id AND state = 'stashing' AND size >= :offset""" + fence),
                {"offset": offset, "chunk": chunk_size, **now_param, "fk": filekey,
                 "id": item_id, **({"owner": owner} if owner else {})})
            if cur.rowcount == 1:
                return
            item = self._get(conn, item_id)
            if owner:
                self._fence(item, owner, self._now(conn))
        raise IllegalTransitionError(
            f"item {item_id}: record_chunk needs state stashing and offset ≤ size "
            f"(state {item.state}, size {item.size}, offset {offset})")

    # --- helpers ----------------------------------------------------------------------------------
    def _fence(self, row: LedgerItem, owner: str | None, now: datetime) -> None:
        if owner and self._held(row.lease_owner, row.lease_until, Lease(owner, timedelta(0)), now):
            raise RowLeasedError(f"item {row.ref} is leased by another run ({row.lease_owner})", row)

    @ridden_out
    def reopen(self, item_id: int, reason: str, *, run_id: str | None = None,
               keep_stash: bool = False) -> LedgerItem:
        """A ``rejected`` row whose input changed (its page text, comment or tags): ready to go
        again. With ``keep_stash`` it goes back to ``stashed`` with its key, because the wiki
        still holds the bytes (nothing is sent twice); else it starts over from ``pending``."""
        with self._write() as conn:
            old, when = self._get_locked(conn, item_id)
            now = self._stamp(when)
            if old.state is not State.REJECTED:
                raise ValueError(f"item {old.ref} is {old.state}, not rejected")
            if keep_stash and old.filekey:
                conn.execute(sa.text(
                    """UPDATE items SET state = 'stashed', reason = :reason, message = NULL,
                       warnings = NULL, decision = NULL, intent = NULL, attempts = attempts + 1,
                       flow_run_id = COALESCE(:run, flow_run_id), updated_at = :now
                       WHERE id = :id"""),
                    {"reason": reason, "run": run_id, "now": now, "id": item_id})
                self._event(conn, item_id, old.state, State.STASHED, reason, None, run_id, now)
            else:
                self._reset(conn, old, reason, run_id, now, target=old.target)
            return self._get(conn, item_id)

    def _reset(self, conn: sa.Connection, old: LedgerItem, reason: str, run_id: str | None,
               now: str, **values: Any) -> None:
        """Start a row over from ``pending`` with new bytes or name; its history stays."""
        cleared = ", ".join(f'"{c}" = NULL' for c in (
            "final_name", "filekey", "chunk_size", "stash_created_at", "warnings", "decision",
            "task_run_id", "intent"))
        assigned = ", ".join(f"{name} = :{name}" for name in values)
        conn.execute(sa.text(
            f"""UPDATE items SET state = 'pending', {assigned}, reason = :reason, message = NULL,
                "offset" = 0, {cleared}, attempts = attempts + 1,
                flow_run_id = COALESCE(:run, flow_run_id), updated_at = :now WHERE id = :id"""),
            {**values, "reason": reason, "run": run_id, "now": now, "id": old.id})
        self._event(conn, old.id, old.state, State.PENDING, reason, None, run_id, now)

    def _event(self, conn: sa.Connection, item_id: int, from_state: State | None, to: State,
               reason: str | None, message: str | None, run_id: str | None, at: str) -> None:
        conn.execute(sa.text(
            "INSERT INTO events (item_id, from_state, to_state, reason, message, at, run_id)"
            " VALUES (:id, :src, :dst, :reason, :message, :at, :run)"),
            {"id": item_id, "src": from_state.value if from_state else None, "dst": to.value,
             "reason": _redact(reason), "message": _redact(message), "at": at,
             "run": run_id})

    def _columns(self, old: LedgerItem, fields: Mapping[str, Any], now: str) -> dict[str, Any]:
        """Turn ``transition`` fields into column values (JSON, timestamps), checking each."""
        values: dict[str, Any] = {}
        for name, value in fields.items():
            if name in JSON_COLUMNS and value is not None:
                _refuse_secret_names(value)
                if name == "decision":
                    value = self._decision(value, now)
                value = json.dumps(value, sort_keys=True)
            elif name == "stash_created_at" and value is not None:
                value = self._stamp(value)
            elif name in ("offset", "chunk_size") and value is not None and (
                    int(value) < 0 or (name == "offset" and int(value) > old.size)):
                raise ValueError(f"{name} {value} is out of range for a {old.size}-byte file")
            values[name] = value
        new_key = values.get("filekey", old.filekey)
        if new_key and new_key != old.filekey and "stash_created_at" not in values:
            values["stash_created_at"] = now  # a new stash row: its 6-hour clock starts now
        return values

    @staticmethod
    def _decision(decision: Mapping[str, Any], now: str) -> dict[str, Any]:
        out = {k: v for k, v in decision.items() if v is not None}
        # ``resubmitted``: a warned publish a person decided on was sent a second time (an
        # AbuseFilter warning lets an identical second attempt through; mwingest.job.refusals).
        if set(out) - {"action", "name", "by", "at", "note", "tried", "resubmitted"}:
            raise ValueError("a decision has only action, name, by, at, note, tried and "
                             "resubmitted")
        if out.get("action") not in DECISION_ACTIONS:
            raise ValueError(f"decision action must be one of {sorted(DECISION_ACTIONS)}")
        if out["action"] == "rename" and not out.get("name"):
            raise ValueError("a rename decision needs the new name")
        out.setdefault("at", now)
        return out
