"""Moved out of :mod:`mwingest.describe.manifest` so that its importers need not import it (issue 25)."""

from __future__ import annotations

import os
import string
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from mwingest.describe import metadata


def load_template(path: str | os.PathLike[str]) -> str:
    """The text template in ``path``, checked once: a malformed one is the whole run's problem
    (``ValueError`` naming the file), not a rejection of every row."""
    try:
        template = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ValueError(f"cannot read the text template {path}: {exc}") from None
    try:
        fields = [name for _, name, _, _ in string.Formatter().parse(template) if name is not None]
    except ValueError as exc:
        raise ValueError(f"text template {path}: {exc} (write {{{{ and }}}} for literal braces)") from None
    for name in fields:
        dotted = "." in name and name not in metadata.FIELDS  # {gps.lat} yes, {title.upper} no
        if not name.strip() or name.isdigit() or "[" in name or dotted:
            raise ValueError(f"text template {path}: {{{name}}} is not a column name "
                             f"(placeholders are manifest columns or metadata fields, like "
                             f"{{title}} or {{gps.lat}})")
    return template


def header_name(name: str, known: Iterable[str]) -> str:
    """A header cell as a column name: trimmed, known columns in lower case (``Source *`` is
    ``source*``)."""
    name = name.strip()
    plain = name.rstrip("* ").lower()
    return plain + name[len(name.rstrip("* ")):].replace(" ", "") if plain in known else name


class _WholeNames(string.Formatter):
    """``{gps.lat}`` is the field named ``gps.lat``, not attribute ``lat`` of ``gps``: field
    names are looked up whole (and no attribute of a value is ever reached from a template)."""

    def get_field(self, field_name: str, args: Any, kwargs: Any) -> tuple[Any, str]:
        return self.get_value(field_name, args, kwargs), field_name


def fill_template(template: str, values: Mapping[str, Any]) -> str:
    """``{column}`` placeholders filled from ``values`` (``{{``/``}}`` for literal braces);
    ``KeyError`` names a placeholder without a value."""
    values = {k: "" if v is None else v for k, v in values.items()}
    for _, field_name, _, _ in string.Formatter().parse(template):
        if field_name and field_name not in values:
            raise KeyError(field_name)
    return _WholeNames().vformat(template, (), values)
