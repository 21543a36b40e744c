"""What a person does in the Prefect UI (v2, under ``/v2``), one function per step.

Only selectors a person would also use: link and button names, field labels, dialog titles,
and the few test ids Prefect ships. Element ids are generated per render, and the Prefect notes
(../shared/notes/prefect-ui-browser-testing.md) list what held across runs with Prefect 3.9.1.
A field with a default is labelled ``"<title> (Optional)"``; our forms set every title.
"""

from __future__ import annotations

import json
import re
import time
from typing import Any
from urllib.parse import urlsplit

#: Every state a flow run's header badge can show.
STATES = ("Scheduled", "Late", "AwaitingRetry", "Pending", "Running", "Retrying", "Paused",
          "Suspended", "Cancelling", "Cancelled", "Completed", "Cached", "RolledBack", "Failed",
          "Crashed", "TimedOut")
FINAL_BAD = frozenset({"Failed", "Crashed", "Cancelled", "TimedOut"})
_STATE_RE = re.compile(rf"^\s*({'|'.join(STATES)})\s*$")
STEP_TIMEOUT_MS = 30_000
#: A run page whose state badge has not changed for this long is reloaded.
RELOAD_AFTER_S = 10.0


def open_custom_run(page: Any, ui: str, deployment: str) -> None:
    """Deployments → the deployment's page → Run → Custom run (the parameter form)."""
    page.goto(f"{ui}/v2/deployments")
    page.get_by_role("link", name=deployment, exact=True).first.click(timeout=STEP_TIMEOUT_MS)
    page.get_by_role("button", name="Run", exact=True).click(timeout=STEP_TIMEOUT_MS)
    page.get_by_role("menuitem", name="Custom run").click()
    page.get_by_role("heading", name="Parameters").wait_for(timeout=STEP_TIMEOUT_MS)


def submit_run(page: Any, ui: str) -> str:
    """Submit the form; follow the toast's "View run" link; the run page's URL."""
    page.get_by_role("button", name="Submit").click()
    link = page.get_by_role("link", name="View run").first
    toasts = page.get_by_role("region", name=re.compile("^Notifications"))
    said: list[str] = []
    deadline = time.monotonic() + STEP_TIMEOUT_MS / 1000
    while link.count() == 0:
        if (text := toasts.inner_text().strip()) and text not in said:
            said.append(text)  # an error toast (the server refused the parameters) fades away
        if time.monotonic() > deadline:
            raise AssertionError(f"no run after Submit; the page said: {said}")
        page.wait_for_timeout(250)
    href = link.get_attribute("href")
    assert href and "/runs/flow-run/" in href, f"no run link in the toast: {href!r}"
    page.goto(f"{ui}{href}")
    wait_for_header(page)
    return page.url


def wait_for_header(page: Any, timeout_ms: float = STEP_TIMEOUT_MS) -> None:
    """Wait until a run page has drawn its header (the state badge), not just an empty shell."""
    page.locator("main [data-slot='badge']").filter(has_text=_STATE_RE).first.wait_for(
        timeout=timeout_ms)


def run_state(page: Any) -> str | None:
    """The state in the open run page's header badge (the page refreshes it by itself)."""
    badge = page.locator("main [data-slot='badge']").filter(has_text=_STATE_RE).first
    if badge.count() == 0:
        return None
    return badge.inner_text().strip()


def wait_for_state(page: Any, wanted: str, timeout_s: float, on_bad: Any = None) -> None:
    """Wait until the run page shows ``wanted``; fail at once on a bad final state.

    The page polls the server by itself, but a badge that has not moved for a while is reloaded,
    as a person would press F5 — and then given time to draw its header again before it is
    judged: only a page that shows a state is reloaded (a page reloaded every ``RELOAD_AFTER_S``
    whatever it showed could be reloaded for ever before drawing it on a busy machine: a failure
    saw ``['Paused', None]`` for 90 s). ``on_bad`` gives extra text for the failure message (the
    serve log, where a flow run's traceback is); the message also says what the API says.
    """
    deadline = time.monotonic() + timeout_s
    seen: list[str | None] = []
    since = time.monotonic()
    while time.monotonic() < deadline:
        state = run_state(page)
        if not seen or state != seen[-1]:
            seen.append(state)
            since = time.monotonic()
        if state == wanted:
            return
        if state in FINAL_BAD and wanted not in FINAL_BAD:
            break
        if state is not None and time.monotonic() - since > RELOAD_AFTER_S:
            page.reload()
            try:
                wait_for_header(page, max(1.0, deadline - time.monotonic()) * 1000)
            except Exception:  # noqa: BLE001 - judged below, with what the API says
                break
            since = time.monotonic()
            continue
        page.wait_for_timeout(500)
    extra = on_bad() if callable(on_bad) else ""
    raise AssertionError(f"run states seen {seen}, wanted {wanted!r} ({page.url}); the API says "
                         f"{api_state(page.url)}\n{extra}")


