"""The CLI's plumbing without a wiki or Prefect: option parsing, exit codes, JSON lines, status,
the review pre-checks, and that the quick commands never import Prefect.

``mwingest.api.ingest``/``preflight``/``resolve`` are replaced by recording fakes where a test is
about what the CLI hands them; the end-to-end runs are in ``tests/integration/test_cli.py``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from mwingest import api
from mwingest.base.items import Outcome
from mwingest.cli.app import JSON_KEYS, json_line, main, parse_size

WIKI = "http://127.0.0.1:1/api.php"


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """No wiki, user or ledger from the developer's shell; restored after each test."""
    for name in ("MWINGEST_API_URL", "MWINGEST_USERNAME", "MWINGEST_PASSWORD",
                 "MWINGEST_OAUTH_TOKEN", "MWINGEST_LEDGER"):
        monkeypatch.delenv(name, raising=False)


def run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    """``mwingest argv`` in-process: (exit code, stdout, stderr)."""
    with pytest.raises(SystemExit) as stopped:
        main(argv)
    out, err = capsys.readouterr()
    return int(stopped.value.code or 0), out, err


def json_rows(stdout: str) -> list[dict[str, Any]]:
    rows = [json.loads(line) for line in stdout.splitlines()]
    assert all(list(row) == list(JSON_KEYS) for row in rows), rows
    return rows


def one_line(stderr: str) -> str:
    assert stderr.endswith("\n") and stderr.count("\n") == 1, stderr
    assert stderr.startswith("mwingest: ") and "Traceback" not in stderr
    return stderr


class FakeIngest:
    """Records the CLI's call; tells the listener about the first outcome only (the CLI must
    still print a line for every outcome it gets back)."""

    def __init__(self, outcomes: list[Outcome]) -> None:
        self.outcomes = outcomes
        self.calls: list[tuple[list[str], dict[str, Any]]] = []

    def __call__(self, sources: list[str], **kwargs: Any) -> list[Outcome]:
        self.calls.append((list(sources), kwargs))
        if kwargs.get("on_outcome") and self.outcomes:
            kwargs["on_outcome"](self.outcomes[0])
        return self.outcomes


@pytest.fixture
def fake_run(monkeypatch: pytest.MonkeyPatch):
    """Install a FakeIngest and a no-op preflight; returns a factory taking the outcomes."""
    preflights: list[str | None] = []
    monkeypatch.setattr(api, "preflight", preflights.append)

    def install(outcomes: list[Outcome]) -> FakeIngest:
        fake = FakeIngest(outcomes)
        monkeypatch.setattr(api, "ingest", fake)
        fake.preflights = preflights  # type: ignore[attr-defined]
        return fake

    return install


def _outcome(name: str, outcome: str, reason: str | None = None) -> Outcome:
    return Outcome(f"/data/{name}", name.capitalize(), outcome, reason, None, "a" * 40, 10)


# --- parse_size ---------------------------------------------------------------------------------

@pytest.mark.parametrize(("text", "size"), [
    ("8MiB", 8 * 1024**2), ("512KiB", 512 * 1024), ("64KiB", 65536), ("1G", 1024**3),
    ("1048576", 1048576), ("1.5M", 1572864), (" 2 MiB ", 2 * 1024**2), ("3mb", 3 * 1024**2),
    ("100B", 100), ("4k", 4096),
])
def test_parse_size_reads_binary_units(text, size):
    assert parse_size(text) == size


@pytest.mark.parametrize("text", ["lots", "", "MiB", "-1", "0", "0.0001", "8XB", "1e3", "8 Mi B x"])
def test_parse_size_refuses_nonsense(text):
    import typer

    with pytest.raises(typer.BadParameter):
        parse_size(text)


# --- upload / import: what reaches ingest, exit codes, JSON lines ----------------------------------

