"""The Prefect UI path end to end, in a real browser, against a real Prefect server and wiki (issues 8, 29).

An archivist who never opens a terminal: opens the ``folder-import`` deployment, fills its form,
submits, finds the run saying it waits on a file whose name is taken on the wiki, sees both
pictures in the review form (the browser is *not* logged in to the wiki), is refused a Resume
without a decision, answers "rename" and a new name, waits for the run to complete, and reads the
file tasks' states, the one outcome table and the summary. The browser is headless Chromium that
reaches nothing but loopback (``browser.py``); the deployments are served by
``deployments/serve.py`` with the login in a block (``serving.py``). Assertions are on what the
pages show and then on what the wiki holds. Screenshots of the steps are taken for
``bash scripts/ui-screenshots`` (which also refreshes the README's); a failure's always.
"""

from __future__ import annotations

import hashlib
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import pytest

from mwingest.runtime import uilogo
from mwingest.wiki import upload
from mwingest.wiki.names import title_key as key
from tests.e2e import prefect_ui as ui
from tests.e2e import readme_shots
from tests.e2e.browser import VIEWPORT
from tests.e2e.serving import BLOCK
from tests.integration.wikihelpers import png_bytes, session_for

pytestmark = [pytest.mark.ui, pytest.mark.wiki]

DEPLOYMENT = "folder-import"
#: From Submit to the review form (measured ~8 s: serve polls every 1 s, the batch takes ~3 s).
PAUSE_TIMEOUT_S = 90
#: From Resume to the batch's Completed (measured ~5 s: the pause polls every 2 s).
FINISH_TIMEOUT_S = 90
BAD_BYTES = b"<!DOCTYPE html><html><body><script>alert(1)</script></body></html>"


def _sha1(data: bytes) -> str:
    return hashlib.sha1(data).hexdigest()  # noqa: S324


@dataclass
class Batch:
    """A folder of four files, and what the wiki held before the import."""

    folder: Path
    new: str  # lands as is
    copy: str  # same bytes as `original`, already on the wiki: skipped as duplicate
    broken: str  # HTML in a .jpg: rejected before a byte is sent
    taken: str  # this name is on the wiki with other bytes: the run asks a person
    original: str
    renamed: str  # the name the reviewer gives
    sha1: dict[str, str]  # our files' SHA-1 by name
    theirs: str  # SHA-1 of the wiki's file called `taken`


@pytest.fixture
def batch(ui_wiki, tmp_path: Path, unique) -> Batch:
    session = session_for(ui_wiki)
    u = unique()
    folder = tmp_path / "scans"
    folder.mkdir()
    b = Batch(folder=folder, new=f"Pier {u}.png", copy=f"Harbour {u} copy.png",
              broken=f"Notes {u}.jpg", taken=f"Harbour {u}.png", original=f"Harbour {u} 1911.png",
              renamed=f"Harbour {u} from the pier.png", sha1={}, theirs="")
    dup, theirs = png_bytes(size=(320, 240)), png_bytes(size=(320, 240))
    upload.upload_bytes(session, dup, b.original)
    upload.upload_bytes(session, theirs, b.taken)
    b.theirs = _sha1(theirs)
    for name, data in {b.new: png_bytes(), b.copy: dup, b.broken: BAD_BYTES,
                       b.taken: png_bytes(size=(240, 320))}.items():
        (folder / name).write_bytes(data)
        b.sha1[name] = _sha1(data)
    return b


def _fill_and_submit(page: Any, base: str, batch: Batch, shots: Any, readme: list) -> str:
    ui.open_custom_run(page, base, DEPLOYMENT)
    # The login is a saved block, preselected by the deployment: nothing secret is typed.
    assert page.get_by_role("button", name="Select a block").inner_text().strip() == BLOCK
    # Beside the picker, the block type's logo: ours, served by the Prefect server itself (the
    # page reaches nothing but loopback), not a broken image.
    logo = page.locator(f"img[src='{base}/{uilogo.NAME}']").first
    logo.wait_for(timeout=ui.STEP_TIMEOUT_MS)
    page.wait_for_function("img => img.complete && img.naturalWidth > 0",
                           arg=logo.element_handle(), timeout=ui.STEP_TIMEOUT_MS)
    page.get_by_role("textbox", name="Folder", exact=True).fill(str(batch.folder))
    # Defaults a person can read: the warning policy as choices, "exists" sent to a person.
    assert page.get_by_role("button", name="Select Name already taken (exists)").inner_text() \
        .strip() == "review"
    shots.take(page, "custom-run-form")
    page.evaluate("window.scrollTo(0, 0)")
    readme.append(("ui-form.png", readme_shots.capture(
        page, page.locator("main"), shots.folder / "readme-form.png", max_height=860)))
    return ui.submit_run(page, base)


