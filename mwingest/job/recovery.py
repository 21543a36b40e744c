"""Find out what the wiki did with a publish whose answer never arrived (spec §14.7).

Why a module of its own: this is the one place where "did it land?" is answered, for every kind of
publish (a stash key, a direct upload, a copy upload, a rename), so the job never publishes the
same bytes twice. The questions are reads only: the file's current version by the name we sent,
and, for any name, ``list=allimages&aisha1=`` with our SHA-1.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta
from typing import Any

from mwingest.base.options import URL_SHA1
from mwingest.wiki import names, upload
from mwingest.wiki.session import WikiSession

#: Clocks of the wiki and of this machine may differ by this much (NTP keeps both far closer).
CLOCK_SKEW = timedelta(minutes=5)


def _when(text: str | None) -> datetime | None:
    try:
        return datetime.fromisoformat(str(text).replace("Z", "+00:00")) if text else None
    except ValueError:
        return None


def _ours(info: Mapping[str, Any], user: str | None, since: datetime | None) -> bool:
    """A version written by our account at or after the intent was recorded."""
    when = _when(info.get("timestamp"))
    by_us = user is None or names.title_key(str(info.get("user", ""))) == names.title_key(user)
    return by_us and (since is None or when is None or when >= since - CLOCK_SKEW)


def find_landed(session: WikiSession, intent: Mapping[str, Any], sha1: str,
                known: Iterable[str] = (), *, any_name: bool = False) -> dict[str, Any] | None:
    """The ``imageinfo`` of our publish if it landed, else None.

    ``intent`` is the ledger's record of the publish (``name``, ``at``); ``known`` lists names that
    held our bytes before it (the ``duplicate`` warning), which a look-up by SHA-1 must not take
    for our own publish. A copy upload (no SHA-1 of ours) counts as landed when the current
    version under the name was written by our account after the intent. ``any_name`` (renames:
    each retry may have tried another name) also looks for our bytes under every name.
    """
    name = str(intent.get("name") or "")
    since = _when(intent.get("at"))
    user = session.user
    info = upload.file_info(session, name) if name else None
    if info is not None:
        same = str(info.get("sha1", "")).lower() == sha1.lower()
        if (sha1 == URL_SHA1 and _ours(info, user, since)) or (sha1 != URL_SHA1 and same):
            return {**info, "name": _db_key(info, name)}
    if sha1 == URL_SHA1 or not any_name:
        return None
    before = {names.title_key(n) for n in known}
    for image in upload.find_by_sha1(session, sha1):
        if names.title_key(image.get("name", "")) in before or not _ours(image, user, since):
            continue
        return {**image, "name": image.get("name")}
    return None


def _db_key(info: Mapping[str, Any], fallback: str) -> str:
    title = str(info.get("title") or "")
    return title.split(":", 1)[1].replace(" ", "_") if ":" in title else fallback
