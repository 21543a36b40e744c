"""The Prefect automation that marks a killed run Crashed, and the heartbeat interval it expects.

Why: a flow run whose process was killed (``kill -9``, a lost machine) stays ``Running`` for ever
on a self-hosted Prefect server. mwingest's flows send a heartbeat event every
:func:`heartbeat_seconds` (``flows.heartbeat``); this automation, installed by ``mwingest server``
and by ``python -m deployments.register``, changes a run's state to Crashed when its heartbeats
stop. Plain Python: the server's REST API through ``requests``.
"""

from __future__ import annotations

import os
import random
import time
from collections.abc import Callable
from typing import Any

import requests

from mwingest.base.retry import parse_retry_after

#: Seconds a flow run may go without a heartbeat before the server's automation marks it Crashed,
#: counted in heartbeat intervals (``MWINGEST_HEARTBEAT_S``, default 30 s).
DEFAULT_HEARTBEAT_S = 30.0
MISSED_HEARTBEATS = 3
AUTOMATION_NAME = "mwingest: flow runs without heartbeats crashed"
#: The flows whose runs send mwingest's heartbeats; the automation watches these alone, so the
#: other flows of a shared server (Prefect's own heartbeats come every 180 s) are left alone.
HEARTBEAT_FLOWS = ("ingest-batch", "import-folder", "import-manifest", "import-urls",
                   "resolve-review", "ask-reviewer", "ingest-shard", "report-import")
#: Events that show a run is alive or over. A pause is not one of them: a run killed while it
#: waits for a person must be found too.
_ALIVE_OR_OVER = ("prefect.flow-run.heartbeat", "prefect.flow-run.Completed",
                  "prefect.flow-run.Failed", "prefect.flow-run.Cancelled",
                  "prefect.flow-run.Cancelling", "prefect.flow-run.Crashed")


def heartbeat_seconds() -> float:
    """The flows' heartbeat interval (``MWINGEST_HEARTBEAT_S``); the automation expects it."""
    return max(1.0, float(os.environ.get("MWINGEST_HEARTBEAT_S") or DEFAULT_HEARTBEAT_S))


#: ``send(method, path, json_body)`` → the answer's JSON: one call to a Prefect server's API.
Send = Callable[[str, str, Any], Any]


def rest_sender(api_url: str, http: requests.Session | None = None) -> Send:
    """Plain HTTP to a local Prefect server (loopback: never through a proxy; ``http`` carries
    the local server's secret). A team's server or Prefect Cloud is reached through Prefect's
    own client instead (``deployments.register``), which carries its authentication."""
    if http is None:
        http = requests.Session()
        http.trust_env = False

    def send(method: str, path: str, body: Any) -> Any:
        answer = http.request(method, f"{api_url}{path}", json=body, timeout=10)
        answer.raise_for_status()
        return answer.json() if answer.content else None

    return send


def crash_automation(heartbeat_s: float | None = None) -> dict[str, Any]:
    """Prefect's zombie automation: a flow run whose heartbeats stop is marked Crashed.

    Why: a run whose process was killed otherwise shows ``Running`` for ever. The flows send a
    heartbeat every ``heartbeat_s`` (``flows.heartbeat``); after ``MISSED_HEARTBEATS`` of them
    are missing, the server changes the run's state. The next heartbeat or a final state
    satisfies the expectation, so finished runs are left alone; a pause does not, so a run killed
    while it waits for a reviewer is found too. Only mwingest's flows are watched.
    """
    within = max(10.0, MISSED_HEARTBEATS * (heartbeat_s or heartbeat_seconds()))
    return {
        "name": AUTOMATION_NAME,
        "description": f"mwingest: mark a flow run Crashed when no heartbeat came for {within:.0f} s "
                       f"(its process was killed or lost).",
        "enabled": True,
        "trigger": {"type": "event", "posture": "Proactive",
                    "match": {"prefect.resource.id": "prefect.flow-run.*"},
                    "match_related": {"prefect.resource.role": "flow",
                                      "prefect.resource.name": list(HEARTBEAT_FLOWS)},
                    "after": ["prefect.flow-run.heartbeat"], "expect": list(_ALIVE_OR_OVER),
                    "for_each": ["prefect.resource.id"], "threshold": 1, "within": within},
        "actions": [{"type": "change-flow-run-state", "state": "CRASHED",
                     "message": f"No heartbeat for {within:.0f} s: the process running this flow "
                                f"run was killed or lost."}],
    }


