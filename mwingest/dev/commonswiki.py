"""A Commons-like throwaway wiki: the four extensions Wikimedia Commons refuses uploads with.

``start_wiki(commons=True)`` (:mod:`mwingest.dev.devwiki`) loads Debian's bundled TitleBlacklist,
SpamBlacklist, AbuseFilter and ConfirmEdit with the settings below; this module holds those
settings and the helpers a test sets its own rules with. Why each is done the way it is:

* **SpamBlacklist** reads only the local page ``MediaWiki:Spam-blacklist``: its default list is
  Meta-Wiki's, fetched over the network (a test wiki has none, and must not ask).
* **TitleBlacklist** reads only ``MediaWiki:Titleblacklist``.
* Both cache their lists in the object cache and drop the cache when the page is saved, so the
  pages are edited **through the API** (:meth:`CommonsRules.set_title_blacklist`), never in the
  database behind the wiki's back.
* **AbuseFilter** filters are rows of its tables (``abuse_filter``, ``abuse_filter_action``);
  the tables are created from the extension's own SQLite schema when the wiki is made. Filters
  are read from the database on each request, so a row written here applies to the next upload.
* **ConfirmEdit** (its SimpleCaptcha) asks for a captcha on edits that add external links
  (``addurl``) and, with :data:`CAPTCHA_ON_CREATE`, on every page creation. Its 1.39 release has
  no hook on uploads: an upload's description page is created without asking (the tests show
  it); the captcha a wiki asks for shows on ``action=edit``.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

MW_EXTENSIONS = Path("/usr/share/mediawiki/extensions")
#: The four extensions, as ``extensions/<name>/extension.json`` names them.
EXTENSIONS = ("TitleBlacklist", "SpamBlacklist", "AbuseFilter", "ConfirmEdit")
ABUSEFILTER_SQL = MW_EXTENSIONS / "AbuseFilter" / "db_patches" / "sqlite" / "tables-generated.sql"
#: Append with ``set_setting``: every page creation asks a captcha of accounts without
#: ``skipcaptcha`` (Uploader has none; Admin, a sysop, has it).
CAPTCHA_ON_CREATE = "$wgCaptchaTriggers['create'] = true;"

COMMONS_SETTINGS = """
# ---- devwiki: Commons-like extensions (mwingest.dev.commonswiki) --------------------------
wfLoadExtensions(['TitleBlacklist', 'SpamBlacklist', 'AbuseFilter', 'ConfirmEdit']);
$wgTitleBlacklistSources = ['local' => ['type' => 'localpage', 'src' => 'MediaWiki:Titleblacklist']];
# Only the local list: the default is Meta-Wiki's, fetched over the network.
$wgBlacklistSettings = ['spam' => ['files' => []], 'email' => ['files' => []]];
$wgLogSpamBlacklistHits = true;
$wgAbuseFilterActions = ['warn' => true, 'disallow' => true, 'tag' => true, 'throttle' => true,
                         'block' => false, 'blockautopromote' => false, 'degroup' => false,
                         'rangeblock' => false];
$wgAbuseFilterCentralDB = null;
$wgAbuseFilterIsCentral = false;
$wgCaptchaTriggers['addurl'] = true;
"""


def missing_extensions() -> list[str]:
    """Those of the four extensions this machine's MediaWiki does not ship."""
    return [name for name in EXTENSIONS if not (MW_EXTENSIONS / name / "extension.json").is_file()]


def create_abusefilter_tables(database: Path) -> None:
    """Create AbuseFilter's tables in the wiki's SQLite file, from the extension's own schema."""
    sql = ABUSEFILTER_SQL.read_text(encoding="utf-8").replace("/*_*/", "").replace("/*i*/", "")
    with sqlite3.connect(database) as db:
        db.executescript(sql)


class _Wiki(Protocol):
    root: Path
    api_url: str
    admin_username: str
    admin_password: str


class _Session(Protocol):
    def get(self, params: Any) -> dict[str, Any]: ...

    def post(self, params: Any, files: Any = None, *, write: bool = True) -> dict[str, Any]: ...


