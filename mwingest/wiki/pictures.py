"""Thumbnails for people: the file already on the wiki, our stashed copy, the files that landed.

Why: a reviewer deciding between *skip*, *publish* and *rename* wants to see the two pictures,
not two SHA-1s. The wiki makes both thumbnails itself: ``prop=imageinfo&iiurlwidth=`` for a
published file, ``prop=stashimageinfo&siiurlwidth=`` for a stashed one (API:Imageinfo,
API:Stashimageinfo). Lookups are batched (50 titles or keys a request) and never raise for a
missing file: a report with a picture less is better than no report.

A stashed file is private to the account that stashed it: its thumbnail URL
(``Special:UploadStash/thumb/…``) shows only in a browser logged in to the wiki as that account
(the wiki answers others with an error page), and the uploader is usually a bot password nobody
can log in as. So the review form shows *our* file from its local bytes (:func:`local_picture`:
a small PNG made with Pillow, embedded as a ``data:`` URI, which the Prefect UI's markdown
renders for images), and falls back to the stash's thumbnail only when the bytes are not here.
"""

from __future__ import annotations

import base64
import io
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

from mwingest.base import markdown as md

#: Width of the pictures in the review form, and in the run's summary. Two of 180 px side by side
#: fit the UI's Resume dialog (~460 px of content) without a horizontal scroll bar.
FORM_WIDTH, SUMMARY_WIDTH = 180, 120
#: Files of each kind (landed, waiting) the summary shows with pictures.
SUMMARY_FILES = 50
_PER_REQUEST = 50


class ApiGetter(Protocol):
    def get(self, params: Mapping[str, Any]) -> dict[str, Any]: ...


@dataclass(frozen=True)
class Picture:
    """A file's thumbnail and the facts shown beside it."""

    thumb_url: str
    url: str = ""  # the full file
    page_url: str = ""  # its description page (published files)
    width: int | None = None
    height: int | None = None
    size: int | None = None
    timestamp: str = ""
    user: str = ""
    sha1: str = ""

    @property
    def public(self) -> bool:
        """Whether any browser sees it (not a stash URL that shows only to its own account)."""
        return self.thumb_url.startswith("data:") or "UploadStash" not in self.thumb_url

    def facts(self) -> str:
        """``40×30 px, 1,234 bytes, 2026-12-03 16:01:02 UTC, by X, SHA-1 …`` (what is known)."""
        parts = []
        if self.width and self.height:
            parts.append(f"{self.width}×{self.height} px")
        if self.size is not None:
            parts.append(f"{self.size:,} bytes")
        if self.timestamp:
            parts.append(self.timestamp.replace("T", " ").removesuffix("Z") + " UTC")
        if self.user:
            parts.append(f"by {self.user}")
        if self.sha1:  # the start: the full one is in the form's text, and 40 digits do not wrap
            parts.append(f"SHA-1 {self.sha1[:12]}…")
        return ", ".join(parts)


def _picture(info: Mapping[str, Any], page_url: str = "") -> Picture | None:
    thumb = info.get("thumburl") or ""
    if not thumb:  # no scaler, or a type without thumbnails
        return None
    return Picture(thumb_url=thumb, url=info.get("url", ""),
                   page_url=page_url or info.get("descriptionurl", ""),
                   width=info.get("width"), height=info.get("height"), size=info.get("size"),
                   timestamp=info.get("timestamp", ""), user=info.get("user", ""),
                   sha1=info.get("sha1", ""))


def file_pictures(api: ApiGetter, filenames: Iterable[str], width: int) -> dict[str, Picture]:
    """Thumbnails of published files, by file name (spaces as underscores) as given."""
    names = sorted({n.replace(" ", "_") for n in filenames if n})
    out: dict[str, Picture] = {}
    for start in range(0, len(names), _PER_REQUEST):
        batch = names[start:start + _PER_REQUEST]
        answer = api.get({"action": "query", "titles": "|".join(f"File:{n}" for n in batch),
                          "prop": "imageinfo", "iiprop": "url|size|timestamp|user|sha1",
                          "iiurlwidth": width})
        for page in answer.get("query", {}).get("pages", []):
            infos = page.get("imageinfo") or []
            picture = _picture(infos[0]) if infos else None
            if picture is not None:
                out[page["title"].split(":", 1)[1].replace(" ", "_")] = picture
    return out


