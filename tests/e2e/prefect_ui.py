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
#: Prefect's server answers a write with 503 "Service Unavailable" when SQLite refuses it with
#: "database is locked": a request that read first and then writes (resume, create a run from a
#: deployment: DEFERRED transactions) fails at once, without waiting, when another writer
#: committed in between: the served flow run's logs, states and events, and serve's own poll
#: (every second here, ``PREFECT_RUNNER_POLL_FREQUENCY=1``), after which the server marks the
#: deployments ready, a write. The Python client retries these by itself; the UI only shows a
#: toast and leaves the form as it was. Seen in 3 of 9 runs on the 2-core VM, loaded or not
#: (test-output/ui/console.txt: ``503 POST …/resume``; server.log: ``sqlite3.OperationalError:
#: database is locked`` in ``validate_proposed_state``).
RETRYABLE = frozenset({503})
WRITE_ATTEMPTS = 5


#: The login each server (``host:port``) was given in :func:`log_in`: :func:`api_state` reads the
#: API with it too (a server with an auth string answers 401 without).
_LOGINS: dict[str, str] = {}


def log_in(page: Any, ui: str, auth_string: str) -> None:
    """The UI's login page (a server with ``server.api.auth_string``): the v2 UI sends any page
    there first; one field takes ``user:password``, the browser keeps it for the session."""
    _LOGINS[urlsplit(ui).netloc] = auth_string
    page.goto(f"{ui}/v2/deployments")
    field = page.get_by_placeholder("admin:pass")
    field.wait_for(timeout=STEP_TIMEOUT_MS)
    field.fill(auth_string)
    page.get_by_role("button", name="Login").click()
    page.wait_for_url(lambda url: "/login" not in url, timeout=STEP_TIMEOUT_MS)


def open_custom_run(page: Any, ui: str, deployment: str) -> None:
    """Deployments → the deployment's page → Run → Custom run (the parameter form)."""
    page.goto(f"{ui}/v2/deployments")
    page.get_by_role("link", name=deployment, exact=True).first.click(timeout=STEP_TIMEOUT_MS)
    page.get_by_role("button", name="Run", exact=True).click(timeout=STEP_TIMEOUT_MS)
    page.get_by_role("menuitem", name="Custom run").click()
    page.get_by_role("heading", name="Parameters").wait_for(timeout=STEP_TIMEOUT_MS)


def submit_run(page: Any, ui: str) -> str:
    """Submit the form, then open the run's page by the id the API gave it; the page's URL.

    The run is created once the API says so (``create_flow_run`` answered 201), not when a
    toast happens to be seen; a 503 is answered as a person would, by pressing Submit again.
    The page is reached by that id, not through the toast's "View run" link: a toast can fade
    before it is clicked on a busy machine, and the id is the run the test must follow.
    """
    created = click_until_written(
        page, page.get_by_role("button", name="Submit"),
        lambda path: re.search(r"/deployments/[^/]+/create_flow_run$", path), "Submit")
    run_id = created.json()["id"]
    page.goto(f"{ui}/v2/runs/flow-run/{run_id}")
    wait_for_header(page)
    return page.url


def click_until_written(page: Any, button: Any, is_write: Any, what: str) -> Any:
    """Click ``button`` and return the API's answer to the write it sends (a POST whose path
    ``is_write`` accepts): the real end of a UI action, rather than a toast that fades.

    A 503 (``RETRYABLE``: SQLite's "database is locked", nothing was written) is met by
    clicking again, up to ``WRITE_ATTEMPTS`` times, each retry printed; any other error fails
    at once with the server's words.
    """
    answers: list[str] = []
    for attempt in range(1, WRITE_ATTEMPTS + 1):
        try:
            with page.expect_response(
                    lambda r: r.request.method == "POST" and is_write(urlsplit(r.url).path),
                    timeout=STEP_TIMEOUT_MS) as answer:
                button.click(timeout=STEP_TIMEOUT_MS)
            response = answer.value
        except Exception as exc:  # playwright's TimeoutError: the UI sent nothing
            raise AssertionError(f"{what}: no request reached the API after the click "
                                 f"({answers or 'first try'}); the page's notifications: "
                                 f"{_notifications(page)!r}") from exc
        if response.ok:
            return response
        body = _text(response)
        answers.append(f"{response.status} {body}")
        if response.status not in RETRYABLE:
            break
        page.wait_for_timeout(1000 * attempt)
        print(f"{what}: the Prefect API answered {response.status} {body}, the page said "
              f"{_notifications(page)!r}; pressing {what} again ({attempt}/{WRITE_ATTEMPTS})")
    raise AssertionError(f"{what}: the Prefect API refused it: {answers}")


def _notifications(page: Any) -> str:
    try:
        return page.get_by_role("region", name=re.compile("^Notifications")).inner_text(
            timeout=1000).strip()
    except Exception as exc:  # noqa: BLE001 - for the message only
        return f"(not read: {exc})"


def _text(response: Any) -> str:
    try:
        return response.text()[:500]
    except Exception as exc:  # noqa: BLE001 - the body is for the message only
        return f"(no body: {exc})"


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
    if parts.netloc in _LOGINS:  # Prefect's clients send the auth string as HTTP basic auth
        user, _, password = _LOGINS[parts.netloc].partition(":")
        http.auth = (user, password)
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


def resume(page: Any, dialog: Any) -> None:
    """Press the dialog's Resume; return once the API accepted the answer and the dialog closed.

    Without this a refused or failed resume (a 503, or the server's REJECT of the input) left
    the run Paused and the test waiting for Completed until its timeout, with no word why.
    """
    answer = click_until_written(
        page, dialog.get_by_role("button", name="Resume"),
        lambda path: re.search(r"/flow_runs/[^/]+/resume$", path), "Resume")
    result = answer.json()
    assert result.get("status") == "ACCEPT", f"the API did not resume the run: {result}"
    dialog.wait_for(state="hidden", timeout=STEP_TIMEOUT_MS)


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
