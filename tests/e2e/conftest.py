"""Fixtures for the browser tests: the served deployments, a loopback-only page, step screenshots.

The browser is Debian's ``chromium`` (``scripts/install-system-deps``) driven by the
``playwright`` wheel (test extras); ``playwright install`` is never needed. Without them the
tests skip on a developer machine and fail in CI (``CI`` set), where a skip would hide a missing
install step.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.e2e import readme_shots
from tests.e2e.browser import CHROMIUM, Shots, chromium_page
from tests.e2e.serving import REPO, Served, client_env, delete_served_deployments, save_block
from tests.integration.wikihelpers import SCALER_SETTINGS
from tests.prefect_server import PrefectServer, start_server, stop_group

#: Screenshots of each step land here and stay (gitignored), whatever the test's result.
SHOTS_DIR = REPO / "test-output" / "ui"


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "ui: drives the Prefect UI in headless Chromium")


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    """Keep each phase's report on the test item, so a fixture can tell that the test failed."""
    report = yield
    setattr(item, f"rep_{report.when}", report)
    return report


def _require_browser() -> None:
    missing = []
    if importlib.util.find_spec("playwright") is None:
        missing.append("the playwright package (pip install -e '.[test]')")
    if not Path(CHROMIUM).exists():
        missing.append(f"{CHROMIUM} (bash scripts/install-system-deps)")
    if missing:
        message = "UI tests need " + " and ".join(missing)
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)


#: The user part of the browser's login (Prefect's UI asks for ``user:password`` in one field).
AUTH_USER = "reviewer"


@pytest.fixture(scope="session")
def prefect_server(postgres: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrefectServer]:
    """The browser tests' Prefect server, as a team's shared server runs: on PostgreSQL, and
    demanding a login (``server.api.auth_string``). The browser logs in through the UI's login
    page; ``register``/``serve.py``/their runs authenticate with ``PREFECT_API_AUTH_STRING``.
    (This folder's ``prefect_server`` replaces the SQLite one: there the UI's writes, Submit and
    Resume, met "database is locked" 503s whenever serve's poll or the flow's logs wrote in
    between, and the UI only shows a toast for them; PostgreSQL takes concurrent writers.)"""
    import psycopg

    with psycopg.connect(postgres.dsn(), autocommit=True) as conn:
        conn.execute("CREATE DATABASE prefect_ui")
    server = start_server(tmp_path_factory.mktemp("prefect-ui-home"),
                          f"postgresql+asyncpg://mwingest@127.0.0.1:{postgres.port}/prefect_ui",
                          auth_string=f"{AUTH_USER}:{secrets.token_urlsafe(24)}")
    try:
        yield server
    finally:
        assert server.process is not None
        stop_group(server.process)


@pytest.fixture(scope="module")
def ui_wiki(wiki_factory) -> Any:
    """A wiki that makes thumbnails (ImageMagick), so the review form shows both pictures."""
    return wiki_factory(extra_settings=SCALER_SETTINGS)


@pytest.fixture(scope="module")
def served(prefect_server, ui_wiki, tmp_path_factory) -> Iterator[dict[str, Any]]:
    """The credentials block saved and ``deployments/serve.py`` running, until module end.

    The serve process gets no wiki secret (the login comes from the block), polls for runs every
    second instead of ten (Prefect 3.9 findings §5) and writes its ledger into a temp dir. The
    block holds the Admin's bot password: a stashed file's picture shows only to its own
    account, and the test's browser logs in to the wiki as the Admin, as the reviewer whose
    account a batch uploads with would be.
    """
    _require_browser()
    home = tmp_path_factory.mktemp("ui-serve")
    save_block(prefect_server.env, ui_wiki.api_url, ui_wiki.admin_bot_username,
               ui_wiki.admin_bot_password)
    env = {**client_env(prefect_server.env), "PREFECT_RUNNER_POLL_FREQUENCY": "1",
           "MWINGEST_LEDGER": str(home / "ledger.sqlite3")}
    proc = Served(env, home / "serve.log")
    try:
        proc.wait_ready()
        yield {"proc": proc, "ledger": home / "ledger.sqlite3"}
    finally:
        proc.stop()  # before the server goes (session teardown comes later)
        delete_served_deployments(prefect_server.api_url, prefect_server.env)


@pytest.fixture
def shots() -> Shots:
    """Step screenshots under ``test-output/ui/`` (emptied when a test starts): the failure's
    always, every step's for ``scripts/ui-screenshots`` or with ``MWINGEST_UI_STEP_SHOTS=1``."""
    steps = readme_shots.wanted() is not None or bool(os.environ.get("MWINGEST_UI_STEP_SHOTS"))
    shots = Shots(SHOTS_DIR, steps=steps)
    shots.reset()
    return shots


@pytest.fixture
def page(request: pytest.FixtureRequest, shots: Shots) -> Iterator[Any]:
    """A loopback-only Chromium page; when the test fails, the page as it was is saved too.

    The page's console (messages, uncaught errors, failed requests, navigations) is written
    next to the screenshots as ``console.txt``, and on failure the folder's path is printed.
    """
    blocked: list[str] = []
    console: list[str] = []
    try:
        with chromium_page(blocked, console) as page:
            yield page
            report = getattr(request.node, "rep_call", None)
            if report is not None and report.failed:
                shots.take(page, "failure", always=True)
                with contextlib.suppress(Exception):  # the DOM too: what a locator could match
                    (shots.folder / "failure.html").write_text(page.content())
                print(f"\nUI evidence (screenshots, console.txt): {shots.folder}")
    finally:
        (shots.folder / "blocked-requests.txt").write_text("".join(f"{u}\n" for u in blocked))
        (shots.folder / "console.txt").write_text("".join(console))
