"""The step after a verified landing: the file's structured data (captions, statements) on its
MediaInfo entity ``M<page id>``, written once, read back, never lost silently.

Why it reads before every write instead of trusting the ledger: the write that matters can be
lost in three ways — its answer lost (the wiki acted, we do not know), the run killed between
the intent and the answer, someone else editing in between. In each, the entity on the wiki is
the truth. So each attempt reads the entity, works out what of the batch's structured data is
*missing* (a caption of a language the file has none in, a statement whose property and value are
not there), records that as the row's intent and sends it in one ``wbeditentity`` based on the
revision it read. A retry, a resumed run or a re-run of the batch thus writes only what is still
missing: never a statement twice. What someone else wrote stays: a caption the file already has
in a language is kept (and said so), and Wikibase patches our edit around theirs or refuses it
(``editconflict``), after which the step reads again.

How it ends, always with the file ``uploaded`` (its bytes are on the wiki and verified):

* the reason of the landing (``verified``, ``decided-…``) when everything the batch asked for is
  on the entity, read back after the write; the message lists the captions and statements;
* reason ``structured-data-failed`` otherwise, with what is on the wiki and why the rest is not.
  The summary counts these apart and the command exits 1; a re-run takes the step up again.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any, Protocol

from mwingest.base.errors import MWIngestError
from mwingest.base.items import FAILED, REJECTED, SKIPPED, UPLOADED, IngestItem, Outcome
from mwingest.describe.structured import value_key
from mwingest.job.context import JobContext
from mwingest.ledger.ledger import LedgerItem, State
from mwingest.wiki import mediainfo


class Job(Protocol):
    """What this step uses of :class:`mwingest.job.machine.Job` (which calls it: no import back)."""

    ctx: JobContext
    item: IngestItem

    def _row(self) -> LedgerItem: ...

    def _move(self, to: State, reason: str | None = None, message: str | None = None,
              **fields: Any) -> None: ...

    def _params(self) -> dict[str, Any]: ...

log = logging.getLogger("mwingest.job.structured")
FAILED_REASON = "structured-data-failed"
#: Edit conflicts in a row before the step gives up (each costs a read and a refused write).
CONFLICT_TRIES = 3


def wanted(row: LedgerItem | None) -> dict[str, Any] | None:
    """The structured data the row's batch asked for (``params["sdc"]``), or None."""
    sdc = ((row.params if row is not None else None) or {}).get("sdc")
    return sdc if sdc and (sdc.get("labels") or sdc.get("statements")) else None


def params_of(sdc_json: str | None) -> dict[str, Any]:
    """What the item's checked structured data adds to the row's params."""
    return {"sdc": json.loads(sdc_json)} if sdc_json else {}


def again(row: LedgerItem, params: Mapping[str, Any]) -> bool:
    """A landed file whose structured data a re-run should (still) write: it failed last time, or
    this run asks for other structured data than the row's."""
    sdc = params.get("sdc")
    return (row.state is State.UPLOADED and bool(sdc)
            and (row.reason == FAILED_REASON or (row.params or {}).get("sdc") != sdc))


def missing(want: Mapping[str, Any], entity: mediainfo.Entity) -> tuple[
        dict[str, str], list[dict[str, Any]], dict[str, str]]:
    """(captions to add, statements to add, captions someone else set differently: kept)."""
    labels, kept = {}, {}
    for lang, text in (want.get("labels") or {}).items():
        have = entity.labels.get(lang)
        if have is None:
            labels[lang] = text
        elif have != text:
            kept[lang] = have
    present = {(prop, value_key(v)) for prop, values in entity.statements.items() for v in values}
    claims = []
    for statement in want.get("statements") or ():
        key = (statement["property"], value_key(statement["datavalue"]["value"]))
        if key not in present:
            present.add(key)  # the same value twice in a cell is one statement
            claims.append(statement)
    return labels, claims, kept


def describe(job: Job) -> None:
    """The ``describing`` step: read, write what is missing, read back; end ``uploaded``."""
    row = job._row()
    want = wanted(row)
    name = row.final_name or row.target
    if want is None:
        return _end(job, None, f"landed as File:{name} (SHA-1 verified)")
    reason, said = write(job.ctx.session, name, want,
                         summary=job._params().get("comment") or "structured data",
                         record=lambda intent: job._move(State.DESCRIBING, intent=intent))
    _end(job, reason, f"landed as File:{name} (SHA-1 verified); {said}" if reason is None
         else f"File:{name} landed (SHA-1 verified); {said}")


