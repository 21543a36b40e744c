"""The ``mwingest`` command: ad hoc imports for data teams, the same flow as the UI and schedules.

Exit status: 0 when every item is uploaded/skipped (ok for ``check``), 1 when any item is
rejected/needs-review/failed, 2 for usage or connection problems, with one line on stderr that
says what to fix (never a traceback). With ``--json`` stdout carries one JSON object per item, as
each item reaches its outcome, and nothing else (Prefect logs to stderr).

Start-up: Prefect and the flows are imported only by the commands that run a flow, and only after
the arguments were checked and the wiki accepted the login, so ``--help``, ``check``, ``status``,
``server`` and every usage error stay at plain-Python cost. The login checked first is the one the
run uses (:func:`mwingest.wiki.connect.open_wiki`'s hand-over). Runs report to the mwingest local
Prefect server (``mwingest server``), started on first use, unless ``PREFECT_API_URL`` names
another or ``MWINGEST_PREFECT=ephemeral`` asks for Prefect's ephemeral mode.

The console: on a terminal a live display (bytes and files, rate, time left, each file in flight)
and the outcome table; elsewhere one plain line per file and a summary. Prefect's INFO lines go to
the run's history only (``-v`` shows them); its warnings and errors are shown once each.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Annotated

import typer

from mwingest.cli.options import (
    CHUNK,
    COMMENT,
    CONCURRENCY,
    RETRY,
    AllowHostOpt,
    AsyncOpt,
    BlockOpt,
    ChunkOpt,
    CommentOpt,
    ConcurrencyOpt,
    FetchOpt,
    JsonOpt,
    LedgerOpt,
    MaxPixelsOpt,
    PolicyOpt,
    RetryOpt,
    ReviewWaitOpt,
    RootOpt,
    StashHoursOpt,
    StatementsOpt,
    TagsOpt,
    TextFileOpt,
    UserOpt,
    WikiOpt,
    batch_settings,
    common,
    parse_size,
    parse_statements,
    safety,
)
from mwingest.cli.output import JSON_KEYS, JsonLines, exit_code, fail, json_line, print_table
from mwingest.cli.run import VERBOSE, exit_after_prefect, exit_fast_with, run_flow, use_prefect
from mwingest.cli.server import server_app
from mwingest.cli.sheet import CheckPagesOpt, LicenceOpt, LocationOpt, RequireLicenceOpt, RequireOpt, sheet

__all__ = ["JSON_KEYS", "app", "exit_code", "json_line", "main", "parse_size"]

app = typer.Typer(add_completion=False, no_args_is_help=True,
                  help="Put files into a MediaWiki wiki, once, intact, with their description.")

DECISIONS = ("skip", "publish", "rename")


@app.callback()
def _options(verbose: Annotated[bool, typer.Option(
        "-v", "--verbose", help="Show Prefect's own lines (task runs, flow states) too")] = False
             ) -> None:
    """Put files into a MediaWiki wiki, once, intact, with their description."""
    VERBOSE["on"] = verbose


@app.command()
def upload(
    sources: Annotated[list[str], typer.Argument(help="Local paths and/or http(s) URLs")],
    wiki: WikiOpt = None, username: UserOpt = None, credentials: BlockOpt = None,
    filename: Annotated[str | None, typer.Option(help="Target name (single source only)")] = None,
    text: Annotated[str | None, typer.Option(help="Page text for new file pages")] = None,
    text_file: TextFileOpt = None,
    comment: CommentOpt = COMMENT,
    tags: TagsOpt = None,
    chunk_size: ChunkOpt = CHUNK,
    on_warning: PolicyOpt = None,
    concurrency: ConcurrencyOpt = CONCURRENCY,
    ledger: LedgerOpt = None, as_json: JsonOpt = False,
    root: RootOpt = None, allow_host: AllowHostOpt = None, fetch: FetchOpt = "wiki",
    retry_budget: RetryOpt = RETRY, stash_hours: StashHoursOpt = None,
    review_wait: ReviewWaitOpt = None, max_pixels: MaxPixelsOpt = None,
    async_assembly: AsyncOpt = False,
) -> None:
    """Upload files or URLs."""
    if filename and len(sources) != 1:
        raise fail("--filename needs exactly one source")
    settings = batch_settings(
        **common(text, text_file, tags, chunk_size, on_warning, root, allow_host, fetch),
        comment=comment, concurrency=concurrency, ledger_path=ledger, review_timeout_s=review_wait,
        retry_budget_s=retry_budget, stash_hours=stash_hours, max_pixels=max_pixels,
        async_assembly=async_assembly)
    run_flow(sources, settings, wiki=wiki, username=username, credentials=credentials,
             as_json=as_json, filename=filename)


@app.command("import")
def import_(
    source: Annotated[str, typer.Argument(help="A folder, or a manifest (.csv / .xlsx / .jsonl)")],
    wiki: WikiOpt = None, username: UserOpt = None, credentials: BlockOpt = None,
    glob: Annotated[str, typer.Option(help="Folder scan pattern (recursive)")] = "*",
    text: Annotated[str | None, typer.Option(help="Page text for new file pages")] = None,
    text_file: TextFileOpt = None,
    text_template: Annotated[Path | None, typer.Option(
        exists=True, dir_okay=False, readable=True,
        help="Page text template: {column} placeholders from the manifest, {date}, {author}, "
        "{gps.lat} … from the file's metadata")] = None,
    location: LocationOpt = False, require: RequireOpt = None, licence: LicenceOpt = None,
    require_licence: RequireLicenceOpt = False, check_pages: CheckPagesOpt = True,
    comment: CommentOpt = COMMENT,
    tags: TagsOpt = None,
    chunk_size: ChunkOpt = CHUNK,
    on_warning: PolicyOpt = None,
    concurrency: ConcurrencyOpt = CONCURRENCY,
    ledger: LedgerOpt = None, as_json: JsonOpt = False,
    root: RootOpt = None, allow_host: AllowHostOpt = None, fetch: FetchOpt = "wiki",
    retry_budget: RetryOpt = RETRY, stash_hours: StashHoursOpt = None,
    review_wait: ReviewWaitOpt = None, max_pixels: MaxPixelsOpt = None,
    async_assembly: AsyncOpt = False, statements: StatementsOpt = None,
) -> None:
    """Import a folder (recursive) or a manifest; a bad manifest row is that item's rejection.
    caption.<language> and statement columns become each file's structured data (Commons)."""
    if not Path(source).exists():
        raise fail(f"{source} does not exist (give a folder or a .csv/.xlsx/.jsonl manifest)")
    settings = batch_settings(
        **common(text, text_file, tags, chunk_size, on_warning, root, allow_host, fetch),
        comment=comment, concurrency=concurrency, ledger_path=ledger, review_timeout_s=review_wait,
        retry_budget_s=retry_budget, stash_hours=stash_hours, max_pixels=max_pixels,
        async_assembly=async_assembly, location=location, licence=licence,
        require_licence=require_licence, check_pages=check_pages, glob=glob,
        text_template=str(text_template) if text_template else None,
        statements=parse_statements(statements),
        required_columns=[c.strip() for c in (require or "").split(",") if c.strip()])
    if text_template is not None:
        from mwingest.describe.template import load_template

        try:
            load_template(text_template)
        except ValueError as exc:
            raise fail(str(exc)) from None
    run_flow([source], settings, wiki=wiki, username=username, credentials=credentials,
             as_json=as_json)


