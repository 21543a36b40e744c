"""The run's summary with pictures and the warnings found before the upload (pure markdown)."""

from __future__ import annotations

from mwingest.base.items import Outcome
from mwingest.wiki.pictures import Picture
from tasks.report import summary_markdown


def test_summary_shows_thumbnails_beside_links_and_the_notes():
    outcomes = [Outcome("a", "A b.png", "uploaded", url="http://w/File:A_b.png"),
                Outcome("c", "Taken.png", "needs-review", filekey="k1", ledger_id=7)]
    files = {"A_b.png": Picture("http://w/t/A"), "Taken.png": Picture("http://w/t/T")}
    stash = {"k1": Picture("http://w/stash/k1")}
    text = summary_markdown(outcomes, wiki="http://w/api.php", seconds=1.0, ledger_path="l",
                            pictures=(files, stash), notes=["a.png is in categories that do not exist"])
    assert "* [A b.png](http://w/File:A_b.png) ![A b.png](http://w/t/A)" in text
    waiting = next(line for line in text.splitlines() if "Taken.png" in line)
    assert "![on the wiki](http://w/t/T)" in waiting
    assert "![this file \\(stashed\\)](http://w/stash/k1)" in waiting  # alt text escaped
    assert "## Warnings before the upload\n* a.png is in categories that do not exist" in text