def _check_the_run_says_it_waits(page: Any, base: str, run_url: str, batch: Batch) -> None:
    """While the file waits, the batch's own run says so, and where to decide."""
    from playwright.sync_api import expect

    deadline = time.monotonic() + PAUSE_TIMEOUT_S
    while True:
        page.goto(run_url)
        ui.wait_for_header(page)
        artifacts = ui.artifact_links(page)
        if "ingest-summary" in artifacts or time.monotonic() > deadline:
            break
        page.wait_for_timeout(2000)
    page.goto(f"{base}{artifacts['ingest-summary']}")
    summary = page.get_by_test_id("markdown-display")
    expect(summary.get_by_text("Waiting for a decision (1)")).to_be_visible(
        timeout=ui.STEP_TIMEOUT_MS)
    # The summary is updated in place while the run goes on, and the UI draws it again: a read
    # of its text at that moment was '' once; expect() reads until it holds (or the step's time).
    expect(summary).to_contain_text(f"review · {batch.taken}", timeout=ui.STEP_TIMEOUT_MS)
    page.goto(run_url)
    ui.wait_for_header(page)


def _resume_without_a_decision_is_refused(page: Any, dialog: Any, run_url: str) -> None:
    """Resume pressed before choosing: the server refuses the answer, the UI says why (a toast
    with the server's reason), the dialog stays open and the run stays Paused."""
    resumes: list[Any] = []

    def note(response: Any) -> None:
        if re.search(r"/flow_runs/[^/]+/resume$", response.url.split("?")[0]):
            resumes.append(response)

    page.on("response", note)
    dialog.get_by_role("button", name="Resume").click()
    toast = page.get_by_role("region", name=re.compile("^Notifications")).get_by_text(
        re.compile("required", re.IGNORECASE)).first
    toast.wait_for(timeout=ui.STEP_TIMEOUT_MS)
    message = toast.inner_text()
    page.remove_listener("response", note)
    answers = [r.json().get("status") for r in resumes if r.ok]
    print(f"Resume without a decision: {message!r}; answers {answers}")
    assert "action" in message, message
    assert "ACCEPT" not in answers, answers
    assert "Paused" in ui.api_state(run_url)
    assert dialog.is_visible()


def _answer_review(page: Any, batch: Batch, served: dict, shots: Any, readme: list) -> None:
    ui.open_subflow_run(page, f"review · {batch.taken}", PAUSE_TIMEOUT_S)
    ui.wait_for_state(page, "Paused", PAUSE_TIMEOUT_S, served["proc"].output)
    review_url = page.url
    shots.take(page, "review-paused")
    dialog = ui.open_resume_dialog(page, f"{batch.taken} needs a decision", timeout_s=30)
    text = dialog.inner_text()
    # What the conflict is, with both files' facts, before anyone decides.
    assert "exists" in text and batch.sha1[batch.taken] in text and batch.theirs in text, text
    # Both pictures, side by side with their sizes: the wiki's file and ours (from its local
    # bytes: this browser is not logged in to the wiki, and need not be).
    assert "320×240 px" in text and "240×320 px" in text, text
    assert "logged in" not in text, text
    for alt in ("on the wiki", "this file"):
        picture = dialog.get_by_role("img", name=alt)
        picture.wait_for(timeout=ui.STEP_TIMEOUT_MS)
        page.wait_for_function("img => img.complete && img.naturalWidth > 0",
                               arg=picture.element_handle(), timeout=ui.STEP_TIMEOUT_MS)
    wiki_link = dialog.get_by_role("link", name=f"File:{batch.taken}")
    assert key(unquote(wiki_link.get_attribute("href") or "").rsplit("File:", 1)[-1]) \
        == key(batch.taken)
    # No decision is preselected, and Resume without one is refused.
    shown = dialog.get_by_role("button", name="Select Decision").inner_text().strip()
    assert shown not in ("skip", "publish", "rename"), shown
    _resume_without_a_decision_is_refused(page, dialog, review_url)
    ui.choose(page, dialog, "Decision", "rename")
    dialog.get_by_role("textbox", name="New file name (Optional)").fill(batch.renamed)
    dialog.get_by_role("textbox", name="Note (Optional)").fill("another photograph, same title")
    readme_shots.scroll_to_top(dialog)  # typing scrolled the description out of view
    shots.take(page, "review-dialog", full_page=False)
    readme.append(("ui-review.png", readme_shots.capture(
        page, dialog, shots.folder / "readme-review.png")))
    ui.resume(page, dialog)
    ui.wait_for_state(page, "Completed", FINISH_TIMEOUT_S, served["proc"].output)


