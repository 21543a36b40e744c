"""Turn what the user points at (files, URLs, a folder, a CSV/JSONL/XLSX manifest) into items.

Why every problem becomes an item and not an exception: a bulk import of 10,000 rows must not stop
at row 17. A bad row is that row's ``rejected`` outcome, with a reason naming the line, and the
rest goes on. Paths from a manifest resolve against the manifest's folder and must stay under it
(``unsafe-path``) unless the caller widens the root: manifests come from other people. Sources
that look like URLs of another scheme (``file://``, ``ftp://``) are ``unsafe-url`` at once; http(s)
URLs are checked later, by the pipeline, against the network rules (:mod:`mwingest.checks.netsafe`).

A text template is filled from the row's columns *and* the file's own metadata
(:mod:`mwingest.describe.metadata`: ``{date}``, ``{author}``, ``{gps.lat}`` …), a column with a value
winning; for files and folders given directly, from the metadata alone. A column whose header
ends in ``*`` (as ``mwingest sheet`` writes ``description*``) or that the caller names in
``required`` must have a value: a row without one is ``missing-column-value``, naming it.
"""

from __future__ import annotations

import csv
import json
import os
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import replace
from pathlib import Path
from typing import IO, Any

from mwingest.base.items import IngestItem
from mwingest.describe import metadata, structured
from mwingest.describe.template import fill_template, header_name, load_template

MANIFEST_SUFFIXES = {".csv", ".jsonl", ".ndjson", ".xlsx"}
KNOWN_COLUMNS = {"source", "filename", "text", "comment", "tags", "licence", "license", "id"}
#: ``scheme://`` at the start: a URL, not a path (only http and https are ever fetched).
_URL_LIKE = re.compile(r"\s*[A-Za-z][A-Za-z0-9+.-]*://")


def local_size(item: IngestItem) -> int:
    """The item's size as the file system says now: 0 for a URL, a refused row or a file that
    is gone (the pipeline reports those; they cost no bytes)."""
    if item.is_url or item.error:
        return 0
    try:
        return os.stat(item.source).st_size
    except OSError:
        return 0


def clean_licence(value: Any) -> str | None:
    """A licence cell as a template name: ``{{cc-by-4.0}}`` and `` cc-by-4.0 `` are ``cc-by-4.0``."""
    text = str(value or "").strip().removeprefix("{{").removesuffix("}}").strip()
    return text or None


def _collect(sources: Iterable[str], *, glob: str, recursive: bool, text_template: str | None,
             root: str | None, required: Iterable[str], licence: str | None,
             statement_columns: Iterable[str] = (),
             fill: Mapping[str, str] | None = None) -> list[IngestItem]:
    items: list[IngestItem] = []
    for source in sources:
        if source.lower().startswith(("http://", "https://")):
            items.append(IngestItem(source=source))
            continue
        if _URL_LIKE.match(source):
            items.append(_not_http(IngestItem(source=source), source))
            continue
        path = Path(source).expanduser()
        if path.is_dir():
            items.extend(scan_folder(path, glob=glob, recursive=recursive))
        elif path.suffix.lower() in MANIFEST_SUFFIXES and path.is_file():
            items.extend(read_manifest(path, text_template=text_template, root=root,
                                       required=required, licence=licence,
                                       statement_columns=statement_columns, fill=fill))
        else:
            items.append(IngestItem(source=str(path)))
    return items


def scan_folder(folder: Path, *, glob: str = "*", recursive: bool = True) -> list[IngestItem]:
    """Regular files under ``folder`` in name order; hidden files and links out of it are left out.

    Every path is resolved (symlinks followed) and must stay under the folder: a link, or a link
    to a folder, that leads out is skipped, whatever the Python version's glob follows.
    """
    root = folder.resolve()
    found = root.rglob(glob) if recursive else root.glob(glob)
    items = []
    for path in sorted(found):
        rel = path.relative_to(root)
        if any(part.startswith(".") for part in rel.parts):
            continue
        try:
            if not _inside(path.resolve(strict=True), (root,)):
                continue
        except (OSError, RuntimeError):  # a dangling or looping link
            continue
        if path.is_file():
            items.append(IngestItem(source=str(path)))
    return items


