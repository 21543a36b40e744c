"""Shards by count and bytes (``mwingest.shards``)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mwingest.shards import plan_shards


def test_count_and_bytes_each_close_a_shard():
    assert plan_shards([1] * 5, max_files=2, max_bytes=100) == [(0, 2), (2, 4), (4, 5)]
    assert plan_shards([60, 60, 10, 10, 90], max_files=10, max_bytes=100) == [
        (0, 1), (1, 4), (4, 5)]
    assert plan_shards([500, 1, 1], max_files=10, max_bytes=100) == [(0, 1), (1, 3)]  # alone
    assert plan_shards([], max_files=3, max_bytes=3) == []
    with pytest.raises(ValueError):
        plan_shards([1], max_files=0, max_bytes=1)


@given(st.lists(st.integers(0, 1000), max_size=200), st.integers(1, 20), st.integers(1, 3000))
def test_shards_cover_every_item_once_in_order_within_their_bounds(sizes, files, limit):
    shards = plan_shards(sizes, max_files=files, max_bytes=limit)
    assert [i for start, stop in shards for i in range(start, stop)] == list(range(len(sizes)))
    for start, stop in shards:
        assert 1 <= stop - start <= files
        assert stop - start == 1 or sum(sizes[start:stop]) <= limit
