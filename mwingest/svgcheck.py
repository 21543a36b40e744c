"""SVG safety rules: the wiki's script filter (``UploadBase::checkSvgScriptCallback``), streamed.

Why parse SVG at all: an SVG is a document a browser runs, so the wiki refuses scripts, event
handlers, foreign namespaces (XHTML), external references, ``xml-stylesheet`` instructions and
non-W3C DTDs (spec §10). We apply the same rules, with one deliberate difference: XML entity
declarations are refused outright (``defusedxml``), where the wiki allows short single-level ones.
That makes Adobe Illustrator's ``<!ENTITY ns_svg "…">`` files fail here although the wiki would take
them, and it makes billion-laughs and external-entity files fail *fast*, before any expansion.

The parser is SAX over 256 KiB blocks, so memory stays flat for a 100 MiB map. ``.svgz`` is
decompressed on the fly and refused once it inflates past ``max_bytes``. One token (a comment, an
attribute value, a processing instruction) is refused once it passes :data:`MAX_TOKEN_BYTES`: expat
buffers a token whole and, before 2.6, re-scans it on every block: a 64 MiB comment in an .svgz cost
~150 MiB and 90 s here; the wiki's libxml2 refuses such tokens anyway (over 10,000,000 bytes).
"""

from __future__ import annotations

import gzip
import re
import zlib
from collections.abc import Iterator
from pyexpat import XML_PARAM_ENTITY_PARSING_NEVER
from typing import Any
from xml.sax import SAXParseException
from xml.sax.handler import ContentHandler, feature_namespaces, property_lexical_handler

from defusedxml import DefusedXmlException
from defusedxml.expatreader import DefusedExpatParser

from mwingest.content import Issue

#: Inflated size above which an ``.svgz`` counts as a decompression bomb.
SVGZ_MAX_BYTES = 64 * 1024 * 1024
#: Longest unfinished token we let expat hold. libxml2 without ``XML_PARSE_HUGE`` (the wiki's
#: ``XmlTypeCheck``) refuses a comment or attribute value over 10,000,000 bytes (checked on 1.39:
#: 9.9 MB passes, 10.1 MB is ``uploadinvalidxml``); the slack covers the tag around the value.
MAX_TOKEN_BYTES = 10_000_000 + 1024 * 1024
_BLOCK = 256 * 1024

_SVG_NAMESPACES = frozenset({
    "", "adobe:ns:meta/", "http://creativecommons.org/ns#", "http://inkscape.sourceforge.net/dtd/sodipodi-0.dtd",
    "http://ns.adobe.com/adobeillustrator/10.0/", "http://ns.adobe.com/adobesvgviewerextensions/3.0/",
    "http://ns.adobe.com/extensibility/1.0/", "http://ns.adobe.com/flows/1.0/",
    "http://ns.adobe.com/illustrator/1.0/", "http://ns.adobe.com/imagereplacement/1.0/",
    "http://ns.adobe.com/pdf/1.3/", "http://ns.adobe.com/photoshop/1.0/", "http://ns.adobe.com/saveforweb/1.0/",
    "http://ns.adobe.com/variables/1.0/", "http://ns.adobe.com/xap/1.0/", "http://ns.adobe.com/xap/1.0/g/",
    "http://ns.adobe.com/xap/1.0/g/img/", "http://ns.adobe.com/xap/1.0/mm/", "http://ns.adobe.com/xap/1.0/rights/",
    "http://ns.adobe.com/xap/1.0/stype/dimensions#", "http://ns.adobe.com/xap/1.0/stype/font#",
    "http://ns.adobe.com/xap/1.0/stype/manifestitem#", "http://ns.adobe.com/xap/1.0/stype/resourceevent#",
    "http://ns.adobe.com/xap/1.0/stype/resourceref#", "http://ns.adobe.com/xap/1.0/t/pg/",
    "http://purl.org/dc/elements/1.1/", "http://purl.org/dc/elements/1.1",
    "http://schemas.microsoft.com/visio/2003/svgextensions/", "http://sodipodi.sourceforge.net/dtd/sodipodi-0.dtd",
    "http://taptrix.com/inkpad/svg_extensions", "http://web.resource.org/cc/",
    "http://www.freesoftware.fsf.org/bkchem/cdml", "http://www.inkscape.org/namespaces/inkscape",
    "http://www.opengis.net/gml", "http://www.w3.org/1999/02/22-rdf-syntax-ns#", "http://www.w3.org/2000/svg",
    "http://www.w3.org/tr/rec-rdf-syntax/", "http://www.w3.org/2000/01/rdf-schema#",
})
_SVG_DTDS = frozenset({
    "http://www.w3.org/Graphics/SVG/1.1/DTD/svg11.dtd", "http://www.w3.org/TR/2001/REC-SVG-20010904/DTD/svg10.dtd",
    "http://www.w3.org/Graphics/SVG/1.1/DTD/svg11-basic.dtd", "http://www.w3.org/Graphics/SVG/1.1/DTD/svg11-tiny.dtd",
    "http://www.w3.org/TR/2001/PR-SVG-20010719/DTD/svg10.dtd",
})
_SCRIPT_ELEMENTS = frozenset({"script", "handler", "stylesheet", "iframe"})
_CSS_ATTRS = frozenset({"font", "clip-path", "fill", "filter", "marker", "marker-end", "marker-mid",
                        "marker-start", "mask", "stroke"})
