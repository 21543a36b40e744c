"""Whether a process, or any process of a group, is still alive (reads /proc: Linux).

Why a module of its own: the throwaway wiki and the local Prefect server both stop a process
group and must know when nothing of it is left; a zombie counts as gone.
"""

from __future__ import annotations

import contextlib
from pathlib import Path


def _stat_fields(stat: Path) -> list[str]:
    """The fields after the ``)`` that closes the command name: state ppid pgrp ..."""
    return stat.read_text().rsplit(")", 1)[1].split()


def alive(pid: int) -> bool:
    """True while ``pid`` is a live, non-zombie process."""
    try:
        return _stat_fields(Path(f"/proc/{pid}/stat"))[0] not in ("Z", "X")
    except (OSError, IndexError):
        return False


def group_alive(pgid: int) -> bool:
    """True while a live (non-zombie) process is in group ``pgid``."""
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, IndexError, ValueError):
            fields = _stat_fields(stat)
            if int(fields[2]) == pgid and fields[0] not in ("Z", "X"):
                return True
    return False
