"""The commands that read the ledger (``status``) or act on one of its rows (``review``).

Apart from :mod:`mwingest.cli.app` because they share the ledger's own helpers: where it is, and
one line (never a traceback) when its database refuses or cannot be reached.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated

import typer

from mwingest.cli.options import BlockOpt, JsonOpt, LedgerOpt, UserOpt, WikiOpt
from mwingest.cli.output import JsonLines, exit_code, fail, print_table
from mwingest.cli.run import VERBOSE, use_prefect

DECISIONS = ("skip", "publish", "rename")


def status(ledger: LedgerOpt = None, as_json: JsonOpt = False,
           limit: Annotated[int, typer.Option(help="Recent items to list")] = 20) -> None:
    """What the ledger knows: items in flight, waiting for a decision, failed or landed without
    all their structured data, then the most recent."""
    from mwingest.base.items import STRUCTURED_DATA_FAILED
    from mwingest.ledger.ledger import IN_FLIGHT, Ledger, State

    location = _ledger_location(ledger, "yet (give --ledger PATH|URL, or run an upload first)")
    with _ledger_problems(location), Ledger(location) as led:
        where = led.where
        open_items = [*led.items(states=IN_FLIGHT + (State.NEEDS_REVIEW, State.FAILED)),
                      *led.items(states=[State.UPLOADED], reason=STRUCTURED_DATA_FAILED)]
        recent = sorted(led.items(), key=lambda i: (i.updated_at, i.id))[-limit:] if limit else []
        summary = led.summary()
    rows = {i.id: i for i in [*open_items, *reversed(recent)]}
    if as_json:
        for item in rows.values():
            sys.stdout.write(json.dumps({
                "id": item.id, "ref": item.ref, "account": item.account, "host": item.host,
                "source": item.source, "filename": item.final_name or item.target,
                "state": item.state.value, "reason": item.reason, "message": item.message,
                "filekey": item.filekey if item.state is State.NEEDS_REVIEW else None,
                "updated_at": item.updated_at.isoformat()}, ensure_ascii=False) + "\n")
        return
    without = sum(1 for i in open_items if i.reason == STRUCTURED_DATA_FAILED)
    typer.echo(f"ledger {where}: " + ", ".join(f"{n} {k}" for k, n in summary.items() if n)
               + (f" ({without} of the uploaded without all their structured data: a re-run "
                  "writes what is missing)" if without else ""))
    for item in rows.values():
        landed = f" (as {item.final_name})" if item.final_name not in (None, item.target) else ""
        typer.echo(f"{item.ref}  {item.state.value:<12} {item.reason or '':<22}{landed} "
                   f"<- {item.host + ':' if item.host else ''}{item.source}")
    if any(i.state is State.NEEDS_REVIEW for i in open_items):
        typer.echo("decide with: mwingest review REF --decision skip|publish|rename [--filename NEW]"
                   " (REF: the first column, quoted; on any machine that shares this ledger)")


def review(
    item: Annotated[str, typer.Argument(help="Ledger item: its reference (SHA-1 prefix[:title], "
                                              "see `mwingest status`) or its row id")],
    decision: Annotated[str, typer.Option(help="skip | publish | rename")],
    filename: Annotated[str | None, typer.Option(help="New name for rename")] = None,
    wiki: WikiOpt = None, username: UserOpt = None, credentials: BlockOpt = None,
    ledger: LedgerOpt = None, as_json: JsonOpt = False,
) -> None:
    """Resolve a needs-review item from its stash key, without re-sending its bytes."""
    if decision not in DECISIONS:
        raise fail(f"--decision must be {', '.join(DECISIONS[:-1])} or {DECISIONS[-1]}, "
                   f"not {decision!r}")
    if filename and decision != "rename":
        raise fail("--filename goes with --decision rename")
    _location, item = _waiting_item(item, ledger)
    if username:
        os.environ["MWINGEST_USERNAME"] = username
    from mwingest.api import IngestSetupError, preflight, resolve

    try:
        if not credentials:
            preflight(wiki)  # a wrong login: exit 2 before a Prefect server is started
        use_prefect()  # before Prefect is imported
        # The explicit --ledger only: one from the environment is read by the run itself and
        # never becomes a flow parameter (a password in MWINGEST_LEDGER_URL stays here).
        outcome = resolve(item, decision, new_filename=filename, wiki=wiki,
                          credentials_block=credentials, ledger_path=ledger,
                          quiet=True, verbose=VERBOSE["on"], check_connection=False)
    except IngestSetupError as exc:
        raise fail(str(exc)) from None
    if as_json:
        JsonLines()(outcome)
    elif sys.stderr.isatty():
        print_table([outcome])
    else:
        from mwingest.cli.progress import plain_line

        typer.echo(plain_line(outcome))
    raise typer.Exit(exit_code([outcome]))


def _ledger_location(ledger: str | None, missing: str) -> str:
    """The ledger to open (``--ledger``, the environment, the default file); a file that does not
    exist is an error, not a new empty ledger."""
    from mwingest.ledger.ledger import LedgerError, default_location, is_url, parameter_location, shown

    try:
        parameter_location(ledger)  # typed on a command line: shown by `ps`, kept in shell history
    except LedgerError as exc:
        raise fail(str(exc).replace("the ledger parameter", "--ledger")) from None
    location = ledger or default_location()
    if not is_url(location) and not Path(location).expanduser().exists():
        raise fail(f"no ledger at {shown(location)} {missing}")
    return location


@contextlib.contextmanager
def _ledger_problems(location: str) -> Iterator[None]:
    """A ledger that refuses (a bad URL, a newer schema) or a database that cannot be reached:
    one line naming the host and port, exit 2, no traceback."""
    from mwingest.ledger.ledger import problem

    try:
        yield
    except Exception as exc:
        said = problem(location, exc)
        if said is None:
            raise
        raise fail(said) from None


def _waiting_item(item: str, ledger: str | None) -> tuple[str, str]:
    """The ledger location and the row's reference, after checking that ``item`` names one row
    that waits for a decision. The flow finds it again by that reference within the login's
    wiki and account, so a row of another wiki is never decided."""
    from mwingest.ledger.ledger import Ledger, LedgerError, State

    location = _ledger_location(ledger, "(give --ledger PATH|URL)")
    with _ledger_problems(location), Ledger(location) as led:
        try:
            entry = led.find(item)
        except LedgerError as exc:
            raise fail(f"{exc} (see `mwingest status`)") from None
    if entry.state is not State.NEEDS_REVIEW:
        raise fail(f"item {entry.ref} is {entry.state.value}, not needs-review: nothing to decide")
    return location, entry.ref
