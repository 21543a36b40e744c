"""How a batch publishes, and the settings every file's job shares. No secrets: this travels as
flow parameters."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from urllib.parse import urlsplit

from mwingest.base.policy import WarningPolicy
from mwingest.base.retry import RetryPolicy

URL_SHA1 = "0" * 40  # copy uploads: the wiki fetches the bytes, we never see them
URL_MODES = ("wiki", "local")
#: MediaWiki's default ``$wgUploadStashMaxAge`` (6 h) and Wikimedia's production setting (48 h).
DEFAULT_STASH_HOURS = 6.0
WIKIMEDIA_STASH_HOURS = 48.0
_WIKIMEDIA_HOSTS = ("wikimedia.org", "wikipedia.org", "wikidata.org", "wiktionary.org",
                    "wikisource.org", "mediawiki.org")


def stash_hours_for(api_url: str) -> float:
    """How long the wiki keeps stashed files: 48 h on Wikimedia's wikis, else MediaWiki's 6 h."""
    host = (urlsplit(api_url).hostname or "").lower()
    wikimedia = any(host == h or host.endswith("." + h) for h in _WIKIMEDIA_HOSTS)
    return WIKIMEDIA_STASH_HOURS if wikimedia else DEFAULT_STASH_HOURS


@dataclass(frozen=True)
class IngestOptions:
    """How a batch publishes. No secrets here: this travels as flow parameters."""

    comment: str = "Uploaded with mwingest"
    text: str | None = None  # default page text (an item's own text wins)
    tags: tuple[str, ...] = ()
    watchlist: str | None = None  # watch | preferences | nochange
    chunk_size: int = 16 * 1024 * 1024  # the benchmark's pick (bench/README.md)
    policy: WarningPolicy = field(default_factory=WarningPolicy)
    async_assembly: bool = False
    #: Hosts URL items may reach although they resolve to non-public addresses (plus the env's
    #: ``MWINGEST_ALLOW_HOSTS``); entries as :class:`~mwingest.checks.netsafe.AllowList` reads them.
    allow_hosts: tuple[str, ...] = ()
    #: ``wiki``: copy upload, the wiki fetches the (checked) final URL; ``local``: mwingest
    #: downloads it (pinned, capped at the wiki's size limit) and uploads it like a file.
    url_mode: str = "wiki"
    fetch_timeout: float = 30.0  # per connect and per read
    #: A local-mode download's whole time, redirects and body: a server that trickles a byte
    #: every few seconds never trips the per-read timeout, and must not hold a worker for ever.
    fetch_deadline: float = 900.0
    #: Files at least this large are looked up by SHA-1 on the wiki before any byte is sent. A
    #: smaller file costs about one query to send, and its upload (without ``ignorewarnings``)
    #: publishes nothing when the wiki already has the bytes: it answers ``duplicate``/``nochange``.
    precheck_min_bytes: int = 1024 * 1024
    #: How long the wiki keeps stashed files (None: from the wiki's host, see
    #: :func:`stash_hours_for`). Resume trusts a stash key only while it is younger than this.
    stash_hours: float | None = None
    #: How transient faults are ridden out, for every request a file needs.
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    #: Decompression-bomb limit for images, in pixels (width × height, any frame); None: the
    #: default, :data:`mwingest.checks.content.DEFAULT_MAX_PIXELS` (89.5 MP). Raising it lets larger
    #: images through; past what is decoded in memory they pass with an ``unverified-image`` warning.
    max_pixels: int | None = None

    def stash_max_age(self, api_url: str) -> timedelta:
        return timedelta(hours=self.stash_hours if self.stash_hours is not None
                         else stash_hours_for(api_url))
