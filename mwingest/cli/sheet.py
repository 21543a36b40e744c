"""``mwingest sheet FOLDER -o batch.xlsx``: the sheet a person fills in before an import, and
the options of ``import`` that describe files.

Apart from the other commands because it needs neither a wiki nor Prefect: it reads the folder
and the files' metadata (:mod:`mwingest.describe.sheet`) and writes the sheet. ``mwingest import
batch.xlsx --text-template information.wiki`` then uploads what was filled in.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from mwingest.cli.output import fail

# The options of ``import`` that describe files (issue 15), kept here beside the sheet.
LocationOpt = Annotated[bool, typer.Option(
    "--location", help="Add a {{Location|lat|lon}} line from the file's GPS position "
    "(off by default: a position can be private)")]
RequireOpt = Annotated[str | None, typer.Option(
    "--require", help="Manifest columns that must have a value, comma separated (a header "
    "ending in * is required too); a row without one is rejected")]
LicenceOpt = Annotated[str | None, typer.Option(
    "--licence", help="Licence template for rows without a licence column value (e.g. cc-by-4.0)")]
RequireLicenceOpt = Annotated[bool, typer.Option(
    "--require-licence", help="Refuse files without a licence (missing-licence); add "
    "{{LICENCE}} to texts that do not use it")]
CheckPagesOpt = Annotated[bool, typer.Option(
    "--check-pages/--no-check-pages", help="Look up every template and category the texts use "
    "before uploading (missing-template rejects; red-category warns, see --on-warning)")]


def sheet(
    folder: Annotated[Path, typer.Argument(exists=True, file_okay=False,
                                           help="The folder of files to describe")],
    output: Annotated[Path, typer.Option("-o", "--output", dir_okay=False,
                                         help="The sheet to write: .xlsx or .csv")],
    glob: Annotated[str, typer.Option(help="Folder scan pattern (recursive)")] = "*",
    force: Annotated[bool, typer.Option("--force", help="Replace an existing sheet")] = False,
) -> None:
    """Write a sheet with one row per file: its title, its metadata, and the columns a person
    fills in (description*, licence*, categories; * = required)."""
    from mwingest.describe.manifest import scan_folder
    from mwingest.describe.sheet import sheet_rows, write_sheet

    if output.suffix.lower() not in (".xlsx", ".csv"):
        raise fail(f"{output}: the sheet must be .xlsx or .csv")
    if output.exists() and not force:
        raise fail(f"{output} exists (a filled-in sheet is work: give --force to replace it)")
    files = [item.source for item in scan_folder(folder, glob=glob)
             if Path(item.source).resolve() != output.resolve()]
    rows = sheet_rows(files, output.resolve().parent)
    write_sheet(rows, output)
    outside = sum(1 for r in rows if Path(r["source"]).is_absolute())
    typer.echo(f"{output}: {len(rows)} files; fill in the columns marked *, then "
               f"mwingest import {output} --text-template TEMPLATE"
               + (" --root " + str(folder.resolve()) if outside else ""), err=True)
