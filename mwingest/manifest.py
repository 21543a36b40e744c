"""Turn what the user points at (files, URLs, a folder, a CSV/JSONL manifest) into items.

Why every problem becomes an item and not an exception: a bulk import of 10,000 rows must not stop
at row 17. A bad row is that row's ``rejected`` outcome, with a reason naming the line, and the
rest goes on. Paths from a manifest resolve against the manifest's folder and must stay under it
(``unsafe-path``) unless the caller widens the root: manifests come from other people.
"""

from __future__ import annotations

import csv
import json
import os
import string
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

from .items import IngestItem

MANIFEST_SUFFIXES = {".csv", ".jsonl", ".ndjson"}
KNOWN_COLUMNS = {"source", "filename", "text", "comment", "tags"}


def collect(sources: Iterable[str], *, glob: str = "*", recursive: bool = True,
            text_template: str | None = None, root: str | None = None) -> list[IngestItem]:
    """Items for every source: a URL, a file, a folder (scanned) or a manifest (read)."""
    items: list[IngestItem] = []
    for source in sources:
        if source.lower().startswith(("http://", "https://")):
            items.append(IngestItem(source=source))
            continue
        path = Path(source).expanduser()
        if path.is_dir():
            items.extend(scan_folder(path, glob=glob, recursive=recursive))
        elif path.suffix.lower() in MANIFEST_SUFFIXES and path.is_file():
            items.extend(read_manifest(path, text_template=text_template, root=root))
        else:
            items.append(IngestItem(source=str(path)))
    return items


def scan_folder(folder: Path, *, glob: str = "*", recursive: bool = True) -> list[IngestItem]:
    """Regular files under ``folder`` in name order; hidden files and links out of it are left out."""
    root = folder.resolve()
    found = root.rglob(glob) if recursive else root.glob(glob)
    items = []
    for path in sorted(found):
        rel = path.relative_to(root)
        if any(part.startswith(".") for part in rel.parts):
            continue
        if path.is_symlink() and not _inside(path.resolve(), root):
            continue
        if path.is_file():
            items.append(IngestItem(source=str(path)))
    return items


def read_manifest(path: Path, *, text_template: str | None = None,
                  root: str | None = None) -> list[IngestItem]:
    """Rows of a ``.csv`` (header row) or ``.jsonl`` manifest as items; bad rows as rejected items."""
    base = path.resolve().parent
    allowed_root = Path(root).resolve() if root else base
    template = Path(text_template).read_text(encoding="utf-8") if text_template else None
    items = []
    for line, row, problem in _rows(path):
        where = f"{path.name} line {line}"
        if problem:
            items.append(IngestItem(source=f"{path}:{line}", line=line, error="bad-manifest-row",
                                    error_message=f"{where}: {problem}"))
            continue
        items.append(_item_from_row(row, line, where, base, allowed_root, template))
    return items


def _rows(path: Path) -> Iterator[tuple[int, Mapping[str, Any], str | None]]:
    """(line number, row, problem) for every data row."""
    try:
        handle = path.open(encoding="utf-8-sig", newline="")
    except OSError as exc:
        yield 0, {}, f"cannot read the manifest: {exc.strerror}"
        return
    with handle:
        if path.suffix.lower() == ".csv":
            reader = csv.DictReader(handle)
            if not reader.fieldnames or "source" not in reader.fieldnames:
                yield 1, {}, "the CSV header has no 'source' column"
                return
            for row in reader:
                if None in row:
                    yield reader.line_num, {}, "more fields than the header has"
                else:
                    yield reader.line_num, row, None
            return
        for number, text in enumerate(handle, start=1):
            if not text.strip():
                continue
            try:
                row = json.loads(text)
            except json.JSONDecodeError as exc:
                yield number, {}, f"not valid JSON ({exc.msg})"
                continue
            if not isinstance(row, dict):
                yield number, {}, "a JSONL row must be an object"
            else:
                yield number, row, None


def _item_from_row(row: Mapping[str, Any], line: int, where: str, base: Path, root: Path,
                   template: str | None) -> IngestItem:
    source = str(row.get("source") or "").strip()
    if not source:
        return IngestItem(source=f"{where}", line=line, error="bad-manifest-row",
                          error_message=f"{where}: empty 'source'")
    tags = row.get("tags") or ()
    if isinstance(tags, str):
        tags = tuple(t.strip() for t in tags.split("|") if t.strip())
    text = row.get("text") or None
    if template and not text:
        try:
            text = _fill(template, row)
        except KeyError as exc:
            return IngestItem(source=source, line=line, error="template-field-missing",
                              error_message=f"{where}: the text template needs column {exc}")
    item = IngestItem(source=source, filename=(row.get("filename") or None), text=text,
                      comment=row.get("comment") or None, tags=tuple(str(t) for t in tags),
                      line=line)
    if item.is_url:
        return item
    problem = unsafe_path_reason(source, base, root)
    if problem:
        return IngestItem(source=source, line=line, error="unsafe-path",
                          error_message=f"{where}: {problem}")
    resolved = (base / source) if not os.path.isabs(source) else Path(source)
    return IngestItem(source=str(resolved), filename=item.filename, text=text,
                      comment=item.comment, tags=item.tags, line=line)


def unsafe_path_reason(source: str, base: Path, root: Path) -> str | None:
    """Why a manifest path may not be opened (None when it is fine): NUL bytes, escapes from the
    root (``..``, absolute paths, symlinks), things that are not regular files."""
    if "\x00" in source:
        return "the path contains a NUL byte"
    candidate = Path(source) if os.path.isabs(source) else base / source
    try:
        resolved = candidate.resolve(strict=False)
    except (OSError, RuntimeError):
        return f"cannot resolve {source!r}"
    if not _inside(resolved, root):
        return f"{source!r} leads outside {root}"
    if resolved.exists() and not resolved.is_file():
        return f"{source!r} is not a regular file"
    return None


def _inside(path: Path, root: Path) -> bool:
    return path == root or root in path.parents


class _Row(dict):  # type: ignore[type-arg]
    """Template values: manifest columns, with a KeyError naming a missing one."""


def _fill(template: str, row: Mapping[str, Any]) -> str:
    """``{column}`` placeholders filled from the row (``{{``/``}}`` for literal braces)."""
    values = _Row({k: "" if v is None else v for k, v in row.items()})
    for _, field_name, _, _ in string.Formatter().parse(template):
        if field_name and field_name not in values:
            raise KeyError(field_name)
    return template.format_map(values)
