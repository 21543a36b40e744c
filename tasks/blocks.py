"""Credentials as a Prefect block, so deployments take a block *name*, never a password.

Why a block: a secret typed into a run form is stored and shown in plain text in the run's
Parameters tab; a block parameter is stored as a reference and resolved inside the run
(../shared/notes/prefect-ui-browser-testing.md, "Secrets in the UI").
"""

from __future__ import annotations

from prefect.blocks.core import Block
from pydantic import Field, SecretStr

from mwingest.runtime import uilogo
from mwingest.wiki.credentials import Credentials


class MediaWikiCredentials(Block):
    """Where a wiki is and how mwingest logs in to it (bot password or OAuth 2 owner-only token)."""

    _block_type_name = "MediaWiki Credentials"
    _block_type_slug = "mediawiki-credentials"
    _description = "A wiki's api.php URL and a bot password or OAuth token for mwingest uploads."
    # The logo is ours and the Prefect server serves it (mwingest.runtime.uilogo): set by
    # use_served_logo() before the type is registered, None (a plain square) where it is not.
    _logo_url = None
    _documentation_url = "https://www.mediawiki.org/wiki/Manual:Bot_passwords"  # type: ignore[assignment]

    api_url: str = Field(title="API URL", description="The wiki's api.php, e.g. "
                         "https://commons.wikimedia.org/w/api.php")
    username: str | None = Field(default=None, title="User name",
                                 description="Bot password login name, e.g. 'Archive@ingest'")
    password: SecretStr | None = Field(default=None, title="Bot password")
    oauth_token: SecretStr | None = Field(default=None, title="OAuth 2 access token",
                                          description="Owner-only consumer token, instead of a password")
    contact: str | None = Field(default=None, title="Contact for the User-Agent",
                                description="An e-mail or URL the wiki's operators can reach you at")

    @classmethod
    def use_served_logo(cls, api_url: str | None) -> str | None:
        """Register the type with the logo the server of ``api_url`` serves (our own file, in its
        UI folder), or with none: never a hot-link to another host. The URL, or None."""
        cls._logo_url = uilogo.served_url(api_url, _plain_get) if api_url else None
        return cls._logo_url

    def to_credentials(self) -> Credentials:
        """The core's credentials (the secret leaves the block only here)."""
        return Credentials(
            api_url=self.api_url, username=self.username,
            password=self.password.get_secret_value() if self.password else None,
            oauth_token=self.oauth_token.get_secret_value() if self.oauth_token else None,
            contact=self.contact)


def _plain_get(url: str) -> tuple[int, str, bytes]:
    """One GET without credentials or proxies (the server is the Prefect API's own host)."""
    import requests

    try:
        answer = requests.get(url, timeout=5, proxies={"http": "", "https": ""})
    except requests.RequestException as exc:
        raise OSError(str(exc)) from exc
    return answer.status_code, answer.headers.get("content-type", ""), answer.content