@dataclass(frozen=True)
class Filter:
    """One AbuseFilter filter: its id, the rule, what it does (``disallow``/``warn``), its
    public description and, for ``warn``, the message shown."""

    id: int
    pattern: str
    action: str
    description: str


class CommonsRules:
    """A test's own rules on a Commons-like wiki: blacklist pages (through the API, as the
    Admin main account, which may edit the MediaWiki namespace) and AbuseFilter rows."""

    def __init__(self, wiki: _Wiki, admin: _Session) -> None:
        self.wiki, self.admin = wiki, admin

    @property
    def database(self) -> Path:
        return self.wiki.root / "data" / "wiki.sqlite"

    def _edit(self, title: str, text: str) -> None:
        self.admin.post({"action": "edit", "title": title, "text": text,
                         "summary": "test rules", "bot": True})

    def set_title_blacklist(self, lines: Iterable[str]) -> None:
        """``MediaWiki:Titleblacklist``: one regex per line, options in ``<…>`` (e.g.
        ``File:IMG[ _]?\\d+\\.jpe?g <reupload>``)."""
        self._edit("MediaWiki:Titleblacklist", "\n".join(lines) + "\n")

    def set_spam_blacklist(self, lines: Iterable[str]) -> None:
        """``MediaWiki:Spam-blacklist``: one regex per line, matched against URLs' hosts+paths."""
        self._edit("MediaWiki:Spam-blacklist", "\n".join(lines) + "\n")

    def add_filter(self, pattern: str, action: str, description: str, *,
                   message: str | None = None) -> Filter:
        """A new enabled filter on uploads: ``action`` is ``disallow`` or ``warn``; ``message``
        the warning's or refusal's message key (default: the extension's own)."""
        if action not in ("disallow", "warn"):
            raise ValueError(f"action must be disallow or warn, not {action!r}")
        stamp = time.strftime("%Y%m%d%H%M%S", time.gmtime())
        default = "abusefilter-warning" if action == "warn" else "abusefilter-disallowed"
        with sqlite3.connect(self.database, timeout=30) as db:
            cur = db.execute(
                "INSERT INTO abuse_filter (af_pattern, af_user, af_user_text, af_timestamp, "
                "af_enabled, af_comments, af_public_comments, af_hidden, af_hit_count, "
                "af_throttled, af_deleted, af_actions, af_global, af_group) "
                "VALUES (?, 1, 'Admin', ?, 1, '', ?, 0, 0, 0, 0, ?, 0, 'default')",
                (pattern, stamp, description, action))
            filter_id = int(cur.lastrowid or 0)
            db.execute("INSERT INTO abuse_filter_action (afa_filter, afa_consequence, "
                       "afa_parameters) VALUES (?, ?, ?)", (filter_id, action, message or default))
        return Filter(filter_id, pattern, action, description)

    def disable_filters(self) -> None:
        """Turn every filter off (a test's rules stay out of the next test's way)."""
        with sqlite3.connect(self.database, timeout=30) as db:
            db.execute("UPDATE abuse_filter SET af_enabled = 0")

    def filter_hits(self, filter_id: int) -> list[dict[str, Any]]:
        """The abuse log's rows of one filter: what it caught (title, action, consequence)."""
        with sqlite3.connect(self.database, timeout=30) as db:
            db.row_factory = sqlite3.Row
            rows = db.execute("SELECT afl_title, afl_action, afl_actions, afl_user_text FROM "
                              "abuse_filter_log WHERE afl_filter_id = ?", (filter_id,))
            return [dict(row) for row in rows]

    def stash_rows(self) -> list[dict[str, Any]]:
        """Every row of the wiki's upload stash (``uploadstash``), all users."""
        with sqlite3.connect(self.database, timeout=30) as db:
            db.row_factory = sqlite3.Row
            rows = db.execute("SELECT us_key, us_orig_path, us_size, us_status, us_sha1 "
                              "FROM uploadstash")
            return [dict(row) for row in rows]