def read_manifest(path: Path, *, text_template: str | None = None,
                  root: str | None = None, required: Iterable[str] = (),
                  licence: str | None = None,
                  statement_columns: Iterable[str] = (),
                  fill: Mapping[str, str] | None = None) -> list[IngestItem]:
    """Rows of a ``.csv``/``.xlsx`` (header row) or ``.jsonl`` manifest as items; bad rows as
    rejected items.

    ``text_template`` is a file whose ``{column}`` placeholders are filled from each row and the
    file's metadata (for rows without a ``text`` column value). ``root`` widens what the rows'
    paths may reach (the manifest's folder and ``root``; the default is the folder alone).
    ``required``: columns that must have a value, besides those whose header ends in ``*``.
    ``licence``: the batch's licence template, for rows whose ``licence`` cell is empty.
    ``statement_columns``: the columns that hold statements (besides ``caption.<language>``),
    kept on each item for :mod:`mwingest.describe.structured` to check; ``fill``: see
    :func:`mwingest.describe.structured.cells`.
    Raises ``ValueError`` only for a malformed template.
    """
    base = path.resolve().parent
    allowed_root = (base, Path(root).expanduser().resolve()) if root else (base,)
    template = load_template(text_template) if text_template else None
    items = []
    for line, row, problem in _rows(path):
        where = f"{path.name} line {line}"
        if problem:
            items.append(IngestItem(source=f"{path}:{line}", line=line, error="bad-manifest-row",
                                    error_message=f"{where}: {problem}"))
            continue
        row, starred = _required_columns(row)
        row_licence = clean_licence(row.get("licence") or row.get("license")) or licence
        row = {**row, "licence": row_licence or ""}
        missing = [c for c in (*required, *starred) if not _text(row.get(c))]
        if missing:
            columns = ", ".join(repr(c) for c in dict.fromkeys(missing))
            items.append(IngestItem(source=_text(row.get("source")) or f"{path}:{line}", line=line,
                                    filename=_text(row.get("filename")),
                                    error="missing-column-value",
                                    error_message=f"{where}: no value in the required column {columns}"))
            continue
        item = _item_from_row(row, line, where, base, allowed_root, template,
                              label=f"{path}:{line}", scope=path.name)
        items.append(replace(item, structured=structured.cells(row, statement_columns, fill)))
    return items


def _rows(path: Path) -> Iterator[tuple[int, Mapping[str, Any], str | None]]:
    """(line number, row, problem) for every data row.

    Bytes that are not UTF-8 reject only the rows that hold them (read with ``surrogateescape``);
    a CSV that stops being parseable (a NUL byte) yields one problem there and ends.
    """
    try:
        handle = path.open(encoding="utf-8-sig", errors="surrogateescape", newline="")
    except OSError as exc:
        yield 0, {}, f"cannot read the manifest: {exc.strerror}"
        return
    if path.suffix.lower() == ".xlsx":
        handle.close()
        from mwingest.describe.sheet import xlsx_rows

        yield from xlsx_rows(path, KNOWN_COLUMNS)
        return
    rows = _csv_rows(handle) if path.suffix.lower() == ".csv" else _jsonl_rows(handle)
    line = 0
    with handle:
        try:
            for line, row, problem in rows:
                yield line, row, problem
        except csv.Error as exc:
            yield line + 1, {}, f"unreadable CSV from here on ({exc})"


_NOT_UTF8 = "not UTF-8 text (save the manifest as UTF-8)"


