"""Structured data on files (issue 30): captions and statements land with the file, once, verified.

Against the real software: ``../shared/sdcwiki`` (MediaWiki 1.39 with Wikibase and
WikibaseMediaInfo, started by the ``sdc_wiki`` fixture), properties and items made here, faults
from :mod:`tests.faultproxy` (a real lost answer: the wiki acted), another editor's edit made
for real between our read and our write. Every assertion is on what the wiki holds
(``wbgetentities``) or on the outcome a person reads.
"""

from __future__ import annotations

import csv
import json
import socket
from collections import Counter
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import requests

from mwingest.base.errors import ResponseLostError
from mwingest.base.items import STRUCTURED_DATA_FAILED, Outcome
from mwingest.base.retry import RetryPolicy
from mwingest.cli.output import exit_code
from mwingest.describe import structured
from mwingest.job.machine import Job, JobContext
from mwingest.job.settings import BatchSettings
from mwingest.ledger.ledger import Ledger, State
from mwingest.wiki import mediainfo, upload
from mwingest.wiki.siteinfo import fetch_rules
from tests.faultproxy import FaultProxy, action_is
from tests.integration.wikihelpers import png_bytes, session_for
from tests.sdcwiki import entity_of

pytestmark = pytest.mark.wiki
EDITS = action_is("wbeditentity", "POST")
#: A process id above Linux's pid_max: the lease of a run that "died" (another run may take over).
DEAD_OWNER = f"{socket.gethostname()}:{2**22 + 4321}:dead"


def _manifest(folder: Path, rows: list[dict[str, str]]) -> Path:
    path = folder / "batch.csv"
    columns = list(dict.fromkeys(k for row in rows for k in row))
    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=columns)
        writer.writeheader()
        writer.writerows(rows)
    return path


def _files(folder: Path, unique: str, n: int) -> list[str]:
    names = []
    for i in range(n):
        name = f"Harbour {unique} {i}.png"
        (folder / name).write_bytes(png_bytes())
        names.append(name)
    return names


def _row(sdc: dict[str, Any], name: str, **extra: str) -> dict[str, str]:
    q = sdc["items"]
    return {"source": name, "caption.en": f"The harbour, {name}",
            "caption.de": f"Der Hafen, {name}", "depicts": f"{q['harbour']}; {q['ship']}",
            "creator": q["photographer"], "inception": "1911-05-17",
            "copyright_licence": q["cc-by-4.0"], "note": "glass plate 17", **extra}


def _run(session: Any, rules: Any, ledger: Ledger, manifest: Path, statements: dict[str, str],
         *, owner: str | None = None, budget: float = 20.0, stop_at: State | None = None,
         **flat: Any) -> list[Job]:
    """A batch as the flow runs it, without Prefect: the check before a byte is sent, then each
    file's job (``stop_at``: the job is left there, as a run killed at that step leaves it)."""
    settings = BatchSettings.from_flat(statements=statements, retry_budget_s=budget, **flat)
    items = structured.check_items(session, settings.collect([str(manifest)]),
                                   settings.describing.statements).items
    extra = {"owner": owner, "lease_ttl": timedelta(seconds=30)} if owner else {}
    ctx = JobContext(session, rules, ledger, settings.options(), **extra)
    policy = RetryPolicy(budget_s=budget, first_delay_s=0.2)
    jobs = []
    for item in items:
        job = Job(ctx, item)
        if stop_at is None:
            job.run(retry=lambda f: policy.call(f, what="step"))
        else:
            while not job.done and job.state is not stop_at:
                job.step()
        jobs.append(job)
    return jobs


def _statements(entity: dict[str, Any]) -> Counter[tuple[str, str]]:
    """(property, value) → how many statements say it."""
    out: Counter[tuple[str, str]] = Counter()
    for prop, claims in (entity.get("statements") or {}).items():
        for c in claims:
            value = c["mainsnak"]["datavalue"]["value"]
            shown = (value.get("id") or value.get("time")) if isinstance(value, dict) else value
            out[(prop, shown)] += 1
    return out


