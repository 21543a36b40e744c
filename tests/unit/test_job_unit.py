"""The per-file job as a state machine: every state, the wiki's possible answers, lost answers and
runs that die after the wiki acted (unit tier, against :mod:`tests.unit.fakewiki`; its docstring
says why a fake is used here). Every test asserts what the wiki holds and what the ledger row says.
"""

from __future__ import annotations

import io
import random
import sqlite3
from datetime import timedelta
from pathlib import Path

import pytest
from PIL import Image

from mwingest.base.items import IngestItem
from mwingest.base.options import IngestOptions
from mwingest.base.retry import RetryPolicy
from mwingest.job.machine import Job, JobContext
from mwingest.ledger.ledger import Ledger, State
from mwingest.wiki.siteinfo import WikiRules
from tests.unit.fakewiki import FakeWiki

CHUNK = 4096


def png(path: Path, side: int, seed: int = 1) -> Path:
    """A real PNG of noise (incompressible: ``side`` 64 gives ~12 KiB, three chunks)."""
    rng = random.Random(seed)
    img = Image.frombytes("RGB", (side, side), bytes(rng.getrandbits(8) for _ in range(side * side * 3)))
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    path.write_bytes(buf.getvalue())
    return path


@pytest.fixture
def wiki() -> FakeWiki:
    return FakeWiki()


@pytest.fixture
def ledger(tmp_path: Path):
    with Ledger(tmp_path / "ledger.sqlite3") as led:
        yield led


def context(wiki: FakeWiki, ledger: Ledger, **options) -> JobContext:
    retry = RetryPolicy(budget_s=5, sleep=lambda _s: None)
    opts = IngestOptions(**{"chunk_size": CHUNK, "precheck_min_bytes": 10**9, "retry": retry,
                            **options})
    return JobContext(wiki, WikiRules(), ledger, opts, run_id="run")  # type: ignore[arg-type]


def run(ctx: JobContext, path: Path, **item) -> Job:
    job = Job(ctx, IngestItem(source=str(path), **item))
    job.run(retry=lambda step: ctx.options.retry.call(step))
    return job


def die_after(ctx: JobContext, path: Path, kind: str, nth: int = 1, **item) -> Job:
    """A run that dies (``kill -9``) right after the wiki acted on the ``nth`` request of ``kind``:
    the answer is lost and nothing after it runs. Its lease runs out at once."""
    ctx.lease_ttl = timedelta(0)
    nth = chunks(path) if nth == FINAL else nth
    ctx.session.fault(kind, "lost", nth)  # type: ignore[attr-defined]
    job = Job(ctx, IngestItem(source=str(path), **item))
    with pytest.raises(Exception, match="lost"):
        while not job.done:
            job.step()
    return job