def _undecodable(text: str) -> bool:
    """True when ``text`` carries bytes that were not UTF-8 (surrogate escapes)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def _csv_rows(handle: IO[str]) -> Iterator[tuple[int, Mapping[str, Any], str | None]]:
    reader = csv.DictReader(handle)
    if reader.fieldnames:  # " Source " in a hand-made header still means source
        reader.fieldnames = [header_name(name, KNOWN_COLUMNS) for name in reader.fieldnames]
    if not reader.fieldnames or "source" not in reader.fieldnames:
        yield 1, {}, "the CSV header has no 'source' column"
        return
    for row in reader:
        if None in row:
            yield reader.line_num, {}, "more fields than the header has"
        elif any(_undecodable(str(v)) for v in [*row, *row.values()] if v is not None):
            yield reader.line_num, {}, _NOT_UTF8
        else:
            yield reader.line_num, row, None


def _jsonl_rows(handle: IO[str]) -> Iterator[tuple[int, Mapping[str, Any], str | None]]:
    for number, text in enumerate(handle, start=1):
        if not text.strip():
            continue
        if _undecodable(text):
            yield number, {}, _NOT_UTF8
            continue
        try:
            row = json.loads(text)
        except json.JSONDecodeError as exc:
            yield number, {}, f"not valid JSON ({exc.msg})"
            continue
        if not isinstance(row, dict):
            yield number, {}, f"a JSONL row must be an object, not {type(row).__name__}"
        else:
            yield number, row, None


def _required_columns(row: Mapping[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """The row with ``*`` taken off its column names, and the columns that had one."""
    plain: dict[str, Any] = {}
    starred = []
    for key, value in row.items():
        name = key.rstrip("* ") if key.endswith("*") else key
        if name != key:
            starred.append(name)
        plain[name] = value
    return plain, starred


def _text(value: Any) -> str | None:
    """A manifest cell as text: JSONL may hold numbers; empty means "not given"."""
    if value is None:
        return None
    text = str(value)
    return text if text.strip() else None


def manifest_key(scope: str, value: Any) -> str | None:
    """A row's ``id`` as the item's identity, scoped to its manifest (``<file name>#<id>``): two
    manifests that both number their rows from 1 are different items, never one row reset by
    the other. The file's name, not its path, so the same manifest read on another machine's
    mount (or moved) names the same items; manifests with the same name share their ids."""
    text = _text(value)
    return f"{scope}#{text.strip()}" if text else None


def _item_from_row(row: Mapping[str, Any], line: int, where: str, base: Path,
                   root: tuple[Path, ...], template: str | None, *, label: str,
                   scope: str) -> IngestItem:
    """One row as an item; the first problem found (source, then tags, then text) rejects it."""
    source = (_text(row.get("source")) or "").strip()
    if not source:
        return IngestItem(source=label, line=line, error="bad-manifest-row",
                          error_message=f"{where}: no 'source' (a path or an http(s) URL)")
    item = IngestItem(source=source, filename=_text(row.get("filename")),
                      text=_text(row.get("text")), comment=_text(row.get("comment")), line=line,
                      licence=clean_licence(row.get("licence")), key=manifest_key(scope, row.get("id")))
    if _URL_LIKE.match(source) and not item.is_url:
        return _not_http(item, source, where)
    if not item.is_url:
        problem = unsafe_path_reason(source, base, root)
        if problem:
            return replace(item, error="unsafe-path", error_message=f"{where}: {problem}")
        # The folder part as checked (no ``..``, no linked folders), the file's own name kept:
        # a link inside the root still uploads under the link's name.
        candidate = Path(source) if os.path.isabs(source) else base / source
        resolved = candidate.parent.resolve() / candidate.name
        item = replace(item, source=str(resolved))
        if not resolved.exists():
            return replace(item, error="not-found", error_message=f"{where}: {source} does not exist")
    tags = row.get("tags") or ()
    if isinstance(tags, str):
        tags = tuple(t.strip() for t in tags.split("|") if t.strip())
    elif not isinstance(tags, list | tuple):
        return replace(item, error="bad-manifest-row",
                       error_message=f"{where}: 'tags' must be a list or a|b text")
    item = replace(item, tags=tuple(str(t) for t in tags))
    if template and not item.text:
        meta = metadata.read_metadata(item.source) if not item.is_url else metadata.FileMetadata()
        try:
            item = replace(item, text=fill_template(template, metadata.template_values(row, meta)))
        except KeyError as exc:
            return replace(item, error="template-field-missing",
                           error_message=f"{where}: the text template needs column {exc}")
        except (ValueError, TypeError) as exc:  # e.g. {size:,} on a text cell
            return replace(item, error="template-error",
                           error_message=f"{where}: cannot fill the text template: {exc}")
    return item


def unsafe_path_reason(source: str, base: Path, root: Path | tuple[Path, ...]) -> str | None:
    """Why a manifest path may not be opened (None when it is fine): NUL bytes, escapes from the
    root (``..``, absolute paths, symlinks, checked after resolving), things that are not regular
    files (folders, FIFOs, devices). ``root`` is one allowed folder or several (resolved)."""
    roots = root if isinstance(root, tuple) else (root,)
    if "\x00" in source:
        return "the path contains a NUL byte"
    candidate = Path(source) if os.path.isabs(source) else base / source
    try:
        resolved = candidate.resolve(strict=False)
    except (OSError, RuntimeError, ValueError):  # a link loop, an unusable name
        return f"cannot resolve {source!r}"
    if not _inside(resolved, roots):
        where = " or ".join(str(r) for r in roots)
        return (f"{source!r} leads outside {where} "
                f"(widen the root with --root / manifest_root if that is meant)")
    if resolved.exists() and not resolved.is_file():
        return f"{source!r} is not a regular file"
    return None


def _inside(path: Path, roots: tuple[Path, ...]) -> bool:
    return any(path == root or root in path.parents for root in roots)


def _not_http(item: IngestItem, source: str, where: str | None = None) -> IngestItem:
    """A URL of another scheme than http(s): never fetched, never handed to the wiki."""
    scheme = source.strip().split(":", 1)[0].lower()
    prefix = f"{where}: " if where else ""
    return replace(item, error="unsafe-url",
                   error_message=f"{prefix}only http and https URLs are fetched, not {scheme}:")


