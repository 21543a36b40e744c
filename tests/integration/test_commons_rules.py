"""Issue 26: a Commons-like wiki's extensions, each with a rule of this test's own.

TitleBlacklist and SpamBlacklist are asked before a byte is sent (0 bytes, nothing in the wiki's
stash); AbuseFilter's refusals come only with the upload: ``disallow`` ends ``rejected`` (and a
re-run sends nothing unless the text changed), ``warn`` waits for a person, whose ``publish``
lands the kept stash copy once. ConfirmEdit 1.39 asks no captcha on uploads (it does on edits):
the upload lands. Assertions are on what the wiki holds.
"""

from __future__ import annotations

import csv
import hashlib
from pathlib import Path

import pytest

from mwingest.dev.commonswiki import CAPTCHA_ON_CREATE, CommonsRules
from mwingest.job.settings import BatchSettings
from mwingest.ledger.ledger import Ledger, State
from mwingest.wiki import upload
from tests.integration.wikihelpers import admin_main_session, png_bytes, png_of_size, session_for

pytestmark = pytest.mark.wiki

TITLE_LINES = [r"File:(IMG|DSC)[ _]?\d+\.\w+ # camera names: give a descriptive title",
               r"File:.*Forbidden[ _]word.*"]
SPAM_LINES = [r"\bspam-site\.example\b"]
CHUNK_MB = 0.1  # files over 100 kB go in chunks


def _sha1(data: bytes) -> str:
    return hashlib.sha1(data).hexdigest()  # noqa: S324


def _base36(sha1: str) -> str:
    """The stash's ``us_sha1`` form of a hex SHA-1 (base 36, 31 digits)."""
    n, digits = int(sha1, 16), "0123456789abcdefghijklmnopqrstuvwxyz"
    out = ""
    while n:
        n, r = divmod(n, 36)
        out = digits[r] + out
    return out.rjust(31, "0")


@pytest.fixture(scope="module")
def rules(commons_wiki) -> CommonsRules:
    rules = CommonsRules(commons_wiki, admin_main_session(commons_wiki))
    rules.set_title_blacklist(TITLE_LINES)
    rules.set_spam_blacklist(SPAM_LINES)
    return rules


@pytest.fixture
def env(commons_wiki, monkeypatch):
    monkeypatch.setenv("MWINGEST_USERNAME", commons_wiki.username)
    monkeypatch.setenv("MWINGEST_PASSWORD", commons_wiki.password)
    monkeypatch.delenv("PREFECT_API_URL", raising=False)


def _manifest(path: Path, rows: list[dict[str, str]]) -> Path:
    with path.open("w", newline="", encoding="utf-8") as out:
        writer = csv.DictWriter(out, fieldnames=["source", "filename", "text"])
        writer.writeheader()
        writer.writerows(rows)
    return path


def _run(commons_wiki, sources: list[str], ledger: Path, **flat) -> dict[str, dict]:
    from flows.ingest import ingest_batch

    settings = BatchSettings.from_flat(chunk_size_mb=CHUNK_MB, review_timeout_s=0,
                                       ledger_path=str(ledger), **flat)
    rows = ingest_batch(sources=sources, wiki=commons_wiki.api_url, settings=settings)
    return {Path(o["source"]).name: o for o in rows}


