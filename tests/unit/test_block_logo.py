"""The credentials block type carries a logo and a documentation link (the UI showed a broken
image beside the block picker without one)."""

from __future__ import annotations

from tasks.blocks import MediaWikiCredentials


def test_block_type_has_an_https_logo_and_docs():
    block_type = MediaWikiCredentials._to_block_type()
    assert str(block_type.logo_url).startswith("https://upload.wikimedia.org/")
    assert str(block_type.logo_url).endswith(".png")
    assert str(block_type.documentation_url).startswith("https://www.mediawiki.org/")
