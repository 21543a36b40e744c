"""Our SVG filter against the real wiki's, rule by rule (issue 14).

Every case below is a small SVG written for one rule of MediaWiki's filter (DTDs and entities,
namespaces, scripts, event handlers, ``href``, styles, encodings, processing instructions,
malformed XML). Nothing here says what the answer *should* be: each case is sent to the throwaway
wiki (``stash=1``, nothing is published) and the wiki's answer is the label. The claim: every case
the wiki accepts passes our validation, and every case it refuses is refused with the reason code
that :func:`ours_for` maps the wiki's error to, and, for SVG rules, the same message key.
"""

from __future__ import annotations

import secrets
from pathlib import Path
from typing import Any

import pytest

from mwingest.checks.validate import validate_file
from tests.integration.test_validation_agreement import RawApi, api, ours_for, rules  # noqa: F401

pytestmark = pytest.mark.wiki

XLINK = 'xmlns:xlink="http://www.w3.org/1999/xlink"'
SVGNS = 'xmlns="http://www.w3.org/2000/svg"'
W3C = '<!DOCTYPE svg PUBLIC "-//W3C//DTD SVG 1.1//EN" "http://www.w3.org/Graphics/SVG/1.1/DTD/svg11.dtd"'
DECL = '<?xml version="1.0" encoding="UTF-8"?>\n'


def doc(body: str = "", *, prolog: str = DECL, root: str = f"{SVGNS} {XLINK}") -> str:
    """An SVG whose root carries *root* and holds *body*; a comment token keeps every file unique."""
    return (f'{prolog}<svg {root} width="20" height="20"><!-- {{token}} -->'
            f'<rect width="20" height="20" fill="#3a6"/>{body}</svg>\n')


def subset(decls: str, body: str = "", dtd: str = "<!DOCTYPE svg") -> str:
    return doc(body, prolog=f"{DECL}{dtd} [\n{decls}\n]>\n")


AI_NS = ('<!ENTITY ns_svg "http://www.w3.org/2000/svg">\n<!ENTITY ns_xlink "http://www.w3.org/1999/xlink">\n'
         '<!ENTITY ns_ai "http://ns.adobe.com/AdobeIllustrator/10.0/">')

