"""Agreement test: :func:`predict_title` says what the real wiki says, name by name (spec §9).

A fixed corpus (the spec's examples, hand-picked parser corners, and seeded-random names mixing the
risky characters) is uploaded with ``stash=1``: stashing is cheap, skips the title-permission
checks, and still answers name errors as error codes and ``badfilename`` as a warning carrying the
wiki's normalised name. Plain ``requests``, so the check does not lean on mwingest's own client.

How an answer is compared (content is checked before the name, spec §3):

* an error code → the prediction has the same error (and the same ``blacklisted`` parts);
* ``verification-error`` ``filetype-mime-mismatch`` → the wiki computed a final extension that does
  not fit the bytes; it reports that extension, and the prediction must have found the same one;
* ``Success``/``Warning`` → the prediction is ok with the same ``badfilename`` flag; when the wiki
  names the file (``badfilename``, ``thumb-name``, ``bad-prefix``…) the names must match, and the
  ``thumb-name``/``bad-prefix`` warnings must match :func:`is_thumbnail_like`/:func:`has_bad_prefix`.
"""

from __future__ import annotations

import io
import random
import secrets
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
import requests

from mwingest.wiki.names import (
    TitlePrediction,
    has_bad_prefix,
    is_thumbnail_like,
    normalised_extension,
    predict_title,
    sanitise,
)
from mwingest.wiki.siteinfo import SITEINFO_PARAMS, WikiRules

pytestmark = pytest.mark.wiki

RISKY = [":", "/", "\\", "#", "<", ">", "[", "]", "{", "}", "|", "%", "%2F", "%zz", "&", "&amp;",
         "&#58;", "&#x41;", ";", "~", "~~~", ".", "..", "./", "_", "-", " ", "  ", "\t", "\n", "\x01",
         "\x7f", "\x85", "\u00a0", "\u200b", "\u200e", "\u202b", "\u2066", "\u3000", "\ufeff",
         "\ufffd", "e\u0301", "\u00df", "\u0130", "\u01c5", "\u0149", "😀", "+", "?", "'", '"', "@",
         "File:", "Image:", "Talk:", "file :", ":", ".php", ".exe", ".js", ".PHP", "120px-", "DSC_",
         "IMG", "é" * 3]
FINAL_EXTS = [".png"] * 8 + [".PNG", ".jpg", ".jpeg", ".gif", ".txt", ".php", ".", "", ".png ",
                             ".png.exe", " .png"]


def _corpus(token: str) -> list[str]:
    """~300 names: the spec's table, parser corners, then seeded-random mixes (same every run)."""
    t = token
    spec = [f"my photo {t}.png", f"a   b{t}.png", f"  lead{t} .png  ", f"a:b{t}.png", f"dir/sub{t}.png",
            f"dir\\sub{t}.png", f"a#b{t}.png", f"a<b>{t}.png", f"a[b]{t}.png", f"a{{b}}|{t}.png",
            f"a\tb{t}.png", f"a\x7fb{t}.png", f"a?b+c'd\"{t}.png", f"a&b{t}.png", f"a%20b{t}.png",
            f"a&amp;b{t}.png", f"a~~~{t}.png", f"a\x01b{t}.png", f"../up{t}.png", f".hidden{t}.png",
            ".png", f"File:pref{t}.png", f"Image:alias{t}.png", f"Talk:talk{t}.png",
            f"wikipedia:iw{t}.png", f"über{t}.png", f"ß{t}.png", f"e\u0301{t}.png", f"a\u00a0b{t}.png",
            f"a\u3000b{t}.png", f"a\u200eb{t}.png", f"a\u200bb{t}.png", f"😀{t}.png", f"upper{t}.PNG",
            f"double{t}.jpg.png", f"noext{t}", f"dot{t}.", f"extspace{t}.png ", "A" * 236 + ".png",
            "A" * 237 + ".png", "é" * 117 + t[:2] + ".png", f"Shell{t}.php.png"]
    corners = [f"File:a#b{t}.png", f"File:a&amp;b{t}.png", f"File&#58;x{t}.png", f"File:../x{t}.png",
               f"File::x{t}.png", f":File:x{t}.png", f"file : low{t}.png", f"File:a<b{t}.png",
               f"Talk:File:x{t}.png", f"File talk:x{t}.png", f"Media:x{t}.png", f"Datei:x{t}.png",
               f"File:File:x{t}.png", f"&#x41;{t}.png", f"a%zz{t}.png", f"a%%41{t}.png", f"a~~{t}.png",
               "..png", "...png", f"./x{t}.png", f"x{t}/.", f"120px-x{t}.png", f"1apx-x{t}.png",
               f"DSC_{t}.png", f"IMG{t}.png", f"img{t}.png", f"\u0130{t}.png", f"\u01c5{t}.png",
               f"\u0149{t}.png", f"i\u0307{t}.png", f"\x85{t}.png", f"x\u2066{t}.png", f"\ufeff{t}.png",
               f"\ufffd{t}.png", f"a\x00b{t}.png", f"a\rb{t}.png", f"a\nb{t}.png", f"p.php{t}.png",
               f"x{t}.PhP.png", f"x{t}.png.exe", f"x{t}.txt", f"pic{t}.jpeg", f"pic{t}.JPG",
               f"anim{t}.gif", f"#{t}.png", f"{t}", "   ", "", "File:", f"x{t}" + "😀" * 58 + ".png",
               "File:" + "A" * 236 + ".png", "<" * 237 + ".png", "a" * 234 + "\x01.png"]
    rng = random.Random(20261125)
    mixes = []
    while len(spec) + len(corners) + len(mixes) < 300:
        pieces = [rng.choice(RISKY) if rng.random() < 0.45 else rng.choice("abcxyzABC0123")
                  for _ in range(rng.randint(1, 14))]
        pieces.insert(rng.randint(0, len(pieces)), t)
        mixes.append("".join(pieces) + rng.choice(FINAL_EXTS))
    return spec + corners + mixes


