"""Which templates and categories a page text uses, and the batch's verdict, against a canned
``action=query`` answer (the lookup itself is tested on the real wiki)."""

from __future__ import annotations

from typing import Any

from mwingest.base.items import IngestItem
from mwingest.base.policy import WarningPolicy
from mwingest.describe.page import with_licence
from mwingest.describe.pagecheck import Vocabulary, check_items, used_pages

VOCAB = Vocabulary(magic=frozenset({"int", "pagename", "currentyear", "subst", "if"}),
                   category_ns=frozenset({"category", "kategorie"}))


def test_templates_and_categories_but_not_magic_words_parameters_or_links():
    text = ("{{int:filedesc}} {{Information|date={{CURRENTYEAR}}|x={{{1|}}}}} {{#if:a|b}}\n"
            "{{ cc-by-4.0 }} {{Template:Own}} {{PAGENAME}} {{subst:foo}}\n"
            "[[Category:Boats|key]] [[Kategorie:Häfen]] [[:Category:Just a link]] [[Boats]]")
    templates, categories = used_pages(text, VOCAB)
    assert templates == {"Template:Information", "Template:cc-by-4.0", "Template:Own"}
    assert categories == {"Category:Boats", "Category:Häfen"}


class _Api:
    def __init__(self, missing: set[str]) -> None:
        self.missing, self.calls = missing, []

    def get(self, params: dict[str, Any]) -> dict[str, Any]:
        titles = params["titles"].split("|")
        self.calls.append(titles)
        return {"query": {"pages": [{"title": t, **({"missing": True} if t in self.missing else {})}
                                    for t in titles]}}


def test_one_lookup_for_the_batch_and_the_policy_decides_about_red_categories():
    items = [IngestItem("a.jpg", text="{{Gone}}"), IngestItem("b.jpg", text="[[Category:Red]]"),
             IngestItem("c.jpg"), IngestItem("d.jpg", error="not-found")]
    api = _Api({"Template:Gone", "Category:Red"})
    checked = check_items(api, items, WarningPolicy(), default_text="{{Here}}", vocab=VOCAB)
    assert len(api.calls) == 1 and sorted(api.calls[0]) == ["Category:Red", "Template:Gone", "Template:Here"]
    assert [i.error for i in checked.items] == ["missing-template", None, None, "not-found"]
    assert [i.source for i, _ in checked.warnings] == ["b.jpg"]
    strict = check_items(api, items, WarningPolicy.parse("red-category=fail"), vocab=VOCAB)
    assert strict.items[1].error == "red-category" and "Category:Red" in strict.items[1].error_message


def test_licence_line_only_when_the_text_does_not_use_it():
    assert with_licence("{{Cc-by-4.0}}\n", "cc-by-4.0") == "{{Cc-by-4.0}}\n"
    assert with_licence("Text\n[[Category:A]]", "PD old") == "Text\n{{PD old}}\n[[Category:A]]"
    assert with_licence("", "cc0") == "{{cc0}}\n"


def test_texts_without_templates_or_links_cost_no_request():
    api = _Api(set())
    items = [IngestItem("a.jpg", text="Just words."), IngestItem("b.jpg")]
    assert check_items(api, items, WarningPolicy()).items == items and api.calls == []
