"""SVG safety rules: the wiki's own filter (``UploadBase::detectScriptInSvg``), streamed.

Why parse SVG at all: an SVG is a document a browser runs, so the wiki refuses scripts, event
handlers, foreign namespaces (XHTML), external references, ``xml-stylesheet`` instructions and
non-W3C DTDs (spec §10). We follow MediaWiki 1.39 rule by rule, so that we refuse exactly what it
refuses (read against ``UploadBase::checkSvgScriptCallback`` and ``XmlTypeCheck``):

* **DTD internal subset** (``XmlTypeCheck::checkDTDIsSafe``): only general entities whose value
  (as written, before character references are decoded) is one reference ``&name;`` or at most
  255 bytes without ``&``/``%`` (``&amp;``, ``&quot;``/``&apos;`` allowed), comments, and the one
  ``<!ATTLIST svg xmlns:xlink CDATA #FIXED "http://www.w3.org/1999/xlink">``. Anything else makes
  the file "not well-formed" (``uploadinvalidxml``) at once, before any entity is expanded. Those
  rules bound expansion by themselves: no value holds two references, so billion-laughs and
  quadratic blow-ups are refused, and so is every external entity.
* **External DTD** (``checkSvgExternalDTD``): only ``PUBLIC "-//W3C//…"`` with a W3C SVG system id.
* **Namespaces**: an element's namespace URI, ASCII-lowercased, must be in the wiki's list, or be
  Inkscape's mangled ``&ns_name;`` (T144827). Attributes' namespaces are not checked (nor by the wiki).
  Declarations libxml2 ignores (``xmlns:i=""``, an undefined entity …) leave the prefix as the
  namespace, as on the wiki: :mod:`mwingest.checks.svgnames`.
* **Order of verdicts**: the wiki parses the whole document and only then answers; "not
  well-formed" beats every filter hit, and among hits a foreign namespace beats the others, else the
  last hit is reported. We do the same, so the reason *and* its ``wiki_check`` key agree.

The parser is expat over 256 KiB blocks, so memory stays flat for a 100 MiB map. ``.svgz`` is
decompressed on the fly and refused once it inflates past ``max_bytes``. One token (a comment, an
attribute value, a processing instruction) is refused once it passes :data:`MAX_TOKEN_BYTES`: expat
buffers a token whole and, before 2.6, re-scans it on every block; the wiki's libxml2 refuses such
tokens anyway (over 10,000,000 bytes). CSS rules live in :mod:`mwingest.checks.svgcss`.
"""

from __future__ import annotations

import gzip
import re
import zlib
from collections.abc import Iterator
from typing import Any
from xml.parsers import expat

from mwingest.checks import svgnames
from mwingest.checks.content import Issue
from mwingest.checks.svgcss import WS, ascii_lower, hostile_css, normalize_css

#: Inflated size above which an ``.svgz`` counts as a decompression bomb.
SVGZ_MAX_BYTES = 64 * 1024 * 1024
#: Longest unfinished token we let expat hold. libxml2 without ``XML_PARSE_HUGE`` (the wiki's
#: ``XmlTypeCheck``) refuses a comment or attribute value over 10,000,000 bytes (checked on 1.39:
#: 9.9 MB passes, 10.1 MB is ``uploadinvalidxml``); the slack covers the tag around the value.
MAX_TOKEN_BYTES = 10_000_000 + 1024 * 1024
#: Deepest element nesting libxml2 parses without ``XML_PARSE_HUGE`` (its ``xmlParserMaxDepth``
#: of 256, counted from 0): the wiki calls a deeper SVG not well-formed (checked on 1.39: 257 levels
#: pass, 258 are ``uploadinvalidxml``). It also bounds our element stack.
MAX_DEPTH = 257
#: libxml2's ``XML_MAX_NAME_LENGTH``: a longer element or attribute name is not well-formed to the
#: wiki (checked on 1.39: 50,000 characters pass, 50,001 are ``uploadinvalidxml``).
MAX_NAME_LENGTH = 50_000
#: Text kept per ``<style>`` element for the CSS rules (the wiki keeps all; this bounds memory).
STYLE_TEXT_LIMIT = MAX_TOKEN_BYTES
_BLOCK = 256 * 1024
#: Name characters expat refuses and libxml2 takes that we step over, per file.
MAX_NAME_PATCHES = 64
#: Bytes all those re-scans of one file may read together (time stays bounded for a big map).
RESCAN_BUDGET = 256 * 1024 * 1024

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
_BUGGY_INKSCAPE_NS = re.compile(r"^&(#38;)*ns_[a-z_]+;$", re.A)
_SVG_DTDS = frozenset({
    "http://www.w3.org/Graphics/SVG/1.1/DTD/svg11.dtd", "http://www.w3.org/TR/2001/REC-SVG-20010904/DTD/svg10.dtd",
    "http://www.w3.org/Graphics/SVG/1.1/DTD/svg11-basic.dtd", "http://www.w3.org/Graphics/SVG/1.1/DTD/svg11-tiny.dtd",
    "http://www.w3.org/TR/2001/PR-SVG-20010719/DTD/svg10.dtd",
})
_SCRIPT_ELEMENTS = frozenset({"script", "handler", "stylesheet", "iframe"})
_CSS_ATTRS = frozenset({"font", "clip-path", "fill", "filter", "marker", "marker-end", "marker-mid",
                        "marker-start", "mask", "stroke"})
