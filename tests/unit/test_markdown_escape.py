"""Names and wiki messages in the run's summary and the review form stay text (issue 24).

Rendered with markdown-it (CommonMark + GFM tables, as the Prefect UI's renderer does for these
features): a hostile name must not become a link, a picture, HTML, emphasis or a table row.
"""

from __future__ import annotations

import re
from html import unescape

import pytest
from markdown_it import MarkdownIt

from flows.review import describe_conflict
from mwingest.base import markdown as md
from mwingest.base.items import Outcome
from mwingest.wiki.pictures import Picture, side_by_side
from tasks.report import summary_markdown

HOSTILE = [
    "a](https://evil.example/x) [b",
    "<img src=x onerror=alert(1)>.png",
    "![pic](https://evil.example/p.png)",
    "**bold** _it_ `tick` ``two``",
    "pipe | cell | break",
    "line\nbreak\n# Heading",
    "<script>alert(1)</script>",
    "javascript:alert(1)",
    "- 1. list = heading",
]


def _html(markdown: str) -> str:
    return MarkdownIt("commonmark").enable("table").render(markdown)


def _no_injection(html: str) -> None:
    assert 'href="https://evil' not in html and 'src="https://evil' not in html, html
    assert "<img src=x" not in html and "<script" not in html, html
    assert "<strong>bold" not in html and "<em>it" not in html and "<h1>Heading" not in html, html


@pytest.mark.parametrize("value", HOSTILE)
def test_text_and_code_render_as_the_characters_they_are(value):
    shown = " ".join(value.split())
    for spelled in (md.text(value), md.code(value)):
        html = _html(f"* {spelled}")
        _no_injection(html)
        assert "\n" not in spelled
    rendered = unescape(re.sub(r"<[^>]+>", "", _html(md.text(value)))).strip()
    assert rendered == shown


def test_only_http_addresses_become_links():
    assert md.url("javascript:alert(1)") == "#" and md.url("data:text/html,x") == "#"
    assert md.url("https://w.example/wiki/File:A_(1).png") == \
        "https://w.example/wiki/File:A_%281%29.png"


def test_the_summary_keeps_hostile_sources_names_and_messages_as_text():
    outcomes = []
    for n, value in enumerate(HOSTILE):
        outcomes += [
            Outcome(source=value, filename=value, outcome="uploaded",
                    url="https://w.example/wiki/File:X", sha1="a" * 40),
            Outcome(source=value, filename=value, outcome="needs-review", reason="exists",
                    message=value, ledger_ref=f"{n:012d}:{value}"),
            Outcome(source=value, filename=None, outcome="rejected", reason="bad-manifest-row",
                    message=value),
        ]
    text = summary_markdown(outcomes, wiki="http://w.example/api.php", seconds=1.0,
                            ledger_path="/l.sqlite3", notes=HOSTILE)
    html = _html(text)
    _no_injection(html)
    # One table (the counts) of 6 rows: no name added a row or a table.
    assert html.count("<table>") == 1 and html.count("<tr>") == 6


def test_the_review_form_keeps_names_and_the_wikis_words_as_text():
    for value in HOSTILE:
        text = describe_conflict(value, value, {"exists": value, value: value}, sha1="a" * 40,
                                 size=3, existing={"title": value, "descriptionurl": value,
                                                   "user": value, "timestamp": value,
                                                   "size": value, "sha1": value},
                                 pictures=side_by_side(
                                     Picture(thumb_url="https://w.example/t.png)![x](https://evil.example/y",
                                             width=1, height=1, size=1, timestamp=value), None))
        html = _html(text)
        _no_injection(html)
        assert html.count("<tr>") == 3  # the pictures' table: header, pictures, facts


def test_a_picture_address_may_be_our_own_inline_png_but_nothing_else_inline() -> None:
    from mwingest.base import markdown as md

    png = "data:image/png;base64,iVBORw0KGgo="
    assert md.image_url(png) == png  # the review form's own thumbnail (wiki/pictures.py)
    assert md.image_url("https://wiki.example/thumb/a.png") == "https://wiki.example/thumb/a.png"
    for hostile in ("data:text/html;base64,PHNjcmlwdD4=", "data:image/svg+xml;base64,PHN2Zz4=",
                    "data:image/png;base64,AAA=) ![x](https://evil.example/x.png",
                    "javascript:alert(1)"):
        assert md.image_url(hostile) == "#", hostile
    assert md.url(png) == "#"  # a link is never inline data
