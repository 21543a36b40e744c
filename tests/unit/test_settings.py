"""The one settings model: flat names, nested groups, JSON round trips, and what it refuses."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from flows.fanout import plan_settings
from mwingest.base.policy import Action
from mwingest.job.settings import DEFAULT_SETTINGS, BatchSettings, OnWarning
from mwingest.ledger.ledger import LedgerLocationError, Plan


def test_flat_names_land_in_their_groups_and_the_rest_keeps_its_default():
    s = BatchSettings.from_flat(comment="batch 7", tags=["a"], chunk_size_mb=0.5, glob="*.tif",
                                on_warning={"exists": "rename"}, review_timeout_s=0)
    assert (s.describing.comment, s.describing.tags, s.sending.chunk_size_mb, s.safety.glob) == (
        "batch 7", ["a"], 0.5, "*.tif")
    assert s.on_warning.exists is Action.RENAME and s.review_wait == 0
    assert s.describing.check_pages is DEFAULT_SETTINGS.describing.check_pages
    assert s.sending.retry_budget_s == DEFAULT_SETTINGS.sending.retry_budget_s


def test_none_means_the_default_as_in_the_flat_api():
    s = BatchSettings.from_flat(text=None, stash_hours=None, max_pixels=None, licence=None,
                                review_timeout_s=None)
    assert s == DEFAULT_SETTINGS
    assert s.review_wait is None  # decided by whether a UI can show the form


def test_a_plain_dict_of_leaves_validates_like_a_deployment_parameter():
    s = BatchSettings.model_validate({"review_timeout_s": 0, "concurrency": 2,
                                      "describing": {"text": "T"}, "text_template": "t.wiki"})
    assert (s.review_wait, s.sending.concurrency) == (0, 2)
    assert (s.describing.text, s.describing.text_template) == ("T", "t.wiki")


def test_json_round_trip_is_exact():
    s = BatchSettings.from_flat(text="x", tags=["t"], allow_hosts=["127.0.0.1:8080"],
                                on_warning={"red-category": "fail", "duplicateversions": "skip"},
                                async_assembly=True)
    assert BatchSettings.model_validate(s.model_dump(mode="json")) == s


def test_unknown_names_and_bad_values_are_refused():
    with pytest.raises(TypeError, match="bogus"):
        BatchSettings.from_flat(bogus=1)
    with pytest.raises(ValidationError):
        BatchSettings.model_validate({"bogus": 1})
    with pytest.raises(ValidationError):
        BatchSettings.from_flat(concurrency=0)
    with pytest.raises(ValidationError):
        BatchSettings.from_flat(allow_hosts=["host:http"])
    with pytest.raises(ValidationError, match="'skip', 'publish', 'rename'"):
        BatchSettings.from_flat(on_warning={"exists": "maybe"})


def test_a_ledger_url_with_a_password_is_refused_before_any_run_stores_it():
    with pytest.raises(LedgerLocationError, match="carries a password") as caught:
        BatchSettings.from_flat(ledger_path="postgresql+psycopg://u:s3cret@db/ledger")
    assert "s3cret" not in str(caught.value)
    ok = BatchSettings.from_flat(ledger_path="postgresql+psycopg://u@db/ledger")
    assert ok.ledger_path.endswith("@db/ledger")


def test_warning_codes_map_to_the_form_s_fields_and_back():
    form = OnWarning.from_codes("exists=rename,thumb=skip,red-category=fail")
    assert form.exists is Action.RENAME and form.red_category is Action.FAIL
    assert form.other == {"thumb": Action.SKIP}
    policy = form.policy()
    assert (policy.action_for("exists"), policy.action_for("thumb"),
            policy.action_for("page-exists"), policy.action_for("duplicate")) == (
        "rename", "skip", "review", "skip")


def test_options_carry_every_sending_and_safety_setting():
    s = BatchSettings.from_flat(chunk_size_mb=1, text="", stash_hours=12, max_pixels=1000,
                                retry_budget_s=20, async_assembly=True, url_mode="local",
                                tags=["a", "b"])
    o = s.options(min_chunk_size=2 * 1024 * 1024)
    assert o.chunk_size == 2 * 1024 * 1024  # never below the wiki's own minimum
    assert (o.text, o.stash_hours, o.max_pixels, o.retry.budget_s) == (None, 12, 1000, 20)
    assert (o.async_assembly, o.url_mode, o.tags) == (True, "local", ("a", "b"))


def _plan(params: dict) -> Plan:
    return Plan(id="p", wiki="w", login_block="b", params=params, files=1, shards=1,
                created_at="2026-12-07T00:00:00Z", report_run=None, report_attempts=0)


def test_a_plan_gives_every_shard_all_of_the_batch_s_settings():
    chosen = BatchSettings.from_flat(on_warning={"exists": "rename"}, text="Batch text",
                                     tags=["batch-2026"], retry_budget_s=30, check_pages=False)
    got = plan_settings(_plan({"settings": chosen.model_dump(mode="json"), "plan_run": "r"}),
                        ledger="sqlite:////tmp/shared.db")
    assert got.ledger_path == "sqlite:////tmp/shared.db"
    assert got.model_copy(update={"ledger_path": ""}) == chosen


def test_a_plan_written_before_the_model_is_read_from_its_flat_names():
    got = plan_settings(_plan({"comment": "old", "chunk_size_mb": 2.0, "concurrency": 2,
                               "review_timeout_s": 0, "allow_hosts": [], "url_mode": "wiki",
                               "plan_run": "r"}), ledger=None)
    assert (got.describing.comment, got.sending.chunk_size_mb, got.review_wait) == ("old", 2.0, 0)
