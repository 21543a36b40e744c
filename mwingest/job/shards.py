"""Splitting a big import into shards that workers on many machines run in parallel.

Why by count *and* bytes: a shard is one flow run on one worker. Fifty small photos or one 4 GiB
scan are each a fair share; a shard of fifty 4 GiB scans would keep one machine busy for hours
while the others idle. Shards are contiguous slices of the item list (as the sources list them),
and the plan writes every item with its shard number into the ledger database
(:func:`write_plan`): a shard run on any machine reads its own items from there.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from mwingest.base.items import IngestItem
from mwingest.describe.manifest import local_size
from mwingest.ledger.ledger import Ledger, Plan


def plan_shards(sizes: Sequence[int], *, max_files: int, max_bytes: int) -> list[tuple[int, int]]:
    """``[(start, stop), …]`` covering ``range(len(sizes))`` in order: a shard closes before it
    would pass ``max_files`` items or ``max_bytes`` bytes (an item larger than ``max_bytes`` gets
    a shard of its own)."""
    if max_files < 1 or max_bytes < 1:
        raise ValueError("max_files and max_bytes must be at least 1")
    shards: list[tuple[int, int]] = []
    start, count, total = 0, 0, 0
    for index, size in enumerate(sizes):
        size = max(0, int(size))
        if count and (count + 1 > max_files or total + size > max_bytes):
            shards.append((start, index))
            start, count, total = index, 0, 0
        count += 1
        total += size
    if count:
        shards.append((start, len(sizes)))
    return shards


def write_plan(ledger: Ledger, plan_id: str, items: Sequence[IngestItem], *, wiki: str,
               login_block: str, params: dict[str, Any], max_files: int,
               max_bytes: int) -> Plan:
    """Split ``items`` into shards and write the plan, its items and its shards to the ledger."""
    sizes = [local_size(item) for item in items]
    shards = plan_shards(sizes, max_files=max_files, max_bytes=max_bytes)
    return ledger.create_plan(plan_id, wiki=wiki, login_block=login_block, params=params,
                              items=items, sizes=sizes, shards=shards)