def test_blacklists_and_filters_in_one_batch(commons_wiki, rules, env, prefect_harness,
                                              tmp_path, unique):
    from flows.resolve import resolve_review

    u = unique()
    disallow = rules.add_filter(f'action == "upload" & new_wikitext contains "Disallow-{u}"',
                                "disallow", f"Uploads marked Disallow-{u}")
    warn = rules.add_filter(f'action == "upload" & new_wikitext contains "Warn-{u}"',
                            "warn", f"Uploads marked Warn-{u}")
    session = session_for(commons_wiki)
    stash_before = rules.stash_rows()
    files = {"good": png_bytes(), "good-big": png_of_size(300_000), "camera": png_bytes(),
             "camera-big": png_of_size(300_000), "spam": png_bytes(), "disallow": png_bytes(),
             "disallow-big": png_of_size(300_000), "warn": png_bytes()}
    for key, data in files.items():
        (tmp_path / f"{key}.png").write_bytes(data)
    n = u[-4:]
    rows = [
        {"source": "good.png", "filename": f"Harbour {u}.png", "text": "The harbour"},
        {"source": "good-big.png", "filename": f"Harbour big {u}.png", "text": "The harbour"},
        {"source": "camera.png", "filename": f"IMG_{n}1.png", "text": "A photo"},
        {"source": "camera-big.png", "filename": f"DSC0{n}2.png", "text": "A scan"},
        {"source": "spam.png", "filename": f"Spam {u}.png",
         "text": "Bought at [https://www.spam-site.example/shop?id=1 the shop]."},
        {"source": "disallow.png", "filename": f"Refused {u}.png", "text": f"Disallow-{u}"},
        {"source": "warn.png", "filename": f"Warned {u}.png", "text": f"Warn-{u}"},
        # Chunked: the filter refuses at the publish from the stash, which keeps the copy.
        {"source": "disallow-big.png", "filename": f"Refused big {u}.png", "text": f"Disallow-{u}"},
    ]
    manifest = _manifest(tmp_path / "batch.csv", rows)
    ledger = tmp_path / "ledger.sqlite3"

    out = _run(commons_wiki, [str(manifest)], ledger)

    got = {k: (o["outcome"], o["reason"], o["bytes_sent"]) for k, o in out.items()}
    assert got == {
        "good.png": ("uploaded", "verified", len(files["good"])),
        "good-big.png": ("uploaded", "verified", len(files["good-big"])),
        "camera.png": ("rejected", "title-blacklisted", 0),
        "camera-big.png": ("rejected", "title-blacklisted", 0),
        "spam.png": ("rejected", "spam-url", 0),
        "disallow.png": ("rejected", "abusefilter-disallowed", len(files["disallow"])),
        "warn.png": ("needs-review", "abusefilter-warning", len(files["warn"])),
        "disallow-big.png": ("rejected", "abusefilter-disallowed", len(files["disallow-big"])),
    }, out
    # The messages quote the wiki: its blacklist line, the matched domain, the filter.
    camera = out["camera.png"]["message"]
    assert TITLE_LINES[0] in camera and "descriptive title" in camera and f"IMG {n}1.png" in camera
    assert "descriptive title" in out["camera-big.png"]["message"]
    assert "spam-site.example" in out["spam.png"]["message"]
    assert f"Uploads marked Disallow-{u}" in out["disallow.png"]["message"]
    assert f"Uploads marked Warn-{u}" in out["warn.png"]["message"]
    # What the wiki holds: the good files, nothing of the refused ones; no stash copy of a
    # file refused before sending (the chunked one included).
    for key, name in (("good", f"Harbour {u}.png"), ("good-big", f"Harbour big {u}.png")):
        assert upload.file_info(session, name)["sha1"] == _sha1(files[key])
    for row in rows[2:]:  # every refused one
        assert upload.file_info(session, row["filename"]) is None, row
    new_stash = [r for r in rules.stash_rows() if r not in stash_before]
    refused_first = {_base36(_sha1(files[k])) for k in ("camera", "camera-big", "spam")}
    assert not refused_first & {r["us_sha1"] for r in new_stash}
    # The filter refusals keep the wiki's stash key, in the outcome and in the ledger row.
    assert {_base36(_sha1(files[k])) for k in ("disallow", "warn")} <= {r["us_sha1"] for r in new_stash}
    with Ledger(ledger) as led:
        by_id = {f"{k}.png": led.get(out[f"{k}.png"]["ledger_id"])
                 for k in ("disallow", "warn", "disallow-big")}
    for key, row in by_id.items():
        assert row.filekey and row.filekey == out[key]["filekey"], key
    assert [h["afl_actions"] for h in rules.filter_hits(disallow.id)] == ["disallow"] * 2

    # A re-run sends nothing again: the refused rows stay as they were, 0 bytes.
    again = _run(commons_wiki, [str(manifest)], ledger)
    assert {k: (o["outcome"], o["bytes_sent"]) for k, o in again.items()} == {
        "good.png": ("skipped", 0), "good-big.png": ("skipped", 0),
        "camera.png": ("rejected", 0), "camera-big.png": ("rejected", 0),
        "spam.png": ("rejected", 0), "disallow.png": ("rejected", 0),
        "warn.png": ("needs-review", 0), "disallow-big.png": ("rejected", 0)}, again
    assert [h["afl_actions"] for h in rules.filter_hits(disallow.id)] == ["disallow"] * 2

    # The text changed: the kept stash copy is published, still no bytes re-sent.
    rows[5]["text"] = "A plain description"
    fixed = _run(commons_wiki, [str(_manifest(tmp_path / "fixed.csv", [rows[5]]))], ledger)
    assert (fixed["disallow.png"]["outcome"], fixed["disallow.png"]["bytes_sent"]) == ("uploaded", 0)
    landed = upload.file_info(session, f"Refused {u}.png", history=True)
    assert landed["sha1"] == _sha1(files["disallow"]) and len(landed["versions"]) == 1

    # A person decides to publish the warned file: it lands once, from the kept copy.
    decided = resolve_review(item_id=out["warn.png"]["ledger_ref"], decision="publish",
                             wiki=commons_wiki.api_url, ledger_path=str(ledger))
    assert (decided["outcome"], decided["bytes_sent"]) == ("uploaded", 0), decided
    info = upload.file_info(session, f"Warned {u}.png", history=True)
    assert info["sha1"] == _sha1(files["warn"]) and len(info["versions"]) == 1
    # The filter's log: warned at the upload, warned again at the decision's publish (another
    # login session has not seen the warning), let through at the one re-submission.
    hits = [h["afl_actions"] for h in rules.filter_hits(warn.id)]
    assert hits == ["warn", "warn", ""], hits
    with Ledger(ledger) as led:
        row = led.get(out["warn.png"]["ledger_id"])
    assert row.state is State.UPLOADED and row.decision["action"] == "publish"