# The data: URI allowed in href, with RFC 2397 parameters, as UploadBase writes it.
_DATA_PARAMS = (r"(?:;[a-zA-Z0-9!#$&'*+.^_`{|}~-]+=(?:[a-zA-Z0-9!#$&'*+.^_`{|}~-]+"
                r"|\"(?:[\x00-\x0c\x0e-\x21\x23-\x5b\x5d-\x7f]+|\\[\x00-\x7f])*\"))*(?:;base64)?")
_SAFE_DATA_URI = re.compile(rf"^data:{WS}*image/(gif|jpeg|jpg|png){_DATA_PARAMS},", re.I | re.A)
_REMOTE = re.compile(r"(http|https|data|script):", re.I | re.S | re.M | re.A)
_IMAGE_FILTER_URL = re.compile(rf"url{WS}*\({WS}*[\"']?[^#]", re.I | re.S | re.M | re.A)
# One entity declaration as libxml2 serialises it, judged as checkDTDIsSafe does (on UTF-8 bytes).
_SAFE_ENTITY = re.compile(
    r"^<!ENTITY\s+\S+\s+(?:\"(?:&[^\"%&;]{1,64};|(?:[^\"%&]|&amp;|&quot;){0,255})\""
    r"|'(?:&[^\"%&;]{1,64};|(?:[^'%&]|&amp;|&apos;){0,255})')\s*>$", re.A | re.S)
# expat's input context for an entity declaration starts at its value literal.
_RAW_ENTITY = re.compile(r"\s*(?:<!ENTITY\s+(?:%\s+)?\S+\s+)?(?:\"([^\"]*)\"|'([^']*)')", re.S)
_XLINK_ATTLIST = ("svg", "xmlns:xlink", "CDATA", "http://www.w3.org/1999/xlink", 1)


class _Invalid(Exception):
    """The wiki would call the file not well-formed (``uploadinvalidxml``): ends the scan."""

    def __init__(self, what: str, **detail: Any) -> None:
        super().__init__(what)
        self.issue = Issue("svg-invalid", what, {"wiki_check": "uploadinvalidxml", **detail})


class _Bomb(Exception):
    def __init__(self, issue: Issue) -> None:
        super().__init__(issue.what)
        self.issue = issue


def check_svg(path: str, *, compressed: bool = False, max_bytes: int = SVGZ_MAX_BYTES) -> list[Issue]:
    """Scan an SVG (``compressed`` for ``.svgz``) and return the wiki's verdict on it, if it refuses.

    expat knows the names of XML 1.0 4th edition; libxml2 (the wiki) those of the 5th, which allow
    more non-ASCII characters. When expat stops at such a character, it is replaced by ``x``
    (the same byte count) and the scan starts again, up to :data:`MAX_NAME_PATCHES` times and
    :data:`RESCAN_BUDGET` bytes: the wiki reads on past it, so our verdict must too."""
    patches: dict[int, int] = {}
    scanned = 0
    for _attempt in range(MAX_NAME_PATCHES + 1):
        result = _scan_once(path, compressed, max_bytes, patches)
        if isinstance(result, list):
            return result
        patches[result[0]] = result[1]
        scanned += result[0]
        if scanned > RESCAN_BUDGET:
            break
    return [Issue("svg-invalid", "is not well-formed XML (too many characters expat cannot take in names)",
                  {"wiki_check": "uploadinvalidxml"})]


