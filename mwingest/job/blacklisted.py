"""A batch's items against the wiki's blacklists, before any of them is sent.

Run once for the whole batch, after the page texts are finished and before the first job starts
(:func:`refuse_blacklisted`): each item's title is the name its job will send (the sanitised
name, as :mod:`mwingest.job.intake` makes it) and its text the page text it will send. A refused
item ends ``rejected`` with ``title-blacklisted`` or ``spam-url`` and no byte of it is sent; like
every refusal of the batch's inputs it is not written to the ledger, so a re-run asks again (the
wiki's lists change, and so may the input).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from mwingest.base.items import IngestItem
from mwingest.checks import blacklists
from mwingest.job.intake import default_name
from mwingest.wiki import names
from mwingest.wiki.blacklists import ApiGetter
from mwingest.wiki.siteinfo import WikiRules


def target_name(item: IngestItem, rules: WikiRules) -> str | None:
    """The name the item's job will send, when it can be told without reading the file."""
    try:
        return names.sanitise(default_name(item), rules)
    except ValueError:  # no extension: the job adds the content's; it is asked at upload
        return None


def refuse_blacklisted(api: ApiGetter, items: Sequence[IngestItem], rules: WikiRules, *,
                       default_text: str | None = None) -> list[IngestItem]:
    """The items, those the wiki's blacklists refuse marked with their reason."""
    entries = [(None, None) if item.error else (target_name(item, rules), item.text or default_text)
               for item in items]
    refusals = blacklists.check(api, entries)
    return [item if refusal is None else replace(item, error=refusal.reason,
                                                 error_message=refusal.message)
            for item, refusal in zip(items, refusals, strict=True)]