_SAFE_DATA_URI = re.compile(
    r"^data:\s*image/(gif|jpeg|jpg|png)(?:;[a-z0-9!#$&'*+.^_`{|}~-]+=(?:[a-z0-9!#$&'*+.^_`{|}~-]+|\"[^\"]*\"))*"
    r"(?:;base64)?,", re.I)
_REMOTE = re.compile(r"(http|https|data|script):", re.I | re.S | re.M)


class _Stop(Exception):
    """Raised from a parser callback: the first hit ends the scan."""

    def __init__(self, issue: Issue) -> None:
        super().__init__(issue.what)
        self.issue = issue


def _script(what: str, wiki_check: str, **detail: Any) -> _Stop:
    return _Stop(Issue("svg-script", what, {"wiki_check": wiki_check, **detail}))


def check_svg(path: str, *, compressed: bool = False, max_bytes: int = SVGZ_MAX_BYTES) -> list[Issue]:
    """Scan an SVG (``compressed`` for ``.svgz``) and return the first rule it breaks, if any."""
    handler = _Handler()
    parser = _Parser()
    parser.setFeature(feature_namespaces, True)
    parser.setContentHandler(handler)
    parser.setProperty(property_lexical_handler, handler)
    try:
        fed = 0
        for block in _blocks(path, compressed, max_bytes):
            parser.feed(block)
            fed += len(block)
            if fed - parser.token_start() > MAX_TOKEN_BYTES:
                return [Issue("svg-invalid", f"has one XML token (comment, attribute or instruction) "
                              f"over {MAX_TOKEN_BYTES:,} bytes",
                              {"wiki_check": "uploadinvalidxml", "limit": MAX_TOKEN_BYTES})]
        parser.close()
    except _Stop as stop:
        return [stop.issue]
    except DefusedXmlException as exc:
        return [Issue("svg-invalid", f"declares XML entities or external references ({type(exc).__name__})",
                      {"wiki_check": "uploadinvalidxml", "error": str(exc)})]
    except SAXParseException as exc:
        where = f"{exc.getMessage()}, line {exc.getLineNumber()}"
        return [Issue("svg-invalid", f"is not well-formed XML ({where})",
                      {"wiki_check": "uploadinvalidxml", "error": exc.getMessage()})]
    except (OSError, EOFError, zlib.error) as exc:
        return [Issue("svg-invalid", f"cannot be read or decompressed ({exc})", {"error": str(exc)})]
    if not handler.saw_element:
        return [Issue("svg-invalid", "holds no XML element", {"wiki_check": "uploadinvalidxml"})]
    return []


def _blocks(path: str, compressed: bool, max_bytes: int) -> Iterator[bytes]:
    opener = gzip.open if compressed else open
    total = 0
    with opener(path, "rb") as fh:
        while block := fh.read(_BLOCK):
            total += len(block)
            if compressed and total > max_bytes:
                raise _Stop(Issue("decompression-bomb", f"inflates to more than {max_bytes:,} bytes",
                                  {"limit": max_bytes}))
            yield block


class _Parser(DefusedExpatParser):
    """defusedxml's SAX parser, plus: never fetch the external DTD subset (expat would ask for the
    standard SVG DTD, which defusedxml then refuses), and refuse element/attribute declarations."""

    def reset(self) -> None:
        super().reset()
        expat = self._parser  # the stdlib reader's expat object; only set up here
        expat.SetParamEntityParsing(XML_PARAM_ENTITY_PARSING_NEVER)
        expat.ElementDeclHandler = self._refuse_decl
        expat.AttlistDeclHandler = self._attlist_decl

    def token_start(self) -> int:
        """Byte offset where expat stopped: the start of the token it still buffers, if any."""
        return max(0, self._parser.CurrentByteIndex)

    @staticmethod
    def _refuse_decl(*_args: Any) -> None:
        raise _Stop(Issue("svg-invalid", "declares DTD elements", {"wiki_check": "uploadinvalidxml"}))

    @staticmethod
    def _attlist_decl(elname: str, attname: str, _type: str, default: str | None, _required: int) -> None:
        # The one declaration the wiki allows in an internal subset (XmlTypeCheck::checkDTDIsSafe).
        if (elname, attname, default) != ("svg", "xmlns:xlink", "http://www.w3.org/1999/xlink"):
            raise _Stop(Issue("svg-invalid", "declares DTD attributes", {"wiki_check": "uploadinvalidxml"}))