def _scan_once(path: str, compressed: bool, max_bytes: int,
               patches: dict[int, int]) -> list[Issue] | tuple[int, int]:
    scan = _Scan()
    fed, block = 0, b""
    try:
        for raw in _blocks(path, compressed, max_bytes):
            block = _patched(raw, fed, patches) if patches else raw
            scan.feed(block, final=False)
            fed += len(block)
            if fed - scan.token_start() > MAX_TOKEN_BYTES:
                return [Issue("svg-invalid", f"has one XML token (comment, attribute or instruction) "
                              f"over {MAX_TOKEN_BYTES:,} bytes",
                              {"wiki_check": "uploadinvalidxml", "limit": MAX_TOKEN_BYTES})]
        block = b""
        scan.feed(b"", final=True)
    except (_Invalid, _Bomb) as stop:
        return [stop.issue]
    except expat.ExpatError as exc:
        index = scan.error_index()
        lead = block[index - fed] if 0 <= index - fed < len(block) else 0
        if (exc.code == expat.errors.codes[expat.errors.XML_ERROR_INVALID_TOKEN] and lead >= 0xC0
                and scan.utf8 and index not in patches):
            return index, 2 if lead < 0xE0 else 3 if lead < 0xF0 else 4
        where = f"{expat.ErrorString(exc.code)}, line {exc.lineno}"
        return [Issue("svg-invalid", f"is not well-formed XML ({where})",
                      {"wiki_check": "uploadinvalidxml", "error": expat.ErrorString(exc.code)})]
    except (OSError, EOFError, zlib.error) as exc:
        return [Issue("svg-invalid", f"cannot be read or decompressed ({exc})", {"error": str(exc)})]
    if not scan.saw_element:
        return [Issue("svg-invalid", "holds no XML element", {"wiki_check": "uploadinvalidxml"})]
    hit = scan.namespace_hit or scan.last_hit
    return [hit] if hit else []


def _patched(block: bytes, start: int, patches: dict[int, int]) -> bytes:
    out = bytearray(block)
    for offset, length in patches.items():
        for pos in range(max(offset, start), min(offset + length, start + len(block))):
            out[pos - start] = 0x78  # "x"
    return bytes(out)


def _blocks(path: str, compressed: bool, max_bytes: int) -> Iterator[bytes]:
    opener = gzip.open if compressed else open
    total = 0
    with opener(path, "rb") as fh:
        while block := fh.read(_BLOCK):
            total += len(block)
            if compressed and total > max_bytes:
                raise _Bomb(Issue("decompression-bomb", f"inflates to more than {max_bytes:,} bytes",
                                  {"limit": max_bytes}))
            yield block


def _script(what: str, wiki_check: str, **detail: Any) -> Issue:
    return Issue("svg-script", what, {"wiki_check": wiki_check, **detail})


