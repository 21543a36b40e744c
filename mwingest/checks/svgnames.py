"""XML namespace resolution the way the wiki's parser (libxml2, through PHP's ``XMLReader``) does it.

Why not expat's own namespace processing: expat stops at the first namespace error, while libxml2
reports it, *ignores the offending declaration* and goes on, and ``XmlTypeCheck`` then hands the
element's raw ``prefix:local`` name to ``UploadBase::checkSvgScriptCallback``, which reads the
prefix as the namespace. A file whose declarations libxml2 ignores is refused
(``uploadscriptednamespace``) for a namespace that is really a prefix: ``xmlns:i="&ns_ai;"``
whose entity is undefined (Adobe Illustrator's exports, MediaWiki's ``buggynamespace-bad.svg``)
declares ``i`` as the empty string, so ``<i:pgf>`` is in "namespace" ``i``.

The rules, from libxml2's ``xmlParseStartTag2`` (checked against the wiki, tests in
``tests/integration/test_svg_rules_agreement.py``). A declaration is ignored when it

* binds a prefix to the empty string (``xmlns:q=""``: only the default namespace can be undeclared);
* rebinds the ``xml`` prefix, or binds another prefix (or the default) to the XML namespace;
* binds the ``xmlns`` prefix, or binds any prefix (or the default) to the ``xmlns`` namespace.

An element name with more than one colon (``a:b:c``) has the prefix before the first colon and,
for the filter, the local name after the last one; an unbound prefix leaves the name as written,
so the filter's namespace is everything before the last colon.
"""

from __future__ import annotations

from collections.abc import Mapping

XML_NS = "http://www.w3.org/XML/1998/namespace"
XMLNS_NS = "http://www.w3.org/2000/xmlns/"


def declarations(names_and_values: list[str]) -> dict[str, str]:
    """The namespace declarations among an element's attributes (expat's ordered list: name, value,
    name, value …) that libxml2 keeps, as prefix → URI (``""`` for the default namespace)."""
    kept: dict[str, str] = {}
    for name, value in zip(names_and_values[::2], names_and_values[1::2], strict=True):
        if name == "xmlns":
            if value not in (XML_NS, XMLNS_NS):
                kept[""] = value
        elif name.startswith("xmlns:"):
            prefix = name[6:]
            if value and prefix not in ("xml", "xmlns") and value not in (XML_NS, XMLNS_NS):
                kept[prefix] = value
    return kept


def is_declaration(name: str) -> bool:
    """An attribute libxml2 treats as a namespace declaration (kept or ignored: never an attribute)."""
    return name == "xmlns" or name.startswith("xmlns:")


def element_namespace(qname: str, scope: Mapping[str, str]) -> tuple[str, str]:
    """``(namespace, local name)`` of an element as the wiki's filter sees them (not yet lowercased).

    *scope* maps prefixes in force to URIs (``""``: the default namespace; ``xml`` is always bound).
    """
    local = qname.rpartition(":")[2]
    prefix = qname.partition(":")[0] if ":" in qname else ""
    if prefix in scope and scope[prefix]:
        return scope[prefix], local
    return qname.rpartition(":")[0], local  # unbound (or no default namespace): the prefix as written
