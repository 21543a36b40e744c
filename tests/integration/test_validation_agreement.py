"""Our local verdicts against the real wiki's answers, file by file (spec §10, §12).

Every corpus file is sent with ``stash=1`` (cheap: nothing is published, and the stash runs the
same content and name checks as a publish). Without ``ignorewarnings`` the answer also carries the
``badfilename`` warning with the name the wiki would use, which we compare with ours.

The claims checked:

* every file we pass is accepted by the wiki;
* for every file the wiki refuses, our first reason is the one :data:`WIKI_TO_OURS` maps its
  error to;
* the files we refuse although the wiki accepts them are exactly :data:`WE_ARE_STRICTER`;
* :func:`find_duplicates` finds a published file by its SHA-1, and nothing for a random one.

HTTP here is plain ``requests`` (bot-password ``action=login``, CSRF token, multipart POST), so the
test does not lean on the client code it indirectly checks.
"""

from __future__ import annotations

import hashlib
import random
import secrets
from pathlib import Path
from typing import Any

import pytest
import requests

from mwingest.base.hashing import sha1_file
from mwingest.checks.mimesniff import SCRIPT_MIMES
from mwingest.checks.validate import Verdict, find_duplicates, validate_file, validate_many
from mwingest.wiki.siteinfo import WikiRules
from tests.corpus import Case, build_corpus, png

pytestmark = pytest.mark.wiki

#: Corpus cases the wiki accepts and we refuse, with why we refuse them.
WE_ARE_STRICTER = {
    "png-truncated": "Pillow cannot decode it; the wiki stores it with width 0",
    "jpeg-truncated": "Pillow cannot decode it; the wiki has no JPEG integrity check",
    "png-zeros": "a PNG signature and nothing else; the wiki stores it 0x0",
    "png-bomb": "100000x100000 declared: over Pillow's MAX_IMAGE_PIXELS",
    "gif-bomb": "65535x65535 declared: over Pillow's MAX_IMAGE_PIXELS",
}
_SVG_SCRIPT_KEYS = ("uploaded-", "upload-scripted-", "uploadscriptednamespace")


def ours_for(error: dict[str, Any]) -> str:
    """The reason code our validator must give for the wiki's ``error`` object (the mapping)."""
    code = error["code"]
    if code == "verification-error":
        key, *params = error.get("details") or [""]
        if key == "filetype-mime-mismatch":
            return "mime-mismatch"
        if key in ("filetype-badmime", "filetype-bad-ie-mime"):
            return "script-content" if str(params[0]).lower() in SCRIPT_MIMES else "banned-type"
        if key == "uploadscripted":
            return "script-content"
        if key == "uploadinvalidxml":
            return "svg-invalid"
        if key.startswith(_SVG_SCRIPT_KEYS):
            return "svg-script"
        return f"unmapped verification-error {key}"
    if code == "filetype-banned":
        return "filetype-prohibited" if error.get("blacklisted") else "filetype-not-allowed"
    return {
        "empty-file": "empty-file", "file-too-large": "file-too-large",
        "filename-toolong": "filename-too-long", "illegal-filename": "bad-filename",
        "filename-tooshort": "bad-filename", "filetype-missing": "bad-filename",
    }.get(code, f"unmapped {code}")


class RawApi:
    """Just enough of the Action API over ``requests``: bot-password login, GET, stash upload."""

    def __init__(self, api_url: str, username: str, password: str) -> None:
        self.api_url = api_url
        self.http = requests.Session()
        self.http.trust_env = False  # loopback only, never through a proxy
        tokens = self.get({"action": "query", "meta": "tokens", "type": "login"})["query"]["tokens"]
        answer = self._post({"action": "login", "lgname": username, "lgpassword": password,
                             "lgtoken": tokens["logintoken"]})
        assert answer["login"]["result"] == "Success", answer["login"].get("reason")
        self.csrf = self.get({"action": "query", "meta": "tokens"})["query"]["tokens"]["csrftoken"]

    def get(self, params: dict[str, Any]) -> dict[str, Any]:
        query = {**params, "format": "json", "formatversion": "2"}
        resp = self.http.get(self.api_url, params=query, timeout=60)
        resp.raise_for_status()
        return resp.json()

    def _post(self, data: dict[str, Any], files: dict[str, Any] | None = None) -> dict[str, Any]:
        resp = self.http.post(self.api_url, data={**data, "format": "json", "formatversion": "2"},
                              files=files, timeout=120)
        resp.raise_for_status()
        return resp.json()

    def upload(self, data: bytes, filename: str, **extra: str) -> dict[str, Any]:
        params = {"action": "upload", "filename": filename, "token": self.csrf, **extra}
        return self._post(params, files={"file": ("upload.bin", data, "application/octet-stream")})


