"""The pre-migrated Prefect database: copied into a new local server's home (the user's own file),
never over a home's own database, and nothing without a template."""

from __future__ import annotations

import stat
from pathlib import Path

from mwingest.runtime import dbtemplate


def test_a_new_home_gets_a_private_copy_and_an_old_one_keeps_its_own(tmp_path: Path,
                                                                     monkeypatch) -> None:
    template = tmp_path / "share" / "prefect-3.9.1.db"
    monkeypatch.setattr(dbtemplate, "template_path", lambda: template)
    home = tmp_path / "home" / "prefect-home"
    assert not dbtemplate.seed(home)  # no template: Prefect migrates as before
    assert not (home / dbtemplate.DB_NAME).exists()
    template.parent.mkdir(parents=True)
    template.write_bytes(b"SQLite format 3\x00 migrated")
    assert dbtemplate.seed(home)
    copy = home / dbtemplate.DB_NAME
    assert copy.read_bytes() == template.read_bytes()
    assert stat.S_IMODE(copy.stat().st_mode) == 0o600
    assert stat.S_IMODE(home.stat().st_mode) == 0o700
    copy.write_bytes(b"this home's runs")
    assert not dbtemplate.seed(home) and copy.read_bytes() == b"this home's runs"
    assert sorted(p.name for p in home.iterdir()) == [dbtemplate.DB_NAME]  # no temporary left


def test_the_template_is_kept_per_prefect_version_beside_the_interpreter() -> None:
    import sys

    import prefect

    path = dbtemplate.template_path()
    assert path == Path(sys.prefix) / "share" / "mwingest" / f"prefect-{prefect.__version__}.db"
