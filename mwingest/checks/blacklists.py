"""Titles and page texts the wiki's blacklists refuse, found before a byte is sent.

The decision above :mod:`mwingest.wiki.blacklists` (which asks the wiki): for a batch of
(title, finished page text) pairs, which ones the wiki would refuse, with a reason and a message a
person can act on:

* ``title-blacklisted``: TitleBlacklist forbids the title; the message quotes the wiki's line.
  A camera-style name (``IMG_1234.jpg``, ``DSC01234.JPG``: what Commons forbids) gets the hint to
  give the file a descriptive title, in the manifest's or sheet's ``filename`` column.
* ``spam-url``: the page text links to a site SpamBlacklist lists; the message names the matched
  text (the domain) and the URLs that carry it.

One ``action=paraminfo`` first; a wiki without the modules is asked nothing more. Titles are one
request each (the module takes one title) and asked once per distinct title; every URL of the
batch goes into one ``action=spamblacklist`` request per 50.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from mwingest.wiki import blacklists
from mwingest.wiki.blacklists import ApiGetter

TITLE_BLACKLISTED, SPAM_URL = "title-blacklisted", "spam-url"
#: Names cameras, phones and scanners give files: a prefix, then a number (Commons forbids them).
CAMERA_NAME = re.compile(
    r"^(?:IMG|IMAG|DSC[FN]?|DCIM|PICT?|CIMG|MVI|GOPR|GP|PXL|SAM|WP|VID|P\d{3}|_?DSC|SCAN|Scan|"
    r"Image|Photo|Foto|DJI)[ _-]?\d{2,}[\w -]*\.\w+$", re.IGNORECASE)
#: External links as the parser finds them in wikitext: a scheme, then up to a space or a
#: character that ends a link (``]`` of ``[url text]``, ``|`` and ``}`` of a template).
_URL = re.compile(r"(?:https?:|ftps?:)?//[^\s\[\]<>\"|{}]+", re.IGNORECASE)
_TRAILING = ".,;:!?)'"


@dataclass(frozen=True)
class Refusal:
    """Why the wiki's blacklists would refuse one entry."""

    reason: str  # title-blacklisted / spam-url
    message: str
    detail: dict[str, object]


def external_urls(text: str | None) -> list[str]:
    """The external URLs of a page text, in order, each once (trailing punctuation dropped, as
    the parser drops it; protocol-relative ``//host`` kept as the wiki sees it)."""
    seen: list[str] = []
    for match in _URL.finditer(text or ""):
        url = match.group(0).rstrip(_TRAILING)
        start = match.start()
        if url.startswith("//") and start > 0 and text and text[start - 1] in ":/":
            continue  # the tail of a longer match
        if "." in url.split("//", 1)[1].split("/", 1)[0] and url not in seen:
            seen.append(url)
    return seen


def camera_hint(filename: str) -> str:
    """Advice for a camera-style name, else an empty string."""
    if not CAMERA_NAME.match(filename.replace("_", " ")):
        return ""
    return (" It is a camera's name: give the file a descriptive title (what it shows, where, "
            "when) in the filename column of the manifest or sheet (mwingest sheet).")


def check(api: ApiGetter, entries: Sequence[tuple[str | None, str | None]]) -> list[Refusal | None]:
    """For each ``(filename, page text)``: the refusal the wiki's blacklists give, or None.

    ``filename`` is the name the file will be sent under (None: unknown, not asked). A wiki
    without the modules answers one ``paraminfo`` and every entry passes."""
    wanted = [e for e in entries if e[0] or e[1]]
    if not wanted:
        return [None] * len(entries)
    modules = blacklists.available(api)
    out: list[Refusal | None] = [None] * len(entries)
    if blacklists.TITLE_MODULE in modules:
        hits: dict[str, blacklists.TitleHit | None] = {}
        for index, (name, _text) in enumerate(entries):
            if not name:
                continue
            if name not in hits:
                hits[name] = blacklists.check_title(api, name)
            if (hit := hits[name]) is not None:
                out[index] = Refusal(TITLE_BLACKLISTED, _title_message(name, hit),
                                     {"line": hit.line, "wiki_check": hit.message})
    if blacklists.SPAM_MODULE in modules:
        urls = {i: external_urls(text) for i, (_n, text) in enumerate(entries) if out[i] is None}
        every = [u for found in urls.values() for u in found]
        matches = blacklists.spam_matches(api, every) if every else []
        for index, found in urls.items():
            bad = {m: [u for u in found if m.lower() in u.lower()] for m in matches}
            bad = {m: us for m, us in bad.items() if us}
            if bad:
                name = entries[index][0] or "the file"
                listed = "; ".join(f"{m} (in {', '.join(us)})" for m, us in bad.items())
                out[index] = Refusal(SPAM_URL, f"{name}: its page text links to a site the "
                                     f"wiki's spam blacklist lists: {listed}. Remove or replace "
                                     "the link in the text (template or description column).",
                                     {"matches": list(bad), "urls": sorted({u for us in bad.values()
                                                                             for u in us})})
    return out


def _title_message(name: str, hit: blacklists.TitleHit) -> str:
    shown = name.replace("_", " ")
    return (f"{shown}: the wiki's title blacklist forbids File:{shown} (its line: {hit.line})."
            f"{camera_hint(shown) or ' Choose another name.'}")