@pytest.fixture(scope="module")
def api(wiki: Any) -> RawApi:
    return RawApi(wiki.api_url, wiki.username, wiki.password)


@pytest.fixture(scope="module")
def rules(api: RawApi) -> WikiRules:
    return WikiRules.from_siteinfo(api.get({"action": "query", "meta": "siteinfo",
                                            "siprop": "general|fileextensions|namespaces|namespacealiases"}))


@pytest.fixture(scope="module")
def answers(api: RawApi, rules: WikiRules, tmp_path_factory: pytest.TempPathFactory
            ) -> list[tuple[Case, Verdict, dict[str, Any]]]:
    """Each uploadable corpus case, our verdict, and the wiki's answer to a ``stash=1`` upload."""
    cases = build_corpus(tmp_path_factory.mktemp("corpus"))
    out = []
    for case in cases:
        if not case.path.is_file():
            continue  # missing file, directory: nothing to send
        verdict = validate_file(case.path, rules, filename=case.wanted)
        out.append((case, verdict, api.upload(case.path.read_bytes(), case.wanted, stash="1")))
    return out


def _accepted(answer: dict[str, Any]) -> bool:
    return answer.get("upload", {}).get("result") in ("Success", "Warning")


def test_files_we_pass_are_accepted_by_the_wiki(answers: list[tuple[Case, Verdict, dict[str, Any]]]) -> None:
    refused = {case.key: answer.get("error") for case, verdict, answer in answers
               if verdict.ok and not _accepted(answer)}
    assert refused == {}
    assert sum(1 for _c, v, _a in answers if v.ok) >= 20


def test_wiki_refusals_match_our_reason(answers: list[tuple[Case, Verdict, dict[str, Any]]]) -> None:
    pairs = {case.key: (verdict.reason, ours_for(answer["error"]))
             for case, verdict, answer in answers if "error" in answer}
    assert len(pairs) >= 25
    assert {key: p for key, p in pairs.items() if p[0] != p[1]} == {}


def test_we_are_stricter_exactly_where_listed(answers: list[tuple[Case, Verdict, dict[str, Any]]]) -> None:
    stricter = {case.key for case, verdict, answer in answers if not verdict.ok and _accepted(answer)}
    assert stricter == set(WE_ARE_STRICTER)


def test_badfilename_warning_matches_our_prediction(answers: list[tuple[Case, Verdict, dict[str, Any]]]
                                                    ) -> None:
    checked = 0
    for case, verdict, answer in answers:
        if not _accepted(answer) or not verdict.ok:
            continue
        warned = answer["upload"].get("warnings", {}).get("badfilename")
        ours = next((f for f in verdict.findings if f.code == "bad-filename"), None)
        assert (warned is not None) == (ours is not None), case.key
        if warned is not None:
            assert verdict.filename == warned, case.key
            checked += 1
    assert checked >= 5


def test_find_duplicates_finds_a_published_file(api: RawApi, rules: WikiRules, tmp_path: Path) -> None:
    data = png(random.Random(), secrets.token_hex(6))
    name = f"Dupcheck-{secrets.token_hex(4)}.png"
    answer = api.upload(data, name, ignorewarnings="1", comment="find_duplicates test")
    assert answer.get("upload", {}).get("result") == "Success", answer
    sha1 = hashlib.sha1(data).hexdigest()
    assert find_duplicates(api, sha1) == [name]
    assert find_duplicates(api, sha1.upper()) == [name]
    assert find_duplicates(api, secrets.token_hex(20)) == []

    local = tmp_path / "copy.png"
    local.write_bytes(data)
    assert sha1_file(local) == sha1
    verdict, = validate_many([local], rules, api=api)
    assert verdict.ok and verdict.duplicates == (name,)
    assert [f.code for f in verdict.findings] == ["duplicate-on-wiki"]
    assert verdict.findings[0].severity == "warn" and verdict.findings[0].detail["names"] == [name]
