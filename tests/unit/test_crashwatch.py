"""Installing the crash automations rides out a busy Prefect server.

The server here is a scripted ``Send``: a real SQLite-backed Prefect server answers 503
("database is locked") only under load nobody can order on demand, so the answers are scripted.
"""

from __future__ import annotations

from typing import Any

import pytest
import requests

from mwingest.runtime import crashwatch


class Busy:
    """A Prefect API that answers ``status`` to the first ``failures`` requests, then keeps its
    automations in a dict; ``lose_create`` makes the first create land but its answer get lost."""

    def __init__(self, failures: int, status: int = 503, lose_create: bool = False) -> None:
        self.failures, self.status, self.lose_create = failures, status, lose_create
        self.automations: dict[str, dict[str, Any]] = {}
        self.calls: list[tuple[str, str]] = []

    def __call__(self, method: str, path: str, body: Any) -> Any:
        self.calls.append((method, path))
        if self.failures:
            self.failures -= 1
            answer = requests.Response()
            answer.status_code = self.status
            answer.headers["Retry-After"] = "0"
            raise requests.HTTPError(f"{self.status}", response=answer)
        if path == "/automations/filter":
            names = body["automations"]["name"]["any_"]
            return [a for a in self.automations.values() if a["name"] in names]
        if method == "POST":
            made = dict(body, id=f"id-{len(self.automations)}")
            self.automations[made["id"]] = made
            if self.lose_create:
                self.lose_create = False
                raise requests.ConnectionError("answer lost")
            return made
        automation_id = path.rsplit("/", 1)[1]
        self.automations[automation_id] = dict(body, id=automation_id)
        return None


def test_a_locked_database_is_tried_again_and_both_automations_are_made_once() -> None:
    server = Busy(failures=3)
    automation_id = crashwatch.install_crash_automation(server, heartbeat_s=5)
    names = sorted(a["name"] for a in server.automations.values())
    assert names == sorted([crashwatch.AUTOMATION_NAME, crashwatch.REPORT_AUTOMATION_NAME])
    assert server.automations[automation_id]["name"] == crashwatch.AUTOMATION_NAME


def test_a_create_whose_answer_was_lost_is_found_and_not_made_twice() -> None:
    server = Busy(failures=0, lose_create=True)
    crashwatch.install_crash_automation(server, heartbeat_s=5)
    assert len(server.automations) == 2


def test_a_refusal_is_not_tried_again() -> None:
    server = Busy(failures=5, status=422)
    with pytest.raises(requests.HTTPError):
        crashwatch.install_crash_automation(server)
    assert len(server.calls) == 1


def test_a_server_busy_beyond_the_budget_gives_its_error() -> None:
    server = Busy(failures=10**6)
    with pytest.raises(requests.HTTPError):
        crashwatch._install(server, crashwatch.report_automation(), budget_s=0.0)
    assert len(server.calls) == 1