#: The second automation: a report run of a planned import whose worker died starts again.
REPORT_AUTOMATION_NAME = "mwingest: a crashed report of a planned import starts again"
REPORT_FLOW = "report-import"


def report_automation() -> dict[str, Any]:
    """When a ``report-import`` run is marked Crashed, run its deployment again for the same plan.

    Why the server and not another flow: the report is what watches the shards, so nothing of
    ours is left to watch it. The new run takes over from the plan's rows in the ledger (which
    runs drive the shards now) and gives up after a few starts (``flows.fanout``), so a report
    that crashes for a reason of its own does not start for ever."""
    template = "{{ flow_run.parameters.%s }}"
    return {
        "name": REPORT_AUTOMATION_NAME,
        "description": "mwingest: a report-import run whose worker died is started again for "
                       "the same plan; it takes over from the plan's rows in the ledger.",
        "enabled": True,
        "trigger": {"type": "event", "posture": "Reactive",
                    "match": {"prefect.resource.id": "prefect.flow-run.*"},
                    "match_related": {"prefect.resource.role": "flow",
                                      "prefect.resource.name": [REPORT_FLOW]},
                    "expect": ["prefect.flow-run.Crashed"], "for_each": ["prefect.resource.id"],
                    "threshold": 1, "within": 0},
        "actions": [{"type": "run-deployment", "source": "inferred",
                     "parameters": {"plan_id": template % "plan_id",
                                    "ledger": template % "ledger"}}],
    }


def install_crash_automation(server: str | Send, heartbeat_s: float | None = None) -> str:
    """Create (or bring up to date) the crash automation on a Prefect server, and the one that
    starts a crashed report again; the crash automation's id.

    ``server``: a local server's API URL, or a :data:`Send` over another client."""
    send = rest_sender(server) if isinstance(server, str) else server
    _install(send, report_automation())
    return _install(send, crash_automation(heartbeat_s))


#: Answers of a busy Prefect server worth another try: its SQLite database was locked (503), it
#: was restarting (502/504) or pacing us (429). Prefect's own client retries the same codes.
_BUSY = frozenset({429, 502, 503, 504})
#: Seconds within which a busy server is tried again before the error reaches the caller.
INSTALL_BUDGET_S = 30.0


def _install(send: Send, body: dict[str, Any], budget_s: float = INSTALL_BUDGET_S) -> str:
    """:func:`_install_once`, tried again while the server is busy or unreachable.

    Why the whole look-up-then-write and not the one request: a create whose answer was lost may
    have landed, and the next try's look-up finds it instead of making a second automation."""
    deadline = time.monotonic() + budget_s
    attempt = 0
    while True:
        try:
            return _install_once(send, body)
        except (requests.ConnectionError, requests.Timeout, requests.HTTPError) as exc:
            answer = getattr(exc, "response", None)
            if isinstance(exc, requests.HTTPError) and (
                    answer is None or answer.status_code not in _BUSY):
                raise
            wait = parse_retry_after(answer.headers.get("Retry-After")) if answer is not None \
                else None
            wait = min(8.0, wait if wait is not None else 0.5 * 2 ** attempt * random.uniform(1, 1.5))
            if time.monotonic() + wait >= deadline:
                raise
            attempt += 1
            time.sleep(wait)


def _install_once(send: Send, body: dict[str, Any]) -> str:
    """Create the automation named in ``body``, or replace it when it differs; its id."""
    existing = send("POST", "/automations/filter",
                    {"automations": {"name": {"any_": [body["name"]]}}})
    if existing:
        current = existing[0]
        if not _same(current, body):
            send("PUT", f"/automations/{current['id']}", body)
        return str(current["id"])
    return str(send("POST", "/automations/", body)["id"])


def _same(current: dict[str, Any], body: dict[str, Any]) -> bool:
    """Whether the server's automation already does what ``body`` says (the server adds fields
    of its own, so only ours are compared)."""
    if not current.get("enabled"):
        return False
    trigger = current.get("trigger", {})
    for key, value in body["trigger"].items():
        have = trigger.get(key)
        if isinstance(value, list):
            have, value = sorted(have or []), sorted(value)
        if have != value:
            return False
    actions = current.get("actions") or []
    return len(actions) == len(body["actions"]) and all(
        all(have.get(k) == v for k, v in want.items())
        for have, want in zip(actions, body["actions"], strict=True))