def _expected(sdc: dict[str, Any]) -> Counter[tuple[str, str]]:
    p, q = sdc["props"], sdc["items"]
    return Counter({(p["depicts"], q["harbour"]): 1, (p["depicts"], q["ship"]): 1,
                    (p["creator"], q["photographer"]): 1, (p["inception"], "+1911-05-17T00:00:00Z"): 1,
                    (p["copyright_licence"], q["cc-by-4.0"]): 1, (p["note"], "glass plate 17"): 1})


def _labels(entity: dict[str, Any]) -> dict[str, str]:
    return {lang: v["value"] for lang, v in (entity.get("labels") or {}).items()}


def test_a_batch_lands_captions_in_two_languages_and_its_statements_once(
        sdc_wiki, sdc, prefect_harness, tmp_path, unique, monkeypatch, capsys):
    """The whole flow (Prefect, ledger, the check before a byte is sent); a re-run writes nothing."""
    from flows.ingest import ingest_batch

    monkeypatch.setenv("MWINGEST_USERNAME", sdc_wiki.username)
    monkeypatch.setenv("MWINGEST_PASSWORD", sdc_wiki.password)
    monkeypatch.delenv("PREFECT_API_URL", raising=False)
    names = _files(tmp_path, unique(), 2)
    manifest = _manifest(tmp_path, [_row(sdc, n) for n in names])
    settings = BatchSettings.from_flat(statements=sdc["props"], review_timeout_s=0,
                                       ledger_path=str(tmp_path / "ledger.sqlite3"))
    outcomes = [Outcome(**o) for o in ingest_batch(sources=[str(manifest)], wiki=sdc_wiki.api_url,
                                                   settings=settings)]
    session = sdc["session"]
    assert [(o.outcome, o.reason) for o in outcomes] == [("uploaded", "verified")] * 2
    assert exit_code(outcomes) == 0
    for name, outcome in zip(names, outcomes, strict=True):
        entity = entity_of(session, name)
        assert entity["type"] == "mediainfo"
        assert _labels(entity) == {"en": f"The harbour, {name}", "de": f"Der Hafen, {name}"}
        assert _statements(entity) == _expected(sdc)
        assert "captions de, en" in (outcome.message or "")
        assert f"depicts ({sdc['props']['depicts']}) {sdc['items']['harbour']}, " in outcome.message
    with capsys.disabled():  # for the closing note: what the wiki holds, read back
        entity = entity_of(session, names[0])
        print("\nread back:", json.dumps({"labels": _labels(entity),
                                          "statements": sorted(_statements(entity))}))
        print("outcome message:", outcomes[0].message)
    revisions = [entity_of(session, n)["lastrevid"] for n in names]

    again = ingest_batch(sources=[str(manifest)], wiki=sdc_wiki.api_url, settings=settings)
    assert [(o["outcome"], o["reason"]) for o in again] == [("skipped", "already-uploaded")] * 2
    assert [entity_of(session, n)["lastrevid"] for n in names] == revisions


def test_a_lost_answer_to_the_structured_data_edit_leaves_each_statement_once(
        sdc_wiki, sdc, tmp_path, unique):
    names = _files(tmp_path, unique(), 1)
    manifest = _manifest(tmp_path, [_row(sdc, names[0])])
    with FaultProxy(sdc_wiki.api_url) as proxy, Ledger(tmp_path / "l.sqlite3") as ledger:
        session = sdc_wiki.session(proxy.url_for(sdc_wiki.api_url))
        proxy.fail_nth(1, "drop_after", match=EDITS)  # the wiki writes, the answer is lost
        [job] = _run(session, sdc["rules"], ledger, manifest, sdc["props"])
        assert proxy.stats.faulted["drop_after"] == 1
    outcome = job.outcome()
    assert (outcome.outcome, outcome.reason) == ("uploaded", "verified")
    entity = entity_of(sdc["session"], names[0])
    assert _statements(entity) == _expected(sdc)
    assert set(_labels(entity)) == {"en", "de"}