def chunks(path: Path) -> int:
    return -(-path.stat().st_size // CHUNK)


FINAL = -1  # "the final chunk" in the parametrisations below


def sha1(path: Path) -> str:
    import hashlib

    return hashlib.sha1(path.read_bytes()).hexdigest()  # noqa: S324


def test_a_small_file_lands_in_one_request_verified_from_the_answer(wiki, ledger, tmp_path):
    path = png(tmp_path / "Small.png", 16)
    job = run(context(wiki, ledger), path)
    out = job.outcome()
    assert (out.outcome, out.reason) == ("uploaded", "verified")
    assert [v["sha1"] for v in wiki.versions("Small.png")] == [sha1(path)]
    assert dict(wiki.kinds) == {"upload": 1}  # no second request to verify
    assert ledger.get(out.ledger_id).state is State.UPLOADED


def test_a_big_file_goes_in_chunks_then_one_publish(wiki, ledger, tmp_path):
    path = png(tmp_path / "Big.png", 64)
    out = run(context(wiki, ledger), path).outcome()
    assert out.outcome == "uploaded" and wiki.versions("Big.png")[0]["sha1"] == sha1(path)
    assert wiki.kinds["chunk"] == -(-path.stat().st_size // CHUNK) and wiki.kinds["publish"] == 1
    assert out.bytes_sent == path.stat().st_size
    row = ledger.get(out.ledger_id)
    assert row.state is State.UPLOADED and row.chunk_size == CHUNK


@pytest.mark.parametrize("mode", ["lost", "refused"])
@pytest.mark.parametrize(("kind", "nth", "side"), [
    ("upload", 1, 16), ("chunk", 1, 64), ("chunk", 2, 64), ("chunk", FINAL, 64),
    ("publish", 1, 64), ("allimages", 1, 64),
])
def test_a_fault_at_any_request_is_ridden_out_in_one_run(wiki, ledger, tmp_path, kind, nth, side,
                                                         mode):
    path = png(tmp_path / "Faulty.png", side)
    ctx = context(wiki, ledger, precheck_min_bytes=1)  # the pre-check query runs too
    wiki.fault(kind, mode, chunks(path) if nth == FINAL else nth)
    out = run(ctx, path).outcome()
    assert out.outcome == "uploaded", out
    assert len(wiki.versions("Faulty.png")) == 1 and wiki.versions("Faulty.png")[0]["sha1"] == sha1(path)
    assert out.bytes_sent <= path.stat().st_size + CHUNK  # at most one chunk sent again
    assert wiki.chunk_bytes <= (path.stat().st_size + CHUNK if side > 16 else 0)


@pytest.mark.parametrize(("kind", "nth", "side"), [
    ("chunk", 1, 64), ("chunk", 2, 64), ("chunk", FINAL, 64), ("publish", 1, 64),
    ("upload", 1, 16),
])
def test_a_run_killed_after_the_wiki_acted_is_finished_by_the_next(wiki, ledger, tmp_path, kind,
                                                                    nth, side):
    path = png(tmp_path / "Killed.png", side)
    die_after(context(wiki, ledger), path, kind, nth)
    before = dict(wiki.kinds)
    out = run(context(wiki, ledger), path).outcome()
    assert out.outcome == "uploaded", out
    assert len(wiki.versions("Killed.png")) == 1
    assert wiki.versions("Killed.png")[0]["sha1"] == sha1(path)
    assert wiki.chunk_bytes <= (path.stat().st_size + CHUNK if side > 16 else 0)  # ≤ 1 chunk again
    assert wiki.kinds["upload"] - before.get("upload", 0) == 0  # a landed upload is found


def test_the_final_chunk_assembled_while_the_run_died_is_published_from_its_key(wiki, ledger,
                                                                                 tmp_path):
    path = png(tmp_path / "Assembled.png", 64)
    die_after(context(wiki, ledger), path, "chunk", FINAL)
    row = ledger.items()[0]
    assert row.state is State.STASHING
    before = wiki.kinds["chunk"]
    out = run(context(wiki, ledger), path).outcome()
    assert out.outcome == "uploaded" and wiki.kinds["chunk"] == before  # not one byte again


def test_a_failed_file_keeps_its_key_and_offset_and_continues_there(wiki, ledger, tmp_path):
    path = png(tmp_path / "Refused.png", 64)
    wiki.fault("chunk", "permissiondenied", 2)
    first = run(context(wiki, ledger), path).outcome()
    assert (first.outcome, first.reason) == ("failed", "permissiondenied")
    row = ledger.get(first.ledger_id)
    assert row.filekey and row.offset == CHUNK  # chunk 1 landed and is remembered
    sent = wiki.kinds["chunk"]
    out = run(context(wiki, ledger), path).outcome()
    assert out.outcome == "uploaded"
    assert wiki.kinds["chunk"] - sent == chunks(path) - 1  # all but chunk 1
    assert out.bytes_sent == path.stat().st_size - CHUNK


def test_an_expired_stash_sends_the_file_again_once(wiki, ledger, tmp_path):
    path = png(tmp_path / "Expired.png", 64)
    die_after(context(wiki, ledger), path, "publish", 1)
    wiki.files.clear()  # the publish never happened after all ...
    wiki.expire_stash()  # ... and the stash was cleaned
    out = run(context(wiki, ledger), path).outcome()
    assert out.outcome == "uploaded" and len(wiki.versions("Expired.png")) == 1


def test_a_row_another_live_run_holds_is_left_alone(wiki, ledger, tmp_path):
    path = png(tmp_path / "Held.png", 64)
    holder = Job(context(wiki, ledger), IngestItem(source=str(path)))
    holder.step()  # validated and leased by a live run
    before = ledger.history(holder.row.id)
    other = run(context(wiki, ledger), path)
    assert (other.outcome().outcome, other.outcome().reason) == ("failed", "leased")
    assert ledger.history(holder.row.id) == before and not wiki.files


def test_exists_waits_for_review_then_each_decision_is_carried_out(wiki, ledger, tmp_path):
    path = png(tmp_path / "Taken.png", 16)
    wiki.put("Taken.png", b"someone else's bytes")
    ctx = context(wiki, ledger)
    job = run(ctx, path)
    out = job.outcome()
    assert (out.outcome, out.reason) == ("needs-review", "exists") and out.filekey
    wiki.put("Taken (2).png", b"another file")  # taken meanwhile: the rename skips it
    job.decide("rename", by="reviewer")
    job.run(retry=lambda step: ctx.options.retry.call(step))
    out = job.outcome()
    assert (out.outcome, out.reason, out.filename) == ("uploaded", "decided-rename", "Taken_(3).png")
    assert wiki.versions("Taken (3).png")[0]["sha1"] == sha1(path)
    assert len(wiki.versions("Taken.png")) == 1  # the other file is untouched


@pytest.mark.parametrize(("action", "outcome", "reason"), [
    ("skip", "skipped", "exists"), ("publish", "uploaded", "decided-publish"),
    ("fail", "failed", "exists"),
])
def test_decisions_from_the_ledger(wiki, ledger, tmp_path, action, outcome, reason):
    path = png(tmp_path / "Clash.png", 16)
    wiki.put("Clash.png", b"old bytes")
    first = run(context(wiki, ledger), path).outcome()
    job = Job.from_ledger(context(wiki, ledger), first.ledger_id)
    job.decide(action, by="resolve-review")
    job.run()
    assert (job.outcome().outcome, job.outcome().reason) == (outcome, reason)
    assert len(wiki.versions("Clash.png")) == (2 if action == "publish" else 1)


@pytest.mark.parametrize("dies", [False, True])
def test_a_rename_whose_answer_was_lost_never_publishes_twice(wiki, ledger, tmp_path, dies):
    path = png(tmp_path / "Twice.png", 16)
    wiki.put("Twice.png", b"other bytes")
    first = run(context(wiki, ledger, policy=_policy(exists="rename")), path).outcome()
    assert first.outcome == "uploaded"  # the policy renamed at once
    wiki.files.pop("Twice_(2).png")
    ledger_row = ledger.get(first.ledger_id)
    assert ledger_row.final_name == "Twice_(2).png"
    # The same situation once more, with the rename's answer lost (in-process, or the run dies):
    path2 = png(tmp_path / "Again.png", 16, seed=2)
    wiki.put("Again.png", b"other bytes 2")
    ctx = context(wiki, ledger, policy=_policy(exists="rename"))
    if dies:
        die_after(ctx, path2, "publish", 1)
        out = run(context(wiki, ledger, policy=_policy(exists="rename")), path2).outcome()
    else:
        wiki.fault("publish", "lost", 1)
        out = run(ctx, path2).outcome()
    assert (out.outcome, out.filename) == ("uploaded", "Again_(2).png")
    ours = [n for n, v in wiki.files.items() if v[0]["sha1"] == sha1(path2)]
    assert ours == ["Again_(2).png"]  # one copy, under the name the lost publish gave it


def test_duplicates_and_nochange_are_skipped_without_a_second_copy(wiki, ledger, tmp_path):
    path = png(tmp_path / "Dup.png", 16)
    wiki.put("Elsewhere.png", path.read_bytes())
    out = run(context(wiki, ledger), path).outcome()
    assert (out.outcome, out.reason) == ("skipped", "duplicate") and "Dup.png" not in wiki.files
    same = png(tmp_path / "Same.png", 16, seed=3)
    wiki.put("Same.png", same.read_bytes())
    out = run(context(wiki, ledger), same).outcome()
    assert (out.outcome, out.reason) == ("skipped", "nochange")


def test_a_second_run_sends_nothing_for_done_files(wiki, ledger, tmp_path):
    path = png(tmp_path / "Done.png", 64)
    run(context(wiki, ledger), path)
    before = dict(wiki.kinds)
    out = run(context(wiki, ledger), path).outcome()
    assert (out.outcome, out.reason) == ("skipped", "already-uploaded") and dict(wiki.kinds) == before


def test_a_ledger_that_cannot_write_is_never_silent(wiki, ledger, tmp_path, monkeypatch):
    path = png(tmp_path / "Ledger.png", 16)
    ctx = context(wiki, ledger)
    real = ledger.transition

    def broken(item_id, to, **kw):
        if State(to) in (State.UPLOADED, State.FAILED):
            raise sqlite3.OperationalError("disk I/O error")
        return real(item_id, to, **kw)

    monkeypatch.setattr(ledger, "transition", broken)
    out = run(ctx, path).outcome()
    assert (out.outcome, out.reason) == ("failed", "ledger-error") and "disk I/O" in out.message
    # The file did land; the next run with a working ledger finds it and records it.
    monkeypatch.setattr(ledger, "transition", real)
    again = run(context(wiki, ledger), path).outcome()
    assert again.outcome == "uploaded" and len(wiki.versions("Ledger.png")) == 1


def _policy(**actions):
    from mwingest.base.policy import WarningPolicy

    return WarningPolicy.parse(actions)


def test_a_file_left_for_review_is_decided_again_by_the_next_runs_policy(wiki, ledger, tmp_path):
    path = png(tmp_path / "Later.png", 64)
    wiki.put("Later.png", b"not ours")
    first = run(context(wiki, ledger), path).outcome()
    assert first.outcome == "needs-review"
    sent = wiki.chunk_bytes
    out = run(context(wiki, ledger, policy=_policy(exists="rename")), path).outcome()
    assert (out.outcome, out.filename) == ("uploaded", "Later_(2).png")
    assert wiki.chunk_bytes == sent  # published from the stash key: no byte sent again


def test_a_stash_key_older_than_the_wikis_stash_lifetime_is_not_trusted(wiki, ledger, tmp_path):
    path = png(tmp_path / "Old.png", 64)
    die_after(context(wiki, ledger), path, "chunk", 2)
    wiki.expire_stash()
    out = run(context(wiki, ledger, stash_hours=0.1), path).outcome()  # 6 min: younger than the
    assert out.outcome == "uploaded"  # margin, so the key counts as gone: sent from byte 0
    assert out.bytes_sent == path.stat().st_size
    assert len(wiki.versions("Old.png")) == 1


def test_a_late_decision_on_a_row_another_run_holds_is_refused(wiki, ledger, tmp_path):
    path = png(tmp_path / "Busy.png", 16)
    wiki.put("Busy.png", b"theirs")
    first = run(context(wiki, ledger), path).outcome()
    holder = Job.from_ledger(context(wiki, ledger), first.ledger_id)  # a live run claims it
    assert holder.verdict is None
    other = Job.from_ledger(context(wiki, ledger), first.ledger_id)
    assert (other.outcome().outcome, other.outcome().reason) == ("failed", "leased")
    assert len(wiki.versions("Busy.png")) == 1


def test_every_state_a_run_can_stop_in_is_finished_by_the_next(wiki, ledger, tmp_path):
    """Stop after each step (the process dies between two ledger writes) and start again."""
    path = png(tmp_path / "Steps.png", 64)
    steps = 0
    while True:
        ctx = context(wiki, ledger)
        ctx.lease_ttl = timedelta(0)
        job = Job(ctx, IngestItem(source=str(path)))
        for _ in range(steps + 1):
            if job.done:
                break
            job.step()
        if job.done:
            break
        steps += 1
    out = job.outcome()
    assert out.outcome in ("uploaded", "skipped"), out
    assert len(wiki.versions("Steps.png")) == 1
    assert wiki.chunk_bytes == path.stat().st_size  # each restart resumes at the wiki's offset
    states = [e.to_state for e in ledger.history(ledger.items()[0].id)]
    assert {State.STASHING, State.STASHED, State.PUBLISHING} <= set(states)
