"""Is a file fit to send? The local checks of a file's first step, before the ledger hears of it.

Local files are validated (content, name, size) against the wiki's rules; URLs are checked against
SSRF (every redirect hop) and, in local mode, fetched and validated like files. Nothing here
writes the ledger or the wiki: :class:`mwingest.job.machine.Job` records what the checks found.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlsplit

from mwingest.base.errors import TransportError
from mwingest.base.items import FAILED, REJECTED, IngestItem
from mwingest.base.options import URL_SHA1, IngestOptions
from mwingest.checks import netsafe
from mwingest.wiki import names
from mwingest.wiki.siteinfo import WikiRules


@dataclass(frozen=True)
class Checked:
    """What the checks found: either a refusal, or the bytes and the name to send them under."""

    target: str | None = None  # the sanitised name (None when refused before a name was known)
    sha1: str | None = None  # None: unreadable, nothing to key the ledger on
    size: int = 0
    local_copy: str | None = None  # a URL fetched by mwingest (local mode): its temporary file
    final_url: str | None = None  # a copy upload: the checked end of the redirect chain
    outcome: str | None = None  # rejected / failed when the file must not go up
    reason: str | None = None
    message: str | None = None
    #: Refusals that depend on this run's settings (network rules) are not written to the ledger,
    #: so a re-run with a wider allow-list checks again instead of repeating an old rejection.
    record: bool = True

    @property
    def ok(self) -> bool:
        return self.outcome is None


def default_name(item: IngestItem) -> str:
    """The default target name: a path's base name, or a URL path's last segment, decoded."""
    if item.filename:
        return item.filename
    if item.is_url:
        return unquote(urlsplit(item.source).path.rstrip("/").rsplit("/", 1)[-1])
    return Path(item.source).name


def check(item: IngestItem, rules: WikiRules, options: IngestOptions,
          allow: netsafe.AllowList) -> Checked:
    """Check one item locally and against the wiki's rules (no wiki request, no ledger write)."""
    if item.error:
        return Checked(outcome=REJECTED, reason=item.error,
                       message=item.error_message or item.error, record=False)
    wanted = default_name(item)
    if not item.is_url:
        return _check_local(item.source, wanted, rules, max_pixels=options.max_pixels)
    fetched = walk_url(item.source, options, rules, allow)
    if not fetched.ok:
        return fetched
    if fetched.local_copy:
        checked = _check_local(fetched.local_copy, wanted, rules, max_pixels=options.max_pixels)
        if not checked.ok:
            Path(fetched.local_copy).unlink(missing_ok=True)
            return checked
        return Checked(**{**checked.__dict__, "local_copy": fetched.local_copy})
    return _check_url_name(wanted, item.source, rules, fetched.final_url)


def walk_url(url: str, options: IngestOptions, rules: WikiRules,
             allow: netsafe.AllowList) -> Checked:
    """Check a URL against the network rules: walk its redirects (copy upload) or download it
    (local mode). Transient network faults are raised for the retry policy."""
    try:
        if options.url_mode == "local":
            copy = netsafe.fetch_to_file(url, allow=allow, max_bytes=rules.max_upload_size,
                                         timeout=options.fetch_timeout,
                                         deadline=options.fetch_deadline)
            return Checked(local_copy=str(copy))
        return Checked(final_url=netsafe.resolve_redirects(url, allow,
                                                           timeout=options.fetch_timeout))
    except netsafe.UnsafeURLError as exc:
        return Checked(outcome=REJECTED, reason="unsafe-url", message=str(exc), record=False)
    except netsafe.FetchError as exc:
        if exc.retryable:  # connection faults, 5xx: a retry may fix them
            raise TransportError(str(exc)) from None
        outcome = REJECTED if exc.code == "file-too-large" else FAILED
        return Checked(outcome=outcome, reason=exc.code, message=str(exc), record=False)


def _check_local(path: str, wanted: str, rules: WikiRules, *, max_pixels: int | None = None) -> Checked:
    from mwingest.checks.validate import validate_file  # Pillow/magic: imported lazily

    verdict = validate_file(path, rules, filename=wanted, max_pixels=max_pixels)
    if not verdict.ok:
        reason = verdict.reason or "invalid"
        message = next((f.message for f in verdict.findings if f.code == reason), reason)
        return Checked(target=wanted, sha1=verdict.sha1, size=verdict.size or 0,
                       outcome=REJECTED, reason=reason, message=message,
                       record=verdict.sha1 is not None)
    # A name without extension gets the one of its content, as the wiki itself would add it
    # (validation predicted that name); sanitise() alone cannot know it and would raise.
    hint = verdict.filename.rsplit(".", 1)[-1] if verdict.filename and "." in verdict.filename else None
    try:
        try:
            target = names.sanitise(wanted, rules)
        except ValueError:
            if hint is None:
                raise
            target = names.sanitise(wanted, rules, ext_hint=hint)
    except ValueError as exc:
        message = f"{wanted}: no name the wiki accepts can be made ({exc})"
        return Checked(target=wanted, sha1=verdict.sha1, size=verdict.size or 0, outcome=REJECTED,
                       reason="bad-filename", message=message)
    return Checked(target=target, sha1=verdict.sha1, size=verdict.size or 0)


def _check_url_name(wanted: str, source: str, rules: WikiRules, final_url: str | None) -> Checked:
    prediction = names.predict_title(wanted, rules)
    try:
        target = names.sanitise(wanted, rules) if prediction.extension else None
    except ValueError:  # no usable extension (e.g. .txt): the wiki would refuse it
        target = None
    if not target:
        return Checked(outcome=REJECTED, reason="bad-filename", record=False,
                       message=f"cannot tell a file name from {source}: give a filename")
    return Checked(target=target, sha1=URL_SHA1, size=0, final_url=final_url)