def test_a_run_killed_before_or_after_the_structured_data_edit_is_finished_once_by_a_rerun(
        sdc_wiki, sdc, tmp_path, unique):
    """File 0: the run dies as it reaches the step (the bytes landed, nothing of the structured
    data sent). File 1: it dies after the edit reached the wiki, before its answer was recorded."""
    names = _files(tmp_path, unique(), 2)
    manifest = _manifest(tmp_path, [_row(sdc, n) for n in names])
    ledger_path = tmp_path / "l.sqlite3"
    with FaultProxy(sdc_wiki.api_url) as proxy, Ledger(ledger_path) as ledger:
        session = sdc_wiki.session(proxy.url_for(sdc_wiki.api_url))
        jobs = _run(session, sdc["rules"], ledger, manifest, sdc["props"], owner=DEAD_OWNER,
                    stop_at=State.DESCRIBING)
        assert [j.state for j in jobs] == [State.DESCRIBING] * 2
        assert upload.file_info(sdc["session"], names[0]) is not None  # the bytes are there
        assert "labels" not in entity_of(sdc["session"], names[0])  # no structured data yet
        proxy.fail_nth(1, "drop_after", match=EDITS)
        with pytest.raises(ResponseLostError):
            jobs[1].step()  # the edit landed; this run "dies" without knowing
        assert jobs[1].row.intent["op"] == "describe"
        assert _statements(entity_of(sdc["session"], names[1])) == _expected(sdc)

        proxy.clear()
        with Ledger(ledger_path) as again:  # the next run of the same batch (same wiki URL)
            rerun = _run(sdc_wiki.session(proxy.url_for(sdc_wiki.api_url)), sdc["rules"], again,
                         manifest, sdc["props"])
    assert [(j.outcome().outcome, j.outcome().reason) for j in rerun] == [("uploaded", "verified")] * 2
    for name in names:
        entity = entity_of(sdc["session"], name)
        assert _statements(entity) == _expected(sdc)
        assert _labels(entity) == {"en": f"The harbour, {name}", "de": f"Der Hafen, {name}"}


def test_structured_data_that_could_not_be_written_is_said_and_a_rerun_writes_only_the_rest(
        sdc_wiki, sdc, tmp_path, unique):
    names = _files(tmp_path, unique(), 1)
    manifest = _manifest(tmp_path, [_row(sdc, names[0])])
    ledger_path = tmp_path / "l.sqlite3"
    with FaultProxy(sdc_wiki.api_url) as proxy, Ledger(ledger_path) as ledger:
        session = sdc_wiki.session(proxy.url_for(sdc_wiki.api_url))
        proxy.fail_rate(1.0, ("refuse_before",), match=EDITS)  # every edit is lost on the way
        [job] = _run(session, sdc["rules"], ledger, manifest, sdc["props"], budget=1.0)
        outcome = job.outcome()
        assert (outcome.outcome, outcome.reason) == ("uploaded", STRUCTURED_DATA_FAILED)
        assert not outcome.ok and exit_code([outcome]) == 1
        assert "structured data was not written" in (outcome.message or "")
        assert upload.file_info(sdc["session"], names[0])["sha1"] == job.row.sha1

        # Meanwhile someone adds one of the batch's statements by hand.
        p, q = sdc["props"], sdc["items"]
        mid = entity_of(sdc["session"], names[0])["id"]
        sdc["session"].post({"action": "wbcreateclaim", "entity": mid, "property": p["depicts"],
                             "snaktype": "value", "value": json.dumps(
                                 {"entity-type": "item", "numeric-id": int(q["ship"][1:])})})
        proxy.clear()
        [again] = _run(session, sdc["rules"], ledger, manifest, sdc["props"])
        history = [e.to_state for e in ledger.history(again.row.id)]
    assert (again.outcome().outcome, again.outcome().reason) == ("uploaded", "verified")
    assert _statements(entity_of(sdc["session"], names[0])) == _expected(sdc)
    assert history[-2:] == [State.DESCRIBING, State.UPLOADED]
    assert State.PUBLISHING not in history[history.index(State.UPLOADED):]  # no bytes again