#: key -> SVG text (``{token}`` is filled in) or bytes.
CASES: dict[str, str | bytes] = {
    # --- DTDs and entities (XmlTypeCheck::checkDTDIsSafe, checkSvgExternalDTD)
    "plain": doc(),
    "no-namespace": doc(root=""),
    "w3c-dtd": doc(prolog=f"{DECL}{W3C}>\n"),
    "w3c-dtd-tiny": doc(prolog=f'{DECL}<!DOCTYPE svg PUBLIC "-//W3C//DTD SVG 1.1 Tiny//EN" '
                               f'"http://www.w3.org/Graphics/SVG/1.1/DTD/svg11-tiny.dtd">\n'),
    "dtd-name-only": doc(prolog=f"{DECL}<!DOCTYPE svg>\n"),
    "dtd-bad-public": doc(prolog=f'{DECL}<!DOCTYPE svg PUBLIC "-//EVIL//DTD SVG//EN" '
                                 f'"http://www.w3.org/Graphics/SVG/1.1/DTD/svg11.dtd">\n'),
    "dtd-system": doc(prolog=f'{DECL}<!DOCTYPE svg SYSTEM "http://www.w3.org/Graphics/SVG/1.1/DTD/svg11.dtd">\n'),
    "dtd-w3c-other-system": doc(prolog=f'{DECL}<!DOCTYPE svg PUBLIC "-//W3C//DTD SVG 1.1//EN" '
                                       f'"http://example.org/svg11.dtd">\n'),
    "illustrator-entities": subset(AI_NS, dtd=W3C, body='<g xmlns:x="&ns_ai;" x:layer="1"/>'),
    "illustrator-ns-root": doc(prolog=f"{DECL}{W3C} [\n{AI_NS}\n]>\n",
                               root='xmlns="&ns_svg;" xmlns:xlink="&ns_xlink;"'),
    "entity-255": subset(f'<!ENTITY e "{"a" * 255}">', "<text>&e;</text>"),
    "entity-256": subset(f'<!ENTITY e "{"a" * 256}">', "<text>&e;</text>"),
    "entity-utf8-240-bytes": subset(f'<!ENTITY e "{"é" * 120}">', "<text>&e;</text>"),
    "entity-utf8-260-bytes": subset(f'<!ENTITY e "{"é" * 130}">', "<text>&e;</text>"),
    "entity-amp": subset('<!ENTITY e "a &amp; b">', "<text>&e;</text>"),
    "entity-lt-ref": subset('<!ENTITY e "a &lt; b">', "<text>&e;</text>"),
    "entity-charref": subset('<!ENTITY e "&#65;BC">', "<text>&e;</text>"),
    "entity-only-charref": subset('<!ENTITY e "&#65;">', "<text>&e;</text>"),
    "entity-percent-charref": subset('<!ENTITY e "50&#37;">', "<text>&e;</text>"),
    "entity-one-reference": subset('<!ENTITY a "x">\n<!ENTITY b "&a;">', "<text>&b;</text>"),
    "entity-two-references": subset('<!ENTITY a "x">\n<!ENTITY b "&a;&a;">', "<text>&b;</text>"),
    "entity-markup": subset("<!ENTITY r \"<rect width='2' height='2'/>\">", "&r;"),
    "entity-markup-script": subset('<!ENTITY r "<script>alert(1)</script>">', "&r;"),
    "entity-single-quotes-with-dquote": subset("<!ENTITY e 'say \"hi\"'>", "<text>&e;</text>"),
    "entity-both-quotes": subset("<!ENTITY e 'it&apos;s \"x\"'>", "<text>&e;</text>"),
    "entity-unused": subset('<!ENTITY unused "nothing">'),
    "entity-parameter": subset('<!ENTITY % p "x">'),
    "entity-external": subset('<!ENTITY ext SYSTEM "http://example.org/x.xml">', "<text>&ext;</text>"),
    "entity-public": subset('<!ENTITY ext PUBLIC "-//X//Y" "http://example.org/x.xml">'),
    "laughs-3": subset('<!ENTITY a "lol">\n<!ENTITY b "&a;&a;&a;">\n<!ENTITY c "&b;&b;&b;">',
                       "<text>&c;</text>"),
    "subset-comment": subset("<!-- a comment in the subset -->"),
    "subset-xlink-attlist": subset('<!ATTLIST svg xmlns:xlink CDATA #FIXED "http://www.w3.org/1999/xlink">'),
    "subset-other-attlist": subset('<!ATTLIST rect class CDATA #IMPLIED>'),
    "subset-element": subset("<!ELEMENT svg ANY>"),
    "subset-notation": subset('<!NOTATION n SYSTEM "x">'),
    "subset-pi": subset("<?foo bar?>"),
    "subset-pi-stylesheet": subset('<?xml-stylesheet type="text/css" href="x.css"?>'),
    "missing-xlink-declaration": doc('<rect id="a"/><use xlink:href="#a"/>', root=SVGNS),
    "missing-xlink-declaration-remote": doc('<use xlink:href="http://example.org/x.svg#a"/>', root=SVGNS),
    "undefined-entity": doc("<text>&nbsp;</text>"),
    "undefined-entity-w3c-dtd": doc("<text>&nbsp;</text>", prolog=f"{DECL}{W3C}>\n"),
    # --- namespaces (checkSvgScriptCallback's list)
    "ns-xhtml-element": doc('<foreignObject><p xmlns="http://www.w3.org/1999/xhtml">x</p></foreignObject>'),
    "ns-uppercase-svg": doc(root=f'xmlns="HTTP://WWW.W3.ORG/2000/SVG" {XLINK}'),
    "ns-inkscape-mangled": doc('<x:g xmlns:x="&amp;ns_svg;"/>'),
    "ns-inkscape-mangled-38": doc('<x:g xmlns:x="&amp;#38;ns_svg;"/>'),
    "ns-dc-no-slash": doc('<metadata><dc:title xmlns:dc="http://purl.org/dc/elements/1.1">t</dc:title>'
                          '</metadata>'),
    "ns-rdf-cc": doc('<metadata><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#" '
                     'xmlns:cc="http://creativecommons.org/ns#"><cc:Work rdf:about=""/></rdf:RDF>'
                     '</metadata>'),
    "ns-sodipodi-inkscape": doc('<sodipodi:namedview '
                                'xmlns:sodipodi="http://sodipodi.sourceforge.net/dtd/sodipodi-0.dtd" '
                                'xmlns:inkscape="http://www.inkscape.org/namespaces/inkscape" '
                                'inkscape:zoom="1"/>'),
    "ns-xinclude": doc('<xi:include xmlns:xi="http://www.w3.org/2001/XInclude" href="#x"/>'),
    "ns-unknown": doc('<q:thing xmlns:q="http://example.org/ns"/>'),
    "ns-trailing-space": doc('<q:g xmlns:q="http://www.w3.org/2000/svg "/>'),
    "ns-foreign-attribute": doc('<rect xmlns:q="http://example.org/ns" q:any="1"/>'),
    "ns-unbound-prefix": doc("<q:thing/>"),
    # declarations libxml2 ignores (mwingest.checks.svgnames): the prefix becomes the namespace
    "ns-undefined-entity": doc('<q:thing/><rect q:x="1"/>', prolog=f"{DECL}{W3C}>\n",
                               root=f'{SVGNS} xmlns:q="&ns_undefined;"'),
    "ns-undefined-entity-unused": doc('<rect q:x="1"/>', prolog=f"{DECL}{W3C}>\n",
                                      root=f'{SVGNS} xmlns:q="&ns_undefined;"'),
    "ns-entity-html-default": (f'{DECL}{W3C} [\n<!ENTITY ns_h "http://www.w3.org/1999/xhtml">\n]>\n'
                               '<s:svg xmlns="&ns_h;" xmlns:s="http://www.w3.org/2000/svg" width="20" '
                               'height="20"><!-- {token} --><s:g><p>x</p></s:g></s:svg>\n'),
    "ns-empty-prefix": doc("<q:thing/>", root=f'{SVGNS} xmlns:q=""'),
    "ns-empty-prefix-inner": doc('<g xmlns:q=""><q:rect/></g>', root=f'{SVGNS} xmlns:q="http://www.w3.org/2000/svg"'),
    "ns-empty-default-inner": doc('<g xmlns=""><rect/></g>'),
    "ns-undefined-default-inner": doc('<g xmlns="&ns_undefined;"><rect/></g>', prolog=f"{DECL}{W3C}>\n"),
    "ns-xml-prefix-rebound": doc("<xml:rect/>", root=f'{SVGNS} xmlns:xml="http://www.w3.org/2000/svg"'),
    "ns-xmlns-prefix-bound": doc("<xmlns:rect/>", root=f'{SVGNS} xmlns:xmlns="http://www.w3.org/2000/svg"'),
    "ns-default-xml-uri": doc('<g xmlns="http://www.w3.org/XML/1998/namespace"><rect/></g>'),
    "ns-default-xmlns-uri": doc('<g xmlns="http://www.w3.org/2000/xmlns/"><rect/></g>'),
    "ns-prefix-xml-uri": doc('<q:rect xmlns:q="http://www.w3.org/XML/1998/namespace"/>'),
    "ns-prefix-xmlns-uri": doc('<q:rect xmlns:q="http://www.w3.org/2000/xmlns/"/>'),
    "ns-two-colons-bound": doc('<a:b:rect xmlns:a="http://www.w3.org/2000/svg"/>'),
    "ns-two-colons-unbound": doc("<a:b:rect/>"),
    "ns-not-a-uri": doc('<q:rect xmlns:q="not a uri%%"/>'),
    # --- scripts and event handlers
    "script": doc("<script>alert(1)</script>"),
    "script-uppercase": doc("<SCRIPT>alert(1)</SCRIPT>"),
    "script-empty-foreign-ns": doc('<x:script xmlns:x="http://www.inkscape.org/namespaces/inkscape"/>'),
    "handler": doc("<handler>alert(1)</handler>"),
    "stylesheet-element": doc("<stylesheet/>"),
    "iframe": doc("<iframe/>"),
    "onload": doc('<rect onload="alert(1)"/>'),
    "onload-uppercase": doc('<rect ONLOAD="alert(1)"/>'),
    "on-namespaced": doc('<rect xlink:onclick="alert(1)"/>'),
    "one-attribute": doc('<rect one="1"/>'),
    "set-onclick": doc('<set attributeName="onclick" to="alert(1)"/>'),
    "set-href": doc('<set attributeName="xlink:href" to="#a"/>'),
    "set-to-javascript": doc('<set attributeName="fill" to="javascript:alert(1)"/>'),
    "set-to-color": doc('<set attributeName="fill" to="red"/>'),
    "animate-href": doc('<animate attributeName="xlink:href" values="#a;#b"/>'),
    "animate-fill": doc('<animate attributeName="fill" values="red;blue" dur="1s"/>'),
    "handler-attribute": doc('<rect handler="http://example.org/x"/>'),
    # --- href
    "a-http": doc('<a xlink:href="https://example.org/"><rect width="2" height="2"/></a>'),
    "a-javascript": doc('<a xlink:href="javascript:alert(1)"><rect width="2" height="2"/></a>'),
    "use-fragment": doc('<rect id="a"/><use xlink:href="#a"/>'),
    "use-external": doc('<use xlink:href="other.svg#a"/>'),
    "use-http": doc('<use href="http://example.org/x.svg#a"/>'),
    "href-empty": doc('<use href=""/>'),
    "href-both-attributes": doc('<use href="#a" xlink:href="javascript:alert(1)"/>'),
    "image-data-png": doc('<image width="1" height="1" xlink:href="data:image/png;base64,iVBORw0KGgo="/>'),
    "image-data-png-params": doc('<image xlink:href=\'data:image/png;name="a b";base64,iVBORw0KGgo=\'/>'),
    "image-data-svg": doc('<image xlink:href="data:image/svg+xml;base64,PHN2Zz4="/>'),
    "image-data-no-type": doc('<image xlink:href="data:;base64,iVBORw0KGgo="/>'),
    # --- styles
    "style-local-url": doc('<rect style="fill:url(#g)"/>'),
    "style-remote-url": doc('<rect style="fill:url(http://example.org/p.svg#g)"/>'),
    "style-escaped-url": doc(r'<rect style="fill:\75 rl(http://example.org/p.svg#g)"/>'),
    "style-comment-split": doc('<rect style="fill:u/**/rl(http://example.org/p.svg#g)"/>'),
    "style-import": doc('<rect style="@import \'x.css\'"/>'),
    "style-expression": doc('<rect style="width:expression(alert(1))"/>'),
    "style-element-remote": doc("<style>rect { fill: url(http://example.org/p.svg#g) }</style>"),
    "style-element-local": doc("<style>rect { fill: url(#g) } /* note */</style>"),
    "style-element-import": doc("<style>@import url(x.css);</style>"),
    "style-element-font-data": doc('<style>@font-face { font-family: f; src:url("data:;base64,AAAA") }'
                                   '</style>'),
    "fill-remote": doc('<rect fill="url(http://example.org/p.svg#g)"/>'),
    "fill-local": doc('<rect fill="url(#g)"/>'),
    "mask-remote": doc('<rect mask="url(data:x)"/>'),
    "image-filter-remote": doc('<image filter="url(http://example.org/f.svg#f)"/>'),
    "style-control-char": doc('<rect style="fill:red&#1;"/>'),
    # --- processing instructions and encodings
    "pi-stylesheet": doc(prolog=f'{DECL}<?xml-stylesheet type="text/css" href="x.css"?>\n'),
    "pi-other": doc(prolog=f"{DECL}<?foo bar?>\n"),
    "pi-stylesheet-late": doc("<?xml-stylesheet href='x.css'?>"),
    "encoding-latin1": doc(prolog='<?xml version="1.0" encoding="ISO-8859-1"?>\n'),
    "encoding-windows-1252": doc(prolog='<?xml version="1.0" encoding="windows-1252"?>\n'),
    "encoding-utf7": doc(prolog='<?xml version="1.0" encoding="UTF-7"?>\n'),
    "encoding-shift-jis": doc(prolog='<?xml version="1.0" encoding="Shift_JIS"?>\n'),
    "encoding-utf16": "\ufeff" + doc(prolog='<?xml version="1.0" encoding="UTF-16"?>\n'),
    # --- well-formedness
    "unclosed": doc('<g><rect width="1"/>'),
    "junk-after-root": doc() + "<junk/>",
    "script-and-malformed": doc("<script>alert(1)</script><g>"),
    "nested-257-deep": doc("<g>" * 256 + "</g>" * 256),  # <svg> is the first level
    "nested-258-deep": doc("<g>" * 257 + "</g>" * 257),
    "element-name-50000": doc(f"<{'g' * 50_000}/>"),
    "element-name-50001": doc(f"<{'g' * 50_001}/>"),
    "attribute-name-50001": doc(f'<rect {"a" * 50_001}="1"/>'),
}


