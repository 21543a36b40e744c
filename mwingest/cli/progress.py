"""What a running import shows while it runs: a live display on a terminal, plain lines elsewhere.

Why two: a person at a terminal wants to see bytes move — how much of the batch is on the wiki,
how fast, how long to go, and each file in flight chunk by chunk (a 4 GiB file shows progress
within seconds, not when it ends). A log file or a CI job wants one plain line per finished file
and a summary, nothing that redraws. Both are told by the flow from worker threads: outcomes as
files end, ``(source, label, bytes on the wiki, size)`` after each step. rich is imported only for
the live display.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from mwingest.cli.output import OutcomeLines, shown_title

if TYPE_CHECKING:
    from mwingest.base.items import Outcome
    from mwingest.wiki.pacing import PaceNote


def batch_size(sources: list[str], glob: str, text_template: str | None) -> tuple[int, int]:
    """(files, local bytes) the sources stand for: the totals of the display."""
    from mwingest.describe.manifest import local_size
    from mwingest.describe.sources import collect

    items = collect(sources, glob=glob, text_template=text_template)
    return len(items), sum(local_size(item) for item in items)


def summary_line(outcomes: Sequence[Outcome], seconds: float) -> str:
    """``5 files in 3.2 s: 4 uploaded, 1 rejected; 12.6 MB sent``."""
    from rich.filesize import decimal

    counts = Counter(o.outcome for o in outcomes)
    sent = sum(o.bytes_sent for o in outcomes)
    parts = ", ".join(f"{n} {name}" for name, n in sorted(counts.items())) or "nothing to do"
    return f"{len(outcomes)} files in {seconds:.1f} s: {parts}; {decimal(sent)} sent"


def plain_line(outcome: Outcome) -> str:
    """One finished file: outcome, reason, name on the wiki (or the source), message."""
    name = shown_title(outcome.filename) or outcome.source
    where = f" <- {outcome.source}" if outcome.filename and outcome.filename != outcome.source else ""
    message = f"  {' '.join(outcome.message.split())}" if outcome.message else ""
    return f"{outcome.outcome:<12} {outcome.reason or '-':<20} {name}{where}{message}"


class PlainLines(OutcomeLines):
    """Without a terminal: one line per finished file as it ends, then a summary."""

    def __init__(self) -> None:
        super().__init__()
        self._started = time.monotonic()

    def line(self, outcome: Outcome) -> str:
        return plain_line(outcome)

    def finish(self, outcomes: Sequence[Outcome]) -> None:
        super().finish(outcomes)
        self.write(summary_line(outcomes, time.monotonic() - self._started))


class LiveProgress:
    """On a terminal (stderr): the batch's bytes and files done of the total, rate and time left,
    and one line per file in flight with its bytes. The outcome table follows at the end."""

    def __init__(self, total_files: int, total_bytes: int) -> None:
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            DownloadColumn,
            Progress,
            TextColumn,
            TimeRemainingColumn,
            TransferSpeedColumn,
        )

        self._lock = threading.Lock()
        self._files_done = 0
        self._total_files = total_files
        self._finished_bytes = 0
        self._in_flight: dict[str, tuple[Any, int]] = {}  # source -> (task id, bytes done)
        self._started = time.monotonic()
        self.console = Console(stderr=True)
        self._progress = Progress(
            TextColumn("{task.description}", markup=False), BarColumn(), DownloadColumn(),
            TransferSpeedColumn(), TimeRemainingColumn(), TextColumn("{task.fields[files]}"),
            console=self.console, transient=True)
        self._batch = self._progress.add_task("batch", total=max(total_bytes, 1),
                                              files=self._files())
        self._pace: Any = None  # the line saying the account's pace, once a file waits for it

    def pace(self, note: PaceNote) -> None:
        """A file waits for the account's upload limit: one line says so, with the pace and the
        batch's time left at it (the bytes' rate says nothing when the limit sets the speed)."""
        with self._lock:
            text = f"  {note.message()}"
            if self._pace is None:
                self._pace = self._progress.add_task(text, total=None, files="")
            else:
                self._progress.update(self._pace, description=text)

    def _files(self) -> str:
        return f"{self._files_done}/{self._total_files} files"

    def __enter__(self) -> LiveProgress:
        self._progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._progress.stop()

    def _update_batch(self) -> None:
        done = self._finished_bytes + sum(b for _, b in self._in_flight.values())
        self._progress.update(self._batch, completed=done, files=self._files())

    def progress(self, source: str, label: str, done: int, total: int) -> None:
        """A file moved on (a chunk landed, a step ended)."""
        with self._lock:
            entry = self._in_flight.get(source)
            name = label if len(label) <= 40 else "…" + label[-39:]
            if entry is None:
                task = self._progress.add_task(f"  {name}", total=max(total, 1), files="")
            else:
                task = entry[0]
            self._progress.update(task, completed=done, total=max(total, 1))
            self._in_flight[source] = (task, done)
            self._update_batch()

    def __call__(self, outcome: Outcome) -> None:
        """A file ended: its line goes, its bytes count as done (sent, skipped or refused)."""
        with self._lock:
            entry = self._in_flight.pop(outcome.source, None)
            if entry is not None:
                self._progress.remove_task(entry[0])
            self._files_done += 1
            self._finished_bytes += outcome.size or 0
            self._update_batch()

    def finish(self, outcomes: Sequence[Outcome]) -> None:
        """Stop drawing; the summary line goes above the table."""
        self._progress.stop()
        self.console.print(summary_line(outcomes, time.monotonic() - self._started),
                           highlight=False)