def test_another_editors_change_between_our_read_and_our_write_is_not_overwritten(
        sdc_wiki, sdc, tmp_path, unique, monkeypatch):
    names = _files(tmp_path, unique(), 1)
    manifest = _manifest(tmp_path, [_row(sdc, names[0])])
    p, q = sdc["props"], sdc["items"]
    real_edit = mediainfo.edit
    calls = []

    def someone_edits_first(session, entity, **kwargs):
        """Another editor (anonymous, from another browser) edits just before our write."""
        if not calls:
            other = requests.Session()
            other.trust_env = False
            api = sdc_wiki.api_url
            token = other.get(api, params={"action": "query", "meta": "tokens",
                                           "format": "json"}).json()["query"]["tokens"]["csrftoken"]
            for params in ({"action": "wbsetlabel", "id": entity.id, "language": "en",
                            "value": "Their caption"},
                           {"action": "wbcreateclaim", "entity": entity.id, "property": p["depicts"],
                            "snaktype": "value", "value": json.dumps(
                                {"entity-type": "item", "numeric-id": int(q["photographer"][1:])})}):
                answer = other.post(api, data={**params, "token": token, "format": "json"}).json()
                assert answer.get("success"), answer
        calls.append(entity.baserevid)
        return real_edit(session, entity, **kwargs)

    monkeypatch.setattr(mediainfo, "edit", someone_edits_first)
    with Ledger(tmp_path / "l.sqlite3") as ledger:
        [job] = _run(sdc["session"], sdc["rules"], ledger, manifest, sdc["props"])
    entity = entity_of(sdc["session"], names[0])
    assert len(calls) == 2  # refused as a conflict, read again, written on the new revision
    assert _labels(entity) == {"en": "Their caption", "de": f"Der Hafen, {names[0]}"}
    assert _statements(entity) == _expected(sdc) + Counter({(p["depicts"], q["photographer"]): 1})
    outcome = job.outcome()
    assert (outcome.outcome, outcome.reason) == ("uploaded", STRUCTURED_DATA_FAILED)
    assert "caption.en (the wiki has another: 'Their caption')" in (outcome.message or "")


def test_the_licence_and_date_of_the_description_fill_their_statements(sdc_wiki, sdc, tmp_path, unique):
    """``fill_statements``: the row's licence template and date (as the sheet writes them) make
    the copyright-licence and inception statements; a licence the map lacks makes none."""
    p, q = sdc["props"], sdc["items"]
    names = _files(tmp_path, unique(), 2)
    manifest = _manifest(tmp_path, [
        {"source": names[0], "licence": "cc-by-4.0", "date": "1911:05:17 10:00:00"},
        {"source": names[1], "licence": "some-other-licence", "date": "1920"}])
    with Ledger(tmp_path / "l.sqlite3") as ledger:
        jobs = _run(sdc["session"], sdc["rules"], ledger, manifest, sdc["props"],
                    fill_statements=True, licence_items={"cc-by-4.0": q["cc-by-4.0"]})
    assert [(j.outcome().outcome, j.outcome().reason) for j in jobs] == [("uploaded", "verified")] * 2
    assert _statements(entity_of(sdc["session"], names[0])) == Counter({
        (p["copyright_licence"], q["cc-by-4.0"]): 1, (p["inception"], "+1911-05-17T00:00:00Z"): 1})
    assert _statements(entity_of(sdc["session"], names[1])) == Counter({
        (p["inception"], "+1920-00-00T00:00:00Z"): 1})


