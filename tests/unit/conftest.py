"""The ledger on both backends: every test that takes ``ledger_location`` (or ``ledger``) runs
once on a SQLite file and once on the throwaway PostgreSQL (``tests/pg.py``)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from mwingest.ledger.ledger import Ledger


@pytest.fixture(params=["sqlite", "postgresql"])
def ledger_location(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Where a fresh, empty ledger lives: a file, or a schema of its own in the test database."""
    if request.param == "sqlite":
        return str(tmp_path / "ledger.sqlite3")
    return request.getfixturevalue("postgres").fresh_url()


@pytest.fixture
def ledger(ledger_location: str) -> Iterator[Ledger]:
    with Ledger(ledger_location) as led:
        yield led
