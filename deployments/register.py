"""Register the credentials block type and the crash automation; optionally save a block.

    python -m deployments.register                     # the block type, for the UI's block form
    python -m deployments.register --save mwingest-wiki  # a block from MWINGEST_API_URL/_USERNAME/_PASSWORD

The secret goes from the environment into the block's SecretStr fields and nowhere else.
"""

from __future__ import annotations

import argparse

from mwingest.runtime.prefectenv import authenticate

authenticate()  # the mwingest local server's secret, before Prefect reads its settings

from mwingest.wiki.credentials import Credentials  # noqa: E402
from tasks.blocks import MediaWikiCredentials  # noqa: E402


def register_block_type() -> None:
    """Make the block type known to the Prefect server (idempotent), with the logo the server
    serves (``mwingest server`` puts it there) or none."""
    _use_served_logo()
    MediaWikiCredentials.register_type_and_schema()


def _use_served_logo() -> None:
    """Every registration of the type (a save registers it too) carries the served logo: one
    without it would replace the logo on the server with none."""
    from prefect.settings import PREFECT_API_URL

    MediaWikiCredentials.use_served_logo(PREFECT_API_URL.value())


def save_from_env(name: str, *, overwrite: bool = True) -> MediaWikiCredentials:
    """Save a credentials block named ``name`` from the ``MWINGEST_*`` environment."""
    creds = Credentials.from_env()
    _use_served_logo()
    block = MediaWikiCredentials(api_url=creds.api_url, username=creds.username,
                                 password=creds.password, oauth_token=creds.oauth_token,
                                 contact=creds.contact)
    block.save(name, overwrite=overwrite)
    return block


def install_automation() -> str | None:
    """The server's automation that marks mwingest's runs Crashed when their heartbeats stop
    (a worker killed mid-run); its id, or None without a configured server (idempotent).
    Through Prefect's client, so a team's server or Prefect Cloud gets its authentication."""
    from typing import Any

    from prefect.client.orchestration import get_client
    from prefect.settings import PREFECT_API_URL

    from mwingest.runtime.crashwatch import install_crash_automation

    if not PREFECT_API_URL.value():
        return None
    with get_client(sync_client=True) as client:
        def send(method: str, path: str, body: Any) -> Any:
            answer = client.request(method, path, json=body)  # type: ignore[arg-type]
            answer.raise_for_status()
            return answer.json() if answer.content else None

        return install_crash_automation(send)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--save", metavar="NAME", help="save a block from the MWINGEST_* environment")
    args = parser.parse_args(argv)
    register_block_type()
    if install_automation():
        print("the crash automation (runs without heartbeats are marked Crashed) is installed")
    if args.save:
        save_from_env(args.save)
        print(f"saved credentials block {args.save!r}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
