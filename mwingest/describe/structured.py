"""Structured data cells (captions, statements) read from a manifest and checked before a byte is sent.

Why before the upload: a statement whose property has another datatype, or an item id that does
not exist, would be refused by the wiki *after* the file landed — the file there, its structured
data not, which is what GLAM uploaders complain of most. Checked first, the row is ``rejected``
with a reason a person can fix in the sheet.

The columns: ``caption.<language>`` (at most :data:`MAX_CAPTION` characters: the wiki's limit)
and one column per statement, named in the batch's map (column → property id; Wikidata's ids by
default, as Commons uses them: :data:`DEFAULT_STATEMENTS`). A cell may hold several values
separated by ``;`` (``Q42; Q5``). Values by the property's datatype: item ids (``wikibase-item``),
dates ``YYYY``, ``YYYY-MM`` or ``YYYY-MM-DD`` (``time``, Gregorian), or text (``string``,
``external-id``, ``url``). The whole batch costs one ``siteinfo`` request and one
``wbgetentities`` per 50 ids (and one for the caption languages the wiki knows); a batch without
such cells costs nothing.

What a check leaves on each item is the JSON the job writes (``IngestItem.sdc``)::

    {"labels": {"en": "…"}, "statements": [{"column": "depicts", "property": "P180",
      "datavalue": {"type": "wikibase-entityid", "value": {…}}, "shown": "Q42"}, …]}
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, Protocol

from mwingest.base.items import IngestItem

CAPTION_PREFIX = "caption."
#: WikibaseMediaInfo's caption limit (``$wgWBRepoSettings['string-limits']`` for labels).
MAX_CAPTION = 250
#: Commons' statements, with Wikidata's property ids (Commons uses Wikidata's properties).
DEFAULT_STATEMENTS: dict[str, str] = {
    "depicts": "P180", "creator": "P170", "inception": "P571", "copyright_licence": "P275",
    "copyright_status": "P6216", "source_of_file": "P7482"}
#: The datatype each of these columns needs its property to have.
EXPECTED_DATATYPE = {"depicts": "wikibase-item", "creator": "wikibase-item", "inception": "time",
                     "copyright_licence": "wikibase-item", "copyright_status": "wikibase-item",
                     "source_of_file": "wikibase-item"}
_TEXT_TYPES = ("string", "external-id", "url")
_ITEM = re.compile(r"Q[1-9][0-9]*")
_DATE = re.compile(r"(-?\d{1,4})(?:-(\d{2}))?(?:-(\d{2}))?")
_GREGORIAN = "http://www.wikidata.org/entity/Q1985727"
#: A date at the start of a cell: ``2024-05-06``, EXIF's ``2024:05:06 10:11:12``, ``1911-05``, ``1911``.
_DAY_AT_START = re.compile(r"(\d{4})(?:[-:](\d{2})(?:[-:](\d{2}))?)?(?![\d])")
#: Wikidata's items for the licence templates Commons uploads use most (P275's values there).
COMMONS_LICENCE_ITEMS: dict[str, str] = {
    "cc-by-4.0": "Q20007257", "cc-by-sa-4.0": "Q18199165", "cc-zero": "Q6938433",
    "cc0": "Q6938433", "cc-by-3.0": "Q14947546", "cc-by-sa-3.0": "Q14946043",
    "cc-by-2.0": "Q19125117", "cc-by-sa-2.0": "Q19068220"}

UNSUPPORTED = "structured-data-unsupported"


class ApiGetter(Protocol):
    def get(self, params: Mapping[str, Any]) -> dict[str, Any]: ...


def cells(row: Mapping[str, Any], statement_columns: Iterable[str],
          fill: Mapping[str, str] | None = None) -> tuple[tuple[str, str], ...]:
    """The row's structured data cells that have a value: captions, then statement columns.

    ``fill`` (a licence template → item id map, :data:`COMMONS_LICENCE_ITEMS` on Commons): an
    empty ``copyright_licence`` cell takes the item of the row's ``licence`` template, an empty
    ``inception`` the row's ``date`` (a day, month or year at its start, as EXIF and the sheet
    write it), so the description a person filled once also makes the statements. A licence the
    map does not know, or a date that is no date, fills nothing (never a guess)."""
    wanted = set(statement_columns)
    out = []
    for key, value in row.items():
        text = "" if value is None else str(value).strip()
        name = str(key).strip()
        if text and (name.lower().startswith(CAPTION_PREFIX) or name in wanted):
            out.append((name, text))
    if fill is not None:
        have = {name for name, _ in out}
        licence = str(row.get("licence") or row.get("license") or "").strip().strip("{}").strip()
        item = {k.lower(): v for k, v in fill.items()}.get(licence.lower())
        if "copyright_licence" in wanted - have and item:
            out.append(("copyright_licence", item))
        day = _DAY_AT_START.match(str(row.get("date") or "").strip())
        if "inception" in wanted - have and day:
            out.append(("inception", "-".join(p for p in day.groups() if p)))
    return tuple(out)


def _values(text: str) -> list[str]:
    return [v.strip() for v in re.split(r"[;|]", text) if v.strip()]


def datavalue(datatype: str, text: str) -> tuple[dict[str, Any], str] | str:
    """The wiki's datavalue for one value and how to show it, or why it is not one."""
    if datatype == "wikibase-item":
        if not _ITEM.fullmatch(text):
            return f"{text!r} is not an item id (Q…)"
        return {"type": "wikibase-entityid",
                "value": {"entity-type": "item", "numeric-id": int(text[1:]), "id": text}}, text
    if datatype == "time":
        match = _DATE.fullmatch(text)
        if not match:
            return f"{text!r} is not a date (YYYY, YYYY-MM or YYYY-MM-DD)"
        year, month, day = match.group(1), match.group(2) or "00", match.group(3) or "00"
        if int(month) > 12 or int(day) > 31 or (month == "00" and day != "00"):
            return f"{text!r} is not a date"
        sign = "-" if year.startswith("-") else "+"
        stamp = f"{sign}{int(year.lstrip('-')):04d}-{month}-{day}T00:00:00Z"
        precision = 11 if match.group(3) else 10 if match.group(2) else 9
        return {"type": "time", "value": {"time": stamp, "timezone": 0, "before": 0, "after": 0,
                                          "precision": precision, "calendarmodel": _GREGORIAN}}, text
    if datatype in _TEXT_TYPES:
        return {"type": "string", "value": text}, text
    return f"properties of datatype {datatype} are not supported"


