"""Open a wiki for a run: credentials from the caller or the environment, login, and the rules.

Why a function of its own: the flow, the CLI and the Python API all start the same way, and the
secret must be resolved *inside* the run (from the environment or a Prefect block), never passed
as a flow parameter where Prefect would store and show it.
"""

from __future__ import annotations

from .credentials import Credentials
from .session import WikiSession
from .siteinfo import WikiRules, fetch_rules


def open_wiki(credentials: Credentials, **session_options: object) -> tuple[WikiSession, WikiRules]:
    """A logged-in session and the wiki's upload rules (two or three requests)."""
    session = WikiSession(credentials, **session_options)  # type: ignore[arg-type]
    rules = fetch_rules(session)
    if not credentials.anonymous:
        session.login()
    return session, rules