@app.command()
def describe(
    manifest: Annotated[Path, typer.Argument(
        exists=True, dir_okay=False, help="A manifest or sheet (.csv/.xlsx/.jsonl) naming files "
        "on the wiki (filename, else the source's name) with caption.<language> and statement "
        "columns")],
    wiki: WikiOpt = None, statements: StatementsOpt = None,
    comment: CommentOpt = "Structured data added with mwingest",
    retry_budget: RetryOpt = RETRY, as_json: JsonOpt = False,
) -> None:
    """Add captions and statements (structured data) to files already on the wiki; no bytes sent.
    Checked first like an import's; each file gets only what it lacks, read back after."""
    from mwingest.api import IngestSetupError, describe_files

    try:
        outcomes = describe_files(str(manifest), wiki=wiki, comment=comment,
                                  retry_budget_s=retry_budget,
                                  statements=parse_statements(statements))
    except IngestSetupError as exc:
        raise fail(str(exc)) from None
    if as_json:
        lines = JsonLines()
        for outcome in outcomes:
            lines(outcome)
    else:
        print_table(outcomes)
    raise typer.Exit(exit_code(outcomes))


@app.command()
def check(
    sources: Annotated[list[str], typer.Argument(help="Files, folders or manifests")],
    wiki: WikiOpt = None, as_json: JsonOpt = False,
    glob: Annotated[str, typer.Option(help="Folder scan pattern (recursive)")] = "*",
    root: RootOpt = None, allow_host: AllowHostOpt = None, max_pixels: MaxPixelsOpt = None,
) -> None:
    """Validate only: the wiki's rules, no bytes sent, no login, no Prefect run."""
    from mwingest.api import IngestSetupError, check_sources

    try:
        hosts = safety(root, allow_host)
        settings = batch_settings(glob=glob, max_pixels=max_pixels, **hosts)
        outcomes = check_sources(sources, wiki=wiki, settings=settings)
    except IngestSetupError as exc:
        raise fail(str(exc)) from None
    if as_json:
        lines = JsonLines()
        for outcome in outcomes:
            lines(outcome)
    else:
        print_table(outcomes)
    raise typer.Exit(exit_code(outcomes))


