"""The options ``upload`` and ``import`` share, and how they become the batch's settings.

Why the defaults come from :mod:`mwingest.base.defaults`, which the settings model takes its own
from: they are written once (and the model is imported only when a batch starts, not for
``--help``); an option left out is the model's default, so the command line,
the Python API, the UI's forms and a planned import's shards agree on what "not given" means.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from mwingest.base.defaults import DEFAULT_BUDGET_S, DEFAULT_CHUNK_MB, DEFAULT_COMMENT, DEFAULT_CONCURRENCY
from mwingest.cli.output import fail

if TYPE_CHECKING:
    from mwingest.job.settings import BatchSettings

WikiOpt = Annotated[str | None, typer.Option("--wiki", envvar="MWINGEST_API_URL",
                                             help="The wiki's api.php URL")]
UserOpt = Annotated[str | None, typer.Option("--username", envvar="MWINGEST_USERNAME",
                                             help="Bot password login name (User@app); the "
                                                  "password only from MWINGEST_PASSWORD")]
BlockOpt = Annotated[str | None, typer.Option("--credentials",
                                              help="Name of a MediaWikiCredentials Prefect block")]
JsonOpt = Annotated[bool, typer.Option("--json", help="One JSON object per item on stdout")]
#: No ``envvar``: a ledger URL from the environment stays in this process (the run reads it
#: itself), so a password in ``MWINGEST_LEDGER_URL`` never becomes a flow parameter.
LedgerOpt = Annotated[str | None, typer.Option(
    "--ledger",
    help="Ledger file or database URL, never with a password in it (default: MWINGEST_LEDGER_URL,"
    " else MWINGEST_LEDGER, else per-user data dir)")]
TextFileOpt = Annotated[Path | None, typer.Option(exists=True, dir_okay=False, readable=True,
                                                  help="Read the page text from a file")]
CommentOpt = Annotated[str, typer.Option(help="Upload summary")]
COMMENT = DEFAULT_COMMENT
TagsOpt = Annotated[str | None, typer.Option(help="Change tags, comma separated")]
ChunkOpt = Annotated[str, typer.Option(help="Chunk size: 8MiB, 512KiB, 1048576 (K/M/G are 1024s)")]
CHUNK = f"{DEFAULT_CHUNK_MB:g}MiB"
PolicyOpt = Annotated[str | None, typer.Option(
    help="CODE=ACTION,... actions skip|publish|rename|review|fail (e.g. exists=rename)")]
ConcurrencyOpt = Annotated[int, typer.Option(min=1, max=16, help="Files in flight at once")]
CONCURRENCY = DEFAULT_CONCURRENCY
RootOpt = Annotated[Path | None, typer.Option(
    "--root", exists=True, file_okay=False, resolve_path=True,
    help="Let manifest paths lead under this folder too (default: the manifest's folder only)")]
AllowHostOpt = Annotated[list[str] | None, typer.Option(
    "--allow-host", help="HOST, HOST:PORT or *.DOMAIN that URLs may reach although it is not "
    "public (repeat or comma-separate; also env MWINGEST_ALLOW_HOSTS)")]
FetchOpt = Annotated[str, typer.Option(
    "--fetch", help="Who downloads URLs: wiki (copy upload) or local (mwingest fetches, "
    "then uploads the file)")]

MaxPixelsOpt = Annotated[int | None, typer.Option(
    "--max-pixels", min=1, help="Refuse images with more pixels as decompression bombs "
    "(default 89478485, Pillow's limit); larger ones than memory allows pass with a warning")]
ReviewWaitOpt = Annotated[int | None, typer.Option(
    "--review-wait", min=0, help="Seconds to wait for a person to answer a review form in the "
    "Prefect UI (default: 0 with the mwingest local server, 3600 with a PREFECT_API_URL)")]
RetryOpt = Annotated[float, typer.Option(
    "--retry-budget", min=0, help="Seconds a transient fault (a wiki restart, lost answers, "
    "maxlag) is ridden out per request before the file fails")]
RETRY = DEFAULT_BUDGET_S
AsyncOpt = Annotated[bool, typer.Option(
    "--async-assembly", help="Let the wiki assemble chunked files in its job queue (async=1), "
    "for files too big to assemble within one request; its job runner must run")]
StashHoursOpt = Annotated[float | None, typer.Option(
    "--stash-hours", min=0.1, help="How long the wiki keeps stashed files (default: 48 on "
    "Wikimedia wikis, else MediaWiki's 6)")]

_SIZE = re.compile(r"\s*(\d+(?:\.\d+)?)\s*([a-z]*)\s*", re.IGNORECASE)
_UNITS = {"": 0, "B": 0, "K": 1, "KB": 1, "KIB": 1, "M": 2, "MB": 2, "MIB": 2, "G": 3, "GB": 3,
          "GIB": 3}


def parse_size(text: str) -> int:
    """``8MiB``, ``512KiB``, ``1.5M``, ``1048576`` → bytes (binary multiples: chunk sizes are)."""
    match = _SIZE.fullmatch(text)
    if not match or match.group(2).upper() not in _UNITS:
        raise typer.BadParameter(f"not a size: {text!r} (try 8MiB)", param_hint="--chunk-size")
    value = float(match.group(1)) * 1024 ** _UNITS[match.group(2).upper()]
    if value < 1:
        raise typer.BadParameter(f"{text!r} is not a positive size", param_hint="--chunk-size")
    return int(value)


def safety(root: Path | None, allow_host: list[str] | None) -> dict[str, Any]:
    """``--root`` and ``--allow-host``, checked (a malformed host entry is a usage error)."""
    from mwingest.checks.netsafe import AllowList

    hosts = [h.strip() for entry in allow_host or () for h in entry.split(",") if h.strip()]
    try:
        AllowList.parse(hosts, env=True)
    except ValueError as exc:
        raise fail(f"--allow-host / MWINGEST_ALLOW_HOSTS: {exc}") from None
    return {"manifest_root": str(root) if root else None, "allow_hosts": hosts}


def common(text: str | None, text_file: Path | None, tags: str | None, chunk_size: str,
           on_warning: str | None, root: Path | None = None,
           allow_host: list[str] | None = None, fetch: str = "wiki") -> dict[str, Any]:
    """The options upload and import share, checked before anything starts."""
    from mwingest.base.policy import WarningPolicy

    if fetch not in ("wiki", "local"):
        raise fail(f"--fetch must be wiki or local, not {fetch!r}")

    try:
        policy = WarningPolicy.parse(on_warning)
    except ValueError as exc:
        raise fail(f"--on-warning: {exc}") from None
    if text is not None and text_file is not None:
        raise fail("give --text or --text-file, not both")
    if text_file is not None:
        text = text_file.read_text(encoding="utf-8")
    return {"text": text, "tags": [t.strip() for t in (tags or "").split(",") if t.strip()],
            "chunk_size_mb": parse_size(chunk_size) / (1024 * 1024),
            "on_warning": {code: action.value for code, action in (policy.overrides or {}).items()},
            "url_mode": fetch, **safety(root, allow_host)}


StatementsOpt = Annotated[str | None, typer.Option(
    "--statements", help="Statement columns and their property ids, e.g. depicts=P180,creator=P170, "
    "on top of the defaults (Commons: depicts P180, creator P170, inception P571, "
    "copyright_licence P275, copyright_status P6216, source_of_file P7482)")]


FillOpt = Annotated[bool, typer.Option(
    "--fill-statements", help="Fill empty copyright_licence cells from the row's licence template "
    "(Wikidata's item for it; --licence-items to give others) and empty inception cells from its "
    "date")]
LicenceItemsOpt = Annotated[str | None, typer.Option(
    "--licence-items", help="Licence templates and their item ids for --fill-statements, e.g. "
    "cc-by-4.0=Q20007257, on top of Commons' common licences")]


def parse_licence_items(text: str | None) -> dict[str, str] | None:
    """``--licence-items cc-by-4.0=Q1,my-licence=Q2``: these on top of Commons' (None: none)."""
    if not text:
        return None
    out: dict[str, str] = {}
    for part in (p.strip() for p in text.split(",") if p.strip()):
        template, sep, item = (x.strip() for x in part.partition("="))
        if not sep or not template or not item:
            raise typer.BadParameter(f"{part!r}: give template=Q…", param_hint="--licence-items")
        out[template] = item
    return out


def parse_statements(text: str | None) -> dict[str, str] | None:
    """``--statements depicts=P1,note=P7``: the default map with these columns set (None: default)."""
    if not text:
        return None
    from mwingest.describe.structured import DEFAULT_STATEMENTS

    out = dict(DEFAULT_STATEMENTS)
    for part in (p.strip() for p in text.split(",") if p.strip()):
        column, sep, prop = (x.strip() for x in part.partition("="))
        if not sep or not column or not re.fullmatch(r"P[1-9][0-9]*", prop):
            raise fail(f"--statements: {part!r} is not COLUMN=P123")
        out[column] = prop
    return out


def batch_settings(**flat: Any) -> BatchSettings:
    """The batch's settings from the command's options (flat names), or a usage error (exit 2)
    that says which value is wrong: checked before anything starts or is stored."""
    from pydantic import ValidationError

    from mwingest.base.errors import MWIngestError
    from mwingest.job.settings import BatchSettings

    try:
        return BatchSettings.from_flat(**flat)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc'][-1:]))}: {e['msg']}" for e in exc.errors())
        raise fail(problems) from None
    except MWIngestError as exc:
        raise fail(str(exc)) from None
