"""The ``mwingest`` command: ad hoc imports for data teams, the same flow as the UI and schedules.

Exit status: 0 when every item is uploaded/skipped (ok for ``check``), 1 when any item is
rejected/needs-review/failed, 2 for usage or connection problems (with one line on stderr saying
what to fix). With ``--json`` stdout carries one JSON object per item and nothing else.

Prefect and the flows are imported only inside the commands that run them, so ``--help`` and
``check`` start fast.
"""

from __future__ import annotations

import json
import os
import re
import sys
from pathlib import Path
from typing import Annotated

import typer

from .items import Outcome

app = typer.Typer(add_completion=False, no_args_is_help=True,
                  help="Put files into a MediaWiki wiki, once, intact, with their description.")

WikiOpt = Annotated[str | None, typer.Option("--wiki", envvar="MWINGEST_API_URL",
                                             help="The wiki's api.php URL")]
UserOpt = Annotated[str | None, typer.Option("--username", envvar="MWINGEST_USERNAME",
                                             help="Bot password login name (User@app)")]
BlockOpt = Annotated[str | None, typer.Option("--credentials",
                                              help="Name of a MediaWikiCredentials Prefect block")]
JsonOpt = Annotated[bool, typer.Option("--json", help="One JSON object per item on stdout")]
LedgerOpt = Annotated[str | None, typer.Option("--ledger", envvar="MWINGEST_LEDGER",
                                               help="Ledger file (default: per-user data dir)")]
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([KMG]i?B?|B)?\s*$", re.IGNORECASE)


def parse_size(text: str) -> int:
    """``8MiB``, ``512KiB``, ``1G``, ``1048576`` → bytes."""
    match = _SIZE.match(text)
    if not match:
        raise typer.BadParameter(f"not a size: {text!r} (try 8MiB)")
    number, unit = float(match.group(1)), (match.group(2) or "B").upper()
    power = {"B": 0, "K": 1, "M": 2, "G": 3}[unit[0]]
    return int(number * 1024**power)


def fail(message: str) -> typer.Exit:
    """A usage or connection problem: one line on stderr, exit 2."""
    typer.echo(f"mwingest: {message}", err=True)
    return typer.Exit(2)


def _print_outcomes(outcomes: list[Outcome], as_json: bool) -> int:
    if as_json:
        return 0 if all(o.ok or o.outcome == "ok" for o in outcomes) else 1
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"{len(outcomes)} items")
    for col in ("source", "filename", "outcome", "reason"):
        table.add_column(col)
    colours = {"uploaded": "green", "skipped": "cyan", "ok": "green", "rejected": "red",
               "failed": "red", "needs-review": "yellow"}
    for o in outcomes:
        table.add_row(o.source, o.filename or "", f"[{colours.get(o.outcome, '')}]{o.outcome}",
                      o.reason or "")
    Console(stderr=False).print(table)
    return 0 if all(o.ok or o.outcome == "ok" for o in outcomes) else 1


def _emit_json(outcome: Outcome) -> None:
    keys = ("source", "filename", "outcome", "reason", "message", "sha1", "size", "url", "filekey")
    data = outcome.as_dict()
    sys.stdout.write(json.dumps({k: data.get(k) for k in keys}, ensure_ascii=False) + "\n")
    sys.stdout.flush()


def _run(sources: list[str], *, wiki: str | None, username: str | None, credentials: str | None,
         as_json: bool, **params: object) -> None:
    if not wiki and not credentials:
        raise fail("no wiki: give --wiki API_URL or set MWINGEST_API_URL")
    if username:
        os.environ["MWINGEST_USERNAME"] = username
    from .api import IngestSetupError, ingest

    try:
        outcomes = ingest(sources, wiki=wiki, credentials_block=credentials,
                          on_outcome=_emit_json if as_json else None, quiet=as_json, **params)
    except IngestSetupError as exc:
        raise fail(str(exc)) from None
    raise typer.Exit(_print_outcomes(outcomes, as_json))


def _common(text: str | None, text_file: Path | None, tags: str | None, chunk_size: str,
            on_warning: str | None) -> dict[str, object]:
    from .policy import WarningPolicy

    try:
        policy = WarningPolicy.parse(on_warning)
    except ValueError as exc:
        raise fail(str(exc)) from None
    if text_file is not None:
        text = text_file.read_text(encoding="utf-8")
    return {"text": text, "tags": [t for t in (tags or "").split(",") if t],
            "chunk_size": parse_size(chunk_size), "on_warning": policy.overrides or {}}


@app.command()
def upload(
    sources: Annotated[list[str], typer.Argument(help="Local paths and/or http(s) URLs")],
    wiki: WikiOpt = None, username: UserOpt = None, credentials: BlockOpt = None,
    filename: Annotated[str | None, typer.Option(help="Target name (single source only)")] = None,
    text: Annotated[str | None, typer.Option(help="Page text for new file pages")] = None,
    text_file: Annotated[Path | None, typer.Option(help="Read the page text from a file")] = None,
    comment: Annotated[str, typer.Option(help="Upload summary")] = "Uploaded with mwingest",
    tags: Annotated[str | None, typer.Option(help="Change tags, comma separated")] = None,
    chunk_size: Annotated[str, typer.Option(help="Chunk size, e.g. 8MiB")] = "8MiB",
    on_warning: Annotated[str | None, typer.Option(
        help="CODE=ACTION,... actions skip|publish|rename|review|fail")] = None,
    concurrency: Annotated[int, typer.Option(min=1, max=16)] = 4,
    ledger: LedgerOpt = None, as_json: JsonOpt = False,
) -> None:
    """Upload files or URLs."""
    if filename and len(sources) != 1:
        raise fail("--filename needs exactly one source")
    params = _common(text, text_file, tags, chunk_size, on_warning)
    _run(sources, wiki=wiki, username=username, credentials=credentials, as_json=as_json,
         filename=filename, comment=comment, concurrency=concurrency, ledger_path=ledger, **params)


