"""The spreadsheet round trip: a sheet of a folder for people to fill in, read back as a manifest.

Why a sheet: archivists describe thousands of files in a spreadsheet (Pattypan, OpenRefine), not
one page at a time. :func:`write_sheet` writes one row per file — the path, the title the wiki
will give it, what the file says about itself (:mod:`mwingest.describe.metadata`) — and empty columns a
person must fill. Their headers end in ``*`` (``description*``, ``licence*``): the manifest
reader refuses a row with such a cell empty (``missing-column-value``), so a half-filled sheet
uploads the finished rows and names what the others lack. ``mwingest import batch.xlsx
--text-template information.wiki`` reads it back (:func:`xlsx_rows`, used by
:mod:`mwingest.describe.manifest`).

The sheet holds paths relative to its own folder when the files are under it (the manifest rule:
paths must stay under the manifest's folder), absolute ones otherwise (import with ``--root``).
"""

from __future__ import annotations

import csv
import datetime as dt
import os
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

from mwingest.describe import metadata
from mwingest.describe.structured import DEFAULT_STATEMENTS
from mwingest.wiki import names
from mwingest.wiki.siteinfo import WikiRules

#: Columns a person fills in; the ``*`` marks them required.
PERSON_COLUMNS = ("description*", "licence*", "categories")
#: Structured data on files (where the wiki has it: Commons), last and left empty for a person: a caption
#: per language (add ``caption.de`` … as needed) and the statement columns of the default map.
#: Left empty, they cost nothing on any wiki; filled, the wiki must have WikibaseMediaInfo.
STRUCTURED_COLUMNS = ("caption.en", *DEFAULT_STATEMENTS)
#: The metadata columns, after the person's (a person's description, if the file had one, is
#: pre-filled from it).
METADATA_COLUMNS = tuple(f for f in metadata.FIELDS if f != "description")


def sheet_rows(files: Iterable[str], base: Path, rules: WikiRules | None = None) -> list[dict[str, Any]]:
    """One row per file: ``source`` (relative to ``base`` when under it), ``filename`` (the title
    the wiki will give it, or the name itself when none can be made), the person's columns (a
    description pre-filled from the file) and the metadata."""
    rules = rules or WikiRules()
    base = base.resolve()
    rows = []
    for source in files:
        path = Path(source).resolve()
        try:
            shown = path.relative_to(base).as_posix()
        except ValueError:
            shown = str(path)
        try:
            title = names.sanitise(path.name, rules)
        except ValueError:
            title = path.name
        meta = metadata.read_metadata(str(path)).fields()
        row: dict[str, Any] = {"source": shown, "filename": title}
        row.update({c: "" for c in PERSON_COLUMNS})
        row["description*"] = meta.get("description", "")
        row.update({c: meta.get(c, "") for c in METADATA_COLUMNS})
        row.update({c: "" for c in STRUCTURED_COLUMNS})
        rows.append(row)
    return rows


def write_sheet(rows: list[dict[str, Any]], out: Path) -> None:
    """``rows`` as ``out``: ``.xlsx`` (one sheet, a bold frozen header, text cells) or ``.csv``."""
    columns = list(rows[0]) if rows else ["source", "filename", *PERSON_COLUMNS,
                                          *METADATA_COLUMNS, *STRUCTURED_COLUMNS]
    if out.suffix.lower() == ".csv":
        with out.open("w", encoding="utf-8", newline="") as fh:
            writer = csv.DictWriter(fh, fieldnames=columns)
            writer.writeheader()
            writer.writerows(rows)
        return
    if out.suffix.lower() != ".xlsx":
        raise ValueError(f"{out}: a sheet is .xlsx or .csv")
    from openpyxl import Workbook
    from openpyxl.styles import Font

    book = Workbook()
    ws = book.active
    ws.title = "files"
    ws.append(columns)
    for cell in ws[1]:
        cell.font = Font(bold=True)
    ws.freeze_panes = "A2"
    for row in rows:
        # Text, not numbers or dates: a spreadsheet must not turn "2024-05-06" or "007" into
        # something else on the way back.
        ws.append(["" if row.get(c) in (None, "") else str(row.get(c)) for c in columns])
    for index, column in enumerate(columns, start=1):
        width = max([len(column), *(len(str(r.get(column) or "")) for r in rows)])
        ws.column_dimensions[ws.cell(1, index).column_letter].width = min(60, max(10, width + 2))
    tmp = out.with_name(f".{out.name}.{os.getpid()}.tmp")
    book.save(tmp)
    os.replace(tmp, out)  # a half-written sheet never replaces a good one


def xlsx_rows(path: Path, known: Iterable[str]) -> Iterator[tuple[int, Mapping[str, Any], str | None]]:
    """(row number, row, problem) for every data row of the first sheet of an ``.xlsx``, as the
    manifest reader wants them. Empty rows are skipped; cells are text (numbers a spreadsheet
    made of ``42`` are ``42``, dates ISO)."""
    from openpyxl import load_workbook

    from mwingest.describe.template import header_name

    try:
        book = load_workbook(path, read_only=True, data_only=True)
    except Exception as exc:  # noqa: BLE001 - not a workbook, damaged, encrypted
        yield 0, {}, f"cannot read the workbook: {exc}"
        return
    try:
        rows = book.worksheets[0].iter_rows(values_only=True)
        header = next(rows, None)
        columns = [header_name(str(c), set(known)) if c is not None else "" for c in header or ()]
        if "source" not in columns:
            yield 1, {}, "the sheet's first row has no 'source' column"
            return
        for number, cells in enumerate(rows, start=2):
            if all(c is None or str(c).strip() == "" for c in cells):
                continue
            if any(c not in (None, "") for c in cells[len(columns):]) or any(
                    not name and cells[i] not in (None, "") for i, name in enumerate(columns[:len(cells)])):
                yield number, {}, "a value in a column without a header"
                continue
            yield number, {name: _cell(c) for name, c in zip(columns, cells, strict=False) if name}, None
    finally:
        book.close()


def _cell(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, dt.datetime):
        return value.isoformat(sep=" ").removesuffix(" 00:00:00")
    if isinstance(value, dt.date):
        return value.isoformat()
    return str(value)
