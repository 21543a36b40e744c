"""The Python API for notebooks and scripts: the same flows the UI and the schedules run.

    from mwingest.api import ingest
    outcomes = ingest(["scans/"], wiki="https://wiki.example.org/w/api.php")

Each call is a Prefect flow run (the team's server when ``PREFECT_API_URL`` is set, else the
mwingest local server, started on first use; ``MWINGEST_PREFECT=ephemeral`` for Prefect's ephemeral
mode), so ad hoc runs land in the same history as scheduled ones. Prefect is imported
only when a function here runs, and only after the wiki answered and accepted the login
(:func:`preflight`): a wrong URL or password costs a second, not Prefect's start-up.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from mwingest.base.errors import BatchStoppedError, LoginError, MWIngestError, TransportError
from mwingest.base.items import Outcome

if TYPE_CHECKING:
    from mwingest.job.settings import BatchSettings
    from mwingest.wiki.pacing import PaceNote

class IngestSetupError(Exception):
    """The run could not start (no wiki, wiki unreachable, login refused: nothing was uploaded),
    or could not go on (the wiki refused to log in again mid-batch: the message says how far)."""


class PrefectLostError(IngestSetupError):
    """The Prefect API stopped answering mid-run; the wiki and the ledger hold what was done."""


def _setup_error(exc: BaseException, wiki: str | None = None) -> IngestSetupError | None:
    """The setup problem ``exc`` stands for, worded as what to fix; None for anything else."""
    where = f" at {wiki}" if wiki else ""
    if isinstance(exc, BatchStoppedError):  # mid-batch (login refused, ledger gone): said once
        return IngestSetupError(str(exc))
    if isinstance(exc, LoginError):
        return IngestSetupError(f"login refused{where}: {exc} (check MWINGEST_USERNAME/"
                                f"MWINGEST_PASSWORD and the bot password's grants)")
    if isinstance(exc, TransportError):
        return IngestSetupError(f"wiki unreachable: {exc} (check --wiki / MWINGEST_API_URL)")
    if isinstance(exc, ValueError) and "API URL" in str(exc):
        return IngestSetupError(f"{exc} (give --wiki API_URL)")
    text = str(exc)
    if prefect_lost(exc):
        why = " ".join(text.split())[:160] or type(exc).__name__
        return PrefectLostError(
            f"the Prefect API stopped answering during the run ({why}); the files that finished "
            f"are on the wiki and in the ledger, the others keep their place there (stash key, "
            f"offset): run the same command again once Prefect answers (`mwingest server start`)")
    if isinstance(exc, RuntimeError) and ("Failed to reach API" in text
                                          or "ephemeral Prefect API" in text):
        # Prefect 3.9's wording for a dead PREFECT_API_URL / an ephemeral server that never came up.
        return IngestSetupError(f"Prefect unreachable: {text.splitlines()[0]} (start the server "
                                f"PREFECT_API_URL names, or unset it for a local ephemeral run)")
    return None


def prefect_lost(exc: BaseException) -> bool:
    """An error of Prefect's HTTP client (the wiki's client is ``requests``, never ``httpx``):
    connection refused or reset, a timeout, a 5xx the retries did not outlast."""
    import httpx

    if isinstance(exc, httpx.TransportError):
        return True
    return isinstance(exc, httpx.HTTPStatusError) and exc.response.status_code >= 500


def preflight(wiki: str | None = None) -> None:
    """Reach the wiki and log in with the environment's credentials, before Prefect starts.

    Why: a wrong URL or password is the commonest mistake, and the flow would only find it after
    the ephemeral Prefect server started (5–20 s) and then log a traceback. This costs three or
    four requests and gives a one-line :class:`IngestSetupError` instead. Credentials from a
    Prefect block are checked inside the run (loading a block needs Prefect).
    """
    from mwingest.wiki.connect import open_wiki
    from mwingest.wiki.credentials import Credentials

    try:
        credentials = Credentials.from_env(api_url=wiki)
    except ValueError as exc:
        raise _setup_error(exc) or IngestSetupError(str(exc)) from None
    if credentials.anonymous:
        raise IngestSetupError(
            "no credentials: set MWINGEST_USERNAME and MWINGEST_PASSWORD (a bot password), or "
            "MWINGEST_OAUTH_TOKEN, or give --credentials BLOCK")
    try:
        open_wiki(credentials, keep_for_run=True)  # the run takes this login over
    except MWIngestError as exc:
        setup = _setup_error(exc, credentials.api_url)
        raise (setup or IngestSetupError(
            f"cannot use the wiki at {credentials.api_url}: {exc}")) from None


def check_ledger(location: str | None) -> None:
    """Before a run is created: a ledger location given as a parameter must carry no password
    (Prefect stores and shows parameters), and a ledger database must answer. One
    :class:`IngestSetupError` line naming the host and port otherwise."""
    from mwingest.ledger.ledger import Ledger, default_location, is_url, parameter_location, problem

    where = location or default_location()
    try:
        parameter_location(location)
        if not is_url(where):
            return  # a file: made by the run when missing
        with Ledger(where, busy_timeout=10):
            pass
    except Exception as exc:
        said = problem(where, exc)
        if said is None:
            raise
        raise IngestSetupError(said) from None


def ingest(sources: Sequence[str], *, wiki: str | None = None,
           credentials_block: str | None = None, filename: str | None = None,
           settings: BatchSettings | None = None,
           on_outcome: Callable[[Outcome], None] | None = None,
           on_progress: Callable[[str, str, int, int], None] | None = None,
           on_pace: Callable[[PaceNote], None] | None = None,
           quiet: bool = False, verbose: bool = False, check_connection: bool = True,
           **flat: Any) -> list[Outcome]:
    """Ingest files, folders, manifests or URLs; one :class:`Outcome` per item.

    ``settings`` is everything the batch is told (:class:`~mwingest.job.settings.BatchSettings`:
    how files are described and sent, what the batch may reach, the warning policy, the review
    wait, the ledger); any of its fields may also be given by name (``text=…``, ``tags=[…]``,
    ``on_warning={"exists": "rename"}``, ``manifest_root=…``), on top of ``settings``. Strict by
    default: a manifest's paths stay in its folder, URLs may only reach public addresses.
    ``on_outcome`` is called (from worker threads) with each item's outcome as it happens;
    ``on_progress`` with ``(source, label, bytes on the wiki, size)`` after each step of a file
    (chunk by chunk); ``on_pace`` with a :class:`~mwingest.wiki.pacing.PaceNote` when a file
    waits for the account's upload limit (the wait, and the batch's time left at the pace).
    ``quiet`` keeps Prefect's console output to warnings, each once, without
    the outcome lines (``verbose`` brings back every line). ``check_connection`` runs
    :func:`preflight` first (skipped with a credentials block). Raises
    :class:`IngestSetupError` when the run cannot start, ``TypeError`` for an unknown setting.
    """
    from mwingest.job.settings import BatchSettings  # pydantic: not for `mwingest check`
    from mwingest.ledger.ledger import LedgerLocationError

    try:
        settings = BatchSettings.from_flat(settings, **flat)
    except LedgerLocationError as exc:  # a password in ledger_path: refused before any run
        raise IngestSetupError(str(exc)) from None
    check_ledger(settings.ledger_path)
    if check_connection and not credentials_block:
        preflight(wiki)
    from flows.files import OUTCOME_LISTENERS, PROGRESS_LISTENERS
    from flows.ingest import PACE_LISTENERS, ingest_batch
    from mwingest.runtime.adhoc import prefect_settings
    from mwingest.runtime.prefectenv import is_local_server

    if on_outcome is not None:
        OUTCOME_LISTENERS.append(on_outcome)
    if on_progress is not None:
        PROGRESS_LISTENERS.append(on_progress)
    if on_pace is not None:
        PACE_LISTENERS.append(on_pace)
    try:
        with prefect_settings(quiet, verbose=verbose,
                              shows_outcomes=quiet and not verbose) as api_url:
            if settings.review_wait is None and api_url and is_local_server(api_url):
                # nobody may watch the local server's UI: needs-review at once
                settings = BatchSettings.from_flat(settings, review_timeout_s=0)
            rows = ingest_batch(sources=list(sources), wiki=wiki,
                                credentials_block=credentials_block, filename=filename,
                                settings=settings)
    except Exception as exc:
        setup = _setup_error(exc, wiki)
        if setup is not None:
            raise setup from None
        raise
    finally:
        if on_outcome is not None:
            OUTCOME_LISTENERS.remove(on_outcome)
        if on_progress is not None:
            PROGRESS_LISTENERS.remove(on_progress)
        if on_pace is not None:
            PACE_LISTENERS.remove(on_pace)
    return [Outcome(**row) for row in rows]


def resolve(item_id: int | str, decision: str, *, new_filename: str | None = None,
            wiki: str | None = None, credentials_block: str | None = None,
            ledger_path: str | None = None, quiet: bool = False, verbose: bool = False,
            check_connection: bool = True) -> Outcome:
    """Carry out a decision on a ``needs-review`` item from its stash key (no bytes re-sent).

    ``item_id`` is the item's reference (``Outcome.ledger_ref``, the same on every machine) or
    its row id in this ledger; ``ledger_path`` a file or database URL (no password in it:
    give that through ``PGPASSWORD``/``~/.pgpass``, or leave it to ``MWINGEST_LEDGER_URL``)."""
    check_ledger(ledger_path)
    if check_connection and not credentials_block:
        preflight(wiki)
    from flows.resolve import resolve_review
    from mwingest.runtime.adhoc import prefect_settings

    try:
        with prefect_settings(quiet, verbose=verbose, shows_outcomes=quiet and not verbose):
            row = resolve_review(item_id=item_id, decision=decision, new_filename=new_filename,
                                 wiki=wiki, credentials_block=credentials_block,
                                 ledger_path=ledger_path)
    except Exception as exc:
        setup = _setup_error(exc, wiki)
        if setup is not None:
            raise setup from None
        raise
    return Outcome(**row)


def check_sources(sources: Sequence[str], *, wiki: str | None = None,
                  settings: BatchSettings | None = None, **flat: Any) -> list[Outcome]:
    """Validation only, no login and no bytes sent: one ``ok``/``rejected`` outcome per item.

    ``settings`` (or flat names, as for :func:`ingest`: ``glob``, ``text_template``,
    ``manifest_root``, ``allow_hosts``, ``max_pixels``, ``text``, …) are the batch's own, so
    the items are read and described exactly as the import will read them.

    With a wiki, its own rules (siteinfo), the SHA-1 duplicate pre-check and, where the wiki has
    them, its TitleBlacklist and SpamBlacklist (``title-blacklisted``, ``spam-url``) are used;
    without, MediaWiki's defaults. No Prefect: this is the quick look before a long import. URLs are
    checked against the network rules (a DNS lookup, no request; redirects are not followed).
    """
    from mwingest.checks.netsafe import AllowList, UnsafeURLError, check_url
    from mwingest.checks.validate import find_duplicates, validate_file
    from mwingest.job.settings import BatchSettings
    from mwingest.wiki.session import WikiSession
    from mwingest.wiki.siteinfo import WikiRules, fetch_rules

    if "root" in flat:  # the name this function took before the settings model
        flat["manifest_root"] = flat.pop("root")
    settings = BatchSettings.from_flat(settings, **flat)
    max_pixels = settings.safety.max_pixels or None
    session = WikiSession(wiki) if wiki else None
    try:
        rules = fetch_rules(session) if session else WikiRules()
    except MWIngestError as exc:
        raise _setup_error(exc, wiki) or IngestSetupError(
            f"cannot use the wiki at {wiki}: {exc}") from None
    outcomes: list[Outcome] = []
    texts: list[str | None] = []  # each outcome's page text, for the blacklists
    allow = AllowList.parse(settings.safety.allow_hosts)
    for item in settings.collect(sources):
        if item.error:
            outcomes.append(Outcome(item.source, item.filename, "rejected", item.error,
                                    item.error_message))
            texts.append(None)
            continue
        if item.is_url:
            try:
                check_url(item.source, allow)
            except UnsafeURLError as exc:
                outcomes.append(Outcome(item.source, item.filename, "rejected", "unsafe-url",
                                        str(exc)))
                texts.append(None)
                continue
            outcomes.append(Outcome(item.source, item.filename, "ok", None,
                                    "URL: allowed; its bytes are checked when fetched"))
            texts.append(None)
            continue
        verdict = validate_file(item.source, rules, filename=item.filename, max_pixels=max_pixels)
        reason, message = verdict.reason, None
        if not verdict.ok:
            message = next((f.message for f in verdict.findings if f.code == reason), None)
        elif session is not None and verdict.sha1:
            dupes = find_duplicates(session, verdict.sha1)
            if dupes:
                reason, message = "duplicate-on-wiki", f"already on the wiki as {', '.join(dupes)}"
        outcomes.append(Outcome(item.source, verdict.filename, "ok" if verdict.ok else "rejected",
                                reason, message, verdict.sha1, verdict.size))
        texts.append(item.text or settings.describing.text or None)
    return _blacklisted(session, outcomes, texts) if session is not None else outcomes


def _blacklisted(session: Any, outcomes: list[Outcome], texts: list[str | None]) -> list[Outcome]:
    """``check``'s outcomes with the wiki's title and spam blacklists asked (where it has them)."""
    from dataclasses import replace

    from mwingest.checks import blacklists

    entries = [(o.filename, texts[n]) if o.outcome == "ok" and n < len(texts) else (None, None)
               for n, o in enumerate(outcomes)]
    refusals = blacklists.check(session, entries)
    return [o if r is None else replace(o, outcome="rejected", reason=r.reason, message=r.message)
            for o, r in zip(outcomes, refusals, strict=True)]


def describe_files(manifest: str, *, wiki: str | None = None,
                   settings: BatchSettings | None = None, **flat: Any) -> list[Outcome]:
    """Captions and statements for files already on the wiki (``mwingest describe``): the rows
    of ``manifest`` name the files (``filename``, else the source's name); the cells are checked
    as an import's are, then each file gets what its entity lacks, read back after
    (:func:`mwingest.job.structured.describe_existing`). No bytes, no ledger, no Prefect run:
    every attempt reads the entity first, so running it again writes nothing twice."""
    from pathlib import Path

    from mwingest.describe import structured
    from mwingest.describe.sources import titles
    from mwingest.job.settings import BatchSettings
    from mwingest.job.structured import describe_existing
    from mwingest.wiki.connect import open_wiki
    from mwingest.wiki.credentials import Credentials

    settings = BatchSettings.from_flat(settings, **flat)
    try:
        session, _rules = open_wiki(Credentials.from_env(api_url=wiki))
    except (MWIngestError, ValueError) as exc:
        raise _setup_error(exc, wiki) or IngestSetupError(
            f"cannot use the wiki at {wiki}: {exc}") from None
    statements = settings.describing.statements
    retry = settings.retry()
    items = retry.call(lambda: structured.check_items(
        session, titles(Path(manifest), tuple(statements), settings.describing.fill()),
        statements).items,
        what="checking the structured data columns")
    return describe_existing(session, items, comment=settings.describing.comment, retry=retry)
