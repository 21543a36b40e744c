"""Structured data on files (as on Wikimedia Commons): the MediaInfo entity ``M<page id>``.

WikibaseMediaInfo gives every file page an entity whose *labels* are the file's captions and
whose *statements* say what it depicts, who made it, under which licence. This module is every
request mwingest makes about them, through the one HTTP seam (:class:`WikiSession`):

* :func:`has_mediainfo`: does the wiki have the extension at all (``siteinfo``'s extensions);
* :func:`lookup`: properties (with their datatype) and items, many at once (``wbgetentities``);
* :func:`read`: a file's entity, with the revision an edit must name as its base;
* :func:`edit`: one ``wbeditentity`` that adds captions and statements, never clearing anything,
  with ``baserevid`` so that an edit by someone else in between is patched around or refused
  (:class:`EditConflictError`), never overwritten.

Facts found on the real software (MediaWiki 1.39, Wikibase and WikibaseMediaInfo REL1_39):
a file without structured data answers ``missing`` with no revision; its file page's latest
revision is then a valid base. When someone else edited in between, Wikibase patches our change
into theirs when it can (a statement added beside theirs), else answers ``editconflict`` (a
caption both set); with a file-page revision as base it fails with an internal
``BadRevisionException`` instead, read here as the same conflict.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from mwingest.base.errors import ApiError, MWIngestError, RetryClass
from mwingest.wiki.session import WikiSession

EXTENSION = "WikibaseMediaInfo"
#: Ids per ``wbgetentities`` request (the API's limit for users without ``apihighlimits``).
IDS_PER_REQUEST = 50


class EditConflictError(MWIngestError):
    """Someone else edited the entity since it was read and Wikibase could not patch our edit in:
    nothing of ours was written. Read again and decide again."""

    retry_class = RetryClass.RESYNC


@dataclass(frozen=True)
class Entity:
    """A file's MediaInfo entity as read: ``baserevid`` is what an edit names as its base."""

    id: str
    baserevid: int
    exists: bool
    labels: dict[str, str] = field(default_factory=dict)
    #: property id → the statements' main snaks' datavalues (``None`` for no/some value).
    statements: dict[str, list[Any]] = field(default_factory=dict)


def has_mediainfo(session: WikiSession) -> bool:
    """True when the wiki runs WikibaseMediaInfo (captions and statements on file pages)."""
    answer = session.get({"action": "query", "meta": "siteinfo", "siprop": "extensions"})
    return any(ext.get("name") == EXTENSION for ext in answer.get("query", {}).get("extensions", []))


def lookup(session: WikiSession, ids: Iterable[str]) -> dict[str, dict[str, Any]]:
    """The entities among ``ids`` that exist (``P…`` with their ``datatype``, ``Q…``), by id."""
    wanted = sorted(set(ids))
    found: dict[str, dict[str, Any]] = {}
    for start in range(0, len(wanted), IDS_PER_REQUEST):
        answer = session.get({"action": "wbgetentities", "props": "info|datatype",
                              "ids": "|".join(wanted[start:start + IDS_PER_REQUEST])})
        for key, entity in (answer.get("entities") or {}).items():
            if "missing" not in entity and "id" in entity:
                found[entity["id"]] = entity
                found.setdefault(key, entity)
    return found


def caption_languages(session: WikiSession) -> frozenset[str]:
    """The language codes a caption (a label) may have on this wiki (``wbcontentlanguages``)."""
    answer = session.get({"action": "query", "meta": "wbcontentlanguages", "wbclcontext": "term"})
    return frozenset((answer.get("query", {}).get("wbcontentlanguages") or {}).keys())


def read(session: WikiSession, title: str) -> Entity | None:
    """The MediaInfo entity of ``File:title`` (None when there is no such file page)."""
    answer = session.get({"action": "query", "titles": f"File:{title}", "prop": "info"})
    pages = answer.get("query", {}).get("pages", [])
    if not pages or pages[0].get("missing") or "pageid" not in pages[0]:
        return None
    page = pages[0]
    mid = f"M{page['pageid']}"
    entity = (session.get({"action": "wbgetentities", "ids": mid}).get("entities") or {}).get(mid, {})
    if "missing" in entity or not entity:
        return Entity(mid, int(page["lastrevid"]), exists=False)
    labels = {lang: str(v.get("value", "")) for lang, v in (entity.get("labels") or {}).items()}
    statements: dict[str, list[Any]] = {}
    raw = entity.get("statements") or {}
    for prop, claims in (raw.items() if isinstance(raw, Mapping) else ()):
        statements[prop] = [(c.get("mainsnak") or {}).get("datavalue", {}).get("value")
                            for c in claims]
    return Entity(mid, int(entity.get("lastrevid") or page["lastrevid"]), True, labels, statements)


def claim(prop: str, datavalue: Mapping[str, Any]) -> dict[str, Any]:
    """A new statement (no id: the wiki makes one) with ``datavalue`` as its main snak."""
    return {"mainsnak": {"snaktype": "value", "property": prop, "datavalue": dict(datavalue)},
            "type": "statement", "rank": "normal"}


def edit(session: WikiSession, entity: Entity, *, labels: Mapping[str, str],
         claims: Iterable[Mapping[str, Any]], summary: str) -> dict[str, Any]:
    """Add ``labels`` (captions, by language) and ``claims`` to the entity in one edit, based on
    the revision it was read at. Returns the entity as the wiki answered it. Raises
    :class:`EditConflictError` when another editor's change stands in the way."""
    data: dict[str, Any] = {"labels": {lang: {"language": lang, "value": value}
                                       for lang, value in labels.items()}}
    claims = list(claims)
    if claims:
        data["claims"] = claims
    try:
        answer = session.post({"action": "wbeditentity", "id": entity.id,
                               "baserevid": entity.baserevid, "summary": summary,
                               "data": json.dumps(data, ensure_ascii=False)})
    except ApiError as exc:
        if exc.code == "editconflict" or "BadRevisionException" in exc.code:
            raise EditConflictError(f"{entity.id} was edited by someone else since revision "
                                    f"{entity.baserevid}: {exc.info}") from None
        raise
    return dict(answer.get("entity") or {})
