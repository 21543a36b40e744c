"""The wiki's own upload rules, read once from ``action=query&meta=siteinfo``.

Why: every check we run locally (extension allowed? name legal? size under the limit? chunk big
enough?) must use *the target wiki's* settings, not MediaWiki's defaults. Siteinfo exposes most of
them (spec §12); ``$wgIllegalFileChars`` and the prohibited-extension list are not exposed, so they
are hard-coded here from the 1.39 defaults (spec §9).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

#: ``$wgProhibitedFileExtensions`` in MediaWiki 1.39 (MainConfigSchema), not exposed by siteinfo.
DEFAULT_PROHIBITED_EXTENSIONS: frozenset[str] = frozenset({
    "html", "htm", "js", "jsb", "mhtml", "mht", "xhtml", "xht", "php", "phtml", "php3", "php4",
    "php5", "phps", "phar", "shtml", "jhtml", "pl", "py", "cgi", "exe", "scr", "dll", "msi", "vbs",
    "bat", "com", "pif", "cmd", "vxd", "cpl", "xml",
})
#: ``$wgIllegalFileChars`` default.
DEFAULT_ILLEGAL_FILE_CHARS = ":/\\"
#: ``Title::legalChars()`` default, in PHP regex-class syntax, as siteinfo reports it.
DEFAULT_LEGAL_TITLE_CHARS = " %!\"$&'()*,\\-.\\/0-9:;=?@A-Z\\\\^_`a-z~\\x80-\\xFF+"
#: MediaWiki's default ``$wgFileExtensions``.
DEFAULT_FILE_EXTENSIONS = frozenset({"png", "gif", "jpg", "jpeg", "webp"})

#: The query parameters that fill a :class:`WikiRules`.
SITEINFO_PARAMS: dict[str, str] = {
    "action": "query",
    "meta": "siteinfo",
    "siprop": "general|fileextensions|namespaces|namespacealiases",
}


class ApiGetter(Protocol):
    """Anything with a ``get(params) -> parsed JSON`` method (our :class:`WikiSession`)."""

    def get(self, params: Mapping[str, Any]) -> dict[str, Any]: ...


@dataclass(frozen=True)
class WikiRules:
    """What one wiki allows for uploads. Immutable; cache one per wiki per run."""

    file_extensions: frozenset[str] = DEFAULT_FILE_EXTENSIONS
    max_upload_size: int = 4 * 1024 * 1024 * 1024
    min_chunk_size: int = 1024
    legal_title_chars: str = DEFAULT_LEGAL_TITLE_CHARS
    case: str = "first-letter"
    uploads_enabled: bool = True
    readonly: bool = False
    generator: str = "MediaWiki 1.39"
    #: Every namespace name and alias, case-folded, mapped to its id (``"file"``→6, ``"talk"``→1).
    namespaces: Mapping[str, int] = field(default_factory=lambda: {"file": 6, "image": 6})
    prohibited_extensions: frozenset[str] = DEFAULT_PROHIBITED_EXTENSIONS
    illegal_file_chars: str = DEFAULT_ILLEGAL_FILE_CHARS
    #: Interwiki prefixes are not read (they need ``siprop=interwikimap``); names with a colon are
    #: turned into ``-`` anyway because ``:`` is in ``illegal_file_chars``.

    @property
    def file_namespace_names(self) -> frozenset[str]:
        """Case-folded names that mean the File namespace (``file``, ``image``, local names)."""
        return frozenset(name for name, ns in self.namespaces.items() if ns == 6)

    def extension_allowed(self, ext: str) -> bool:
        """True when ``ext`` (without dot, any case) is in the wiki's ``$wgFileExtensions``."""
        return ext.lower() in self.file_extensions

    @classmethod
    def from_siteinfo(cls, answer: Mapping[str, Any]) -> WikiRules:
        """Build the rules from a ``meta=siteinfo`` answer (formatversion 2, the whole JSON)."""
        query = answer.get("query", answer)
        general = query.get("general", {})
        namespaces: dict[str, int] = {}
        for ns in _iter_namespaces(query.get("namespaces", {})):
            ns_id = int(ns.get("id", 0))
            for key in ("name", "canonical"):
                if ns.get(key):
                    namespaces[str(ns[key]).casefold()] = ns_id
        for alias in query.get("namespacealiases", []):
            if alias.get("alias") or alias.get("*"):
                namespaces[str(alias.get("alias") or alias.get("*")).casefold()] = int(alias["id"])
        exts = frozenset(str(e["ext"]).lower() for e in query.get("fileextensions", []))
        return cls(
            file_extensions=exts or DEFAULT_FILE_EXTENSIONS,
            max_upload_size=int(general.get("maxuploadsize", cls.max_upload_size)),
            min_chunk_size=int(general.get("minuploadchunksize", cls.min_chunk_size)),
            legal_title_chars=str(general.get("legaltitlechars", DEFAULT_LEGAL_TITLE_CHARS)),
            case=str(general.get("case", "first-letter")),
            uploads_enabled=bool(general.get("uploadsenabled", True)),
            readonly=bool(general.get("readonly", False)),
            generator=str(general.get("generator", "")),
            namespaces=namespaces or {"file": 6, "image": 6},
        )


def _iter_namespaces(raw: Any) -> list[Mapping[str, Any]]:
    """Siteinfo gives namespaces as a dict keyed by id (fv1 and fv2 alike); accept a list too."""
    if isinstance(raw, Mapping):
        return list(raw.values())
    return list(raw)


def fetch_rules(api: ApiGetter) -> WikiRules:
    """Ask the wiki for its rules (one request)."""
    return WikiRules.from_siteinfo(api.get(SITEINFO_PARAMS))