def _content(name: str) -> tuple[bytes, str]:
    """Unique bytes fitting the name's apparent extension (so the name check is reached), and the
    extension MediaWiki detects for them (appended when the name has no dot at all)."""
    from PIL import Image

    ext = name.rsplit(".", 1)[-1].strip().lower()
    fmt, detected = {"jpg": ("JPEG", "jpg"), "jpeg": ("JPEG", "jpg"), "gif": ("GIF", "gif")}.get(
        ext, ("PNG", "png"))
    rng = random.Random(secrets.randbits(64))
    buf = io.BytesIO()
    Image.frombytes("RGB", (6, 6), rng.randbytes(108)).save(buf, format=fmt)
    return buf.getvalue(), detected


def _session(wiki: Any) -> tuple[requests.Session, str]:
    """Log in with the bot password; return the session and a csrf token."""
    http = requests.Session()
    http.trust_env = False  # loopback only, never a proxy
    api, base = wiki.api_url, {"format": "json", "formatversion": "2"}
    token = http.get(api, params={**base, "action": "query", "meta": "tokens", "type": "login"},
                     timeout=30).json()["query"]["tokens"]["logintoken"]
    login = http.post(api, data={**base, "action": "login", "lgname": wiki.username,
                                 "lgpassword": wiki.password, "lgtoken": token}, timeout=30).json()
    assert login["login"]["result"] == "Success", login["login"].get("reason")
    csrf = http.get(api, params={**base, "action": "query", "meta": "tokens"},
                    timeout=30).json()["query"]["tokens"]["csrftoken"]
    return http, csrf


def _stash(http: requests.Session, api: str, csrf: str, name: str, content: bytes) -> dict[str, Any]:
    data = {"action": "upload", "stash": "1", "filename": name, "token": csrf,
            "format": "json", "formatversion": "2"}
    return http.post(api, data=data, files={"file": ("blob", content, "application/octet-stream")},
                     timeout=120).json()