@app.command("import")
def import_(
    source: Annotated[str, typer.Argument(help="A folder, or a manifest (.csv / .jsonl)")],
    wiki: WikiOpt = None, username: UserOpt = None, credentials: BlockOpt = None,
    glob: Annotated[str, typer.Option(help="Folder scan pattern")] = "*",
    text: Annotated[str | None, typer.Option()] = None,
    text_file: Annotated[Path | None, typer.Option()] = None,
    text_template: Annotated[Path | None, typer.Option(
        help="Page text template with {column} placeholders from the manifest")] = None,
    comment: Annotated[str, typer.Option()] = "Uploaded with mwingest",
    tags: Annotated[str | None, typer.Option()] = None,
    chunk_size: Annotated[str, typer.Option()] = "8MiB",
    on_warning: Annotated[str | None, typer.Option()] = None,
    concurrency: Annotated[int, typer.Option(min=1, max=16)] = 4,
    ledger: LedgerOpt = None, as_json: JsonOpt = False,
) -> None:
    """Import a folder (recursive) or a manifest."""
    if not Path(source).exists():
        raise fail(f"{source} does not exist")
    params = _common(text, text_file, tags, chunk_size, on_warning)
    _run([source], wiki=wiki, username=username, credentials=credentials, as_json=as_json,
         glob=glob, text_template=str(text_template) if text_template else None,
         comment=comment, concurrency=concurrency, ledger_path=ledger, **params)


@app.command()
def check(
    sources: Annotated[list[str], typer.Argument(help="Files, folders or manifests")],
    wiki: WikiOpt = None, as_json: JsonOpt = False,
) -> None:
    """Validate only: the wiki's rules, no bytes sent (no login needed)."""
    from .api import IngestSetupError, check_sources

    try:
        outcomes = check_sources(sources, wiki=wiki)
    except IngestSetupError as exc:
        raise fail(str(exc)) from None
    if as_json:
        for o in outcomes:
            _emit_json(o)
    raise typer.Exit(_print_outcomes(outcomes, as_json))


@app.command()
def status(ledger: LedgerOpt = None, as_json: JsonOpt = False,
           limit: Annotated[int, typer.Option(help="Recent items to list")] = 20) -> None:
    """What the ledger knows: in flight, needs-review, failed, recent."""
    from .ledger import Ledger, State

    with Ledger(ledger) as led:
        interesting = led.items(states=[State.STASHING, State.STASHED, State.NEEDS_REVIEW,
                                        State.FAILED])
        recent = led.items(limit=limit)
        summary = led.summary()
    rows = {i.id: i for i in [*interesting, *recent]}
    if as_json:
        for item in rows.values():
            sys.stdout.write(json.dumps({
                "id": item.id, "source": item.source, "filename": item.final_name or item.target,
                "state": item.state.value, "reason": item.reason, "filekey": item.filekey,
                "updated_at": item.updated_at.isoformat()}) + "\n")
        return
    typer.echo("  ".join(f"{k}: {v}" for k, v in summary.items() if v))
    for item in rows.values():
        typer.echo(f"{item.id:>6}  {item.state.value:<12} {item.reason or '':<22} "
                   f"{item.final_name or item.target}  ← {item.source}")


@app.command()
def review(
    item: Annotated[int, typer.Argument(help="Ledger item id (see `mwingest status`)")],
    decision: Annotated[str, typer.Option(help="skip | publish | rename")],
    filename: Annotated[str | None, typer.Option(help="New name for rename")] = None,
    wiki: WikiOpt = None, username: UserOpt = None, credentials: BlockOpt = None,
    ledger: LedgerOpt = None, as_json: JsonOpt = False,
) -> None:
    """Resolve a needs-review item from its stash key, without re-sending its bytes."""
    if decision not in ("skip", "publish", "rename"):
        raise fail("--decision must be skip, publish or rename")
    if username:
        os.environ["MWINGEST_USERNAME"] = username
    from .api import IngestSetupError, resolve

    try:
        outcome = resolve(item, decision, new_filename=filename, wiki=wiki,
                          credentials_block=credentials, ledger_path=ledger)
    except IngestSetupError as exc:
        raise fail(str(exc)) from None
    if as_json:
        _emit_json(outcome)
    raise typer.Exit(_print_outcomes([outcome], as_json))


@app.command()
def demo(keep: Annotated[bool, typer.Option(help="Keep the wiki running afterwards")] = False
         ) -> None:
    """Start a throwaway wiki, ingest a generated sample batch, print the outcomes."""
    from .demo import run_demo

    raise typer.Exit(run_demo(keep=keep))


def main() -> None:
    """Console-script entry point."""
    app()
