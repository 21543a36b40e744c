"""Shared fixtures: the throwaway wiki (or an existing one), variant wikis, unique names, PNGs.

Point the suite at an existing wiki with ``MWINGEST_TEST_API_URL``, ``MWINGEST_TEST_USERNAME`` and
``MWINGEST_TEST_PASSWORD`` (``python -m mwingest.dev.devwiki start`` prints them). Tests that need
maintenance scripts or variant wikis skip then, because they cannot reach that wiki's files.
"""

from __future__ import annotations

import io
import itertools
import os
import random
import secrets
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from unittest import mock

import pytest

pytest_plugins = ["tests.prefect_server", "tests.pg", "tests.sdcwiki"]

# Prefect hygiene before anything can import it: no telemetry from test runs.
os.environ.setdefault("DO_NOT_TRACK", "1")
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
# No test starts the developer's own local Prefect server (mwingest server) by accident: tests that
# want one give their own MWINGEST_HOME and MWINGEST_PREFECT=local.
os.environ["MWINGEST_PREFECT"] = "ephemeral"

from mwingest.dev.devwiki import DevWiki, start_wiki  # noqa: E402  (after the env hygiene above)

EXTERNAL_ENV = ("MWINGEST_TEST_API_URL", "MWINGEST_TEST_USERNAME", "MWINGEST_TEST_PASSWORD")

#: The test tiers (``-m unit``, ``-m "not browser"``, …), from what a test needs: no server; the
#: throwaway wiki; a Prefect server or harness; a browser. Marked here from the fixtures a test
#: uses, so a new test lands in the right tier without anyone remembering to mark it.
_WIKI_FIXTURES = {"wiki", "wiki_factory", "_wiki_pool", "ui_wiki", "commons_wiki", "sdc_wiki"}
_PREFECT_FIXTURES = {"prefect_server", "prefect_harness", "served"}


@pytest.fixture(scope="session", autouse=True)
def _prefect_db_root(tmp_path_factory: pytest.TempPathFactory) -> None:
    """Where this run's migrated Prefect database goes (built lazily, on the first server's start):
    beside the workers' temp folders under xdist, so they share it."""
    from tests import prefect_server

    base = tmp_path_factory.getbasetemp()
    prefect_server._template_root = base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base


#: The longest test files, longest first (seconds of a serial run on 2 cores). They are collected
#: first, so that under ``pytest-xdist --dist loadfile`` (scripts/test) they start at once on their
#: own workers and the short files fill in around them, instead of one long file ending the run.
_LONG_FILES = (
    "integration/test_fanout.py",
    "integration/test_local_server.py",
    "integration/test_warm_runner.py",
    "integration/test_pacing.py",
    "integration/test_relogin.py",
    "e2e/test_ui.py",
    "integration/test_real_media_agreement.py",
    "integration/test_ledger_secrets.py",
    "integration/test_prefect_lost.py",
    "integration/test_cli_console.py",
    "integration/test_names_agreement.py",
    "integration/test_flow_outage.py",
    "integration/test_job_crash_matrix.py",
    "integration/test_ledger_restart.py",
    "integration/test_hostile_inputs.py",
    "integration/test_bigfile.py",
    "integration/test_flow_crash_resume.py",
    "integration/test_chunked_faults.py",
    "integration/test_cli.py",
    "integration/test_flow_faults.py",
    "integration/test_flow_review.py",
    "integration/test_secrets.py",
    "integration/test_structured_data.py",
    "integration/test_commons_rules.py",
    "integration/test_ledger_disk_full.py",
)


def _long_first(item: pytest.Item) -> int:
    path = item.path.as_posix()
    for rank, name in enumerate(_LONG_FILES):
        if path.endswith("/tests/" + name):
            return rank
    return len(_LONG_FILES)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    items.sort(key=_long_first)  # stable: within a file, and among the others, the order stays
    for item in items:
        names = set(getattr(item, "fixturenames", ()))
        path = item.path.as_posix()
        if "/tests/e2e/" in path:
            item.add_marker(pytest.mark.browser)
        if names & _PREFECT_FIXTURES:
            item.add_marker(pytest.mark.prefect)
        if names & _WIKI_FIXTURES:
            item.add_marker(pytest.mark.wiki)
        if "/tests/unit/" in path and not names & (_WIKI_FIXTURES | _PREFECT_FIXTURES):
            item.add_marker(pytest.mark.unit)


