"""The credentials block type carries our logo where the server serves it, no logo where it does
not (never a link to another host), and a documentation link."""

from __future__ import annotations

import pytest

import tasks.blocks as blocks
from mwingest.runtime import uilogo
from tasks.blocks import MediaWikiCredentials


@pytest.fixture(autouse=True)
def _no_logo_left():
    yield
    MediaWikiCredentials._logo_url = None


def test_the_type_has_the_served_logo_or_none(monkeypatch):
    ours = uilogo.LOGO.read_bytes()
    monkeypatch.setattr(blocks, "_plain_get", lambda url: (200, "image/png", ours))
    MediaWikiCredentials.use_served_logo("http://127.0.0.1:4200/api")
    block_type = MediaWikiCredentials._to_block_type()
    assert str(block_type.logo_url) == f"http://127.0.0.1:4200/{uilogo.NAME}"
    monkeypatch.setattr(blocks, "_plain_get", lambda url: (404, "application/json", b"{}"))
    assert MediaWikiCredentials.use_served_logo("http://127.0.0.1:4200/api") is None
    assert MediaWikiCredentials._to_block_type().logo_url is None
    assert MediaWikiCredentials.use_served_logo(None) is None
    assert str(block_type.documentation_url).startswith("https://www.mediawiki.org/")