def api_state(run_url: str) -> str:
    """The run's state as the Prefect API has it (for failure messages), from its page's URL."""
    import requests

    parts = urlsplit(run_url)
    match = re.search(r"/runs/flow-run/([0-9a-f-]{36})", parts.path)
    if match is None:
        return "(no run id in the URL)"
    http = requests.Session()
    http.trust_env = False  # loopback only
    try:
        run = http.get(f"{parts.scheme}://{parts.netloc}/api/flow_runs/{match.group(1)}",
                       timeout=10).json()
    except (requests.RequestException, json.JSONDecodeError) as exc:
        return f"(not read: {exc})"
    return f"{run.get('state_name')!r} ({run.get('state_type')})"


def open_tab(page: Any, name: str) -> None:
    """One of a run page's tabs: Logs, Task Runs, Subflow Runs, Artifacts, Parameters, …"""
    page.get_by_role("tab", name=name, exact=True).click()


def open_subflow_run(page: Any, name: str, timeout_s: float) -> None:
    """Subflow Runs tab → the child run called ``name`` (it appears once the parent starts it)."""
    open_tab(page, "Subflow Runs")
    link = page.get_by_role("link", name=name, exact=True).first
    deadline = time.monotonic() + timeout_s
    while link.count() == 0:
        if time.monotonic() > deadline:
            raise AssertionError(f"no subflow run {name!r} within {timeout_s} s ({page.url})")
        page.wait_for_timeout(1000)
        if link.count() == 0:  # the list does not always refresh itself: reload the tab
            page.reload()
            open_tab(page, "Subflow Runs")
    link.click()
    page.get_by_role("link", name=name).or_(page.get_by_text(name)).first.wait_for()


def open_resume_dialog(page: Any, form_heading: str, timeout_s: float) -> Any:
    """Run menu (⋮) → Resume; the dialog, once it shows the form's description.

    Prefect sets a run Paused *before* it stores the form and its description, so a dialog opened
    right away can come up without them: close it and open it again, as a person would.
    """
    deadline = time.monotonic() + timeout_s
    while True:
        page.get_by_role("button", name="Open menu").first.click()
        page.get_by_role("menuitem", name="Resume").click()
        dialog = page.get_by_role("dialog", name="Resume Flow Run")
        heading = dialog.get_by_role("heading", name=form_heading)
        try:
            heading.wait_for(timeout=5_000)
            return dialog
        except Exception:
            if time.monotonic() > deadline:
                raise
            dialog.get_by_role("button", name="Cancel").click()
            page.wait_for_timeout(1000)


def choose(page: Any, scope: Any, field_title: str, option: str) -> None:
    """Pick ``option`` in the select labelled ``field_title`` (an enum or Literal field)."""
    scope.get_by_role("button", name=f"Select {field_title}").click()
    page.get_by_role("option", name=option, exact=True).click()


def artifact_links(page: Any) -> dict[str, str]:
    """The open run's Artifacts tab: artifact key → its page's path."""
    open_tab(page, "Artifacts")
    grid = page.get_by_test_id("flow-run-artifacts-grid")
    grid.wait_for(timeout=STEP_TIMEOUT_MS)
    out = {}
    for link in grid.get_by_role("link").all():
        key = link.get_by_role("heading").first.inner_text().strip()
        out[key] = link.get_attribute("href") or ""
    return out


def table_rows(page: Any) -> list[dict[str, str]]:
    """The rows of a table artifact's page, as column name → cell text."""
    table = page.get_by_test_id("table-display")
    table.locator("tbody tr").first.wait_for(timeout=STEP_TIMEOUT_MS)  # drawn after the frame
    return table.evaluate("""t => {
        const head = [...t.querySelectorAll('thead th')].map(th => th.innerText.trim());
        return [...t.querySelectorAll('tbody tr')].map(tr => Object.fromEntries(
            [...tr.querySelectorAll('td')].map((td, i) => [head[i], td.innerText.trim()])));
    }""")
