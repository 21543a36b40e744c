"""Reporting calls to Prefect are best-effort: a failure is swallowed and pauses the others."""

from __future__ import annotations

import pytest

from tasks import reporting

pytestmark = pytest.mark.unit


def test_a_failed_report_pauses_the_others_then_one_tries_again(monkeypatch):
    breaker = reporting.Breaker(quiet_s=30.0)
    monkeypatch.setattr(reporting, "BREAKER", breaker)
    clock = {"t": 1000.0}
    monkeypatch.setattr(reporting.time, "monotonic", lambda: clock["t"])
    calls = []

    def dead() -> None:
        calls.append("dead")
        raise ConnectionError("Connection refused")

    assert reporting.best_effort("progress", dead, default="d") == "d"
    assert reporting.best_effort("progress", lambda: calls.append("skipped")) is None
    assert calls == ["dead"] and breaker.skipped == 1
    clock["t"] += 31  # after the quiet time one call tries again, and a success closes it
    assert reporting.best_effort("table", lambda: "ok") == "ok"
    assert reporting.best_effort("table", lambda: "again") == "again"


def test_a_report_call_retries_once_not_five_times():
    from prefect.settings import PREFECT_CLIENT_MAX_RETRIES

    seen = reporting.best_effort("x", lambda: PREFECT_CLIENT_MAX_RETRIES.value())
    assert seen == reporting.REPORT_RETRIES
    # Built once per settings object, not on every report (each build costs ~0.1 s of CPU).
    from prefect.settings import get_current_settings

    first = reporting.best_effort("x", get_current_settings)
    assert first is not None and reporting.best_effort("y", get_current_settings) is first
    assert get_current_settings() is not first  # outside the call: the settings as they were