def test_a_wrong_property_datatype_and_an_unknown_item_are_refused_before_the_upload(
        sdc_wiki, sdc, tmp_path, unique):
    names = _files(tmp_path, unique(), 4)
    rows = [_row(sdc, names[0]), _row(sdc, names[1], depicts="Q987654"),
            _row(sdc, names[2], **{"caption.en": "x" * 251}), _row(sdc, names[3])]
    rows[3]["caption.zz"] = "no such language"
    manifest = _manifest(tmp_path, rows)
    wrong = {**sdc["props"], "creator": sdc["props"]["note"]}  # a string property for items
    with Ledger(tmp_path / "l.sqlite3") as ledger:
        jobs = _run(sdc["session"], sdc["rules"], ledger, manifest, wrong)
        outcomes = [j.outcome() for j in jobs]
        assert [(o.outcome, o.reason) for o in outcomes] == [
            ("rejected", "wrong-property-datatype"), ("rejected", "unknown-item"),
            ("rejected", "caption-too-long"), ("rejected", "wrong-property-datatype")]
        assert "needs a wikibase-item property" in (outcomes[0].message or "")
        fixed = _run(sdc["session"], sdc["rules"], ledger, manifest, sdc["props"])
    assert [(j.outcome().outcome, j.outcome().reason) for j in fixed] == [
        ("uploaded", "verified"), ("rejected", "unknown-item"), ("rejected", "caption-too-long"),
        ("rejected", "bad-caption-language")]
    assert "Q987654 does not exist" in (fixed[1].outcome().message or "")
    assert all(o.bytes_sent == 0 for o in outcomes)
    assert [upload.file_info(sdc["session"], n) is not None for n in names] == [
        True, False, False, False]


def test_a_wiki_without_structured_data_refuses_the_columns(wiki, tmp_path, unique):
    names = _files(tmp_path, unique(), 2)
    manifest = _manifest(tmp_path, [{"source": names[0], "caption.en": "A harbour"},
                                    {"source": names[1], "depicts": "Q5"}])
    session = session_for(wiki)
    assert not mediainfo.has_mediainfo(session)
    with Ledger(tmp_path / "l.sqlite3") as ledger:
        jobs = _run(session, fetch_rules(session), ledger, manifest, dict(structured.DEFAULT_STATEMENTS))
    outcomes = [j.outcome() for j in jobs]
    assert [(o.outcome, o.reason) for o in outcomes] == [("rejected", structured.UNSUPPORTED)] * 2
    assert "WikibaseMediaInfo is not installed" in (outcomes[0].message or "")
    assert "caption.en" in (outcomes[0].message or "") and "depicts" in (outcomes[1].message or "")
    assert all(upload.file_info(session, n) is None for n in names)


def test_describe_adds_structured_data_to_files_already_on_the_wiki_once(
        sdc_wiki, sdc, tmp_path, unique, monkeypatch):
    from mwingest.api import describe_files

    monkeypatch.setenv("MWINGEST_USERNAME", sdc_wiki.username)
    monkeypatch.setenv("MWINGEST_PASSWORD", sdc_wiki.password)
    u = unique()
    names = [f"Old upload {u} {i}.png" for i in range(2)]
    for name in names:
        upload.upload_bytes(sdc["session"], png_bytes(), name)
    rows = [{**_row(sdc, ""), "source": "", "filename": f"File:{names[0]}"},
            {**_row(sdc, ""), "source": f"scans/{names[1]}"},
            {**_row(sdc, ""), "source": "", "filename": f"Never uploaded {u}.png"}]
    manifest = _manifest(tmp_path, rows)

    outcomes = describe_files(str(manifest), wiki=sdc_wiki.api_url, statements=sdc["props"])
    assert [(o.outcome, o.reason) for o in outcomes] == [
        ("uploaded", "described"), ("uploaded", "described"), ("rejected", "not-found")]
    assert exit_code(outcomes) == 1  # the file that is not there
    for name in names:
        entity = entity_of(sdc["session"], name)
        assert _statements(entity) == _expected(sdc)
        assert set(_labels(entity)) == {"en", "de"}
    revisions = [entity_of(sdc["session"], n)["lastrevid"] for n in names]

    again = describe_files(str(manifest), wiki=sdc_wiki.api_url, statements=sdc["props"])
    assert [(o.outcome, o.reason) for o in again][:2] == [("skipped", "already-described")] * 2
    assert [entity_of(sdc["session"], n)["lastrevid"] for n in names] == revisions

