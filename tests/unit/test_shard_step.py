"""What the planned import's report does about each shard's run (``flows.fanout.shard_step``), on
Prefect's own state objects: wait, start a crashed shard again once its leases ran out, and start
again a shard whose worker took it and died before it began (no heartbeat ever comes for that one,
so the crash automation never marks it; the report hung on it once in a rehearsal)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from prefect.states import Cancelled, Completed, Crashed, Failed, Pending, Running, Scheduled

from flows.fanout import MAX_SHARD_ATTEMPTS, PENDING_GRACE_S, shard_step

NOW = datetime(2026, 12, 8, 1, 0, tzinfo=UTC)
LEASE_S = 15.0


def ago(seconds: float) -> datetime:
    return NOW - timedelta(seconds=seconds)


@pytest.mark.parametrize(("state", "attempts", "step"), [
    (None, 0, "wait"),
    (Scheduled(timestamp=ago(3600)), 0, "wait"),  # no worker took it yet: one will
    (Running(timestamp=ago(3600)), 0, "wait"),  # heartbeats (the crash automation) judge it
    (Pending(timestamp=ago(5)), 0, "wait"),  # a worker is starting it
    (Pending(timestamp=ago(PENDING_GRACE_S + 1)), 0, "never-began"),
    (Pending(timestamp=ago(PENDING_GRACE_S + 1)), MAX_SHARD_ATTEMPTS, "wait"),
    (Crashed(timestamp=ago(LEASE_S - 1)), 1, "wait"),  # its files' leases may still be held
    (Crashed(timestamp=ago(LEASE_S + 1)), 1, "restart"),
    (Crashed(timestamp=ago(LEASE_S + 1)), MAX_SHARD_ATTEMPTS, "done"),  # crashed too often
    (Completed(timestamp=ago(1)), 0, "done"),
    (Failed(timestamp=ago(1)), 0, "done"),
    (Cancelled(timestamp=ago(1)), 0, "done"),
])
def test_each_shard_state_leads_to_one_step(state, attempts, step):  # noqa: ANN001
    assert shard_step(state, attempts, LEASE_S, now=NOW) == step
