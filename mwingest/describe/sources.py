"""Moved out of :mod:`mwingest.describe.manifest` so that its importers need not import it (issue 25)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path

from mwingest.base.items import IngestItem
from mwingest.describe import structured
from mwingest.describe.manifest import _collect, _rows, _text, clean_licence
from mwingest.describe.template import load_template


def collect(sources: Iterable[str], *, glob: str = "*", recursive: bool = True,
            text_template: str | None = None, root: str | None = None, location: bool = False,
            required: Iterable[str] = (), licence: str | None = None,
            require_licence: bool = False, default_text: str | None = None,
            statement_columns: Iterable[str] = (),
            fill: Mapping[str, str] | None = None) -> list[IngestItem]:
    """Items for every source: a URL, a file, a folder (scanned) or a manifest (read).

    ``root`` widens what a manifest's paths may reach: the manifest's folder *and* ``root``.
    ``text_template`` fills the page text of every local file (from the manifest row and the
    file's metadata); ``required``: manifest columns that must have a value. ``location``,
    ``licence``, ``require_licence`` and ``default_text`` (the batch's text): see
    :class:`mwingest.describe.page.Describe`. ``statement_columns`` and ``fill``: see
    :func:`mwingest.describe.structured.cells`.
    """
    from mwingest.describe.page import Describe

    describe = Describe(template=load_template(text_template) if text_template else None,
                        location=location, licence=clean_licence(licence),
                        require_licence=require_licence, default_text=default_text)
    items = _collect(sources, glob=glob, recursive=recursive, text_template=text_template,
                     root=root, required=required, licence=describe.licence,
                     statement_columns=statement_columns, fill=fill)
    return [describe(item) for item in items] if describe.active else items


def titles(path: Path, statement_columns: Iterable[str],
           fill: Mapping[str, str] | None = None) -> list[IngestItem]:
    """Rows of a manifest naming files already on the wiki, with their caption and statement
    cells, for ``mwingest describe``: the title is the ``filename`` column (with or without
    ``File:``), else the ``source``'s base name — so the manifest or sheet a batch was imported
    with names the same files again. Nothing is read from disk."""
    items = []
    for line, row, problem in _rows(path):
        plain = {k.rstrip("* "): v for k, v in row.items()}
        source = (_text(plain.get("source")) or "").strip()
        title = (_text(plain.get("filename")) or source.replace("\\", "/").rsplit("/", 1)[-1])
        title = title.strip().removeprefix("File:").strip()
        if problem or not title:
            why = problem or "no filename or source (a file on the wiki)"
            items.append(IngestItem(source=f"{path}:{line}", line=line, error="bad-manifest-row",
                                    error_message=f"{path.name} line {line}: {why}"))
            continue
        items.append(IngestItem(source=source or title, filename=title, line=line,
                                structured=structured.cells(plain, statement_columns, fill)))
    return items