def test_check_command_shows_the_blacklists(commons_wiki, rules, tmp_path, unique):
    from mwingest.api import check_sources

    u = unique()
    camera = tmp_path / f"IMG_{u[-4:]}9.png"
    camera.write_bytes(png_bytes())
    fine = tmp_path / f"Pier {u}.png"
    fine.write_bytes(png_bytes())
    spam = tmp_path / f"Pier spam {u}.png"
    spam.write_bytes(png_bytes())
    manifest = _manifest(tmp_path / "m.csv", [
        {"source": camera.name, "filename": "", "text": "x"},
        {"source": fine.name, "filename": "", "text": "see https://ok.example/"},
        {"source": spam.name, "filename": "", "text": "see http://spam-site.example/x"}])

    out = {Path(o.source).name: o for o in check_sources([str(manifest)], wiki=commons_wiki.api_url)}

    assert {k: (o.outcome, o.reason) for k, o in out.items()} == {
        camera.name: ("rejected", "title-blacklisted"), fine.name: ("ok", None),
        spam.name: ("rejected", "spam-url")}
    assert "descriptive title" in out[camera.name].message


def test_captcha_is_asked_on_edits_not_on_uploads(commons_wiki, rules, env, prefect_harness,
                                                  tmp_path, unique):
    """ConfirmEdit 1.39 asks Uploader (no ``skipcaptcha``) for a captcha on a page creation with
    a link, through ``action=edit``; its hooks do not cover ``action=upload``, so the file lands.
    (How mwingest reads a captcha answer to an upload: tests/unit/test_commons_refusals.py.)"""
    commons_wiki.set_setting(CAPTCHA_ON_CREATE)
    session = session_for(commons_wiki)
    u = unique()
    answer = session.post({"action": "edit", "title": f"Captcha probe {u}",
                           "text": "see https://ok.example/", "createonly": True})
    assert answer["edit"]["result"] == "Failure" and answer["edit"]["captcha"]["id"]
    path = tmp_path / f"Lighthouse {u}.png"
    path.write_bytes(png_bytes())

    out = _run(commons_wiki, [str(path)], tmp_path / "ledger.sqlite3",
               text="The lighthouse, see https://ok.example/")

    assert out[path.name]["outcome"] == "uploaded", out
    assert upload.file_info(session, path.name)["sha1"] == _sha1(path.read_bytes())


