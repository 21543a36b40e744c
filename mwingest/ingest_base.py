"""What every pipeline step shares: the run's options, the session, rules and ledger, and the
two ledger helpers (:meth:`IngestorBase.finish` ends an item in the ledger and the log).

The steps themselves live in :mod:`mwingest.intake` (validate), :mod:`mwingest.pipeline` (upload,
publish, verify) and :mod:`mwingest.decisions` (what to do about warnings); :class:`Ingestor` in
``pipeline`` combines them.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

from . import netsafe
from .items import NEEDS_REVIEW, SKIPPED, UPLOADED, ItemWork
from .ledger import Ledger, State
from .policy import WarningPolicy
from .session import WikiSession
from .siteinfo import WikiRules

log = logging.getLogger("mwingest.pipeline")
URL_SHA1 = "0" * 40  # copy uploads: the wiki fetches the bytes, we never see them
URL_MODES = ("wiki", "local")
MAX_RENAMES = 10


@dataclass(frozen=True)
class IngestOptions:
    """How a batch publishes. No secrets here: this travels as flow parameters."""

    comment: str = "Uploaded with mwingest"
    text: str | None = None  # default page text (an item's own text wins)
    tags: tuple[str, ...] = ()
    watchlist: str | None = None  # watch | preferences | nochange
    chunk_size: int = 8 * 1024 * 1024
    policy: WarningPolicy = field(default_factory=WarningPolicy)
    async_assembly: bool = False
    #: Hosts URL items may reach although they resolve to non-public addresses (plus the env's
    #: ``MWINGEST_ALLOW_HOSTS``); entries as :class:`~mwingest.netsafe.AllowList` reads them.
    allow_hosts: tuple[str, ...] = ()
    #: ``wiki``: copy upload, the wiki fetches the (checked) final URL; ``local``: mwingest
    #: downloads it (pinned, capped at the wiki's size limit) and uploads it like a file.
    url_mode: str = "wiki"
    fetch_timeout: float = 30.0
    #: Files at least this large are looked up by SHA-1 on the wiki before any byte is sent. A
    #: smaller file costs about one query to send, and its upload (without ``ignorewarnings``)
    #: publishes nothing when the wiki already has the bytes: it answers ``duplicate``/``nochange``.
    precheck_min_bytes: int = 1024 * 1024


class IngestorBase:
    """Runs the steps for one wiki: a logged-in session, the wiki's rules, the ledger."""

    def __init__(self, session: WikiSession, rules: WikiRules, ledger: Ledger,
                 options: IngestOptions | None = None, *, run_id: str | None = None) -> None:
        self.session = session
        self.rules = rules
        self.ledger = ledger
        self.options = options or IngestOptions()
        self.run_id = run_id
        self.wiki = session.api_url
        if self.options.url_mode not in URL_MODES:
            raise ValueError(f"url_mode must be one of {', '.join(URL_MODES)}, "
                             f"not {self.options.url_mode!r}")
        self.allow = netsafe.AllowList.parse(self.options.allow_hosts)

    # --- ledger helpers ------------------------------------------------------------------------

    def _move(self, work: ItemWork, to: State, reason: str | None = None,
              message: str | None = None, **fields: Any) -> None:
        if work.ledger_id is not None:
            self.ledger.transition(work.ledger_id, to, reason=reason, message=message,
                                   flow_run_id=self.run_id, **fields)

    def finish(self, work: ItemWork, outcome: str, reason: str | None, message: str,
               **changes: Any) -> ItemWork:
        """End an item: outcome in the ledger and in the work; one log line in plain words."""
        work = work.end(outcome, reason, message, **changes)
        fields: dict[str, Any] = {}
        if outcome == UPLOADED:
            fields["final_name"] = work.final_name
        if outcome == NEEDS_REVIEW:
            fields.update(filekey=work.filekey, warnings=dict(work.warnings))
        try:
            current = self.ledger.get(work.ledger_id) if work.ledger_id is not None else None
            if current is not None and current.state.value != outcome:
                self._move(work, State(outcome), reason, message, **fields)
        except Exception as exc:  # the outcome must still be reported
            log.error("ledger write failed for %s: %s", work.item.label, exc)
        level = logging.INFO if outcome in (UPLOADED, SKIPPED) else logging.WARNING
        log.log(level, "%s: %s (%s) %s", work.item.label, outcome, reason, message)
        return work

    def _publish_kwargs(self, work: ItemWork) -> dict[str, Any]:
        opts, item = self.options, work.item
        return {"comment": item.comment or opts.comment, "text": item.text or opts.text,
                "tags": list(item.tags or opts.tags) or None, "watchlist": opts.watchlist}

    def publish(self, work: ItemWork, *, ignorewarnings: bool = False,
                filename: str | None = None, restash: bool = True) -> ItemWork:
        """Publish the stashed key (see :class:`mwingest.pipeline.Ingestor`)."""
        raise NotImplementedError
