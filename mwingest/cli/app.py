"""The ``mwingest`` command: ad hoc imports for data teams, the same flow as the UI and schedules.

Exit status: 0 when every item is uploaded/skipped (ok for ``check``), 1 when any item is
rejected/needs-review/failed, 2 for usage or connection problems and for a batch that cannot go on
(a refused re-login, a full disk under the ledger), with one line on stderr that says what to fix
(never a traceback). With ``--json`` stdout carries one JSON object per item, as
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

import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated

import typer

from mwingest.cli.ledgercmds import review, status
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
    FillOpt,
    JsonOpt,
    LedgerOpt,
    LicenceItemsOpt,
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
    parse_licence_items,
    parse_size,
    parse_statements,
    safety,
)
from mwingest.cli.output import JSON_KEYS, JsonLines, exit_code, fail, json_line, print_table
from mwingest.cli.run import VERBOSE, exit_after_prefect, exit_fast_with, run_flow
from mwingest.cli.server import server_app
from mwingest.cli.sheet import CheckPagesOpt, LicenceOpt, LocationOpt, RequireLicenceOpt, RequireOpt, sheet

__all__ = ["JSON_KEYS", "app", "exit_code", "json_line", "main", "parse_size"]

app = typer.Typer(add_completion=False, no_args_is_help=True,
                  help="Put files into a MediaWiki wiki, once, intact, with their description.")


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
    fill_statements: FillOpt = False, licence_items: LicenceItemsOpt = None,
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
        statements=parse_statements(statements), fill_statements=fill_statements,
        licence_items=parse_licence_items(licence_items),
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
    fill_statements: FillOpt = False, licence_items: LicenceItemsOpt = None,
    comment: CommentOpt = "Structured data added with mwingest",
    retry_budget: RetryOpt = RETRY, as_json: JsonOpt = False,
) -> None:
    """Add captions and statements (structured data) to files already on the wiki; no bytes sent.
    Checked first like an import's; each file gets only what it lacks, read back after."""
    from mwingest.api import IngestSetupError, describe_files

    try:
        outcomes = describe_files(str(manifest), wiki=wiki, comment=comment,
                                  retry_budget_s=retry_budget,
                                  statements=parse_statements(statements),
                                  fill_statements=fill_statements,
                                  licence_items=parse_licence_items(licence_items))
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


app.add_typer(server_app, name="server")
app.command()(status)
app.command()(review)
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
