"""Who we are on the wiki: API URL, login name and a secret, kept out of every repr and log.

Why a class of its own: the password or OAuth token must travel from the environment (or a Prefect
block) to the one place that sends it, the login request, and nowhere else. ``repr``/``str`` never
show it, and :func:`redact` scrubs known secret values out of any text before it is logged.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field

from mwingest.base.redact import register_secret

ENV_API_URL = "MWINGEST_API_URL"
ENV_USERNAME = "MWINGEST_USERNAME"
ENV_PASSWORD = "MWINGEST_PASSWORD"  # noqa: S105 - the *name* of the variable
ENV_OAUTH_TOKEN = "MWINGEST_OAUTH_TOKEN"  # noqa: S105
ENV_CONTACT = "MWINGEST_CONTACT"


@dataclass(frozen=True)
class Credentials:
    """Login material for one wiki. Give a bot password (``User@app``), a main-account password
    (``login_mode="clientlogin"``) or an OAuth 2 owner-only access token."""

    api_url: str
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    oauth_token: str | None = field(default=None, repr=False)
    #: "auto": bot password when the name has ``@``, else clientlogin; or "login" / "clientlogin".
    login_mode: str = "auto"
    #: Contact for the User-Agent (an e-mail or a URL), as Wikimedia's policy asks.
    contact: str | None = None

    def __post_init__(self) -> None:
        for secret in (self.password, self.oauth_token):
            if secret:
                register_secret(secret)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, *, api_url: str | None = None,
                 username: str | None = None) -> Credentials:
        """Read ``MWINGEST_API_URL``/``_USERNAME``/``_PASSWORD``/``_OAUTH_TOKEN``/``_CONTACT``."""
        env = os.environ if env is None else env
        url = api_url or env.get(ENV_API_URL)
        if not url:
            raise ValueError(f"no wiki API URL: pass one or set {ENV_API_URL}")
        return cls(
            api_url=url,
            username=username or env.get(ENV_USERNAME) or None,
            password=env.get(ENV_PASSWORD) or None,
            oauth_token=env.get(ENV_OAUTH_TOKEN) or None,
            contact=env.get(ENV_CONTACT) or None,
        )

    @property
    def anonymous(self) -> bool:
        """True when there is nothing to log in with."""
        return not self.oauth_token and not (self.username and self.password)

    def effective_login_mode(self) -> str:
        """"oauth", "login" (bot password) or "clientlogin" (main account)."""
        if self.oauth_token:
            return "oauth"
        if self.login_mode != "auto":
            return self.login_mode
        return "login" if self.username and "@" in self.username else "clientlogin"

