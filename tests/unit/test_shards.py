"""Shards by count and bytes, and plans written to the ledger (``mwingest.job.shards``), on both
backends."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mwingest.base.items import IngestItem
from mwingest.job.shards import plan_shards, write_plan
from mwingest.ledger.ledger import UnknownPlanError


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


def _items(folder, sizes):
    items = []
    for n, size in enumerate(sizes):
        path = folder / f"f{n}.png"
        path.write_bytes(b"x" * size)
        items.append(IngestItem(source=str(path), filename=f"F {n}.png", text=f"Text {n} ünï",
                                tags=("a", "b"), line=n + 2, key=f"acc-{n}"))
    return items


def test_a_plan_is_written_once_and_each_shard_reads_back_its_own_items(ledger, tmp_path):
    items = _items(tmp_path, [10, 10, 10, 50, 10])
    items.append(IngestItem(source="https://example.org/a.jpg"))  # a URL: size 0
    plan = write_plan(ledger, "p1", items, wiki="HTTP://Wiki.Example/w/api.php",
                      login_block="mwingest-wiki", params={"comment": "c", "concurrency": 2},
                      max_files=3, max_bytes=55)
    assert (plan.files, plan.shards, plan.wiki) == (6, 3, "http://wiki.example/w/api.php")
    assert plan.params == {"comment": "c", "concurrency": 2} and plan.report_run is None
    shards = ledger.shards_of("p1")
    assert [(s.shard, s.files, s.bytes, s.run_id, s.attempts) for s in shards] == [
        (0, 3, 30, None, 0), (1, 1, 50, None, 0), (2, 2, 10, None, 0)]
    assert ledger.plan_ids() == ["p1"]
    assert ledger.plan_items("p1") == items  # every field back, tags a tuple again
    assert ledger.plan_items("p1", 1) == items[3:4]
    assert ledger.plan_items("p1", 2) == items[4:]
    with pytest.raises(UnknownPlanError):
        ledger.plan("nope")


def test_shard_runs_and_the_report_change_only_by_compare_and_set(ledger, tmp_path):
    write_plan(ledger, "p2", _items(tmp_path, [1, 1]), wiki="http://w/api.php",
               login_block="b", params={}, max_files=1, max_bytes=10)
    assert ledger.set_shard_run("p2", 0, "run-a", expect=None)
    assert not ledger.set_shard_run("p2", 0, "run-b", expect=None)  # a second starter loses
    assert not ledger.set_shard_run("p2", 0, "run-b", expect="run-x")
    assert ledger.set_shard_run("p2", 0, "run-c", expect="run-a")  # started again after a crash
    first = ledger.shards_of("p2")[0]
    assert (first.run_id, first.attempts) == ("run-c", 2)
    assert ledger.adopt_report("p2", "rep-1").report_attempts == 1
    assert ledger.adopt_report("p2", "rep-1").report_attempts == 1  # the same run again: no count
    taken = ledger.adopt_report("p2", "rep-2")
    assert (taken.report_run, taken.report_attempts) == ("rep-2", 2)
    with pytest.raises(UnknownPlanError):
        ledger.adopt_report("nope", "rep")


def test_a_plan_refuses_secret_looking_params_and_writes_nothing(ledger, tmp_path):
    with pytest.raises(ValueError):
        write_plan(ledger, "p3", _items(tmp_path, [1]), wiki="http://w/api.php",
                   login_block="b", params={"password": "x"}, max_files=1, max_bytes=1)
    with pytest.raises(UnknownPlanError):
        ledger.plan("p3")
