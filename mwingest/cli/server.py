"""``mwingest server start|stop|status``: the local Prefect server every command reports to.

Apart from the other commands because it is about the machine, not about files: it starts and
stops :mod:`mwingest.runtime.localserver` and never imports Prefect.
"""

from __future__ import annotations

import json
from typing import Annotated

import typer

from mwingest.cli.output import fail

server_app = typer.Typer(no_args_is_help=True, help="The local Prefect server every command "
                         "reports to: its UI shows the history of every run.")
@server_app.command("start")
def server_start(
    idle: Annotated[float | None, typer.Option(
        "--idle", min=0, help="Stop after this many seconds unused (0: never; default 3600, "
        "env MWINGEST_SERVER_IDLE_S)")] = None,
    port: Annotated[int | None, typer.Option(
        help="Port (default: the first free from 4200; env MWINGEST_SERVER_PORT)")] = None,
) -> None:
    """Start the local Prefect server in the background (or say where it already runs)."""
    from mwingest.runtime import localserver

    try:
        info, started = localserver.start(idle_s=idle, port=port)
    except localserver.LocalServerError as exc:
        raise fail(str(exc)) from None
    from mwingest.runtime.warm import ensure_started

    ensure_started(info.api_url)  # flow commands then start with Prefect already imported
    typer.echo(f"{'started' if started else 'already running'}: Prefect UI at {info.ui_url} "
               f"(API {info.api_url}, pid {info.pid}); "
               f"{localserver.idle_words(info)}; `mwingest server stop` stops it")
    typer.echo(_login_words())


def _login_words() -> str:
    """Where the browser's login is (the secret itself is never printed)."""
    from mwingest.runtime.localserver import Paths

    path = Paths().auth
    return (f"only you can use it: the UI's login asks for the line in {path} "
            f"(`cat {path}` shows it)")


@server_app.command("stop")
def server_stop() -> None:
    """Stop the local Prefect server and every process it started."""
    from mwingest.runtime import localserver

    info = localserver.stop()
    typer.echo(f"stopped the Prefect server at {info.ui_url}" if info
               else "no local Prefect server was running")


@server_app.command("status")
def server_status(as_json: Annotated[bool, typer.Option(
        "--json", help="One JSON object on stdout")] = False) -> None:
    """Whether the local Prefect server runs, where, and since when (exit 1 when it does not)."""
    from dataclasses import asdict

    from mwingest.runtime import localserver

    info = localserver.status()
    if as_json:
        typer.echo(json.dumps({"running": info is not None, **(asdict(info) if info else {}),
                               "auth_file": str(localserver.Paths().auth)}))
    elif info is None:
        typer.echo(f"no local Prefect server is running (home {localserver.Paths().root})")
    else:
        typer.echo(f"running: Prefect UI at {info.ui_url} (API {info.api_url}, pid {info.pid}, "
                   f"since {info.started_at}, home {info.prefect_home})")
        typer.echo(_login_words())
    raise typer.Exit(0 if info else 1)
