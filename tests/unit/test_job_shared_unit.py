"""The per-file job when others act on the same file: a copy upload whose answer was lost, another
machine with the same bytes, a manifest id that follows a rescanned file, a row taken over mid-upload
(the scripted wiki of fakewiki.py; the real-wiki versions are in tests/integration).
"""

from __future__ import annotations

from datetime import timedelta

import pytest

from mwingest.base.items import IngestItem
from mwingest.job.machine import Job
from mwingest.ledger.ledger import Ledger, State
from tests.unit import test_job_unit as job_tests
from tests.unit.test_job_unit import context, png, run

#: The scripted wiki and the SQLite ledger of the job tests (fixtures).
wiki, ledger = job_tests.wiki, job_tests.ledger


@pytest.mark.parametrize("dies", [False, True])
def test_a_copy_upload_whose_answer_was_lost_is_found_by_its_uploader(wiki, ledger, tmp_path,
                                                                     monkeypatch, dies):
    """We never hold a copy upload's bytes: the wiki's version under the name, written by our
    account after the intent, is ours. (The URL's redirect walk is not under test here.)"""
    import mwingest.checks.netsafe as netsafe

    monkeypatch.setattr(netsafe, "resolve_redirects", lambda url, allow, timeout=30.0: url)
    url = "https://media.example.org/scans/Copy.png"
    wiki.urls[url] = png(tmp_path / "src.png", 16).read_bytes()
    if dies:
        ctx = context(wiki, ledger)
        ctx.lease_ttl = timedelta(0)
        wiki.fault("copy", "lost")
        job = Job(ctx, IngestItem(source=url))
        with pytest.raises(Exception, match="lost"):
            while not job.done:
                job.step()
        job = Job(context(wiki, ledger), IngestItem(source=url))
        job.run()
    else:
        wiki.fault("copy", "lost")
        job = run(context(wiki, ledger), url)  # type: ignore[arg-type]
    out = job.outcome()
    assert (out.outcome, out.filename) == ("uploaded", "Copy.png")
    assert wiki.kinds["copy"] == 1 and len(wiki.versions("Copy.png")) == 1
    assert out.sha1 == wiki.versions("Copy.png")[0]["sha1"]


def test_another_machine_with_the_same_file_sends_nothing(wiki, ledger_location, tmp_path):
    """One shared ledger (both backends), two machines with their own copy of a picture at
    their own path: the second finds the row by identity and leaves the wiki alone."""
    first_mount, second_mount = tmp_path / "scan-1", tmp_path / "scan-2"
    first_mount.mkdir()
    second_mount.mkdir()
    path = png(first_mount / "Shared.png", 64)
    copy = second_mount / "Shared.png"
    copy.write_bytes(path.read_bytes())
    with Ledger(ledger_location, host="scan-1") as one, Ledger(ledger_location, host="scan-2") as two:
        assert run(context(wiki, one), path).outcome().outcome == "uploaded"
        before = dict(wiki.kinds)
        out = run(context(wiki, two), copy).outcome()
        assert (out.outcome, out.reason) == ("skipped", "already-uploaded")
        assert dict(wiki.kinds) == before and len(wiki.versions("Shared.png")) == 1
        [row] = two.items()
        assert (row.host, row.account, row.state) == ("scan-1", wiki.user, State.UPLOADED)
        assert out.ledger_ref == row.ref


def test_a_manifest_id_follows_a_rescanned_file(wiki, ledger, tmp_path):
    path = png(tmp_path / "Scan.png", 16, seed=1)
    first = run(context(wiki, ledger), path, key="acc-7").outcome()
    rescan = png(tmp_path / "Scan (rescan).png", 16, seed=2)
    second = run(context(wiki, ledger), rescan, key="acc-7").outcome()
    assert (first.outcome, second.outcome) == ("uploaded", "uploaded")
    [row] = ledger.items()
    assert (row.ident, row.source, row.attempts) == ("manifest:acc-7", str(rescan), 2)
    assert [e.reason for e in ledger.history(row.id)].count("source-changed") == 1


def test_a_job_taken_over_mid_upload_stops_without_writing(wiki, ledger, tmp_path):
    path = png(tmp_path / "Stalled.png", 64)  # three chunks
    ctx = context(wiki, ledger)
    job = Job(ctx, IngestItem(source=str(path)))
    while job.state is not State.STASHING:
        job.step()
    job.step()  # one chunk up
    row = ledger.get(job.row.id)
    ledger.release(row.id, ctx.owner)  # as if its lease ran out ...
    assert ledger.claim(row.id, "other:2:run", ttl=timedelta(minutes=5))  # ... and was taken over
    sent = dict(wiki.kinds)
    out = job.run()
    assert (out.outcome, out.reason) == ("failed", "leased")
    after = ledger.get(row.id)
    assert (after.state, after.offset, after.lease_owner) == (State.STASHING, row.offset, "other:2:run")
    assert sum(wiki.kinds.values()) - sum(sent.values()) <= 1  # at most the chunk in flight


def test_the_job_s_lease_is_what_its_row_says(wiki, ledger, tmp_path):
    """The job keeps no lease flag of its own: whether it holds the row is read from the row,
    and the ledger's row agrees at every end (landed, skipped as done before, held by another)."""
    path = png(tmp_path / "Held.png", 16)
    ctx = context(wiki, ledger)
    job = Job(ctx, IngestItem(source=str(path)))
    job.step()  # validated: begin took the lease for this run
    assert job.held and ledger.get(job.row.id).lease_owner == ctx.owner
    job.run()
    assert not job.held and ledger.get(job.row.id).lease_owner is None  # the outcome ended it
    again = Job(context(wiki, ledger), IngestItem(source=str(path)))
    assert again.run().outcome == "skipped"  # begin leased the finished row; finish gave it back
    assert not again.held and ledger.get(again.row.id).lease_owner is None
    assert ledger.claim(job.row.id, "other:2:run", ttl=timedelta(minutes=5))
    late = Job.from_ledger(context(wiki, ledger), job.row.id)
    assert (late.done, late.held, late.row.lease_owner) == (True, False, "other:2:run")
    late.finish()  # not ours to release
    assert ledger.get(job.row.id).lease_owner == "other:2:run"