def write(session: Any, name: str, want: Mapping[str, Any], *, summary: str,
          record: Callable[[dict[str, Any]], None] = lambda intent: None) -> tuple[str | None, str]:
    """Give ``File:name`` what of ``want`` its entity lacks: read, ``record`` the intent, one
    edit, read back. (None, what is there) when all of it is; else (:data:`FAILED_REASON`, why)."""
    for _ in range(CONFLICT_TRIES):
        entity = mediainfo.read(session, name)
        if entity is None:
            return FAILED_REASON, f"File:{name} has no page to hold structured data"
        labels, claims, kept = missing(want, entity)
        if not labels and not claims:
            return compare(want, entity, kept)
        record({"op": "describe", "entity": entity.id, "baserevid": entity.baserevid,
                "labels": sorted(labels),
                "statements": [f"{c['property']}={c['shown']}" for c in claims],
                "at": datetime.now(UTC).isoformat(timespec="seconds")})
        try:
            mediainfo.edit(session, entity, labels=labels, summary=summary,
                           claims=[mediainfo.claim(c["property"], c["datavalue"]) for c in claims])
        except mediainfo.EditConflictError as exc:
            log.warning("File:%s: %s; reading it again", name, exc)
            continue
        entity = mediainfo.read(session, name)
        if entity is None:
            return FAILED_REASON, f"File:{name} is gone after its structured data edit"
        return compare(want, entity, kept)
    return FAILED_REASON, (f"its structured data met {CONFLICT_TRIES} edit conflicts in a row "
                           "and was not written")


def fail(job: Job, exc: BaseException) -> None:
    """The step could not finish (faults past the retry budget): the landing stands."""
    row = job._row()
    _end(job, FAILED_REASON, f"File:{row.final_name or row.target} landed (SHA-1 verified); its "
         f"structured data was not written: {exc}")


def compare(want: Mapping[str, Any], entity: mediainfo.Entity,
            kept: Mapping[str, str]) -> tuple[str | None, str]:
    """What the wiki holds against what was asked, both said for a person to read."""
    labels, claims, kept_now = missing(want, entity)
    kept = {**kept, **kept_now}
    on_wiki = shown(want, entity)
    if labels or claims or kept:
        lacking = [f"caption.{lang}" for lang in labels]
        lacking += [f"{c['column']}={c['shown']}" for c in claims]
        lacking += [f"caption.{lang} (the wiki has another: {text!r})" for lang, text in kept.items()]
        return FAILED_REASON, (f"structured data on the wiki: {on_wiki or 'none'}; not written: "
                               f"{', '.join(lacking)}")
    return None, f"structured data: {on_wiki}"


def shown(want: Mapping[str, Any], entity: mediainfo.Entity | None) -> str:
    """The batch's captions and statements that the entity holds (all of them without an
    entity: what is to be written), for a person to read."""
    langs = sorted(lang for lang, text in (want.get("labels") or {}).items()
                   if entity is None or entity.labels.get(lang) == text)
    parts = [f"captions {', '.join(langs)}"] if langs else []
    present = {(p, value_key(v)) for p, values in (entity.statements if entity else {}).items()
               for v in values}
    by_column: dict[str, list[str]] = {}
    for s in want.get("statements") or ():
        if entity is None or (s["property"], value_key(s["datavalue"]["value"])) in present:
            values = by_column.setdefault(f"{s['column']} ({s['property']})", [])
            if s["shown"] not in values:
                values.append(s["shown"])
    parts += [f"{column} {', '.join(values)}" for column, values in by_column.items()]
    return "; ".join(parts)


def _end(job: Job, reason: str | None, message: str) -> None:
    row = job._row()
    landed = f"decided-{row.decision['action']}" if row.decision else "verified"
    job._move(State.UPLOADED, reason or landed, message, final_name=row.final_name or row.target)


def describe_existing(session: Any, items: list[IngestItem], *, comment: str,
                      retry: Any = None) -> list[Outcome]:
    """``mwingest describe``: the structured data of files already on the wiki, by title (items
    checked by :func:`mwingest.describe.structured.check_items` first). No ledger: every attempt
    reads the entity, so a repeat, or a retry after a lost answer, writes only what is missing.
    ``uploaded``/``described`` when something was written, ``skipped``/``already-described``
    when the file had it all, ``failed``/``structured-data-failed`` when it could not be."""
    out = []
    for item in items:
        title = (item.filename or item.source).removeprefix("File:")
        if item.error or not item.sdc:
            out.append(Outcome(item.source, None, REJECTED, item.error or "no-structured-data",
                               item.error_message or f"{title}: no caption or statement cells"))
            continue
        want = json.loads(item.sdc)
        wrote: list[dict[str, Any]] = []

        def once(title: str = title, want: dict[str, Any] = want,
                 wrote: list[dict[str, Any]] = wrote) -> tuple[str | None, str]:
            return write(session, title, want, summary=comment, record=wrote.append)
        try:
            if mediainfo.read(session, title) is None:
                out.append(Outcome(item.source, title, REJECTED, "not-found",
                                   f"File:{title} is not on the wiki"))
                continue
            reason, said = retry.call(once, what=f"File:{title}") if retry else once()
        except MWIngestError as exc:
            out.append(Outcome(item.source, title, FAILED, FAILED_REASON,
                               f"File:{title}: its structured data was not written: {exc}"))
            continue
        outcome, code = ((FAILED, FAILED_REASON) if reason else (UPLOADED, "described")
                         if wrote else (SKIPPED, "already-described"))
        out.append(Outcome(item.source, title, outcome, code, f"File:{title}: {said}"))
    return out