def _encode(key: str, text: str | bytes, token: str) -> bytes:
    if isinstance(text, bytes):
        return text
    text = text.replace("{token}", f"mwingest {key} {token}")
    if key == "encoding-utf16":
        return text.encode("utf-16-le")
    if key == "encoding-latin1":
        return text.encode("latin-1")
    return text.encode()


@pytest.fixture(scope="module")
def labelled(api: RawApi, rules: Any, tmp_path_factory: pytest.TempPathFactory  # noqa: F811
             ) -> dict[str, tuple[dict[str, Any], Any]]:
    """Each case: the wiki's answer to a stash upload, and our verdict."""
    folder: Path = tmp_path_factory.mktemp("svg-rules")
    token = secrets.token_hex(4)
    out = {}
    for key, text in CASES.items():
        data = _encode(key, text, token)
        path = folder / f"{key}.svg"
        path.write_bytes(data)
        answer = api.upload(data, f"Svgrule-{key}-{token}.svg", stash="1", ignorewarnings="1")
        out[key] = (answer, validate_file(path, rules, filename=f"Svgrule-{key}-{token}.svg"))
    return out


def _disagreement(answer: dict[str, Any], verdict: Any) -> str | None:
    if "error" not in answer:
        if verdict.ok:
            return None
        return f"wiki accepts, we refuse: {verdict.reason} ({verdict.findings[0].message})"
    error = answer["error"]
    expected = ours_for(error)
    if verdict.reason != expected:
        return f"wiki {error['code']} {error.get('details')}, we say {verdict.reason}"
    if expected.startswith("svg-"):
        ours = next(f for f in verdict.findings if f.code == expected).detail.get("wiki_check")
        if ours != error["details"][0]:
            return f"wiki {error.get('details')}, our key {ours}"
        namespace = next(f for f in verdict.findings if f.code == expected).detail.get("namespace")
        if ours == "uploadscriptednamespace" and namespace != error["details"][1]:
            return f"wiki {error.get('details')}, our namespace {namespace!r}"
    return None


def test_svg_rules_agree_with_the_wiki(labelled: dict[str, tuple[dict[str, Any], Any]]) -> None:
    wrong = {key: why for key, (answer, verdict) in labelled.items()
             if (why := _disagreement(answer, verdict)) is not None}
    accepted = [key for key, (answer, _v) in labelled.items() if "error" not in answer]
    refused = [key for key, (answer, _v) in labelled.items() if "error" in answer]
    print(f"{len(labelled)} SVG cases: the wiki accepts {len(accepted)}, refuses {len(refused)}; "
          f"{len(wrong)} disagreements")
    assert not wrong, "disagreements with the wiki:\n" + "\n".join(f"  {k}: {v}" for k, v in wrong.items())
    # The cases must exercise both sides of the filter, or agreement would say nothing.
    assert len(accepted) >= 20 and len(refused) >= 40, (accepted, refused)
    # libxml2's depth limit, exercised at its edge
    assert "nested-257-deep" in accepted and "nested-258-deep" in refused
