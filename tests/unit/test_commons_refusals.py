"""Issue 26, the parts a real wiki cannot show on demand, and the pure pieces.

The captcha: ConfirmEdit 1.39 asks none on ``action=upload`` (tests/integration/test_commons_rules.py
shows the upload landing with its triggers on), so the answer a later release or another captcha
extension gives an upload — ``action=edit``'s shape, ``result: Failure`` with a ``captcha`` — comes
from the scripted fake wiki (:mod:`tests.unit.fakewiki`, its docstring says why a fake). Every
other extension's answer is the real wiki's, in the integration test.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

import mwingest.checks.validate as validate_module
from mwingest.base.errors import PermanentApiError, api_error
from mwingest.checks.blacklists import camera_hint, external_urls
from mwingest.job import refusals
from mwingest.ledger.ledger import Ledger, State
from mwingest.wiki.upload import UploadResult
from tests.unit.fakewiki import FakeWiki
from tests.unit.test_job_unit import context, png, run


class CaptchaWiki(FakeWiki):
    """Asks a captcha on the first direct upload, as ``action=edit`` asks one (the file kept in
    the stash, its key in the answer); publishing the kept copy later passes."""

    def _upload(self, params: Any, files: Any) -> dict[str, Any]:
        data = self._read(files["file"])
        key = self._new_key("captcha")
        self.stash[key] = {"data": data, "status": "finished", "filesize": len(data)}
        return {"upload": {"result": "Failure", "filekey": key,
                           "captcha": {"type": "simple", "mime": "text/plain", "id": "42",
                                       "question": "1+1"}}}


def test_a_captcha_request_waits_for_the_account_and_publishes_the_kept_copy(tmp_path: Path):
    wiki = CaptchaWiki()
    with Ledger(tmp_path / "ledger.sqlite3") as ledger:
        ctx = context(wiki, ledger)
        path = png(tmp_path / "Harbour.png", 8)
        job = run(ctx, path)
        outcome = job.outcome()
        assert (outcome.outcome, outcome.reason) == ("needs-review", "captcha-required")
        assert "skipcaptcha" in (outcome.message or "") and outcome.filekey
        assert not wiki.files and job.row is not None and job.row.filekey == outcome.filekey
        # Once the account may skip captchas, a person publishes the kept copy: no bytes again.
        decided = type(job).from_ledger(ctx, job.row.id)
        decided.decide("publish", by="reviewer")
        decided.run()
        assert decided.outcome().outcome == "uploaded" and decided.bytes_sent == 0
        assert list(wiki.files) == ["Harbour.png"]
        assert ledger.get(job.row.id).state is State.UPLOADED


def test_upload_failure_answers_are_errors():
    with pytest.raises(PermanentApiError) as caught:
        UploadResult.parse({"upload": {"result": "Failure", "captcha": {"id": "1"}}})
    assert caught.value.code == "captcha" and caught.value.data["captcha"] == {"id": "1"}
    refusal = refusals.classify(caught.value, "A_b.png")
    assert refusal is not None and refusal.reason == "captcha-required"
    assert refusal.message.startswith("A b.png: ")


@pytest.mark.parametrize(("code", "data", "outcome", "reason"), [
    ("abusefilter-disallowed", {"abusefilter": {"id": "3", "description": "No spam"}},
     "rejected", "abusefilter-disallowed"),
    ("abusefilter-warning", {"abusefilter": {"id": "4", "description": "Check it"}},
     "needs-review", "abusefilter-warning"),
    ("titleblacklist-forbidden-edit", {"invalidparameter": "filename"}, "rejected",
     "title-blacklisted"),
    ("spamblacklist", {"spamblacklist": {"matches": ["spam.example"]}}, "rejected", "spam-url"),
    ("permissiondenied", {}, None, None),
])
def test_refusals_are_classified(code, data, outcome, reason):
    refusal = refusals.classify(api_error(code, "info", {**data, "filekey": "k1"}), "IMG_1.jpg")
    assert (refusal and refusal.outcome, refusal and refusal.reason) == (outcome, reason)
    if refusal is not None:
        assert refusal.filekey == "k1"


def test_external_urls_of_a_page_text():
    text = ("{{Information|source=https://a.example/x?y=1|author=[http://b.example/p B]}} "
            "see //c.example/z, and ftp://d.example/f. Not a link: http://localhost, [[File:x.jpg]]")
    assert external_urls(text) == ["https://a.example/x?y=1", "http://b.example/p",
                                   "//c.example/z", "ftp://d.example/f"]
    assert external_urls(None) == []


@pytest.mark.parametrize(("name", "camera"), [
    ("IMG_1234.jpg", True), ("DSC01234.JPG", True), ("IMG 1234.jpg", True), ("DSCN0042.jpg", True),
    ("PXL_20230101_123456.jpg", True), ("Harbour 1911.jpg", False), ("Image of the pier.jpg", False)])
def test_camera_names_get_a_hint(name, camera):
    assert bool(camera_hint(name)) is camera


def test_every_reason_the_checks_give_is_in_validates_table():
    """The reason table in mwingest.checks.validate's docstring names every code a check emits."""
    table = set(re.findall(r"^``([a-z0-9-]+)``", validate_module.__doc__ or "", re.M))
    root = Path(validate_module.__file__).parent
    emitted = set()
    for source in root.glob("*.py"):
        text = source.read_text(encoding="utf-8")
        emitted |= set(re.findall(r'Issue\(\s*"([a-z0-9-]+)"', text))
        emitted |= set(re.findall(r'_finding\(\s*"([a-z0-9-]+)"', text))
    assert "unverified-pdf" in emitted
    assert emitted <= table, sorted(emitted - table)


def test_landed_and_refused_rows_print_titles_with_spaces():
    from mwingest.base.items import Outcome
    from mwingest.cli.progress import plain_line

    landed = plain_line(Outcome("/s/a.png", "Harbour_view_1911.png", "uploaded", "verified",
                                "landed as File:Harbour view 1911.png (SHA-1 verified)"))
    assert "Harbour view 1911.png <- /s/a.png" in landed and "Harbour_view" not in landed