class _Scan:
    """One pass of expat with the wiki's callbacks; elements are judged when they close, as
    ``XmlTypeCheck`` does (it needs a ``<style>``'s text)."""

    def __init__(self) -> None:
        self.saw_element = False
        self.namespace_hit: Issue | None = None
        self.last_hit: Issue | None = None
        self._encoding = "utf-8"
        self._started = False
        self._in_dtd = False
        self._stack: list[tuple[str, str, list[str], list[str]]] = []
        # Namespaces are resolved here, not by expat: an unbound prefix is a fatal error to expat,
        # while libxml2 (the wiki) reports it, goes on, and its filter sees the prefix as the URI.
        self._scopes: list[dict[str, str]] = [{"xml": svgnames.XML_NS}]
        p = self._parser = expat.ParserCreate()
        p.SetParamEntityParsing(expat.XML_PARAM_ENTITY_PARSING_NEVER)  # never fetch a DTD
        p.ordered_attributes = True
        p.buffer_text = True
        p.XmlDeclHandler = self._xml_decl
        p.StartDoctypeDeclHandler = self._start_doctype
        p.EndDoctypeDeclHandler = self._end_doctype
        p.EntityDeclHandler = self._entity_decl
        p.UnparsedEntityDeclHandler = self._refuse_decl
        p.NotationDeclHandler = self._refuse_decl
        p.ElementDeclHandler = self._refuse_decl
        p.AttlistDeclHandler = self._attlist_decl
        p.ProcessingInstructionHandler = self._pi
        p.StartElementHandler = self._start
        p.EndElementHandler = self._end
        p.CharacterDataHandler = self._text

    def feed(self, block: bytes, *, final: bool) -> None:
        if not self._started and block:
            self._started = True
            if block[:2] in (b"\xff\xfe", b"\xfe\xff"):
                self._encoding = "utf-16"
        self._parser.Parse(block, final)

    @property
    def utf8(self) -> bool:
        return self._encoding.lower().replace("_", "-") in ("utf-8", "utf8")

    def error_index(self) -> int:
        return self._parser.ErrorByteIndex

    def token_start(self) -> int:
        """Byte offset where expat stopped: the start of the token it still buffers, if any."""
        return max(0, self._parser.CurrentByteIndex)

    def _hit(self, issue: Issue) -> None:
        self.last_hit = issue

    # --- prolog and DTD ---------------------------------------------------------------------
    def _xml_decl(self, _version: str | None, encoding: str | None, _standalone: int) -> None:
        if encoding:
            self._encoding = encoding

    def _start_doctype(self, name: str, system_id: str | None, public_id: str | None, _internal: int) -> None:
        self._in_dtd = True
        if public_id is None and system_id is None:
            return
        if public_id is None or system_id not in _SVG_DTDS or not public_id.startswith("-//W3C//"):
            self._hit(_script(f"refers to the non-W3C DTD {system_id}", "upload-scripted-dtd", dtd=system_id))

    def _end_doctype(self) -> None:
        self._in_dtd = False

    def _entity_decl(self, name: str, is_param: int, value: str | None, _base: str | None,
                     system_id: str | None, public_id: str | None, notation: str | None) -> None:
        if is_param or value is None or system_id or public_id or notation:
            kind = "parameter entity" if is_param else "external entity"
            raise _Invalid(f"declares the {kind} {name!r}; the wiki allows only short internal ones",
                           entity=name)
        raw = self._raw_entity_value(value)
        if not _SAFE_ENTITY.match(_serialised_entity(name, raw)):
            raise _Invalid(f"declares the entity {name!r} with a value the wiki refuses (it allows "
                           "one &name; reference, or up to 255 bytes without & or %)", entity=name)

    def _raw_entity_value(self, decoded: str) -> str:
        """The value as written in the file (libxml2 keeps it, and the wiki judges it so): expat
        gives it with character references decoded, so re-read the declaration's own bytes."""
        context = self._parser.GetInputContext() or b""
        try:
            text = context.decode(self._encoding, "replace")
        except LookupError:
            text = context.decode("utf-8", "replace")
        match = _RAW_ENTITY.match(text)
        if not match:
            return decoded
        return (match.group(1) if match.group(1) is not None else match.group(2)).replace("\r\n", "\n")

    @staticmethod
    def _refuse_decl(*args: Any) -> None:
        raise _Invalid(f"declares DTD markup the wiki refuses ({args[0]!r})")

    @staticmethod
    def _attlist_decl(element: str, attribute: str, kind: str, default: str | None, required: int) -> None:
        if (element, attribute, kind, default, required) != _XLINK_ATTLIST:
            raise _Invalid(f"declares the DTD attribute {element} {attribute}, which the wiki refuses")

    def _pi(self, target: str, _data: str) -> None:
        if self._in_dtd:
            return  # libxml2 keeps it out of the serialised DTD and out of the reader: the wiki ignores it
        if "xml-stylesheet" in ascii_lower(target):
            self._hit(_script("has an xml-stylesheet processing instruction", "upload-scripted-pi-callback"))

    # --- elements ---------------------------------------------------------------------------
    def _start(self, name: str, attrs: list[str]) -> None:
        self.saw_element = True
        if len(self._stack) >= MAX_DEPTH:
            raise _Invalid(f"nests elements more than {MAX_DEPTH} deep")
        for qname in (name, *attrs[::2]):
            if len(qname) > MAX_NAME_LENGTH and max(map(len, qname.split(":"))) > MAX_NAME_LENGTH:
                raise _Invalid(f"has an element or attribute name over {MAX_NAME_LENGTH:,} characters")
        scope = self._scopes[-1]
        declared = svgnames.declarations(attrs)  # those libxml2 keeps (it ignores some: svgnames)
        if declared:
            scope = {**scope, **declared}
        self._scopes.append(scope)
        uri, local = svgnames.element_namespace(name, scope)
        is_decl = [svgnames.is_declaration(attrs[i]) for i in range(0, len(attrs), 2)]
        kept = [x for i, decl in enumerate(is_decl) if not decl for x in (attrs[2 * i], attrs[2 * i + 1])]
        self._stack.append((uri, ascii_lower(local), kept, []))

    def _text(self, data: str) -> None:
        if self._stack and self._stack[-1][1] == "style":
            kept = self._stack[-1][3]
            if sum(map(len, kept)) < STYLE_TEXT_LIMIT:
                kept.append(data.strip(" \t\n\r\0\x0b"))  # PHP trim(), as XmlTypeCheck does

    def _end(self, _name: str) -> None:
        self._scopes.pop()
        uri, local, attrs, text = self._stack.pop()
        namespace = ascii_lower(uri)
        if namespace not in _SVG_NAMESPACES and not _BUGGY_INKSCAPE_NS.match(namespace):
            self.namespace_hit = _script(f"uses the foreign XML namespace {uri}", "uploadscriptednamespace",
                                         namespace=namespace)
            return
        issue = _check_element(local, attrs, "".join(text))
        if issue:
            self._hit(issue)