def test_upload_hands_parsed_options_to_ingest_and_prints_every_outcome_once(
        fake_run, capsys, tmp_path):
    fake = fake_run([_outcome("a.png", "uploaded", "verified"), _outcome("b.png", "skipped", "nochange")])
    text_file = tmp_path / "page.txt"
    text_file.write_text("Page text from a file", encoding="utf-8")

    code, out, err = run(["upload", "a.png", "--wiki", WIKI, "--username", "Bot@app",
                          "--filename", "Target.png", "--text-file", str(text_file),
                          "--comment", "batch 7", "--tags", "one, two,,", "--chunk-size", "64KiB",
                          "--on-warning", "exists=rename, duplicate=publish", "--concurrency", "3",
                          "--ledger", str(tmp_path / "l.sqlite3"), "--json"], capsys)

    assert (code, err) == (0, "")
    assert [r["source"] for r in json_rows(out)] == ["/data/a.png", "/data/b.png"]
    assert fake.preflights == [WIKI]
    [(sources, kwargs)] = fake.calls
    assert sources == ["a.png"]
    assert {k: kwargs[k] for k in ("wiki", "filename", "quiet", "check_connection",
                                   "credentials_block")} == {
        "wiki": WIKI, "filename": "Target.png", "quiet": True, "check_connection": False,
        "credentials_block": None}
    settings = kwargs["settings"]  # every batch option travels in the one settings model
    d, s = settings.describing, settings.sending
    assert (d.text, d.comment, d.tags) == ("Page text from a file", "batch 7", ["one", "two"])
    assert (s.chunk_size_mb * 1024 * 1024, s.concurrency) == (65536, 3)
    assert settings.options().policy.action_for("exists") == "rename"
    assert settings.options().policy.action_for("duplicate") == "publish"
    assert settings.ledger_path == str(tmp_path / "l.sqlite3")
    assert os.environ["MWINGEST_USERNAME"] == "Bot@app"  # the flow reads it from there


@pytest.mark.parametrize("bad", ["rejected", "needs-review", "failed"])
def test_any_item_not_uploaded_or_skipped_exits_1(fake_run, capsys, bad):
    fake_run([_outcome("a.png", "uploaded"), _outcome("b.png", bad, "some-reason")])

    code, out, _ = run(["upload", "a.png", "b.png", "--wiki", WIKI, "--json"], capsys)

    assert code == 1
    assert [r["outcome"] for r in json_rows(out)] == ["uploaded", bad]


def test_without_json_a_table_goes_to_stdout(fake_run, capsys):
    fake_run([_outcome("a.png", "uploaded", "verified"), _outcome("b.png", "rejected", "empty-file")])

    code, out, _ = run(["upload", "a.png", "b.png", "--wiki", WIKI], capsys)

    assert code == 1
    assert "empty-file" in out and "1 rejected" in out and "1 uploaded" in out
    with pytest.raises(json.JSONDecodeError):
        json.loads(out.splitlines()[0])


def test_max_pixels_reaches_the_run_and_the_check(fake_run, capsys, tmp_path, make_png):
    fake = fake_run([_outcome("a.png", "uploaded")])
    code, _, _ = run(["upload", "a.png", "--wiki", WIKI, "--max-pixels", "5000", "--json"], capsys)
    assert code == 0 and fake.calls[0][1]["settings"].safety.max_pixels == 5000

    image = tmp_path / "big.png"
    image.write_bytes(make_png(width=100, height=100))  # 10,000 pixels
    code, out, _ = run(["check", str(image), "--json", "--max-pixels", "5000"], capsys)
    assert (code, json_rows(out)[0]["reason"]) == (1, "decompression-bomb")
    code, out, _ = run(["check", str(image), "--json"], capsys)
    assert (code, json_rows(out)[0]["outcome"]) == (0, "ok")


def test_import_hands_glob_and_template_to_ingest(fake_run, capsys, tmp_path):
    fake = fake_run([_outcome("a.png", "uploaded")])
    template = tmp_path / "t.txt"
    template.write_text("{title}", encoding="utf-8")

    code, _, _ = run(["import", str(tmp_path), "--wiki", WIKI, "--glob", "*.png",
                      "--text-template", str(template), "--json"], capsys)

    assert code == 0
    [(sources, kwargs)] = fake.calls
    settings = kwargs["settings"]
    assert (sources, settings.safety.glob, settings.describing.text_template) == (
        [str(tmp_path)], "*.png", str(template))


@pytest.mark.parametrize(("argv", "says"), [
    (["upload", "a.png", "--on-warning", "exists=bogus"], "skip|publish|rename|review|fail"),
    (["upload", "a.png", "--on-warning", "exists"], "CODE=ACTION"),
    (["upload", "a.png", "--bogus"], "--bogus"),
    (["upload", "a.png", "--chunk-size", "lots"], "--chunk-size"),
    (["upload", "a.png", "b.png", "--filename", "X.png"], "exactly one source"),
    (["upload", "a.png", "--text", "x", "--text-file", __file__], "not both"),
    (["upload", "a.png", "--concurrency", "0"], "--concurrency"),
    (["upload"], "Missing argument"),
    (["import", "/no/such/folder"], "does not exist"),
    (["review", "1", "--decision", "maybe"], "--decision"),
    (["review", "1", "--decision", "skip", "--filename", "X.png"], "--decision rename"),
    (["frobnicate"], "frobnicate"),
])
def test_usage_errors_exit_2_with_one_line_and_start_nothing(fake_run, capsys, argv, says):
    fake = fake_run([])

    code, out, err = run([*argv, "--wiki", WIKI] if argv[0] != "frobnicate" else argv, capsys)

    assert (code, out) == (2, "")
    assert says in one_line(err)
    assert fake.calls == [] and fake.preflights == []