def value_key(value: Any) -> Any:
    """What makes two statement values the same (an item's id; a date and its precision)."""
    if isinstance(value, Mapping):
        if "id" in value or "numeric-id" in value:
            return ("item", value.get("id") or f"Q{value.get('numeric-id')}")
        if "time" in value:
            return ("time", value.get("time"), value.get("precision"))
        return ("other", json.dumps(value, sort_keys=True))
    return ("text", value)


@dataclass(frozen=True)
class StructuredCheck:
    """The batch's items after the check: refused ones carry their reason, the others ``sdc``."""

    items: list[IngestItem]


def check_items(api: ApiGetter, items: Sequence[IngestItem], statements: Mapping[str, str],
                *, has_mediainfo: bool | None = None) -> StructuredCheck:
    """Check every item's structured data cells against the wiki at once; see the module text.

    ``statements``: the batch's map column → property id. ``has_mediainfo``: whether the wiki
    runs WikibaseMediaInfo, when the caller knows (else asked)."""
    from mwingest.wiki import mediainfo  # only a batch with structured data needs it

    todo = [i for i, item in enumerate(items) if item.structured and not item.error]
    out = list(items)
    if not todo:
        return StructuredCheck(out)
    if has_mediainfo is None:
        has_mediainfo = mediainfo.has_mediainfo(api)  # type: ignore[arg-type]
    if not has_mediainfo:
        for i in todo:
            columns = ", ".join(c for c, _ in items[i].structured)
            out[i] = replace(items[i], error=UNSUPPORTED, error_message=(
                f"{items[i].label}: the wiki has no structured data on files (WikibaseMediaInfo "
                f"is not installed), so the columns {columns} cannot be written; remove them or "
                "upload to a wiki that has it"))
        return StructuredCheck(out)
    ids = {statements[c] for i in todo for c, _ in items[i].structured if c in statements}
    ids |= {v for i in todo for c, t in items[i].structured if c in statements
            for v in _values(t) if _ITEM.fullmatch(v)}
    found = mediainfo.lookup(api, ids) if ids else {}  # type: ignore[arg-type]
    captions = any(c.lower().startswith(CAPTION_PREFIX) for i in todo for c, _ in items[i].structured)
    languages = mediainfo.caption_languages(api) if captions else frozenset()  # type: ignore[arg-type]
    for i in todo:
        payload = _payload(items[i], statements, found, languages)
        out[i] = (replace(items[i], error=payload[0], error_message=f"{items[i].label}: {payload[1]}")
                  if isinstance(payload, tuple) else replace(items[i], sdc=json.dumps(payload)))
    return StructuredCheck(out)


def _payload(item: IngestItem, statements: Mapping[str, str], found: Mapping[str, Mapping[str, Any]],
             languages: frozenset[str]) -> dict[str, Any] | tuple[str, str]:
    """The item's structured data to write, or (reason, message) for the first problem."""
    labels: dict[str, str] = {}
    claims: list[dict[str, Any]] = []
    for column, text in item.structured:
        if column.lower().startswith(CAPTION_PREFIX):
            lang = column[len(CAPTION_PREFIX):].strip().lower()
            if not re.fullmatch(r"[a-z]{2,3}(-[a-z0-9]+)*", lang):
                return "bad-caption-language", f"{column!r} does not name a language (caption.en)"
            if languages and lang not in languages:
                return "bad-caption-language", f"{column}: the wiki has no language {lang!r}"
            if len(text) > MAX_CAPTION:
                return "caption-too-long", (f"{column} has {len(text)} characters; the wiki "
                                            f"takes at most {MAX_CAPTION}")
            labels[lang] = text
            continue
        prop = statements[column]
        entity = found.get(prop)
        if entity is None or entity.get("type") != "property":
            return "unknown-property", (f"column {column!r} maps to {prop}, which is no property "
                                        "on the wiki (set the batch's statement map)")
        datatype = str(entity.get("datatype"))
        expected = EXPECTED_DATATYPE.get(column)
        if expected and datatype != expected:
            return "wrong-property-datatype", (f"column {column!r} needs a {expected} property, "
                                               f"but {prop} is of datatype {datatype}")
        for value in _values(text):
            made = datavalue(datatype, value)
            if isinstance(made, str):
                return "bad-statement-value", f"{column}: {made}"
            if datatype == "wikibase-item" and value not in found:
                return "unknown-item", f"{column}: the item {value} does not exist on the wiki"
            claims.append({"column": column, "property": prop, "datavalue": made[0],
                           "shown": made[1]})
    return {"labels": labels, "statements": claims}
