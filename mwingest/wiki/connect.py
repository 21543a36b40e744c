"""Open a wiki for a run: credentials from the caller or the environment, login, and the rules.

Why a function of its own: the flow, the CLI and the Python API all start the same way, and the
secret must be resolved *inside* the run (from the environment or a Prefect block), never passed
as a flow parameter where Prefect would store and show it.
"""

from __future__ import annotations

import hashlib
import threading

from mwingest.wiki.credentials import Credentials
from mwingest.wiki.session import WikiSession
from mwingest.wiki.siteinfo import WikiRules, fetch_rules

#: Sessions opened by a check before a run, waiting to be taken by that run (one use each).
_handed_over: dict[str, tuple[WikiSession, WikiRules]] = {}
_lock = threading.Lock()


def _key(credentials: Credentials) -> str:
    """Who logs in where, as a digest: the hand-over never keeps a secret in clear as a key."""
    parts = (credentials.api_url, credentials.username, credentials.password,
             credentials.oauth_token, credentials.contact, credentials.login_mode)
    return hashlib.sha256(repr(parts).encode()).hexdigest()


def open_wiki(credentials: Credentials, *, keep_for_run: bool = False,
              **session_options: object) -> tuple[WikiSession, WikiRules]:
    """A logged-in session and the wiki's upload rules (two or three requests).

    Why the hand-over: the CLI checks the login before a run starts (a wrong password is a
    one-line error, not a traceback from inside a flow), and the run then needs the same login.
    ``keep_for_run=True`` leaves the opened session for the next ``open_wiki`` in this process
    with the same credentials, which takes it instead of logging in again: one login per run.
    """
    if not session_options and not keep_for_run:
        with _lock:
            handed = _handed_over.pop(_key(credentials), None)
        if handed is not None:
            return handed
    session = WikiSession(credentials, **session_options)  # type: ignore[arg-type]
    rules = fetch_rules(session)
    if not credentials.anonymous:
        session.login()
    if keep_for_run:
        with _lock:
            _handed_over[_key(credentials)] = (session, rules)
    return session, rules
