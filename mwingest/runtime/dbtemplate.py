"""A Prefect database migrated at install time, copied into each new local server's home.

Why: the first ``mwingest`` command in a new home starts the local Prefect server, and a server
with an empty SQLite database first runs every one of Prefect's migrations (about 7 s of a 16 s
first command on a 2-core machine, issue 27). A database already at the head revision starts
like a restart. ``scripts/bootstrap`` builds the template once per Prefect version
(``python -m mwingest.runtime.dbtemplate build``) beside the interpreter; a home whose server
has no database yet gets a copy (:func:`seed`). Without a template nothing changes: Prefect
migrates as before.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

DB_NAME = "prefect.db"  # Prefect's default database in its home (PREFECT_HOME)


def template_path() -> Path | None:
    """Where this environment keeps the template for its Prefect version (None without Prefect)."""
    try:
        prefect_version = version("prefect")
    except PackageNotFoundError:
        return None
    return Path(sys.prefix) / "share" / "mwingest" / f"prefect-{prefect_version}.db"


def seed(prefect_home: Path, template: Path | None = None) -> bool:
    """Copy the template (this environment's, or ``template``) into a home that has no database
    yet (the user's own file, mode 0600); True when it did. A home that has one keeps it: its
    runs are its history."""
    template = template or template_path()
    target = prefect_home / DB_NAME
    if template is None or not template.is_file() or target.exists():
        return False
    prefect_home.mkdir(parents=True, exist_ok=True, mode=0o700)
    fresh = target.with_suffix(f".{os.getpid()}.tmp")
    with open(template, "rb") as src, os.fdopen(
            os.open(fresh, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "wb") as dst:
        shutil.copyfileobj(src, dst)
    os.replace(fresh, target)
    return True


def build(template: Path | None = None, timeout: float = 300.0) -> Path:
    """Migrate an empty database to Prefect's head revision and keep it as the template (this
    environment's, or at ``template``: the test suite builds one per run)."""
    template = template or template_path()
    if template is None:
        raise RuntimeError("Prefect is not installed in this environment")
    template.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="mwingest-prefect-db-") as home:
        env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
        env.update(PREFECT_HOME=home, DO_NOT_TRACK="1", PREFECT_SERVER_ANALYTICS_ENABLED="false")
        subprocess.run([sys.executable, "-m", "prefect", "server", "database", "upgrade", "-y"],
                       env=env, check=True, capture_output=True, stdin=subprocess.DEVNULL,
                       timeout=timeout)
        fresh = template.with_suffix(f".{os.getpid()}.tmp")
        shutil.copyfile(Path(home) / DB_NAME, fresh)
        os.replace(fresh, template)
    return template


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="the local server's pre-migrated Prefect database")
    parser.add_argument("command", choices=["build", "where"])
    args = parser.parse_args(argv)
    if args.command == "where":
        print(template_path())
        return 0
    try:
        print(f"migrated Prefect database template: {build()}")
    except (OSError, RuntimeError, subprocess.SubprocessError) as exc:  # the server migrates then
        print(f"no Prefect database template ({exc}); a new local server migrates its own",
              file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
