"""Templates and categories a page text uses, looked up on the wiki before a byte is sent.

Why before the upload: a file page whose licence template does not exist says nothing about the
file's licence (on Commons such a file is deleted), and a typo in a category hides the file from
everyone who browses it. Found after the upload, both need an edit per file by hand; found
before, the row is refused with a reason a person can fix in the sheet.

One batched lookup for the whole batch (``action=query&titles=…``, 50 titles a request), never
one per file. What counts as a template comes from the wiki itself (``siteinfo``'s magic words
and parser functions are not pages). The outcomes, per file:

* a template that does not exist: ``rejected``, reason ``missing-template`` (policy action
  ``fail`` by default; ``publish`` lets it through);
* a category that does not exist (red): a warning by default (policy ``red-category=publish``),
  ``rejected`` with reason ``red-category`` when the policy says anything else.

The policy is the batch's warning policy (:class:`~mwingest.base.policy.WarningPolicy`,
``--on-warning red-category=fail``): one vocabulary for what to do about what the wiki would say.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, Protocol

from mwingest.base.items import IngestItem
from mwingest.base.policy import Action, WarningPolicy

MISSING_TEMPLATE, RED_CATEGORY = "missing-template", "red-category"
#: Titles per ``action=query`` request (the API's limit for users without ``apihighlimits``).
TITLES_PER_REQUEST = 50
#: Exactly two opening braces (``{{{1}}}`` is a template parameter, not a template).
_TEMPLATE = re.compile(r"(?<!\{)\{\{(?!\{)\s*([^{}|\n]+?)\s*(?=\||\}\})")
_LINK = re.compile(r"\[\[\s*([^\[\]|]+?)\s*(?:\|[^\[\]]*)?\]\]")


class ApiGetter(Protocol):
    def get(self, params: Mapping[str, Any]) -> dict[str, Any]: ...


@dataclass(frozen=True)
class Vocabulary:
    """The wiki's words: magic words and parser functions (not pages), and the local names of
    the Template and Category namespaces."""

    magic: frozenset[str] = frozenset()
    template_ns: frozenset[str] = frozenset({"template"})
    category_ns: frozenset[str] = frozenset({"category"})


def fetch_vocabulary(api: ApiGetter) -> Vocabulary:
    """Ask the wiki for its magic words, parser functions and namespace names (one request)."""
    answer = api.get({"action": "query", "meta": "siteinfo",
                      "siprop": "magicwords|functionhooks|namespaces|namespacealiases"})
    query = answer.get("query", {})
    magic = {alias.lower().rstrip(":") for word in query.get("magicwords", [])
             for alias in word.get("aliases", [])}
    magic |= {hook.lower() for hook in query.get("functionhooks", [])}
    names: dict[int, set[str]] = {10: {"template"}, 14: {"category"}}
    spaces = query.get("namespaces", {})
    for ns in spaces.values() if isinstance(spaces, Mapping) else spaces:
        if ns.get("id") in names:
            names[ns["id"]] |= {str(ns.get("name", "")).lower(), str(ns.get("canonical", "")).lower()}
    for alias in query.get("namespacealiases", []):
        if alias.get("id") in names:
            names[alias["id"]].add(str(alias.get("alias", "")).lower())
    return Vocabulary(frozenset(magic), frozenset(names[10] - {""}), frozenset(names[14] - {""}))


def used_pages(text: str, vocab: Vocabulary) -> tuple[set[str], set[str]]:
    """The templates (``Template:Name``) and categories (``Category:Name``) ``text`` uses."""
    templates, categories = set(), set()
    for match in _TEMPLATE.finditer(text):
        name = match.group(1).strip()
        prefix, colon, rest = name.partition(":")
        magic = name.lower() in vocab.magic or (colon and prefix.strip().lower() in vocab.magic)
        if name.startswith("#") or magic:
            continue  # {{#if:…}}, {{PAGENAME}}, {{int:filedesc}}, {{subst:…}}
        if colon and prefix.strip().lower() in vocab.template_ns:
            name = rest.strip()
        elif colon or name.startswith(":"):
            templates.add(name.lstrip(":").strip())  # a page of another namespace, transcluded
            continue
        templates.add(f"Template:{name}")
    for match in _LINK.finditer(text):
        target = match.group(1)
        prefix, colon, rest = target.partition(":")
        if colon and prefix.strip().lower() in vocab.category_ns and rest.strip():
            categories.add(f"Category:{rest.strip()}")
    return templates, categories


def missing_titles(api: ApiGetter, titles: Iterable[str]) -> set[str]:
    """Those of ``titles`` (as given) that are no page on the wiki: missing or invalid."""
    wanted = sorted(set(titles))
    missing: set[str] = set()
    for start in range(0, len(wanted), TITLES_PER_REQUEST):
        batch = wanted[start:start + TITLES_PER_REQUEST]
        answer = api.get({"action": "query", "titles": "|".join(batch)})
        query = answer.get("query", {})
        # The wiki answers with normalised titles ("Template:cc-by" → "Template:Cc-by").
        back: dict[str, set[str]] = {}
        for pair in query.get("normalized", []):
            back.setdefault(pair["to"], set()).add(pair["from"])
        for page in query.get("pages", []):
            if page.get("missing") or page.get("invalid"):
                title = page.get("title", "")
                missing |= back.get(title, set()) | {title}
    return missing


@dataclass(frozen=True)
class PageCheck:
    """What the lookup found for a batch: its items (refused ones with their reason) and the
    warnings of the items that go on."""

    items: list[IngestItem]
    warnings: list[tuple[IngestItem, str]]


def check_items(api: ApiGetter, items: Sequence[IngestItem], policy: WarningPolicy,
                *, default_text: str | None = None, vocab: Vocabulary | None = None) -> PageCheck:
    """Look up every template and category of every item's page text at once; refuse the items
    the policy says to (``rejected`` before any byte is sent) and warn about the others.
    ``default_text`` is the batch's text, used by items without their own."""
    texts = {i: item.text or default_text for i, item in enumerate(items) if not item.error}
    texts = {i: t for i, t in texts.items() if t and ("{{" in t or "[[" in t)}
    if not texts:  # nothing to look up: no request at all (a plain upload pays nothing)
        return PageCheck(list(items), [])
    vocab = vocab or fetch_vocabulary(api)
    used = {index: used_pages(text, vocab) for index, text in texts.items()}
    every = {t for pair in used.values() for group in pair for t in group}
    missing = missing_titles(api, every) if every else set()
    out, warnings = list(items), []
    for index, (templates, categories) in used.items():
        item = items[index]
        for code, titles in ((MISSING_TEMPLATE, templates), (RED_CATEGORY, categories)):
            absent = sorted(titles & missing)
            if not absent:
                continue
            what = ("uses templates that do not exist on the wiki" if code == MISSING_TEMPLATE
                    else "is in categories that do not exist on the wiki")
            message = f"{item.label} {what}: {', '.join(absent)}"
            if policy.action_for(code) is Action.PUBLISH:
                warnings.append((item, message))
            else:
                out[index] = replace(item, error=code, error_message=message)
                break
    return PageCheck(out, warnings)
