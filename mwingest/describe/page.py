"""How an item's page text is finished: the template filled from the file, the position, the
licence.

Why one place: the text of a file page is made from several things a batch sets once (a
template, ``--location``, ``--licence``) and a row sets for itself (its columns, its licence
cell). Manifest rows are filled from their columns when they are read
(:func:`mwingest.describe.manifest.read_manifest`); this adds what is the same for every source.
Every problem is the item's own outcome, never an exception: a bad row does not stop a batch.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace

from mwingest.base.items import IngestItem
from mwingest.describe import metadata

MISSING_LICENCE = "missing-licence"


@dataclass(frozen=True)
class Describe:
    """The batch's settings for page texts.

    ``template``: the text template (already checked); files given directly are filled from
    their metadata alone. ``location``: a ``{{Location}}`` line from the file's GPS position
    (off by default: a position can be private). ``licence``: the batch's licence template, for
    items without their own. ``require_licence``: an item without a licence (its own or the
    batch's) is ``rejected`` (``missing-licence``); one whose text does not name its licence
    template gets a ``{{licence}}`` line. ``default_text``: the batch's text, for items
    without their own (needed to add a line to it).
    """

    template: str | None = None
    location: bool = False
    licence: str | None = None
    require_licence: bool = False
    default_text: str | None = None

    @property
    def active(self) -> bool:
        return bool(self.template or self.location or self.licence or self.require_licence)

    def __call__(self, item: IngestItem) -> IngestItem:
        if item.error:
            return item
        meta = metadata.FileMetadata()
        if not item.is_url and (self.template or self.location):
            meta = metadata.read_metadata(item.source)
        if self.template and item.line is None and not item.text:
            from mwingest.describe.template import fill_template

            try:
                item = replace(item, text=fill_template(
                    self.template, metadata.template_values({"licence": self.licence or ""}, meta)))
            except KeyError as exc:
                return replace(item, error="template-field-missing",
                               error_message=f"{item.source}: the text template needs {exc}, "
                               "which is neither a metadata field nor given")
            except (ValueError, TypeError) as exc:
                return replace(item, error="template-error",
                               error_message=f"{item.source}: cannot fill the text template: {exc}")
        text = item.text if item.text is not None else self.default_text
        if self.location and text:
            text = metadata.add_location(text, meta)
        licence = item.licence or self.licence
        if self.require_licence and not licence:
            return replace(item, error=MISSING_LICENCE,
                           error_message=f"{item.label}: no licence (a licence column, or the "
                           "batch's --licence)")
        if licence and self.require_licence:
            text = with_licence(text or "", licence)
        if text != (item.text if item.text is not None else self.default_text):
            item = replace(item, text=text)
        return replace(item, licence=licence) if licence != item.licence else item


def with_licence(text: str, licence: str) -> str:
    """``text`` with a ``{{licence}}`` line before its first category, unless it uses the
    template already (the first letter in either case, as the wiki reads titles)."""
    first = licence[:1]
    head = f"[{first.lower()}{first.upper()}]" if first.isalpha() else re.escape(first)
    rest = re.escape(licence[1:]).replace(r"\ ", "[ _]")
    if re.search(r"\{\{\s*(?:[Tt]emplate\s*:\s*)?" + head + rest + r"\s*(?:\||\}\})", text):
        return text
    line = "{{" + licence + "}}"
    match = re.search(r"^\s*\[\[\s*category\s*:", text, re.I | re.M)
    if match:
        return text[:match.start()] + line + "\n" + text[match.start():]
    return (text.rstrip("\n") + "\n" if text.strip() else "") + line + "\n"