@dataclass
class ExternalWiki:
    """An already running wiki given by environment variables: same attributes as DevWiki."""

    api_url: str
    username: str
    password: str = field(repr=False)
    admin_username: str = ""
    admin_password: str = field(default="", repr=False)
    admin_bot_username: str = ""
    admin_bot_password: str = field(default="", repr=False)
    root: Path | None = None

    @property
    def index_url(self) -> str:
        return self.api_url.rsplit("/", 1)[0] + "/index.php"

    def run_maintenance(
        self, script: str, *args: str, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        pytest.skip(f"{script} needs the wiki's files; not available for MWINGEST_TEST_API_URL")

    def set_setting(self, php_line: str) -> None:
        pytest.skip("changing settings needs the wiki's files; not available for MWINGEST_TEST_API_URL")

    def stop(self) -> None:
        """Not ours to stop."""


def _external_wiki() -> ExternalWiki | None:
    if not all(os.environ.get(name) for name in EXTERNAL_ENV):
        return None
    env = os.environ
    return ExternalWiki(
        api_url=env["MWINGEST_TEST_API_URL"], username=env["MWINGEST_TEST_USERNAME"],
        password=env["MWINGEST_TEST_PASSWORD"],
        admin_username=env.get("MWINGEST_TEST_ADMIN_USERNAME", ""),
        admin_password=env.get("MWINGEST_TEST_ADMIN_PASSWORD", ""),
        admin_bot_username=env.get("MWINGEST_TEST_ADMIN_BOT_USERNAME", ""),
        admin_bot_password=env.get("MWINGEST_TEST_ADMIN_BOT_PASSWORD", ""),
    )


class _WikiPool:
    """Started wikis keyed by their start_wiki() arguments, so each variant starts once a session."""

    def __init__(self) -> None:
        self._wikis: dict[tuple[tuple[str, Any], ...], DevWiki] = {}

    def get(self, **kwargs: Any) -> DevWiki:
        key = tuple(sorted((k, repr(v)) for k, v in kwargs.items()))
        if key not in self._wikis:
            self._wikis[key] = start_wiki(**kwargs)
        return self._wikis[key]

    def stop_all(self) -> None:
        for wiki in self._wikis.values():
            wiki.stop()
        self._wikis.clear()


@pytest.fixture(scope="session")
def _wiki_pool() -> Iterator[_WikiPool]:
    pool = _WikiPool()
    try:
        yield pool
    finally:
        pool.stop_all()


@pytest.fixture(scope="session")
def wiki_factory(_wiki_pool: _WikiPool) -> Callable[..., DevWiki]:
    """``wiki_factory(**start_wiki_kwargs)``: a variant wiki, started once per session per kwargs."""
    if _external_wiki() is not None:
        pytest.skip("variant wikis need a local throwaway wiki, not MWINGEST_TEST_API_URL")
    return _wiki_pool.get


@pytest.fixture(scope="session")
def wiki(_wiki_pool: _WikiPool) -> DevWiki | ExternalWiki:
    """The session's default wiki; tests share it, so give files unique names (``unique``)."""
    return _external_wiki() or _wiki_pool.get()


@pytest.fixture(scope="session")
def commons_wiki(_wiki_pool: _WikiPool) -> DevWiki:
    """A Commons-like wiki (TitleBlacklist, SpamBlacklist, AbuseFilter, ConfirmEdit loaded),
    started once a session, only for the tests that ask for it. Its rules are each test's own
    (:class:`mwingest.dev.commonswiki.CommonsRules`); it starts with none."""
    if _external_wiki() is not None:
        pytest.skip("the Commons-like wiki is a local throwaway wiki, not MWINGEST_TEST_API_URL")
    return _wiki_pool.get(commons=True)


_counter = itertools.count()


@pytest.fixture
def unique() -> Callable[[], str]:
    """Return a function giving a short token unique in this run and across runs on one wiki."""
    run = secrets.token_hex(3)
    return lambda: f"{run}{next(_counter):04d}"


@pytest.fixture
def make_png() -> Callable[..., bytes]:
    """``make_png(width=8, height=8, color=None, seed=None) -> bytes``: a valid PNG.

    Each call gives different bytes (the wiki warns ``duplicate`` on equal content), unless a
    ``seed`` is given: the same seed and arguments give the same bytes.
    """
    from PIL import Image, PngImagePlugin

    def _make(width: int = 8, height: int = 8, color: tuple[int, int, int] | None = None,
              seed: int | None = None) -> bytes:
        rng = random.Random(seed) if seed is not None else random.Random(secrets.randbits(64))
        if color is None:
            image = Image.frombytes("RGB", (width, height), rng.randbytes(width * height * 3))
        else:
            image = Image.new("RGB", (width, height), color)
        info = PngImagePlugin.PngInfo()
        # A per-call text chunk keeps tiny or single-colour images unique too.
        info.add_text("mwingest-test", rng.randbytes(8).hex())
        buf = io.BytesIO()
        image.save(buf, format="PNG", pnginfo=info)
        return buf.getvalue()

    return _make


@pytest.fixture(scope="session")
def prefect_harness(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """A throwaway Prefect API (SQLite in a temp dir) for the flow tests of this session.

    Heartbeats off (each sync flow would otherwise take ≥ 1 s), results in a temp dir (cached
    results must not leak between sessions): Prefect 3.9 findings §1, §8.
    """
    from prefect.settings import (
        PREFECT_FLOWS_HEARTBEAT_FREQUENCY,
        PREFECT_LOCAL_STORAGE_PATH,
        PREFECT_LOGGING_TO_API_WHEN_MISSING_FLOW,
        temporary_settings,
    )
    from prefect.testing import utilities

    from tests.prefect_server import seed_prefect_home

    def seeded_tempdir() -> str:  # the harness's database folder, holding the run's migrated DB
        folder = tmp_path_factory.mktemp("prefect-harness-db")
        seed_prefect_home(folder)
        if (folder / "prefect.db").exists():
            (folder / "prefect.db").rename(folder / "prefect-test.db")  # the harness's file name
        return str(folder)

    # Prefect's events worker is one per process, bound to the server it first talked to: a
    # test before this one that reached another server (``prefect_server``'s blocks) left one
    # that would send these flows' task-run states there, and the harness would hold no task
    # runs (test_flow_states after test_deployments). Stopped here, the next event starts one
    # against the harness.
    from prefect.events.worker import EventsWorker

    EventsWorker.drain_all(timeout=10)
    with mock.patch.object(utilities, "mkdtemp", seeded_tempdir), \
            utilities.prefect_test_harness(server_startup_timeout=90), temporary_settings(updates={
            PREFECT_FLOWS_HEARTBEAT_FREQUENCY: None,
            PREFECT_LOCAL_STORAGE_PATH: tmp_path_factory.mktemp("prefect-results"),
            PREFECT_LOGGING_TO_API_WHEN_MISSING_FLOW: "ignore"}):
        yield
