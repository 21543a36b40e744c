"""The Python API for notebooks and scripts: the same flows the UI and the schedules run.

    from mwingest import ingest
    outcomes = ingest(["scans/"], wiki="https://wiki.example.org/w/api.php")

Each call is a Prefect flow run (ephemeral Prefect when ``PREFECT_API_URL`` is unset, the team's
server when set), so ad hoc runs land in the same history as scheduled ones. Prefect is imported
only when a function here runs.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from .errors import LoginError, TransportError
from .items import Outcome


class IngestSetupError(Exception):
    """The run could not start: no wiki, wiki unreachable, login refused. Nothing was uploaded."""


def _setup_errors(exc: BaseException) -> IngestSetupError | None:
    if isinstance(exc, LoginError):
        return IngestSetupError(f"login refused: {exc} (check MWINGEST_USERNAME/MWINGEST_PASSWORD "
                                f"and the bot password's grants)")
    if isinstance(exc, TransportError):
        return IngestSetupError(f"wiki unreachable: {exc}")
    if isinstance(exc, ValueError) and "API URL" in str(exc):
        return IngestSetupError(str(exc))
    return None


def ingest(sources: Sequence[str], *, wiki: str | None = None,
           credentials_block: str | None = None, filename: str | None = None,
           comment: str = "Uploaded with mwingest", text: str | None = None,
           text_template: str | None = None, tags: Sequence[str] = (),
           chunk_size: int = 8 * 1024 * 1024, on_warning: dict[str, Any] | None = None,
           concurrency: int = 4, review_timeout_s: int | None = None,
           ledger_path: str | None = None, glob: str = "*",
           on_outcome: Callable[[Outcome], None] | None = None,
           quiet: bool = False) -> list[Outcome]:
    """Ingest files, folders, manifests or URLs; one :class:`Outcome` per item."""
    from flows.ingest import OUTCOME_LISTENERS, ingest_batch

    if on_outcome is not None:
        OUTCOME_LISTENERS.append(on_outcome)
    try:
        rows = ingest_batch(
            sources=list(sources), wiki=wiki, credentials_block=credentials_block,
            filename=filename, comment=comment, text=text, text_template=text_template,
            tags=list(tags), chunk_size_mb=chunk_size / (1024 * 1024),
            on_warning=dict(on_warning or {}), concurrency=concurrency,
            review_timeout_s=review_timeout_s, ledger_path=ledger_path, glob=glob)
    except Exception as exc:
        setup = _setup_errors(exc)
        if setup is not None:
            raise setup from None
        raise
    finally:
        if on_outcome is not None:
            OUTCOME_LISTENERS.remove(on_outcome)
    return [Outcome(**row) for row in rows]


def resolve(item_id: int, decision: str, *, new_filename: str | None = None,
            wiki: str | None = None, credentials_block: str | None = None,
            ledger_path: str | None = None) -> Outcome:
    """Carry out a decision on a ``needs-review`` item from its stash key (no bytes re-sent)."""
    from flows.resolve import resolve_review

    try:
        row = resolve_review(item_id=item_id, decision=decision, new_filename=new_filename,
                             wiki=wiki, credentials_block=credentials_block,
                             ledger_path=ledger_path)
    except Exception as exc:
        setup = _setup_errors(exc)
        if setup is not None:
            raise setup from None
        raise
    return Outcome(**row)


def check_sources(sources: Sequence[str], *, wiki: str | None = None) -> list[Outcome]:
    """Validation only, no login and no bytes sent: one ``ok``/``rejected`` outcome per item.

    With a wiki, its own rules (siteinfo) and the SHA-1 duplicate pre-check are used; without,
    MediaWiki's defaults.
    """
    from .manifest import collect
    from .session import WikiSession
    from .siteinfo import WikiRules, fetch_rules
    from .validate import find_duplicates, validate_file

    session = WikiSession(wiki) if wiki else None
    try:
        rules = fetch_rules(session) if session else WikiRules()
    except TransportError as exc:
        raise IngestSetupError(f"wiki unreachable: {exc}") from None
    outcomes = []
    for item in collect(sources):
        if item.error:
            outcomes.append(Outcome(item.source, None, "rejected", item.error, item.error_message))
            continue
        if item.is_url:
            outcomes.append(Outcome(item.source, item.filename, "ok", None, "URL: checked by the wiki"))
            continue
        verdict = validate_file(item.source, rules, filename=item.filename)
        reason, message = verdict.reason, None
        if not verdict.ok:
            message = next((f.message for f in verdict.findings if f.code == reason), None)
        elif session is not None and verdict.sha1:
            dupes = find_duplicates(session, verdict.sha1)
            if dupes:
                reason, message = "duplicate-on-wiki", f"already on the wiki as {', '.join(dupes)}"
        outcomes.append(Outcome(item.source, verdict.filename, "ok" if verdict.ok else "rejected",
                                reason, message, verdict.sha1, verdict.size))
    return outcomes