def _disagreement(pred: TitlePrediction, answer: dict[str, Any], detected: str) -> str | None:
    """None when the wiki's answer matches the prediction, else what differs."""
    if "error" in answer:
        err = answer["error"]
        if err["code"] == "verification-error":
            details = err.get("details") or []
            if details[:1] == ["filetype-mime-mismatch"]:
                if pred.extension == details[1]:
                    return None  # the wiki computed the same final extension; content answered first
            elif pred.extension and normalised_extension(pred.extension) != detected:
                return None  # e.g. IE sniffing with a ".js" hint: the extension did not fit the bytes
            return f"verification-error {details} vs predicted {pred}"
        if err["code"] != pred.error:
            return f"error {err['code']} vs predicted {pred}"
        if err["code"] == "filetype-banned" and set(err.get("blacklisted", [])) != set(pred.banned_parts):
            return f"blacklisted {err.get('blacklisted')} vs predicted {pred.banned_parts}"
        return None
    upload = answer["upload"]
    warnings = upload.get("warnings", {}) if upload["result"] == "Warning" else {}
    if not pred.ok:
        return f"accepted ({upload['result']} {warnings}) vs predicted {pred}"
    if ("badfilename" in warnings) != pred.badfilename:
        return f"badfilename {warnings.get('badfilename')!r} vs predicted {pred}"
    for key in ("badfilename", "thumb-name", "bad-prefix", "exists", "page-exists"):
        if key in warnings and warnings[key] != pred.title:
            return f"{key} {warnings[key]!r} vs predicted title {pred.title!r}"
    if not {"exists", "page-exists", "exists-normalized", "thumb"} & set(warnings):
        thumb = is_thumbnail_like(pred.title or "")
        if ("thumb-name" in warnings) != thumb:
            return f"thumb-name {'thumb-name' in warnings} vs is_thumbnail_like {thumb}"
        if not thumb and ("bad-prefix" in warnings) != has_bad_prefix(pred.title or ""):
            return f"bad-prefix {'bad-prefix' in warnings} vs has_bad_prefix for {pred.title!r}"
    return None


def test_predictions_agree_with_the_wiki(wiki: Any) -> None:
    http, csrf = _session(wiki)
    siteinfo = http.get(wiki.api_url, params={**SITEINFO_PARAMS, "format": "json", "formatversion": "2"},
                        timeout=30).json()
    rules = WikiRules.from_siteinfo(siteinfo)
    names = _corpus(secrets.token_hex(2))
    contents = [_content(name) for name in names]
    with ThreadPoolExecutor(max_workers=4) as pool:
        answers = list(pool.map(lambda nc: _stash(http, wiki.api_url, csrf, nc[0], nc[1][0]),
                                zip(names, contents, strict=True)))
    problems, outcomes = [], Counter()
    for name, (_bytes, detected), answer in zip(names, contents, answers, strict=True):
        # content_ext only matters when no dot is left in the name: then the wiki appends the
        # extension it detects in the bytes.
        pred = predict_title(name, rules, content_ext=detected)
        outcomes[_outcome(answer)] += 1
        if (problem := _disagreement(pred, answer, detected)) is not None:
            problems.append(f"{name!r}: {problem}")
    assert not problems, f"{len(problems)}/{len(names)} disagreements:\n" + "\n".join(problems[:40])
    # The corpus must really reach every branch of the name check, or agreement means little.
    expected = {"Success", "badfilename", "illegal-filename", "filename-toolong", "filename-tooshort",
                "filetype-missing", "filetype-banned", "verification-error"}
    assert expected <= set(outcomes), dict(outcomes)
    assert sum(outcomes.values()) == len(names) >= 290


def test_sanitised_names_are_accepted_unchanged(wiki: Any) -> None:
    """Every 3rd corpus name, sanitised, is stashed without an error or a ``badfilename`` warning."""
    http, csrf = _session(wiki)
    rules = WikiRules.from_siteinfo(http.get(
        wiki.api_url, params={**SITEINFO_PARAMS, "format": "json", "formatversion": "2"}, timeout=30).json())
    clean = [sanitise(name, rules, ext_hint="png") for name in _corpus(secrets.token_hex(2))[::3]]
    with ThreadPoolExecutor(max_workers=4) as pool:
        answers = list(pool.map(lambda n: _stash(http, wiki.api_url, csrf, n, _content(n)[0]), clean))
    refused = [(name, answer) for name, answer in zip(clean, answers, strict=True)
               if "error" in answer or "badfilename" in answer["upload"].get("warnings", {})]
    assert not refused, refused[:20]
    assert len(clean) >= 95


def _outcome(answer: dict[str, Any]) -> str:
    if "error" in answer:
        return str(answer["error"]["code"])
    upload = answer["upload"]
    return "badfilename" if "badfilename" in upload.get("warnings", {}) else str(upload["result"])