def _serialised_entity(name: str, raw: str) -> str:
    """``<!ENTITY name "value">`` quoted as libxml2's ``xmlBufWriteQuotedString`` does, as the
    Latin-1 view of its UTF-8 bytes (PHP's regex counts bytes)."""
    if '"' in raw:
        quoted = '"' + raw.replace('"', "&quot;") + '"' if "'" in raw else "'" + raw + "'"
    else:
        quoted = '"' + raw + '"'
    return f"<!ENTITY {name} {quoted}>".encode("utf-8", "replace").decode("latin-1")


def _check_element(element: str, attrs: list[str], text: str) -> Issue | None:
    """``checkSvgScriptCallback`` for one element (local name, ASCII-lowercased); attributes in
    document order, the first hit wins, as in the wiki."""
    if element in _SCRIPT_ELEMENTS:
        return _script(f"contains a <{element}> element", "uploaded-script-svg", element=element)
    if element == "style" and hostile_css(normalize_css(text)):
        return _script("has a <style> that loads remote or executable CSS", "uploaded-hostile-svg")
    for i in range(0, len(attrs), 2):
        attr = ascii_lower(attrs[i].rpartition(":")[2])
        raw = attrs[i + 1]
        value = ascii_lower(raw)
        issue = _check_attribute(element, attr, raw, value)
        if issue:
            return issue
    return None


def _check_attribute(element: str, attr: str, raw: str, value: str) -> Issue | None:
    if attr.startswith("on"):
        return _script(f"has an event handler {attr}=", "uploaded-event-handler-on-svg", attribute=attr)
    if attr == "href" and value and not value.startswith(("data:", "#")) and not (
            element == "a" and re.match(r"^https?://", value, re.A)):
        return _script(f"links <{element}> to {raw[:80]}", "uploaded-href-attribute-svg", href=raw[:200])
    if attr == "href" and value.startswith("data:") and not _SAFE_DATA_URI.match(value):
        return _script(f"embeds an unsafe data: URI in <{element}>", "uploaded-href-unsafe-target-svg")
    if attr == "attributename" and element == "animate" and value.rpartition(":")[2] == "href":
        return _script(f"animates the {value} attribute", "uploaded-animate-svg", attribute=value)
    if element in ("set", "animate") and attr == "attributename" and value.startswith("on"):
        return _script(f"sets the event handler {value}", "uploaded-setting-event-handler-svg",
                       attribute=value)
    if element == "set" and attr == "attributename" and "href" in value:
        return _script(f"sets the {value} attribute", "uploaded-setting-href-svg", attribute=value)
    if element == "set" and attr == "to" and _REMOTE.search(value):
        return _script("sets to= a remote or script target", "uploaded-wrong-setting-svg")
    if attr == "handler" and _REMOTE.search(value):
        return _script("has a handler= with a remote or script target", "uploaded-setting-handler-svg")
    if attr == "style" and hostile_css(normalize_css(value)):
        return _script("loads remote CSS through style=", "uploaded-remote-url-svg", attribute=attr)
    if attr in _CSS_ATTRS and hostile_css(value):
        return _script(f"loads remote CSS through {attr}=", "uploaded-remote-url-svg", attribute=attr)
    if element == "image" and attr == "filter" and _IMAGE_FILTER_URL.search(value):
        return _script("has an image filter with a remote url()", "uploaded-image-filter-svg")
    return None
