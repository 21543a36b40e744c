"""Headless Chromium for UI tests: Debian's browser, loopback only, screenshots kept on disk.

Why Debian's ``chromium`` driven through ``executable_path``: Playwright's own browser download
cannot work offline, and the wheel's driver talks to a system Chromium of a matching major version
(../shared/notes/prefect-ui-browser-testing.md). Why two locks on the network: the Prefect UI calls
an analytics host and hot-links logos even with analytics off, so every page request that is not
for 127.0.0.1/localhost is aborted (``route``), and the browser's own traffic goes to a proxy
that does not exist, so nothing the page router cannot see leaves the machine either.
"""

from __future__ import annotations

import os
import re
import shutil
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

CHROMIUM = os.environ.get("MWINGEST_CHROMIUM", "/usr/bin/chromium")
LOOPBACK = frozenset({"127.0.0.1", "localhost", "::1", "[::1]"})
#: The credentials block's logo (hot-linked from Commons by the UI) is answered from Debian's copy
#: of MediaWiki's logo: the form shows a logo, as it does online, and nothing leaves the machine.
#: A port nothing listens on: the browser's own requests to the outside fail at once.
DEAD_PROXY = "http://127.0.0.1:9"
VIEWPORT = {"width": 1400, "height": 1250}
#: Flags for a root user in a container on 2 cores (no sandbox, no GPU, /tmp instead of /dev/shm).
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
        "--disable-background-networking", "--disable-component-update",
        "--disable-default-apps", "--disable-sync", "--metrics-recording-only"]


def is_loopback(url: str) -> bool:
    """True for URLs a UI test may load: loopback hosts and inline ``data:``/``blob:`` content."""
    if url.startswith(("data:", "blob:", "about:")):
        return True
    return urlsplit(url).hostname in LOOPBACK


@dataclass
class Shots:
    """Numbered full-page screenshots of each step, in one folder that outlives the test.

    Step shots are taken only when ``steps`` is set (``bash scripts/ui-screenshots``, or
    ``MWINGEST_UI_STEP_SHOTS=1``): a full-page screenshot costs a second or more on a busy
    machine and races the page's own redraws, so the test loop takes only the failure's."""

    folder: Path
    steps: bool = False
    taken: list[Path] = field(default_factory=list)

    def reset(self) -> None:
        """Start from an empty folder, so a run never mixes its shots with an older run's."""
        shutil.rmtree(self.folder, ignore_errors=True)
        self.folder.mkdir(parents=True)

    def take(self, page: Any, name: str, *, full_page: bool = True, always: bool = False) -> Path | None:
        """Save the page as ``NN-name.png``; a failing screenshot never hides the test's result."""
        if not (self.steps or always):
            return None
        path = self.folder / f"{len(self.taken) + 1:02d}-{name}.png"
        try:
            page.screenshot(path=str(path), full_page=full_page)
        except Exception as exc:  # noqa: BLE001 - a screenshot is evidence, not the test
            path.with_suffix(".txt").write_text(f"screenshot failed: {exc}\n")
        self.taken.append(path)
        return path


#: Reads the UI sends as POST (filters, counts): not worth a line each.
_READS = re.compile(r"/(filter|count|paginate|history|lineage|graph[^/]*)/?$")


def _worth_noting(response: Any) -> bool:
    """An error answer, or a write (a new run, a resume, a validation): what a step changed."""
    method = response.request.method
    if response.status >= 400:
        return True
    return method not in ("GET", "HEAD", "OPTIONS") and not _READS.search(urlsplit(response.url).path)


def _describe(response: Any) -> str:
    """Status, method, URL and, for the Prefect API only, the start of the body (a wiki login
    form carries a password: never written down)."""
    request = response.request
    body = (request.post_data or "")[:400] if "/api/" in urlsplit(request.url).path else ""
    return f"{response.status} {request.method} {response.url} {body}".rstrip()


def _record_console(page: Any, lines: list[str]) -> None:
    started = time.monotonic()

    def note(kind: str, text: str) -> None:
        lines.append(f"{time.monotonic() - started:8.2f}s {kind:9} {text}\n")

    page.on("console", lambda m: note(m.type, f"{m.text} ({m.location.get('url', '')})"))
    page.on("pageerror", lambda e: note("pageerror", str(e)))
    page.on("requestfailed", lambda r: note("reqfailed", f"{r.method} {r.url} {r.failure}"))
    page.on("response", lambda r: note("response", _describe(r)) if _worth_noting(r) else None)
    page.on("framenavigated", lambda f: note("navigated", f.url) if f == page.main_frame else None)


@contextmanager
def chromium_page(blocked: list[str], console: list[str] | None = None) -> Iterator[Any]:
    """A fresh page in headless Chromium that only reaches loopback; aborted URLs go to ``blocked``.

    ``console``, when given, collects the page's console messages, uncaught errors, failed
    requests and every API write or error response, one timestamped line each: the evidence
    beside a failing step's screenshot.
    """
    from playwright.sync_api import sync_playwright

    def guard(route: Any) -> None:
        url = route.request.url
        if is_loopback(url):
            route.continue_()
        else:
            blocked.append(url)
            route.abort()

    with sync_playwright() as pw:
        browser = pw.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=ARGS,
            proxy={"server": DEAD_PROXY, "bypass": "127.0.0.1,localhost"})
        try:
            context = browser.new_context(viewport=VIEWPORT, locale="en-US", timezone_id="UTC",
                                          service_workers="block")
            context.route("**/*", guard)
            page = context.new_page()
            if console is not None:
                _record_console(page, console)
            yield page
        finally:
            browser.close()