def stash_pictures(api: ApiGetter, filekeys: Iterable[str], width: int) -> dict[str, Picture]:
    """Thumbnails of our stashed files, by stash key (keys the wiki no longer has are left out)."""
    from mwingest.base.errors import ApiError

    keys = sorted({k for k in filekeys if k})
    out: dict[str, Picture] = {}
    for start in range(0, len(keys), _PER_REQUEST):
        batch = keys[start:start + _PER_REQUEST]
        try:
            answer = api.get({"action": "query", "prop": "stashimageinfo",
                              "siifilekey": "|".join(batch), "siiprop": "url|size|timestamp|sha1",
                              "siiurlwidth": width})
        except ApiError:  # one expired key fails the whole request: ask one by one
            if len(batch) == 1:
                continue
            for key in batch:
                out.update(stash_pictures(api, [key], width))
            continue
        infos = answer.get("query", {}).get("stashimageinfo", [])
        for key, info in zip(batch, infos, strict=False):
            picture = _picture(info)
            if picture is not None:
                out[info.get("filekey") or key] = picture
    return out


def local_picture(path: str, *, sha1: str = "", width: int = FORM_WIDTH) -> Picture | None:
    """Our file's thumbnail from its local bytes, as a ``data:image/png`` URI any browser that
    opens the Prefect UI shows (no wiki login); None for a source that is not a local image
    Pillow can read (a URL, a PDF, an SVG, a damaged file). ``width`` is the thumbnail's width,
    as the wiki's ``iiurlwidth`` is (a very tall picture is bounded at four times that)."""
    try:
        from PIL import Image

        stat = os.stat(path)
        with Image.open(path) as image:
            size = image.size
            image.draft("RGB", (width, width))  # a JPEG decodes at a fraction of its size
            image.thumbnail((width, 4 * width))
            shown = image.convert("RGBA" if "A" in image.getbands() or image.mode == "P"
                                  else "RGB")
            buf = io.BytesIO()
            shown.save(buf, format="PNG", optimize=True)
    except Exception:  # noqa: BLE001 - no picture is better than no review form
        return None
    when = datetime.fromtimestamp(stat.st_mtime, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return Picture(thumb_url="data:image/png;base64," + base64.b64encode(buf.getvalue()).decode(),
                   width=size[0], height=size[1], size=stat.st_size, timestamp=when, sha1=sha1)


def side_by_side(existing: Picture | None, ours: Picture | None) -> str:
    """A markdown table: the wiki's file and ours, each picture over its size, date and SHA-1."""
    if existing is None and ours is None:
        return ""
    def cell(picture: Picture | None, alt: str) -> str:
        return f"![{alt}]({md.image_url(picture.thumb_url)})" if picture else "(no picture)"

    def facts(picture: Picture | None) -> str:
        return md.text(picture.facts()) if picture else ""

    lines = ["| already on the wiki | this file |", "|---|---|",
             f"| {cell(existing, 'on the wiki')} | {cell(ours, 'this file')} |",
             f"| {facts(existing)} | {facts(ours)} |"]
    if ours is not None and not ours.public:
        lines += ["", "*This file's picture comes from the wiki's stash: it shows only to a "
                  "browser logged in to the wiki as the uploading account.*"]
    return "\n".join(lines)


def review_pictures(api: ApiGetter, target: str, filekey: str | None, width: int = FORM_WIDTH,
                    *, local: str | None = None, sha1: str = "") -> str:
    """The side-by-side table for one file that needs a decision: the wiki's file, and ours from
    its ``local`` bytes (else from the stash); empty when neither has a picture (the form still
    has every fact without it)."""
    from mwingest.base.errors import MWIngestError

    ours = local_picture(local, sha1=sha1, width=width) if local else None
    try:
        existing = file_pictures(api, [target], width).get(target.replace(" ", "_"))
        if ours is None and filekey:
            ours = stash_pictures(api, [filekey], width).get(filekey)
    except MWIngestError:
        existing = None
    return side_by_side(existing, ours)


def for_outcomes(api: ApiGetter, outcomes: Iterable[Any], width: int = SUMMARY_WIDTH
                 ) -> tuple[dict[str, Picture], dict[str, Picture]]:
    """Pictures for a run's summary: published files by name (those that landed, and those that
    a file waiting for review collides with), stashed ones by key. Empty when the wiki cannot
    be asked: the report must not fail for a picture."""
    from mwingest.base.errors import MWIngestError

    # As many as the summary shows (50 of each): the wiki renders every thumbnail it is asked for.
    outcomes = list(outcomes)
    wanted = [o for o in outcomes if o.outcome == "uploaded" and o.url][:SUMMARY_FILES]
    wanted += [o for o in outcomes if o.outcome == "needs-review" and o.filename][:SUMMARY_FILES]
    try:
        files = file_pictures(api, [o.filename for o in wanted], width)
        stash = stash_pictures(api, [o.filekey for o in wanted if o.filekey], width)
    except MWIngestError:
        return {}, {}
    return files, stash