def _check_outcome_table(page: Any, base: str, path: str, batch: Batch, shots: Any,
                         readme: list) -> None:
    page.set_viewport_size({"width": 1280, "height": VIEWPORT["height"]})
    page.goto(f"{base}{path}")
    rows = {r["file"]: r for r in ui.table_rows(page)}
    shots.take(page, "outcome-table")
    readme.append(("ui-outcomes.png", readme_shots.capture(
        page, page.get_by_test_id("table-display"), shots.folder / "readme-outcomes.png")))
    # Readable at 1280 px: every column fits, none is cut off behind a scroll bar.
    table = page.get_by_test_id("table-display").locator("table")
    fits = table.evaluate("t => [t.scrollWidth, t.parentElement.clientWidth]")
    page.set_viewport_size(VIEWPORT)
    assert fits[0] <= fits[1], fits
    # Each file by the name the wiki gave it (the local name when it has none), with its outcome.
    assert {name: (r["outcome"], bool(r["reason"])) for name, r in rows.items()} == {
        batch.new: ("uploaded", True), batch.copy: ("skipped", True),
        batch.broken: ("rejected", True), batch.renamed: ("uploaded", True)}, rows
    assert rows[batch.copy]["reason"] == "duplicate"
    assert rows[batch.renamed]["reason"] == "decided-rename"


def _check_details(page: Any, base: str, path: str, batch: Batch) -> None:
    """The details table: who decided and when (and the reviewer's note), SHA-1s, sources."""
    page.goto(f"{base}{path}")
    rows = {r["file"]: r for r in ui.table_rows(page)}
    assert {name: Path(r["source"]).name for name, r in rows.items()} == {n: n for n in rows}
    decided = rows[batch.taken]
    assert re.match(r"rename by reviewer, 20\d\d-\d\d-\d\d \d\d:\d\d:\d\d UTC", decided["decision"]), \
        decided
    assert "another photograph, same title" in decided["decision"]
    assert decided["sha1"] == batch.sha1[batch.taken]


def _check_task_states(page: Any, run_url: str, batch: Batch) -> None:
    """The Task Runs tab says how each file ended, by its state's name."""
    page.goto(run_url)
    ui.wait_for_header(page)
    ui.open_tab(page, "Task Runs")
    panel = page.get_by_role("tabpanel", name="Task Runs")
    for name, state in ((batch.new, "Uploaded"), (batch.copy, "Skipped"),
                        (batch.broken, "Rejected"), (batch.taken, "Needs review")):
        panel.get_by_text(f"file · {name}", exact=True).first.wait_for(timeout=ui.STEP_TIMEOUT_MS)
        # The smallest box holding the task's name and this state name: its own card.
        card = panel.locator("div", has_text=f"file · {name}").filter(has_text=state).last
        text = card.inner_text()
        assert text.count("file · ") == 1, (name, state, text)


def _check_summary(page: Any, base: str, path: str, batch: Batch, shots: Any) -> None:
    from playwright.sync_api import expect  # here: without playwright the module still collects

    page.goto(f"{base}{path}")
    summary = page.get_by_test_id("markdown-display")
    # The box is drawn before its markdown: wait for the counts table (a header + 5 outcomes).
    expect(summary.get_by_role("row")).to_have_count(6, timeout=ui.STEP_TIMEOUT_MS)
    shots.take(page, "summary")
    counts = {row.get_by_role("cell").nth(0).inner_text(): row.get_by_role("cell").nth(1).inner_text()
              for row in summary.get_by_role("row").all()[1:]}
    assert counts == {"uploaded": "2", "skipped": "1", "rejected": "1", "needs-review": "0",
                      "failed": "0"}, counts
    landed = {key(unquote(href).rsplit("File:", 1)[-1])
              for href in summary.get_by_role("link").evaluate_all("ls => ls.map(l => l.href)")
              if "File:" in unquote(href)}
    assert landed == {key(batch.new), key(batch.renamed)}, landed
    expect(summary).to_contain_text(batch.broken, timeout=ui.STEP_TIMEOUT_MS)  # "Rejected or failed"
    text = summary.inner_text()
    # Who decided, what and when, with the reviewer's note.
    assert re.search(rf"{re.escape(batch.renamed)} \({re.escape(batch.taken)}\): rename by "
                     r"reviewer, 20\d\d-\d\d-\d\d \d\d:\d\d:\d\d UTC \(another photograph", text), text


