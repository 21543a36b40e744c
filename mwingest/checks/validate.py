"""Per-file verdicts: everything we can know about a file before a byte of it is sent.

Why one verdict type for all checks: the pipeline, the CLI and the Prefect review form all need the
same answer to "may this file go up, and if not, why, in words a person can act on?". A
:class:`Verdict` holds every :class:`Finding`, not just the first: a user fixing a folder wants to
see all problems at once. Its :attr:`Verdict.reason` is the first *reject* finding in the order the
wiki checks (spec §3): local access, size, content (partial checks, extension vs content, SVG), our
own integrity checks, then the name. So ``reason`` says what the wiki would answer first.

Reason codes (stable; ``detail["wiki_check"]`` names the wiki's own message key where one exists):

============================ ====== ===============================================================
code                         sev.   meaning
============================ ====== ===============================================================
``not-found``                reject no such path
``not-a-file``               reject a directory, FIFO, device …
``unreadable``               reject exists but cannot be read (permissions, I/O error)
``empty-file``               reject zero bytes (wiki: ``empty-file``)
``file-too-large``           reject over ``rules.max_upload_size`` (wiki: ``file-too-large``)
``script-content``           reject HTML/script the wiki refuses: ``filetype-badmime``,
                                    ``filetype-bad-ie-mime`` with a script type, ``uploadscripted``
``banned-type``              reject a banned non-script type (executable, WMF, Java, XML)
``mime-mismatch``            reject content does not match the extension (``filetype-mime-mismatch``)
``svg-invalid``              reject not well-formed to libxml2 (nesting over 257, names over 50,000
                                    characters, one token over 10 MB) or DTD declarations the wiki
                                    refuses: long or nested entities, external ones (``uploadinvalidxml``)
``svg-script``               reject scripts, handlers, foreign namespaces, external links …
``corrupt-image``            reject Pillow cannot decode it, or one frame of an animation (the wiki
                                    would accept it: we are stricter)
``truncated-media``          reject audio/video cut short: a page, chunk, element or frame runs past
                                    the end of the file (the wiki stores it)
``corrupt-media``            reject audio/video whose bytes contradict their structure: an Ogg page
                                    checksum, a missing WAV format chunk, an invalid EBML header
``corrupt-pdf``              reject PDF without its end-of-file marker, or whose cross-references,
                                    trailer or pages cannot be read even with repair
``unverified-image``         warn   a TIFF neither Pillow nor tifffile can decode (a codec missing
                                    here): it goes up, unchecked
``unverified-pdf``           warn   a PDF whose check did not finish within its time limit, or on
                                    which the PDF reader stopped: it goes up, unchecked
``decompression-bomb``       reject declared pixels over the limit (any GIF frame's too), or an .svgz
                                    that inflates too far
``filetype-prohibited``      reject a prohibited extension anywhere in the name (``x.php.png``)
``filetype-not-allowed``     reject final extension not in the wiki's ``$wgFileExtensions``
``filename-too-long``        reject over 240 bytes (``filename-toolong``)
``bad-filename``             reject the wiki refuses the name (``illegal-filename``,
                                    ``filename-tooshort``, ``filetype-missing``)
``bad-filename``             warn   the wiki would rename it (``badfilename``: ``#<>[]|{}:/`` become
                                    ``-``, bidi marks vanish …); :attr:`Verdict.filename` is the
                                    name it will get, so send that and the warning never fires
``duplicate-on-wiki``        warn   the same SHA-1 is on the wiki already (names in ``detail``);
                                    a warning because the *pipeline* decides: skip it, or upload
                                    anyway when the policy says so
``duplicate-in-batch``       warn   an earlier file of the same batch has the same bytes
============================ ====== ===============================================================
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

from mwingest.base.hashing import FileDigest
from mwingest.checks import content, mediacheck, mimesniff, pdfcheck
from mwingest.checks.svgcheck import check_svg
from mwingest.wiki import names
from mwingest.wiki.siteinfo import ApiGetter, WikiRules

Severity = Literal["reject", "warn"]
#: Extensions to suggest in messages where MediaWiki's canonical one is unusual (jpeg, mpga, ogx).
_FRIENDLY_EXT = {"image/jpeg": "jpg", "audio/mpeg": "mp3", "application/ogg": "ogg", "image/tiff": "tif"}

_ADVICE = {
    "not-found": "Check the path.",
    "not-a-file": "Give the path of a regular file.",
    "unreadable": "Check its permissions and the disk.",
    "empty-file": "The wiki refuses empty files; check the export or copy that produced it.",
    "script-content": "The wiki refuses files a browser could run as HTML; re-export it without the markup.",
    "banned-type": "The wiki refuses this type outright; convert it to a media format the wiki accepts.",
    "svg-invalid": "Repair the XML (saving as plain SVG usually does); keep entity declarations short.",
    "svg-script": "Remove scripts, event handlers and external references (save as plain/optimised SVG).",
    "corrupt-image": "It is damaged or truncated (the wiki would store it broken); copy or export it again.",
    "decompression-bomb": "Its declared size is too large to decode safely; scale it down.",
    "unverified-image": "It may still be fine: open it in an image viewer before relying on it.",
    "unverified-pdf": "It may still be fine: open it in a PDF reader before relying on it.",
    "truncated-media": "The wiki would store it, but it would stop playing early; copy or export it again.",
    "corrupt-media": "The wiki would store it, but players would fail on it; copy or export it again.",
    "corrupt-pdf": "The wiki would store it, but readers would fail on it; copy or export it again.",
    "filename-too-long": "Shorten the name to at most 240 bytes (UTF-8).",
    "bad-filename": "Choose another file name.",
    "filetype-prohibited": "The wiki never accepts such names; rename it (convert it if it is not media).",
}


@dataclass(frozen=True)
class Finding:
    """One problem with one file."""

    code: str  # stable reason code (table in the module docstring)
    severity: Severity
    message: str  # names the file and says what to do
    detail: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Verdict:
    """Everything known about one local file before upload."""

    source: str  # the local path as given
    filename: str | None  # the name it gets on the wiki (DB key form) when the name is acceptable
    size: int | None
    sha1: str | None
    mime: str | None
    findings: tuple[Finding, ...]
    duplicates: tuple[str, ...] = ()  # names of files on the wiki with the same SHA-1

    @property
    def ok(self) -> bool:
        """True when nothing stops the upload (warnings may remain)."""
        return not any(f.severity == "reject" for f in self.findings)

    @property
    def reason(self) -> str | None:
        """Code of the first reject finding, else of the first warning, else None."""
        first = next((f for f in self.findings if f.severity == "reject"), None)
        first = first or next(iter(self.findings), None)
        return first.code if first else None

    @property
    def codes(self) -> tuple[str, ...]:
        """All finding codes, in check order."""
        return tuple(f.code for f in self.findings)


def validate_file(path: str | os.PathLike[str], rules: WikiRules, *, filename: str | None = None,
                  max_pixels: int | None = None) -> Verdict:
    """Check one file against *rules*; never raises for bad input (it becomes a finding).

    ``filename`` is the wanted name on the wiki (default: the basename). ``max_pixels`` is the
    decompression-bomb limit for images (default :data:`mwingest.checks.content.DEFAULT_MAX_PIXELS`,
    89.5 megapixels); see :func:`mwingest.checks.content.check_raster` for how memory stays bounded.
    """
    source = os.fspath(path)
    shown = filename or os.path.basename(source.rstrip("/")) or source
    early = _access_problem(source, shown)
    if early:
        return Verdict(source, None, None, None, None, (early,))
    try:
        digest = FileDigest.of(source)
        sample = mimesniff.read_sample(source, digest.size)
    except OSError as exc:
        problem = _finding("unreadable", shown, f"cannot be read ({exc})")
        return Verdict(source, None, None, None, None, (problem,))
    findings: list[Finding] = []
    if digest.size == 0:
        findings.append(_finding("empty-file", shown, "is empty", wiki_check="empty-file"))
    elif digest.size > rules.max_upload_size:
        findings.append(_finding("file-too-large", shown, f"has {digest.size:,} bytes",
                                 advice=f"The wiki takes at most {rules.max_upload_size:,} bytes.",
                                 wiki_check="file-too-large", limit=rules.max_upload_size))
    file_mime = mimesniff.detect_mime(sample) if digest.size else None
    guess = mimesniff.extension_for_mime(file_mime) if file_mime else None
    prediction = names.predict_title(shown, rules, content_ext=guess)
    ext = (prediction.extension or "").lower()
    mime = mimesniff.logical_mime(file_mime, ext) if file_mime else None
    try:
        issues = _content_issues(source, sample, file_mime, mime, ext, max_pixels) if file_mime else []
    except OSError as exc:  # the file vanished or broke between the hash and the checks
        issues = [content.Issue("unreadable", f"cannot be read ({exc})")]
    findings += [_from_issue(i, shown) for i in issues]
    findings += _name_findings(prediction, shown, rules)
    return Verdict(source, prediction.title if prediction.ok else None, digest.size, digest.sha1, mime,
                   tuple(findings))


def _access_problem(source: str, shown: str) -> Finding | None:
    """Refuse what cannot be opened as a file *before* opening it (a FIFO would block forever)."""
    try:
        st = os.stat(source)
    except FileNotFoundError:
        return _finding("not-found", shown, f"does not exist ({source})")
    except ValueError:  # an embedded NUL byte: no such path can exist
        return _finding("not-found", shown, f"is not a valid path ({source!r})")
    except OSError as exc:
        return _finding("unreadable", shown, f"cannot be examined ({exc.strerror or exc})")
    if not stat.S_ISREG(st.st_mode):
        kind = "a directory" if stat.S_ISDIR(st.st_mode) else "not a regular file"
        return _finding("not-a-file", shown, f"is {kind}")
    if not os.access(source, os.R_OK):
        return _finding("unreadable", shown, "is not readable by this user")
    return None


def _content_issues(source: str, sample: mimesniff.Sample, file_mime: str, mime: str | None, ext: str,
                    max_pixels: int | None) -> list[content.Issue]:
    """The wiki's content checks in its order, then ours. The wiki's partial pass
    (``verifyPartialFile``) already runs the SVG filter and refuses a well-formed SVG with a script
    *before* comparing type and extension; "not well-formed" only counts in its full pass, after
    that comparison. Our own integrity checks run only when the type check passed."""
    issues = content.check_partial(sample, file_mime, ext)
    is_svg = ext in ("svg", "svgz") or mime == "image/svg+xml"
    svg = check_svg(source, compressed=ext == "svgz") if is_svg and not issues else []
    scripted = [i for i in svg if i.code == "svg-script"]
    issues += scripted + content.check_extension(mime, ext)
    if issues:
        return issues
    issues += svg
    if issues:
        return issues
    issues += content.check_raster(source, ext, max_pixels=max_pixels)
    issues += mediacheck.check_media(source, mime)
    if mime == "application/pdf":
        issues += pdfcheck.check_pdf(source)
    return issues


def _name_findings(prediction: names.TitlePrediction, shown: str, rules: WikiRules) -> list[Finding]:
    error, ext = prediction.error, prediction.extension
    if error == "filename-toolong":
        return [_finding("filename-too-long", shown, f"has a {len(shown.encode()):,}-byte name",
                         wiki_check=error)]
    if error in ("illegal-filename", "filename-tooshort", "filetype-missing"):
        what = {"illegal-filename": "is a name the wiki refuses (%XX, &entity;, ~~~, ./, control characters)",
                "filename-tooshort": "has nothing before its extension",
                "filetype-missing": "has no extension, and none can be told from its content"}[error]
        return [_finding("bad-filename", shown, what, wiki_check=error)]
    found: list[Finding] = []
    if error == "filetype-banned" and prediction.banned_parts:
        parts = ", ".join(f".{p}" for p in prediction.banned_parts)
        found.append(_finding("filetype-prohibited", shown, f"has the prohibited extension {parts}",
                              wiki_check=error, parts=list(prediction.banned_parts)))
    if error == "filetype-banned" and not rules.extension_allowed(ext or ""):
        advice = f"Convert it to one of: {', '.join(sorted(rules.file_extensions))}."
        found.append(_finding("filetype-not-allowed", shown, f"has the extension .{ext}, refused by the wiki",
                              advice=advice, wiki_check=error, extension=ext))
    if prediction.ok and prediction.badfilename:
        found.append(_finding("bad-filename", shown, f"will be stored as {prediction.title!r}",
                              severity="warn", advice="Nothing to do: that name is used as the target.",
                              wiki_check="badfilename", wiki_name=prediction.title))
    return found


def _finding(code: str, shown: str, what: str, *, severity: Severity = "reject", advice: str | None = None,
             **detail: Any) -> Finding:
    message = f"{shown}: {what}. {advice or _ADVICE.get(code, '')}".strip()
    return Finding(code, severity, message, detail)


def _from_issue(issue: content.Issue, shown: str) -> Finding:
    advice = None
    if issue.code == "mime-mismatch":
        mime = str(issue.detail.get("mime"))
        real = _FRIENDLY_EXT.get(mime) or mimesniff.extension_for_mime(mime)
        advice = (f"Rename it to .{real} or convert it." if real else
                  "Convert it to the format its extension promises.")
    severity: Severity = "warn" if issue.severity == "warn" else "reject"
    return _finding(issue.code, shown, issue.what, advice=advice, severity=severity, **issue.detail)


# --- the duplicate pre-check (spec §12) and batches -------------------------------------------------

def find_duplicates(api: ApiGetter, sha1: str) -> list[str]:
    """Names (DB key form) of the wiki's current files whose SHA-1 is *sha1*; ``[]`` when none.

    One ``list=allimages&aisha1=`` query. Deleted files are not listed (that needs
    ``list=filearchive`` and the ``deletedhistory`` right). API and transport errors propagate:
    they are not a property of the file, and the caller's retry policy owns them.
    """
    if len(sha1) != 40 or any(c not in "0123456789abcdefABCDEF" for c in sha1):
        raise ValueError(f"not a hex SHA-1: {sha1!r}")
    answer = api.get({"action": "query", "list": "allimages", "aisha1": sha1.lower(),
                      "aiprop": "sha1|size", "ailimit": "max"})
    return [str(image["name"]) for image in answer.get("query", {}).get("allimages", [])]


def validate_many(paths_or_items: Iterable[str | os.PathLike[str] | tuple[str | os.PathLike[str], str]],
                  rules: WikiRules, *, api: ApiGetter | None = None,
                  filenames: Mapping[str, str] | None = None, max_pixels: int | None = None) -> list[Verdict]:
    """Validate a batch (paths, or ``(path, wanted name)`` pairs), in order.

    With *api*, every acceptable file is looked up by SHA-1 on the wiki; a hit adds the warning
    ``duplicate-on-wiki`` and fills :attr:`Verdict.duplicates`. Files of the batch with the same
    bytes as an earlier one get ``duplicate-in-batch``: the wiki would warn ``duplicate`` on them.
    """
    verdicts: list[Verdict] = []
    first_by_sha1: dict[str, str] = {}
    for entry in paths_or_items:
        path, wanted = (entry if isinstance(entry, tuple) else (entry, None))
        wanted = wanted or (filenames or {}).get(os.fspath(path))
        verdict = validate_file(path, rules, filename=wanted, max_pixels=max_pixels)
        if verdict.ok and verdict.sha1:
            earlier = first_by_sha1.setdefault(verdict.sha1, verdict.source)
            verdict = _with_duplicates(verdict, wanted or os.path.basename(verdict.source), earlier, api)
        verdicts.append(verdict)
    return verdicts


def _with_duplicates(verdict: Verdict, shown: str, earlier: str, api: ApiGetter | None) -> Verdict:
    assert verdict.sha1 is not None
    extra: list[Finding] = []
    if earlier != verdict.source:
        extra.append(_finding("duplicate-in-batch", shown, f"has the same bytes as {earlier}",
                              severity="warn", advice="Only one of them needs uploading.", other=earlier))
    dupes = tuple(find_duplicates(api, verdict.sha1)) if api is not None else ()
    if dupes:
        extra.append(_finding("duplicate-on-wiki", shown, f"is already on the wiki as {', '.join(dupes)}",
                              severity="warn", names=list(dupes),
                              advice="The pipeline skips it unless its policy says upload anyway."))
    return replace(verdict, findings=verdict.findings + tuple(extra), duplicates=dupes)


def validate_folder(folder: str | os.PathLike[str], rules: WikiRules, *, api: ApiGetter | None = None,
                    recursive: bool = True, max_pixels: int | None = None) -> list[Verdict]:
    """Validate every file under *folder* (sorted; symlinked directories are not followed).

    Hidden files are included: a stray ``.DS_Store`` is reported, not silently dropped. A missing
    folder gives one ``not-found`` verdict, so a bad path never raises.
    """
    root = Path(folder)
    if not root.is_dir():
        return [validate_file(root, rules, max_pixels=max_pixels)]
    if recursive:
        paths = [Path(d, f) for d, _dirs, files in os.walk(root) for f in files]
    else:
        paths = [p for p in root.iterdir() if not p.is_dir()]
    return validate_many(sorted(paths), rules, api=api, max_pixels=max_pixels)
