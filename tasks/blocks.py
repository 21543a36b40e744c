"""Credentials as a Prefect block, so deployments take a block *name*, never a password.

Why a block: a secret typed into a run form is stored and shown in plain text in the run's
Parameters tab; a block parameter is stored as a reference and resolved inside the run
(../shared/notes/prefect-ui-browser-testing.md, "Secrets in the UI").
"""

from __future__ import annotations

from prefect.blocks.core import Block
from pydantic import Field, SecretStr

from mwingest.wiki.credentials import Credentials


class MediaWikiCredentials(Block):
    """Where a wiki is and how mwingest logs in to it (bot password or OAuth 2 owner-only token)."""

    _block_type_name = "MediaWiki Credentials"
    _block_type_slug = "mediawiki-credentials"
    _description = "A wiki's api.php URL and a bot password or OAuth token for mwingest uploads."
    # Without a logo the UI shows a broken image beside the block picker. Prefect wants an
    # http(s) URL (no data: URI) and the UI hot-links it: MediaWiki's own logo (Wikimedia
    # Foundation, CC BY-SA 4.0) as a thumbnail Commons serves in a standard width.
    _logo_url = ("https://upload.wikimedia.org/wikipedia/commons/thumb/a/a6/"  # type: ignore[assignment]
                 "MediaWiki-2020-icon.svg/120px-MediaWiki-2020-icon.svg.png")
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

    def to_credentials(self) -> Credentials:
        """The core's credentials (the secret leaves the block only here)."""
        return Credentials(
            api_url=self.api_url, username=self.username,
            password=self.password.get_secret_value() if self.password else None,
            oauth_token=self.oauth_token.get_secret_value() if self.oauth_token else None,
            contact=self.contact)
