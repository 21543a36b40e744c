"""The deployments and the credentials block, against a real local Prefect server and the real wiki.

Everything runs the way a user runs it, in subprocesses with the server's settings in their env:
``python -m deployments.register --save``, ``prefect work-pool create`` + ``prefect deploy --all``
(``prefect.yaml``) + ``prefect worker start``, and ``python deployments/serve.py``; runs are
triggered with ``prefect deployment run`` or the client, as the UI would. The serving and working
processes get *no* wiki secret in their environment: the login can only come from the block.
Assertions are on what the wiki holds (SHA-1s, number of versions), on what the server stored
(deployment schemas, run parameters, logs, table artifacts) and on the ledger file.

The worker test comes before the serve tests on purpose: both ways register the same deployment
names, so the worker test deletes its own afterwards (``serve.py`` refuses to take over pool
deployments), and no serve process is alive yet to race the worker for its runs.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from mwingest.ledger.ledger import Ledger, State
from mwingest.wiki import upload
from tests.integration.deployhelpers import (
    BIN,
    REPO,
    Background,
    cli,
    client_of,
    outcome_rows,
    pngs,
    run_to_end,
    secret_forms,
    sha1,
    wait_final,
)
from tests.integration.wikihelpers import png_bytes, session_for

pytestmark = pytest.mark.wiki

BLOCK = "mwingest-wiki"
SERVED = ["import-folder/folder-import", "import-manifest/manifest-import", "import-urls/url-import",
          "resolve-review/review-resolution", "import-folder/nightly-drop-folder"]
ACTIONS = ["skip", "publish", "rename", "review", "fail"]
BAD_BYTES = b"<!DOCTYPE html><html><body><script>alert(1)</script></body></html>"


@pytest.fixture(scope="module")
def base_env(prefect_server) -> dict[str, str]:
    """A client process's env: this server, no Prefect profile, and no wiki login at all."""
    keep = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "MWINGEST_"))}
    return {**keep, **prefect_server.env, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"}


@pytest.fixture(scope="module")
def saved_block(base_env, wiki) -> subprocess.CompletedProcess[str]:
    """``python -m deployments.register --save mwingest-wiki``, with the login in its env only."""
    env = {**base_env, "MWINGEST_API_URL": wiki.api_url, "MWINGEST_USERNAME": wiki.username,
           "MWINGEST_PASSWORD": wiki.password}
    return cli([sys.executable, "-m", "deployments.register", "--save", BLOCK], env)


def test_register_saves_the_credentials_block(saved_block, prefect_server, wiki):
    from prefect.settings import PREFECT_API_URL, temporary_settings

    from tasks.blocks import MediaWikiCredentials

    for secret in secret_forms(wiki.password):
        assert secret not in saved_block.stdout + saved_block.stderr
    with temporary_settings(updates={PREFECT_API_URL: prefect_server.api_url}):
        block = MediaWikiCredentials.load(BLOCK)
    assert block.api_url == wiki.api_url and block.username == wiki.username
    assert block.password is not None and block.password.get_secret_value() == wiki.password
    assert wiki.password not in repr(block)
    # The setup also installed the automation that marks runs without heartbeats Crashed.
    from mwingest.runtime.crashwatch import AUTOMATION_NAME, HEARTBEAT_FLOWS

    found = requests.post(f"{prefect_server.api_url}/automations/filter", timeout=10, json={
        "automations": {"name": {"any_": [AUTOMATION_NAME]}}}).json()
    assert len(found) == 1 and found[0]["enabled"]
    assert found[0]["actions"][0]["state"] == "CRASHED"
    assert set(found[0]["trigger"]["match_related"]["prefect.resource.name"]) == set(HEARTBEAT_FLOWS)


@pytest.fixture
def deployed(saved_block, base_env, prefect_server, tmp_path) -> Iterator[Path]:
    """``prefect.yaml`` deployed onto the ``mwingest`` process pool, as its comment says to.

    Its deployments are deleted afterwards: ``serve.py`` registers the same names (see its
    ``pool_conflicts``). Yields the nightly drop folder given at deploy time.
    """
    from prefect.client.schemas.filters import WorkPoolFilter, WorkPoolFilterName

    drop = tmp_path / "drop"
    cli([str(BIN / "prefect"), "work-pool", "create", "mwingest", "--type", "process",
          "--overwrite"], base_env)
    try:
        # No MWINGEST_CHECKOUT here: each worker gives its own checkout (prefect.yaml's comment).
        cli([str(BIN / "prefect"), "--no-prompt", "deploy", "--all"],
             {**base_env, "MWINGEST_DROP_FOLDER": str(drop)})
        yield drop
    finally:
        with client_of(prefect_server) as client:
            for dep in client.read_deployments(work_pool_filter=WorkPoolFilter(
                    name=WorkPoolFilterName(any_=["mwingest"]))):
                client.delete_deployment(dep.id)


def test_prefect_yaml_deploy_and_process_worker_import_a_manifest(
        deployed, base_env, prefect_server, wiki, tmp_path, unique):
    session = session_for(wiki)
    u = unique()
    folder = tmp_path / "manifest"
    good = pngs(folder, f"Worker a {u}.png", f"Worker b {u}.png")
    manifest = folder / "rows.csv"
    names = list(good)
    manifest.write_text(f"source,filename\n{names[0]},\n{names[1]},Worker b renamed {u}.png\n"
                        f",Nothing {u}.png\n")
    targets = {names[0]: names[0], names[1]: f"Worker b renamed {u}.png"}
    slug_ref = {"$ref": {"block_document_slug": f"mediawiki-credentials/{BLOCK}"}}

    with client_of(prefect_server) as client:
        dep = client.read_deployment_by_name("import-manifest/manifest-import")
        nightly = client.read_deployment_by_name("import-folder/nightly-drop-folder")
    assert dep.work_pool_name == "mwingest"
    assert dep.pull_steps == [{"prefect.deployments.steps.set_working_directory":
                               {"directory": "{{ $MWINGEST_CHECKOUT }}"}}]  # filled on the worker
    assert dep.parameters["credentials"] == slug_ref
    assert nightly.parameters["folder"] == str(deployed)
    assert [s.schedule.cron for s in nightly.schedules] == ["0 3 * * *"]

    ledger = tmp_path / "worker-ledger.sqlite3"
    worker = Background([str(BIN / "prefect"), "worker", "start", "--pool", "mwingest"],
                        {**base_env, "PREFECT_WORKER_QUERY_SECONDS": "1", "MWINGEST_CHECKOUT": str(REPO),
                         "MWINGEST_LEDGER": str(ledger)}, tmp_path / "worker.log", cwd=tmp_path)
    try:
        run = run_to_end(prefect_server, "import-manifest/manifest-import", worker, manifest=str(manifest))
    finally:
        # SIGTERM alone does not stop a 3.9 worker (findings §9): SIGINT twice, then SIGKILL.
        took = worker.stop((signal.SIGINT, signal.SIGINT), grace=5.0)
        print(f"worker stopped in {took:.1f} s")

    assert run.parameters["credentials"] == slug_ref  # resolved inside the run, never stored
    rows = outcome_rows(prefect_server, run.id)
    assert {n: r["outcome"] for n, r in rows.items()} == {
        names[0]: "uploaded", names[1]: "uploaded", "rows.csv:4": "rejected"}
    assert rows["rows.csv:4"]["reason"] == "bad-manifest-row"
    assert "line 4" in rows["rows.csv:4"]["message"]
    for name, target in targets.items():
        info = upload.file_info(session, target, history=True)
        assert info is not None and info["sha1"] == sha1(good[name]) and len(info["versions"]) == 1
    assert upload.file_info(session, f"Nothing {u}.png") is None
    assert ledger.exists()  # the run used the worker's env, not a default path

    # serve.py must not take over these names while they are on the pool (see its pool_conflicts).
    try:
        refused = subprocess.run([sys.executable, str(REPO / "deployments" / "serve.py")],
                                 cwd=tmp_path, env=base_env, capture_output=True, text=True,
                                 timeout=45, start_new_session=True)
    except subprocess.TimeoutExpired as exc:
        with client_of(prefect_server) as client:
            listed = [(d.name, d.work_pool_name) for d in client.read_deployments()]
        pytest.fail(f"serve.py served instead of refusing; deployments: {listed}\n{exc.stdout!r}")
    assert refused.returncode == 2, refused.stdout + refused.stderr
    assert "import-manifest/manifest-import (work pool 'mwingest')" in refused.stderr


@pytest.fixture(scope="module")
def drop_folder(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("drop")


@pytest.fixture(scope="module")
def served(saved_block, base_env, drop_folder, tmp_path_factory) -> Iterator[dict[str, Any]]:
    """``python deployments/serve.py``, started from outside the repository, until module end."""
    home = tmp_path_factory.mktemp("serve")
    ledger = home / "ledger.sqlite3"
    env = {**base_env, "PREFECT_RUNNER_POLL_FREQUENCY": "1", "MWINGEST_DROP_FOLDER": str(drop_folder),
           "MWINGEST_LEDGER": str(ledger)}
    proc = Background([sys.executable, str(REPO / "deployments" / "serve.py")], env,
                      home / "serve.log", cwd=home)
    try:
        proc.wait_for_line("Your deployments are being served")
        yield {"proc": proc, "ledger": ledger}
    finally:
        # Before the server goes: a serve whose server is gone hangs retrying (UI notes).
        took = proc.stop((signal.SIGTERM, signal.SIGINT), grace=10.0)
        print(f"serve stopped in {took:.1f} s")


def _resolve(schema: dict[str, Any], node: dict[str, Any]) -> dict[str, Any]:
    """``node`` with a ``#/definitions/X`` reference (direct or first of ``anyOf``) followed."""
    if "anyOf" in node:
        node = next(n for n in node["anyOf"] if n.get("type") != "null")
    ref = node.get("$ref")
    return schema["definitions"][ref.rsplit("/", 1)[1]] if isinstance(ref, str) else node


def test_served_deployments_have_forms_a_block_default_and_a_schedule(served, prefect_server,
                                                                      drop_folder):
    with client_of(prefect_server) as client:
        deps = {name: client.read_deployment_by_name(name) for name in SERVED}
        block_id = client.read_block_document_by_name(BLOCK, "mediawiki-credentials").id
    for name, dep in deps.items():
        schema = dep.parameter_openapi_schema
        creds = _resolve(schema, schema["properties"]["credentials"])
        assert creds["block_type_slug"] == "mediawiki-credentials", name
        assert set(creds["secret_fields"]) == {"password", "oauth_token"}, name
        assert dep.parameters["credentials"] == {"$ref": {"block_document_id": str(block_id)}}, name
        assert "password" not in schema["properties"], name
        if name.startswith("import-"):
            assert [p for p, v in schema["properties"].items() if not v.get("description")] == [], name
            settings = _resolve(schema, schema["properties"]["settings"])
            policy = _resolve(schema, settings["properties"]["on_warning"])
            for key, field in policy["properties"].items():
                if key != "other":
                    assert _resolve(schema, field)["enum"] == ACTIONS, name
            for group in ("describing", "sending", "safety"):  # one nested form, every field told
                fields = _resolve(schema, settings["properties"][group])["properties"]
                assert [f for f, v in fields.items() if not v.get("title")] == [], (name, group)
            assert set(schema["required"]) <= {"folder", "manifest", "urls", "credentials"}, name
    assert [s.schedule.cron for s in deps["import-folder/nightly-drop-folder"].schedules] == ["0 3 * * *"]
    assert deps["import-folder/nightly-drop-folder"].parameters["folder"] == str(drop_folder)
    assert deps["import-folder/folder-import"].schedules == []


def test_review_resolution_form_describes_every_parameter(served, prefect_server):
    with client_of(prefect_server) as client:
        schema = client.read_deployment_by_name(
            "resolve-review/review-resolution").parameter_openapi_schema
    assert [p for p, v in schema["properties"].items() if not v.get("description")] == []


def test_folder_import_via_cli_run_keeps_the_secret_out_of_the_run(
        served, base_env, prefect_server, wiki, tmp_path, unique):
    from prefect.client.schemas.filters import LogFilter, LogFilterFlowRunId

    session = session_for(wiki)
    u = unique()
    folder = tmp_path / "in"
    good = pngs(folder, f"Served a {u}.png", f"Served b {u}.png")
    (folder / f"Served bad {u}.jpg").write_bytes(BAD_BYTES)

    out = cli([str(BIN / "prefect"), "deployment", "run", "import-folder/folder-import",
                "--param", f"folder={folder}"], base_env).stdout
    run_id = re.search(r"UUID: ([0-9a-f-]{36})", out)[1]  # type: ignore[index]
    run = wait_final(prefect_server, run_id, served["proc"])

    rows = outcome_rows(prefect_server, run_id)
    assert {n: r["outcome"] for n, r in rows.items()} == {
        **{n: "uploaded" for n in good}, f"Served bad {u}.jpg": "rejected"}
    for name, data in good.items():
        info = upload.file_info(session, name)
        assert info is not None and info["sha1"] == sha1(data)
    assert upload.file_info(session, f"Served bad {u}.jpg") is None

    stored = json.dumps(run.parameters)
    assert set(run.parameters["credentials"]) == {"$ref"}
    # The run's logs reach the server in batches, some after its final state: wait until the
    # line of every file is there (a race seen once the wiki answered faster), then search all.
    wanted = [*good, f"Served bad {u}.jpg"]
    deadline = time.monotonic() + 60
    while True:
        with client_of(prefect_server) as client:
            logs = client.read_logs(log_filter=LogFilter(
                flow_run_id=LogFilterFlowRunId(any_=[run.id])))
        text = "\n".join(log.message for log in logs)
        if all(name in text for name in wanted) or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert logs, "the run sent no logs to the server"
    assert all(name in text for name in wanted), text[-3000:]
    for secret in secret_forms(wiki.password):
        assert secret not in stored
        assert secret not in text


def test_nightly_drop_folder_twice_sends_nothing_the_second_time(
        served, prefect_server, wiki, drop_folder, unique):
    session = session_for(wiki)
    u = unique()
    files = pngs(drop_folder, f"Nightly a {u}.png", f"Nightly b {u}.png")

    first = run_to_end(prefect_server, "import-folder/nightly-drop-folder", served["proc"])
    rows = outcome_rows(prefect_server, first.id)
    assert {n: r["outcome"] for n, r in rows.items()} == {n: "uploaded" for n in files}

    second = run_to_end(prefect_server, "import-folder/nightly-drop-folder", served["proc"])
    rows = outcome_rows(prefect_server, second.id)
    assert {n: (r["outcome"], r["reason"]) for n, r in rows.items()} == {
        n: ("skipped", "already-uploaded") for n in files}  # decided from the ledger, before any upload
    for name, data in files.items():
        info = upload.file_info(session, name, history=True)
        assert info is not None and info["sha1"] == sha1(data) and len(info["versions"]) == 1


def test_review_resolution_deployment_publishes_a_needs_review_file(
        served, prefect_server, wiki, tmp_path, unique):
    session = session_for(wiki)
    name = f"Served review {unique()}.png"
    theirs, ours = png_bytes(), png_bytes()
    upload.upload_bytes(session, theirs, name)
    folder = tmp_path / "conflict"
    folder.mkdir()
    (folder / name).write_bytes(ours)

    batch = run_to_end(prefect_server, "import-folder/folder-import", served["proc"], folder=str(folder),
                 settings={"review_timeout_s": 0})
    row = outcome_rows(prefect_server, batch.id)[name]
    assert (row["outcome"], row["reason"]) == ("needs-review", "exists")
    with Ledger(served["ledger"]) as ledger:
        item = ledger.item(wiki.api_url, folder / name)
    assert item is not None and item.state is State.NEEDS_REVIEW and item.filekey

    run_to_end(prefect_server, "resolve-review/review-resolution", served["proc"], item_id=item.id,
         decision="publish")
    info = upload.file_info(session, name, history=True)
    assert [v["sha1"] for v in info["versions"]] == [sha1(ours), sha1(theirs)]
    with Ledger(served["ledger"]) as ledger:
        assert ledger.get(item.id).state is State.UPLOADED