def test_a_filter_on_stashed_uploads_refuses_a_chunked_file_at_its_last_chunk(
        commons_wiki, rules, env, prefect_harness, tmp_path, unique):
    """AbuseFilter's ``stashupload`` action runs when the chunks are put together: the refusal
    comes as the answer to the last chunk, after every byte was sent. It is the filter's
    refusal (rejected / needs-review with the filter's words), not a failed transfer to retry."""
    from flows.resolve import resolve_review

    u = unique()
    disallow = rules.add_filter(f'action == "stashupload" & page_title contains "Nostash {u}"',
                                "disallow", f"Stashed uploads named Nostash {u}")
    warn = rules.add_filter(f'action == "stashupload" & page_title contains "Askstash {u}"',
                     "warn", f"Stashed uploads named Askstash {u}")
    files = {"refused": png_of_size(300_000), "warned": png_of_size(300_000)}
    for key, data in files.items():
        (tmp_path / f"{key}.png").write_bytes(data)
    rows = [{"source": "refused.png", "filename": f"Nostash {u}.png", "text": "A scan"},
            {"source": "warned.png", "filename": f"Askstash {u}.png", "text": "A scan"}]
    manifest = _manifest(tmp_path / "batch.csv", rows)
    ledger = tmp_path / "ledger.sqlite3"

    out = _run(commons_wiki, [str(manifest)], ledger)

    got = {k: (o["outcome"], o["reason"], o["bytes_sent"]) for k, o in out.items()}
    assert got == {"refused.png": ("rejected", "abusefilter-disallowed", len(files["refused"])),
                   "warned.png": ("needs-review", "abusefilter-warning", len(files["warned"]))}, out
    assert f"Stashed uploads named Nostash {u}" in out["refused.png"]["message"]
    assert f"Stashed uploads named Askstash {u}" in out["warned.png"]["message"]
    assert [h["afl_action"] for h in rules.filter_hits(disallow.id)] == ["stashupload"]
    session = session_for(commons_wiki)
    assert all(upload.file_info(session, row["filename"]) is None for row in rows)
    # A re-run does not send the refused file again (its input did not change).
    again = _run(commons_wiki, [str(manifest)], ledger)
    assert again["refused.png"]["outcome"] == "rejected" and again["refused.png"]["bytes_sent"] == 0
    assert (again["warned.png"]["outcome"], again["warned.png"]["bytes_sent"]) == ("needs-review", 0)
    assert len(rules.filter_hits(warn.id)) == 1  # no blind second try
    assert len(rules.filter_hits(disallow.id)) == 1
    # A person publishes the warned file: the wiki kept no copy, so it goes up again in chunks;
    # the decision's login session is warned once more, and its identical second try lands.
    decided = resolve_review(item_id=out["warned.png"]["ledger_ref"], decision="publish",
                             wiki=commons_wiki.api_url, ledger_path=str(ledger))
    assert decided["outcome"] == "uploaded", decided
    info = upload.file_info(session, f"Askstash {u}.png", history=True)
    assert info["sha1"] == _sha1(files["warned"]) and len(info["versions"]) == 1
    # The abuse log holds the warnings only (a try let through after one is not logged); a
    # login session that was warned already sends once, a new one twice.
    hits = [h["afl_actions"] for h in rules.filter_hits(warn.id)]
    assert set(hits) == {"warn"}, hits
    assert decided["bytes_sent"] in (len(files["warned"]), 2 * len(files["warned"])), decided