def test_a_bad_template_is_a_usage_error(fake_run, capsys, tmp_path):
    fake = fake_run([])
    template = tmp_path / "t.txt"
    template.write_text("{title", encoding="utf-8")

    code, _, err = run(["import", str(tmp_path), "--wiki", WIKI, "--text-template", str(template)],
                       capsys)

    assert code == 2 and "template" in one_line(err)
    assert fake.calls == []


def test_setup_errors_exit_2_with_the_message(monkeypatch, capsys):
    def refuse(wiki: str | None) -> None:
        raise api.IngestSetupError("login refused: Incorrect password (check MWINGEST_PASSWORD)")

    monkeypatch.setattr(api, "preflight", refuse)

    code, out, err = run(["upload", "a.png", "--wiki", WIKI, "--json"], capsys)

    assert (code, out) == (2, "")
    assert "login refused" in one_line(err) and "MWINGEST_PASSWORD" in err


def test_preflight_without_password_says_what_to_set(monkeypatch):
    with pytest.raises(api.IngestSetupError, match="MWINGEST_PASSWORD"):
        api.preflight(WIKI)
    with pytest.raises(api.IngestSetupError, match="--wiki"):
        api.preflight(None)


@pytest.mark.parametrize(("error", "says"), [
    (RuntimeError("Failed to reach API at http://127.0.0.1:1/api/"), "Prefect unreachable"),
    (ValueError("no wiki API URL: pass one or set MWINGEST_API_URL"), "--wiki"),
])
def test_setup_failures_inside_the_run_are_worded_as_what_to_fix(error, says):
    setup = api._setup_error(error)

    assert setup is not None and says in str(setup)
    assert api._setup_error(RuntimeError("a bug")) is None


def test_json_line_has_exactly_the_documented_keys():
    line = json_line(Outcome("s", "F.png", "needs-review", "exists", "m", "b" * 40, 3, None, "key.1",
                             bytes_sent=3, ledger_id=9))

    assert json.loads(line) == {"source": "s", "filename": "F.png", "outcome": "needs-review",
                                "reason": "exists", "message": "m", "sha1": "b" * 40, "size": 3,
                                "url": None, "filekey": "key.1"}


# --- check, and start-up cost ----------------------------------------------------------------------

def test_check_reports_ok_and_rejected_per_file(tmp_path, capsys, make_png):
    (tmp_path / "good.png").write_bytes(make_png())
    (tmp_path / "empty.png").write_bytes(b"")
    (tmp_path / "page.jpg").write_bytes(b"<html><script>alert(1)</script></html>")

    code, out, _ = run(["check", str(tmp_path), "--json"], capsys)

    assert code == 1
    got = {Path(r["source"]).name: (r["outcome"], r["reason"]) for r in json_rows(out)}
    assert got["good.png"] == ("ok", None)
    assert got["empty.png"] == ("rejected", "empty-file")
    assert got["page.jpg"][0] == "rejected"


def test_help_status_and_check_never_import_prefect(tmp_path, make_png):
    """Start-up cost: the quick commands must not pay for Prefect (≈1–2 s of imports)."""
    (tmp_path / "good.png").write_bytes(make_png())
    code = textwrap.dedent(f"""
        import sys
        from mwingest.cli.app import main
        for argv in (["--help"], ["check", {str(tmp_path / "good.png")!r}, "--json"],
                     ["status", "--ledger", {str(tmp_path / "none.sqlite3")!r}],
                     ["server", "status"], ["upload", "x.png", "--bogus"]):
            try:
                main(argv)
            except SystemExit:
                pass
        loaded = sorted(m for m in sys.modules if m.split(".")[0] in ("prefect", "flows", "tasks"))
        print("LOADED", loaded, file=sys.stderr)
    """)
    env = {k: v for k, v in os.environ.items() if not k.startswith("MWINGEST_")}
    env["MWINGEST_HOME"] = str(tmp_path / "home")  # no server there: status answers at once

    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                          timeout=120, check=True)

    assert '"outcome": "ok"' in done.stdout
    assert "LOADED []" in done.stderr
