"""A real ``kill -9`` of a run right after its structured data edit reached the wiki (issue 30).

Apart from :mod:`tests.integration.test_structured_data` (whose helpers it uses) for size: the
batch runs in a child process, as a command does; the fault proxy drops the answer to its
``wbeditentity`` and kills the child at that moment; the same command then finishes the batch.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.faultproxy import FaultProxy
from tests.integration.test_structured_data import (
    EDITS,
    _expected,
    _files,
    _labels,
    _manifest,
    _row,
    _statements,
)
from tests.sdcwiki import entity_of

pytestmark = pytest.mark.wiki


#: One run of a batch in its own process, as a command runs it (check first, then each file's job).
CHILD = """
import json, sys
from mwingest.base.retry import RetryPolicy
from mwingest.describe import structured
from mwingest.job.machine import Job, JobContext
from mwingest.job.settings import BatchSettings
from mwingest.ledger.ledger import Ledger
from mwingest.wiki.connect import open_wiki
from mwingest.wiki.credentials import Credentials
api, manifest, ledger_path, props = sys.argv[1], sys.argv[2], sys.argv[3], json.loads(sys.argv[4])
session, rules = open_wiki(Credentials.from_env(api_url=api))
settings = BatchSettings.from_flat(statements=props)
items = structured.check_items(session, settings.collect([manifest]), props).items
with Ledger(ledger_path) as ledger:
    ctx = JobContext(session, rules, ledger, settings.options())
    for item in items:
        outcome = Job(ctx, item).run(retry=lambda f: RetryPolicy(budget_s=20).call(f))
        print(json.dumps(outcome.as_dict()), flush=True)
"""


def test_a_run_killed_9_when_its_structured_data_edit_reached_the_wiki_is_finished_once(
        sdc_wiki, sdc, tmp_path, unique):
    """kill -9 of the process right after the wiki wrote the structured data (its answer never
    arrives), then the same command again: each caption and statement once, nothing sent twice."""
    names = _files(tmp_path, unique(), 2)
    manifest = _manifest(tmp_path, [_row(sdc, n) for n in names])
    ledger = tmp_path / "l.sqlite3"
    root = Path(__file__).resolve().parents[2]
    env = {**os.environ, "MWINGEST_USERNAME": sdc_wiki.username,
           "MWINGEST_PASSWORD": sdc_wiki.password, "PYTHONPATH": str(root)}
    with FaultProxy(sdc_wiki.api_url) as proxy:
        command = [sys.executable, "-c", CHILD, proxy.url_for(sdc_wiki.api_url), str(manifest),
                   str(ledger), json.dumps(sdc["props"])]
        child = subprocess.Popen(command, env=env, cwd=root, stdout=subprocess.PIPE,
                                 stderr=subprocess.STDOUT, start_new_session=True)
        proxy.on_drop = lambda _head: os.killpg(child.pid, signal.SIGKILL)
        proxy.fail_nth(2, "drop_after", match=EDITS)  # the second file's structured data edit
        out, _ = child.communicate(timeout=300)
        assert child.returncode == -signal.SIGKILL, out.decode()[-3000:]
        proxy.on_drop = None
        proxy.clear()
        assert _statements(entity_of(sdc["session"], names[1])) == _expected(sdc)  # it landed
        edits_before = sum(1 for e in proxy.stats.exchanges if e.action == "wbeditentity")
        again = subprocess.run(command, env=env, cwd=root, capture_output=True, timeout=300,
                               check=False)
        edits = sum(1 for e in proxy.stats.exchanges if e.action == "wbeditentity") - edits_before
    outcomes = [json.loads(line) for line in again.stdout.decode().splitlines() if line.startswith("{")]
    assert [(o["outcome"], o["reason"]) for o in outcomes] == [
        ("skipped", "already-uploaded"), ("uploaded", "verified")], again.stdout.decode()[-3000:]
    assert edits == 0  # the resumed step read the entity and found everything there
    for name in names:
        entity = entity_of(sdc["session"], name)
        assert _statements(entity) == _expected(sdc)
        assert _labels(entity) == {"en": f"The harbour, {name}", "de": f"Der Hafen, {name}"}