class _Handler(ContentHandler):
    """Checks each element when it closes, as the wiki's XmlTypeCheck does (it needs <style> text)."""

    def __init__(self) -> None:
        super().__init__()
        self.saw_element = False
        self._stack: list[tuple[str, str, dict[str, str], list[str]]] = []

    # content handler
    def startElementNS(self, name: tuple[str | None, str], qname: Any, attrs: Any) -> None:
        self.saw_element = True
        uri, local = (name[0] or "").lower(), name[1].lower()
        if uri not in _SVG_NAMESPACES:
            raise _script(f"uses the foreign XML namespace {uri}", "uploadscriptednamespace", namespace=uri)
        flat = {attr_local.lower(): value for (_ns, attr_local), value in attrs.items()}
        self._stack.append((uri, local, flat, []))

    def characters(self, content: str) -> None:
        if self._stack and self._stack[-1][1] == "style" and sum(map(len, self._stack[-1][3])) < 1 << 20:
            self._stack[-1][3].append(content)

    def endElementNS(self, name: Any, qname: Any) -> None:
        _uri, local, attrs, text = self._stack.pop()
        _check_element(local, attrs, "".join(text))

    def processingInstruction(self, target: str, data: str) -> None:
        if "xml-stylesheet" in target.lower():
            raise _script("has an xml-stylesheet processing instruction", "upload-scripted-pi-callback")

    # lexical handler
    def startDTD(self, name: str, public_id: str | None, system_id: str | None) -> None:
        if (public_id or system_id) and not (
                public_id and public_id.startswith("-//W3C//") and system_id in _SVG_DTDS):
            raise _script(f"refers to the non-W3C DTD {system_id}", "upload-scripted-dtd", dtd=system_id)

    def endDTD(self) -> None: ...
    def startCDATA(self) -> None: ...
    def endCDATA(self) -> None: ...
    def comment(self, content: str) -> None: ...


def _check_element(element: str, attrs: dict[str, str], text: str) -> None:
    """``checkSvgScriptCallback`` for one element (names already without namespace, lowercase)."""
    if element in _SCRIPT_ELEMENTS:
        raise _script(f"contains a <{element}> element", "uploaded-script-svg", element=element)
    if element == "style" and _hostile_css(_normalize_css(text)):
        raise _script("has a <style> that loads remote or executable CSS", "uploaded-hostile-svg")
    for attr, raw in attrs.items():
        value = raw.lower()
        if attr.startswith("on"):
            raise _script(f"has an event handler {attr}=", "uploaded-event-handler-on-svg", attribute=attr)
        if attr == "href" and value and not value.startswith(("data:", "#")) and not (
                element == "a" and re.match(r"^https?://", value)):
            raise _script(f"links <{element}> to {raw[:80]}", "uploaded-href-attribute-svg", href=raw[:200])
        if attr == "href" and value.startswith("data:") and not _SAFE_DATA_URI.match(value):
            raise _script(f"embeds an unsafe data: URI in <{element}>", "uploaded-href-unsafe-target-svg")
        if element in ("set", "animate") and attr == "attributename" and (
                value.split(":")[-1] == "href" or value.startswith("on")
                or (element == "set" and "href" in value)):
            raise _script(f"animates the {value} attribute", "uploaded-animate-svg", attribute=value)
        if (element == "set" and attr == "to" or attr == "handler") and _REMOTE.search(value):
            raise _script(f"sets {attr}= to a remote or script target", "uploaded-wrong-setting-svg")
        css = _normalize_css(raw) if attr == "style" else raw if attr in _CSS_ATTRS else None
        if css is not None and _hostile_css(css):
            raise _script(f"loads remote CSS through {attr}=", "uploaded-remote-url-svg", attribute=attr)
        if element == "image" and attr == "filter" and re.search(r"url\s*\(\s*[\"']?[^#]", value, re.S):
            raise _script("has an image filter with a remote url()", "uploaded-image-filter-svg")


def _normalize_css(css: str) -> str:
    """Enough of ``Sanitizer::normalizeCss`` for the checks: no comments, CSS escapes decoded."""
    css = re.sub(r"/\*.*?(\*/|$)", " ", css, flags=re.S)
    return re.sub(r"\\([0-9a-fA-F]{1,6})\s?", lambda m: chr(min(int(m.group(1), 16), 0x10FFFF)), css)


def _hostile_css(css: str) -> bool:
    """``UploadBase::checkCssFragment``: @import, IE expressions, non-local url(), control chars."""
    if "@import" in css.lower():
        return True
    css = re.sub(r"(@font-face\s*{[^}]*src:)url(\(\"data:;base64,)", r"\1\2", css, flags=re.I | re.M)
    if re.search(r"expression|-o-link\s*:|-o-link-source\s*:|-o-replace\s*:", css, re.I):
        return True
    calls = re.finditer(r"(\s*(url|image|image-set)\s*\(\s*[\"']?\s*[^#]+.*?\))", css, re.S | re.I | re.M)
    for match in calls:
        if not re.search(r"\s*(url|image|image-set)\s*\(\s*(#|'#|\"#)", match.group(1), re.I | re.M):
            return True
    return bool(re.search(r"[\x00-\x08\x0b\x0e-\x1f\x7f]", css))
