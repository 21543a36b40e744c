"""The public surface: every name in ``mwingest.__all__`` resolves, and importing is cheap."""

from __future__ import annotations

import subprocess
import sys

import mwingest


def test_every_exported_name_resolves() -> None:
    missing = [name for name in mwingest.__all__ if getattr(mwingest, name, None) is None]
    assert missing == []
    assert mwingest.__all__ == sorted(mwingest.__all__)


def test_unknown_names_raise_attribute_error() -> None:
    try:
        mwingest.not_a_name  # noqa: B018
    except AttributeError as exc:
        assert "not_a_name" in str(exc)
    else:
        raise AssertionError("expected AttributeError")


def test_importing_the_core_does_not_import_prefect() -> None:
    code = ("import sys, mwingest, mwingest.job.machine, mwingest.checks.validate, mwingest.cli.app; "
            "print('prefect' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