@app.command()
def status(ledger: LedgerOpt = None, as_json: JsonOpt = False,
           limit: Annotated[int, typer.Option(help="Recent items to list")] = 20) -> None:
    """What the ledger knows: in flight, needs-review and failed items, then the most recent."""
    from mwingest.ledger.ledger import Ledger, State

    location = _ledger_location(ledger, "yet (give --ledger PATH|URL, or run an upload first)")
    with _ledger_problems(location), Ledger(location) as led:
        where = led.where
        open_items = led.items(states=[State.STASHING, State.STASHED, State.NEEDS_REVIEW,
                                       State.FAILED])
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
    typer.echo(f"ledger {where}: " + ", ".join(f"{n} {k}" for k, n in summary.items() if n))
    for item in rows.values():
        landed = f" (as {item.final_name})" if item.final_name not in (None, item.target) else ""
        typer.echo(f"{item.ref}  {item.state.value:<12} {item.reason or '':<22}{landed} "
                   f"<- {item.host + ':' if item.host else ''}{item.source}")
    if any(i.state is State.NEEDS_REVIEW for i in open_items):
        typer.echo("decide with: mwingest review REF --decision skip|publish|rename [--filename NEW]"
                   " (REF: the first column, quoted; on any machine that shares this ledger)")


@app.command()
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
    from mwingest.ledger.ledger import LedgerLocationError, unreachable

    try:
        yield
    except LedgerLocationError as exc:
        raise fail(str(exc)) from None
    except Exception as exc:
        said = unreachable(location, exc)
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


app.add_typer(server_app, name="server")
app.command("sheet")(sheet)


@app.command()
def demo(keep: Annotated[bool, typer.Option(help="Keep the wiki running afterwards")] = False
         ) -> None:
    """Start a throwaway wiki, ingest a generated sample batch, print the outcomes."""
    from mwingest.cli.demo import run_demo

    raise typer.Exit(run_demo(keep=keep))


def _click_problem(exc: Exception) -> tuple[str, int] | None:
    """(message, exit code) of a click usage/parameter error, else None.

    Matched by shape (``exit_code`` + ``format_message``), because typer 0.12–0.2x raises real
    click's exceptions and newer typer its vendored copy of them.
    """
    code, fmt = getattr(exc, "exit_code", None), getattr(exc, "format_message", None)
    if not isinstance(code, int) or not callable(fmt):
        return None
    if type(exc).__name__ == "NoArgsIsHelpError":  # plain `mwingest`: the message is the help
        return fmt(), code
    ctx = getattr(exc, "ctx", None)
    hint = f" (see '{ctx.command_path} --help')" if ctx is not None and code == 2 else ""
    return f"mwingest: {' '.join(str(fmt()).split())}{hint}", code


def _configure_logging(level: str | None) -> None:
    """``MWINGEST_LOG_LEVEL=DEBUG`` shows every API request on stderr (secrets masked)."""
    if not level:
        return
    import logging

    logging.basicConfig(stream=sys.stderr, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    logging.getLogger("mwingest").setLevel(level.upper())


def main(argv: Sequence[str] | None = None) -> None:
    """Console-script entry point: usage errors become one line on stderr with exit 2."""
    _configure_logging(os.environ.get("MWINGEST_LOG_LEVEL"))
    console_script = argv is None
    if console_script:
        import atexit

        from mwingest.runtime.warm import run_warm

        warm_code = run_warm(sys.argv[1:])
        if warm_code is not None:  # the warm runner ran it (mwingest.runtime.warm)
            sys.exit(warm_code)

        atexit.register(exit_after_prefect)
    command = typer.main.get_command(app)
    try:
        code = command.main(args=list(argv) if argv is not None else None, prog_name="mwingest",
                            standalone_mode=False)
    except typer.Abort:
        typer.echo("mwingest: aborted", err=True)
        code = 130
    except Exception as exc:
        problem = _click_problem(exc)
        if problem is None:
            raise
        message, code = problem
        if message.strip():  # rich help was already printed by typer itself
            typer.echo(message, err=True)
    code = code if isinstance(code, int) else 0
    if console_script and "prefect" in sys.modules:
        exit_fast_with(code)
    sys.exit(code)


if __name__ == "__main__":
    main()