def test_folder_import_with_a_review_decision_from_the_prefect_ui(
        served, prefect_server, ui_wiki, batch, page, shots):
    wiki = ui_wiki
    base = prefect_server.api_url.removesuffix("/api")
    readme: list[tuple[str, Path | None]] = []
    started = time.monotonic()  # the browser is never logged in to the wiki
    # The server demands a login: without it the API answers 401 and the UI shows its login page.
    ui.log_in(page, base, prefect_server.env["PREFECT_API_AUTH_STRING"])

    run_url = _fill_and_submit(page, base, batch, shots, readme)
    shots.take(page, "run-started")
    _check_the_run_says_it_waits(page, base, run_url, batch)
    _answer_review(page, batch, served, shots, readme)

    page.goto(run_url)
    ui.wait_for_state(page, "Completed", FINISH_TIMEOUT_S, served["proc"].output)
    # Its name says what it imported.
    page.goto(run_url)
    ui.wait_for_header(page)
    page.get_by_text("import · scans/ · 4 files").first.wait_for(timeout=ui.STEP_TIMEOUT_MS)
    # The run's log says in plain words how each file ended and what the reviewer chose.
    for line in (f"{batch.taken}: reviewer chose rename", f"{batch.taken} is on the wiki",
                 f"{batch.new} is on the wiki", f"{batch.copy} was skipped",
                 f"{batch.broken} was refused"):
        page.get_by_text(line).first.wait_for(timeout=ui.STEP_TIMEOUT_MS)
    shots.take(page, "run-completed")
    artifacts = ui.artifact_links(page)
    shots.take(page, "artifacts")
    # One table, one summary: updated in place, no stale copies beside them.
    assert set(artifacts) == {"ingest-outcomes", "ingest-details", "ingest-summary",
                              "ingest-progress"}, artifacts
    _check_outcome_table(page, base, artifacts["ingest-outcomes"], batch, shots, readme)
    _check_details(page, base, artifacts["ingest-details"], batch)
    _check_summary(page, base, artifacts["ingest-summary"], batch, shots)
    _check_task_states(page, run_url, batch)

    page.goto(run_url)
    ui.open_tab(page, "Parameters")
    params = page.get_by_role("tabpanel", name="Parameters")
    params.get_by_text(str(batch.folder)).first.wait_for(timeout=ui.STEP_TIMEOUT_MS)
    shown = params.inner_text()
    # The viewer draws only the lines in sight: the block reference comes after the settings,
    # so scroll to the end as a person would, and read what is shown there too.
    params.get_by_text(str(batch.folder)).first.hover()
    for _ in range(20):
        if "block_document_id" in params.inner_text():
            break
        page.mouse.wheel(0, 600)
        page.wait_for_timeout(150)
    params.get_by_text("block_document_id").first.wait_for(timeout=ui.STEP_TIMEOUT_MS)
    shots.take(page, "parameters")
    shown += params.inner_text()
    assert str(batch.folder) in shown
    assert wiki.admin_bot_password not in shown and "password" not in shown.lower()
    print(f"UI path from the form to the parameters tab: {time.monotonic() - started:.1f} s")

    # The wiki itself: the renamed file is ours, the file that was there is untouched.
    session = session_for(wiki)
    renamed = upload.file_info(session, batch.renamed, history=True)
    assert renamed is not None and renamed["sha1"] == batch.sha1[batch.taken]
    assert len(renamed["versions"]) == 1
    kept = upload.file_info(session, batch.taken, history=True)
    assert kept["sha1"] == batch.theirs and len(kept["versions"]) == 1
    assert upload.file_info(session, batch.new)["sha1"] == batch.sha1[batch.new]
    assert upload.file_info(session, batch.copy) is None
    assert upload.file_info(session, batch.broken) is None

    if (dest := readme_shots.wanted()) is not None:
        for name, raw in readme:
            assert raw is not None, name
            readme_shots.export(raw, dest / name)
