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
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from mwingest.describe.structured import value_key
from mwingest.ledger.ledger import LedgerItem, State
from mwingest.wiki import mediainfo

if TYPE_CHECKING:
    from mwingest.job.machine import Job

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
    session = job.ctx.session
    for _ in range(CONFLICT_TRIES):
        entity = mediainfo.read(session, name)
        if entity is None:
            return _end(job, FAILED_REASON, f"File:{name} has no page to hold its structured data")
        labels, claims, kept = missing(want, entity)
        if not labels and not claims:
            return _landed(job, want, entity, kept)
        job._move(State.DESCRIBING, intent={
            "op": "describe", "entity": entity.id, "baserevid": entity.baserevid,
            "labels": sorted(labels), "statements": [f"{c['property']}={c['shown']}" for c in claims],
            "at": datetime.now(UTC).isoformat(timespec="seconds")})
        try:
            mediainfo.edit(session, entity, labels=labels,
                           claims=[mediainfo.claim(c["property"], c["datavalue"]) for c in claims],
                           summary=job._params().get("comment") or "structured data")
        except mediainfo.EditConflictError as exc:
            log.warning("%s: %s; reading it again", job.item.label, exc)
            continue
        entity = mediainfo.read(session, name)
        if entity is None:
            return _end(job, FAILED_REASON, f"File:{name} is gone after its structured data edit")
        return _landed(job, want, entity, kept)
    return _end(job, FAILED_REASON, f"File:{name} landed (SHA-1 verified); its structured data "
                f"met {CONFLICT_TRIES} edit conflicts in a row and was not written")


def fail(job: Job, exc: BaseException) -> None:
    """The step could not finish (faults past the retry budget): the landing stands."""
    row = job._row()
    _end(job, FAILED_REASON, f"File:{row.final_name or row.target} landed (SHA-1 verified); its "
         f"structured data was not written: {exc}")


def _landed(job: Job, want: Mapping[str, Any], entity: mediainfo.Entity,
            kept: Mapping[str, str]) -> None:
    """Compare what the wiki holds with what was asked; say both in the outcome's message."""
    row = job._row()
    labels, claims, kept_now = missing(want, entity)
    kept = {**kept, **kept_now}
    on_wiki = shown(want, entity)
    name = row.final_name or row.target
    if labels or claims or kept:
        lacking = [f"caption.{lang}" for lang in labels]
        lacking += [f"{c['column']}={c['shown']}" for c in claims]
        lacking += [f"caption.{lang} (the wiki has another: {text!r})" for lang, text in kept.items()]
        return _end(job, FAILED_REASON, f"File:{name} landed (SHA-1 verified); structured data "
                    f"on the wiki: {on_wiki or 'none'}; not written: {', '.join(lacking)}")
    _end(job, None, f"landed as File:{name} (SHA-1 verified); structured data: {on_wiki}")


def shown(want: Mapping[str, Any], entity: mediainfo.Entity) -> str:
    """The batch's captions and statements that the entity holds, for a person to read."""
    langs = sorted(lang for lang, text in (want.get("labels") or {}).items()
                   if entity.labels.get(lang) == text)
    parts = [f"captions {', '.join(langs)}"] if langs else []
    present = {(p, value_key(v)) for p, values in entity.statements.items() for v in values}
    by_column: dict[str, list[str]] = {}
    for s in want.get("statements") or ():
        if (s["property"], value_key(s["datavalue"]["value"])) in present:
            values = by_column.setdefault(f"{s['column']} ({s['property']})", [])
            if s["shown"] not in values:
                values.append(s["shown"])
    parts += [f"{column} {', '.join(values)}" for column, values in by_column.items()]
    return "; ".join(parts)


def _end(job: Job, reason: str | None, message: str) -> None:
    row = job._row()
    landed = f"decided-{row.decision['action']}" if row.decision else "verified"
    job._move(State.UPLOADED, reason or landed, message, final_name=row.final_name or row.target)
