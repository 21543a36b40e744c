"""Structured data cells: what a manifest row gives, how values become the wiki's datavalues, and
what of a batch's structured data an entity still lacks (no server: pure functions; the wiki's
side is tests/integration/test_structured_data.py)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mwingest.base.items import IngestItem
from mwingest.describe import structured
from mwingest.describe.manifest import read_manifest
from mwingest.job import structured as step
from mwingest.job.settings import BatchSettings
from mwingest.wiki.mediainfo import Entity


def test_cells_are_captions_and_the_mapped_statement_columns_with_a_value() -> None:
    row = {"source": "a.png", "caption.en": " A harbour ", "caption.de": "", "depicts": "Q1; Q2",
           "creator": None, "description": "not structured"}
    assert structured.cells(row, ["depicts", "creator"]) == (
        ("caption.en", "A harbour"), ("depicts", "Q1; Q2"))


def test_a_manifest_keeps_the_cells_on_its_items(tmp_path: Path) -> None:
    (tmp_path / "a.png").write_bytes(b"x")
    manifest = tmp_path / "m.jsonl"
    manifest.write_text(json.dumps({"source": "a.png", "caption.fr": "Un port",
                                    "inception": 1911}) + "\n")
    [item] = read_manifest(manifest, statement_columns=["inception"])
    assert item.structured == (("caption.fr", "Un port"), ("inception", "1911"))


COLUMNS = ["copyright_licence", "inception", "depicts"]


@pytest.mark.parametrize(("row", "filled"), [
    ({"licence": "cc-by-4.0", "date": "2024:05:06 10:11:12"},
     (("copyright_licence", "Q9"), ("inception", "2024-05-06"))),
    ({"licence": "{{CC-BY-4.0}}", "date": "1911-05"},
     (("copyright_licence", "Q9"), ("inception", "1911-05"))),
    ({"licence": "cc-by-4.0", "date": "1911", "copyright_licence": "Q7", "inception": "1900"},
     (("copyright_licence", "Q7"), ("inception", "1900"))),  # a cell's own value wins
    ({"licence": "my-own-licence", "date": "in the 1920s"}, ()),  # unknown: nothing guessed
    ({"licence": "", "date": "19110517"}, ()),
])
def test_fill_takes_licence_and_inception_from_the_description(
        row: dict[str, str], filled: tuple[tuple[str, str], ...]) -> None:
    assert structured.cells(row, COLUMNS, {"cc-by-4.0": "Q9"}) == filled
    # Off (no map), or a batch whose statements have no such column: nothing is added.
    assert structured.cells({**row, "copyright_licence": "", "inception": ""}, COLUMNS) == ()
    assert structured.cells({"licence": "cc-by-4.0", "date": "1911"}, ["depicts"],
                            {"cc-by-4.0": "Q9"}) == ()


def test_a_manifest_fills_from_the_batch_licence_when_the_settings_say_so(tmp_path: Path) -> None:
    (tmp_path / "a.png").write_bytes(b"x")
    manifest = tmp_path / "m.csv"
    manifest.write_text("source,date\na.png,1911-05-17\n")
    settings = BatchSettings.from_flat(licence="cc-by-sa-4.0", fill_statements=True)
    [item] = settings.collect([str(manifest)])
    assert dict(item.structured) == {"copyright_licence": "Q18199165", "inception": "1911-05-17"}
    [plain] = BatchSettings.from_flat(licence="cc-by-sa-4.0").collect([str(manifest)])
    assert plain.structured == ()
    with pytest.raises(ValueError, match="item ids"):
        BatchSettings.from_flat(licence_items={"cc-by-4.0": "P1"})


@pytest.mark.parametrize(("text", "time", "precision"), [
    ("1911", "+1911-00-00T00:00:00Z", 9), ("1911-05", "+1911-05-00T00:00:00Z", 10),
    ("1911-05-17", "+1911-05-17T00:00:00Z", 11)])
def test_dates_become_gregorian_times_with_their_precision(text: str, time: str, precision: int) -> None:
    made = structured.datavalue("time", text)
    assert not isinstance(made, str)
    assert made[0]["value"]["time"] == time and made[0]["value"]["precision"] == precision


@pytest.mark.parametrize(("datatype", "text"), [
    ("wikibase-item", "cat"), ("wikibase-item", "Q0"), ("time", "17 May 1911"),
    ("time", "1911-13"), ("quantity", "3")])
def test_values_the_property_cannot_take_say_why(datatype: str, text: str) -> None:
    assert isinstance(structured.datavalue(datatype, text), str)


def test_the_default_map_is_wikidata_s_and_malformed_ids_are_refused() -> None:
    assert BatchSettings().describing.statements["depicts"] == "P180"
    assert BatchSettings().describing.statements["copyright_status"] == "P6216"
    with pytest.raises(ValueError, match="property ids"):
        BatchSettings.from_flat(statements={"depicts": "Q180"})


def test_a_batch_without_cells_asks_the_wiki_nothing() -> None:
    class NoWiki:
        def get(self, params):  # pragma: no cover - must not be called
            raise AssertionError(params)

    items = [IngestItem(source="a.png")]
    assert structured.check_items(NoWiki(), items, structured.DEFAULT_STATEMENTS).items == items


def _want() -> dict:
    q1 = structured.datavalue("wikibase-item", "Q1")
    t = structured.datavalue("time", "1911")
    assert not isinstance(q1, str) and not isinstance(t, str)
    return {"labels": {"en": "A harbour", "de": "Ein Hafen"},
            "statements": [{"column": "depicts", "property": "P1", "datavalue": q1[0], "shown": "Q1"},
                           {"column": "depicts", "property": "P1", "datavalue": q1[0], "shown": "Q1"},
                           {"column": "inception", "property": "P3", "datavalue": t[0], "shown": "1911"}]}


def test_only_what_the_entity_lacks_is_written_and_another_caption_is_kept() -> None:
    entity = Entity("M5", 7, True, labels={"en": "Someone's caption"},
                    statements={"P1": [{"entity-type": "item", "numeric-id": 1, "id": "Q1"}]})
    labels, claims, kept = step.missing(_want(), entity)
    assert labels == {"de": "Ein Hafen"}
    assert [c["property"] for c in claims] == ["P3"]  # Q1 is there; twice in the cell is once
    assert kept == {"en": "Someone's caption"}
    assert step.shown(_want(), entity) == "depicts (P1) Q1"


def test_an_entity_holding_everything_lacks_nothing() -> None:
    entity = Entity("M5", 7, True, labels={"en": "A harbour", "de": "Ein Hafen"}, statements={
        "P1": [{"entity-type": "item", "numeric-id": 1, "id": "Q1"}],
        "P3": [{"time": "+1911-00-00T00:00:00Z", "precision": 9, "timezone": 0}]})
    assert step.missing(_want(), entity) == ({}, [], {})
    assert step.shown(_want(), entity) == "captions de, en; depicts (P1) Q1; inception (P3) 1911"


def test_a_file_without_its_structured_data_is_counted_apart_and_fails_the_command() -> None:
    from mwingest.base.items import STRUCTURED_DATA_FAILED, Outcome
    from mwingest.cli.output import exit_code
    from tasks.report import summary_markdown

    good = Outcome("a.png", "A.png", "uploaded", "verified", "structured data: captions en")
    bad = Outcome("b.png", "B.png", "uploaded", STRUCTURED_DATA_FAILED, "not written: depicts=Q1")
    assert good.ok and not bad.ok
    assert exit_code([good]) == 0 and exit_code([good, bad]) == 1
    text = summary_markdown([good, bad], wiki="http://w/api.php", seconds=1.0, ledger_path="l")
    assert "| uploaded | 2 |" in text
    assert "**1 uploaded without their structured data**" in text
    assert "`b.png`: **uploaded** `structured-data-failed` — not written: depicts=Q1" in text


def test_the_review_form_shows_the_structured_data_the_file_brings() -> None:
    from flows.review import describe_conflict

    text = describe_conflict("a.png", "A.png", {"exists": "A.png"}, sha1="0" * 40, size=3,
                             existing=None, structured=step.shown(_want(), None))
    from mwingest.base import markdown as md

    # Escaped like every other word in the form (mwingest.base.markdown), so shown as written.
    assert ("* its structured data, written once it lands: "
            + md.text("captions de, en; depicts (P1) Q1; inception (P3) 1911")) in text
