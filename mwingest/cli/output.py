"""How the ``mwingest`` command shows outcomes: JSON lines and the outcome table.

Why apart from the commands: this is the contract scripts depend on (``--json``: one object per
item, exactly :data:`JSON_KEYS`, written once each even though outcomes arrive from worker
threads) and the exit-status rule; rich is imported only when a table is drawn. What shows while
a run goes on is :mod:`mwingest.cli.progress`.
"""

from __future__ import annotations

import json
import sys
import threading
from collections import Counter
from collections.abc import Sequence
from typing import TYPE_CHECKING

import typer

from mwingest.base.items import shown_title

if TYPE_CHECKING:
    from mwingest.base.items import Outcome

#: The keys of every ``--json`` line, in this order.
JSON_KEYS = ("source", "filename", "outcome", "reason", "message", "sha1", "size", "url", "filekey")
#: Outcomes that make exit status 0 (``ok`` is ``check``'s).
GOOD_OUTCOMES = frozenset({"uploaded", "skipped", "ok"})


def exit_code(outcomes: Sequence[Outcome]) -> int:
    """0 when every item is uploaded (with all its structured data), skipped or ok; 1 otherwise."""
    from mwingest.base.items import STRUCTURED_DATA_FAILED

    return 0 if all(o.outcome in GOOD_OUTCOMES and o.reason != STRUCTURED_DATA_FAILED
                    for o in outcomes) else 1


def json_line(outcome: Outcome) -> str:
    """The ``--json`` line of one outcome: exactly :data:`JSON_KEYS`."""
    data = outcome.as_dict()
    return json.dumps({key: data.get(key) for key in JSON_KEYS}, ensure_ascii=False)


class OutcomeLines:
    """Writes one line per outcome on stdout, once, as it happens (outcomes arrive from worker
    threads); :meth:`finish` writes those no listener call reported, so every item has its line."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._written: Counter[Outcome] = Counter()

    def line(self, outcome: Outcome) -> str:
        raise NotImplementedError

    def write(self, text: str) -> None:
        with self._lock:
            sys.stdout.write(text + "\n")
            sys.stdout.flush()

    def __call__(self, outcome: Outcome) -> None:
        with self._lock:
            sys.stdout.write(self.line(outcome) + "\n")
            sys.stdout.flush()
            self._written[outcome] += 1

    def progress(self, source: str, label: str, done: int, total: int) -> None:
        """Lines have no place for bytes in flight."""

    def finish(self, outcomes: Sequence[Outcome]) -> None:
        missing = Counter(outcomes) - self._written
        for outcome in outcomes:
            if missing[outcome] > 0:
                missing[outcome] -= 1
                self(outcome)


class JsonLines(OutcomeLines):
    """``--json``: exactly one JSON object per item on stdout."""

    def line(self, outcome: Outcome) -> str:
        return json_line(outcome)


def print_table(outcomes: Sequence[Outcome]) -> None:
    """The outcome table a person reads at the end of a run (stdout)."""
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    from mwingest.base.items import STRUCTURED_DATA_FAILED

    counts = Counter(o.outcome for o in outcomes)
    apart = sum(1 for o in outcomes if o.reason == STRUCTURED_DATA_FAILED)
    table = Table(title=f"{len(outcomes)} items: "
                        + ", ".join(f"{n} {name}" for name, n in sorted(counts.items()))
                        + (f" ({apart} of them without their structured data)" if apart else ""))
    for column in ("source", "filename", "outcome", "reason", "message"):
        table.add_column(column, overflow="fold")
    colours = {"uploaded": "green", "skipped": "cyan", "ok": "green", "rejected": "red",
               "failed": "red", "needs-review": "yellow"}
    for o in outcomes:
        table.add_row(escape(o.source), escape(shown_title(o.filename)),
                      f"[{colours.get(o.outcome, 'white')}]{o.outcome}[/]", escape(o.reason or ""),
                      escape(o.message or ""))
    Console().print(table)


def fail(message: str) -> typer.Exit:
    """A usage or connection problem: one line on stderr, exit 2 (``raise fail(...)``)."""
    typer.echo(f"mwingest: {' '.join(message.split())}", err=True)
    return typer.Exit(2)
