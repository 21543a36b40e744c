"""Manifests and folders into items: every bad row becomes that row's rejection, naming its line.

Pure file work, no wiki: each test writes a small manifest into ``tmp_path`` and reads it back.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from mwingest.base.items import IngestItem
from mwingest.describe.manifest import read_manifest, scan_folder
from mwingest.describe.sources import collect
from mwingest.describe.template import load_template


def _files(folder: Path, *names: str) -> None:
    for name in names:
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"\x89PNG not really")


def _by_line(items: list[IngestItem]) -> dict[int | None, IngestItem]:
    return {item.line: item for item in items}


def test_csv_rows_resolve_against_the_manifest_folder_not_the_cwd(tmp_path, monkeypatch):
    batch = tmp_path / "batch"
    _files(batch, "img/a.png", "b.png")
    manifest = batch / "list.csv"
    manifest.write_text("source,filename,comment,tags\n"
                        "img/a.png,Alpha.png,first,news|archive\n"
                        "b.png,,,\n", encoding="utf-8")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)

    first, second = read_manifest(Path(os.path.relpath(manifest)))

    assert first.source == str((batch / "img/a.png").resolve())
    assert (first.filename, first.comment, first.tags, first.line) == (
        "Alpha.png", "first", ("news", "archive"), 2)
    assert first.error is None
    assert second.source == str((batch / "b.png").resolve())
    assert (second.filename, second.comment, second.tags, second.error) == (None, None, (), None)


def test_csv_header_without_source_rejects_the_whole_file_at_line_1(tmp_path):
    manifest = tmp_path / "m.csv"
    manifest.write_text("path,filename\na.png,A.png\n", encoding="utf-8")

    [item] = read_manifest(manifest)

    assert (item.error, item.line) == ("bad-manifest-row", 1)
    assert "m.csv line 1" in item.error_message and "'source'" in item.error_message


def test_csv_bom_and_sloppy_header_still_find_the_source_column(tmp_path):
    _files(tmp_path, "a.png")
    manifest = tmp_path / "m.csv"
    manifest.write_bytes("\ufeff Source ,FileName\na.png,A.png\n".encode())

    [item] = read_manifest(manifest)

    assert item.error is None
    assert (item.source, item.filename) == (str(tmp_path / "a.png"), "A.png")


def test_csv_row_with_more_fields_than_the_header_is_rejected_by_line(tmp_path):
    _files(tmp_path, "a.png", "b.png")
    manifest = tmp_path / "m.csv"
    manifest.write_text("source,filename\na.png,A.png\nb.png,B.png,surplus\n", encoding="utf-8")

    items = _by_line(read_manifest(manifest))

    assert items[2].error is None
    assert items[3].error == "bad-manifest-row"
    assert "m.csv line 3" in items[3].error_message and "more fields" in items[3].error_message


def test_csv_empty_source_is_rejected_with_its_line(tmp_path):
    manifest = tmp_path / "m.csv"
    manifest.write_text("source,filename\n,Orphan.png\n", encoding="utf-8")

    [item] = read_manifest(manifest)

    assert (item.error, item.line) == ("bad-manifest-row", 2)
    assert "line 2" in item.error_message


def test_jsonl_bad_json_and_non_object_rows_are_rejected_blank_lines_keep_numbering(tmp_path):
    _files(tmp_path, "a.png")
    manifest = tmp_path / "m.jsonl"
    manifest.write_text('{"source": "a.png", "tags": ["x", "y"], "filename": 1234}\n'
                        "\n"
                        "{not json\n"
                        "[1, 2]\n"
                        '"just a string"\n'
                        '{"filename": "NoSource.png"}\n', encoding="utf-8")

    items = _by_line(read_manifest(manifest))

    assert sorted(items) == [1, 3, 4, 5, 6]
    assert items[1].error is None
    assert (items[1].tags, items[1].filename) == (("x", "y"), "1234")
    assert items[3].error == "bad-manifest-row" and "not valid JSON" in items[3].error_message
    assert items[4].error == "bad-manifest-row" and "must be an object" in items[4].error_message
    assert items[5].error == "bad-manifest-row"
    assert items[6].error == "bad-manifest-row" and "'source'" in items[6].error_message
    for line in (3, 4, 5, 6):
        assert f"m.jsonl line {line}" in items[line].error_message


def test_paths_escaping_the_manifest_folder_are_unsafe(tmp_path):
    inside = tmp_path / "inside"
    _files(tmp_path, "outside.png")
    _files(inside, "ok.png")
    (inside / "link.png").symlink_to(tmp_path / "outside.png")
    manifest = inside / "m.jsonl"
    rows = [{"source": "ok.png"}, {"source": "../outside.png"},
            {"source": str(tmp_path / "outside.png")}, {"source": "link.png"},
            {"source": "sub/../../outside.png"}]
    manifest.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")

    items = _by_line(read_manifest(manifest))

    assert items[1].error is None
    for line in (2, 3, 4, 5):
        assert items[line].error == "unsafe-path", line
        assert f"m.jsonl line {line}" in items[line].error_message


def test_a_missing_file_is_rejected_with_its_line(tmp_path):
    manifest = tmp_path / "m.csv"
    manifest.write_text("source\nnothere.png\n", encoding="utf-8")

    [item] = read_manifest(manifest)

    assert (item.error, item.line) == ("not-found", 2)
    assert "m.csv line 2" in item.error_message and "nothere.png" in item.error_message


def test_url_rows_are_kept_as_urls(tmp_path):
    manifest = tmp_path / "m.csv"
    manifest.write_text("source,filename\nhttps://example.org/x?id=3,X.png\n", encoding="utf-8")

    [item] = read_manifest(manifest)

    assert (item.source, item.filename, item.error) == ("https://example.org/x?id=3", "X.png", None)


def test_template_fills_extra_columns_and_a_text_column_wins(tmp_path):
    _files(tmp_path, "a.png", "b.png")
    template = tmp_path / "page.txt"
    template.write_text("== {title} ==\nBy {author}, {{{{Information}}}}", encoding="utf-8")
    manifest = tmp_path / "m.csv"
    manifest.write_text("source,title,author,text\n"
                        "a.png,Harbour,Ann Lee,\n"
                        "b.png,Quay,Bo,Own text\n", encoding="utf-8")

    first, second = read_manifest(manifest, text_template=str(template))

    assert first.text == "== Harbour ==\nBy Ann Lee, {{Information}}"
    assert second.text == "Own text"


def test_template_with_a_missing_column_rejects_the_row(tmp_path):
    _files(tmp_path, "a.png")
    template = tmp_path / "page.txt"
    template.write_text("{title} by {photographer}", encoding="utf-8")
    manifest = tmp_path / "m.csv"
    manifest.write_text("source,title\na.png,Harbour\n", encoding="utf-8")

    [item] = read_manifest(manifest, text_template=str(template))

    assert item.error == "template-field-missing"
    assert "m.csv line 2" in item.error_message and "photographer" in item.error_message


@pytest.mark.parametrize("text", ["{title", "{}", "{0}", "{title.upper}", "{row[1]}", "}"])
def test_malformed_template_is_one_error_for_the_run(tmp_path, text):
    template = tmp_path / "page.txt"
    template.write_text(text, encoding="utf-8")

    with pytest.raises(ValueError, match="template"):
        load_template(template)


@pytest.mark.parametrize("suffix", [".csv", ".jsonl"])
def test_non_utf8_bytes_reject_only_their_rows(tmp_path, suffix):
    _files(tmp_path, "a.png")
    manifest = tmp_path / f"m{suffix}"
    if suffix == ".csv":
        manifest.write_bytes(b"source,title\na.png,ok\na.png,caf\xe9\na.png,fine\n")
    else:
        manifest.write_bytes(b'{"source": "a.png"}\n{"source": "caf\xe9.png"}\n{"source": "a.png"}\n')

    items = read_manifest(manifest)

    assert [i.error for i in items] == [None, "bad-manifest-row", None]
    assert "UTF-8" in items[1].error_message and f"m{suffix} line {items[1].line}" in items[1].error_message


def test_collect_mixes_urls_files_folders_and_manifests(tmp_path):
    _files(tmp_path / "dir", "x.png", "sub/y.png", ".hidden.png", ".git/z.png")
    _files(tmp_path, "single.png", "listed.png")
    (tmp_path / "m.csv").write_text("source\nlisted.png\n", encoding="utf-8")

    items = collect(["https://example.org/a.png", str(tmp_path / "dir"),
                     str(tmp_path / "single.png"), str(tmp_path / "m.csv")])

    assert [i.source for i in items] == [
        "https://example.org/a.png", str(tmp_path / "dir/sub/y.png"), str(tmp_path / "dir/x.png"),
        str(tmp_path / "single.png"), str(tmp_path / "listed.png")]


def test_scan_folder_glob_and_links_out_of_the_folder(tmp_path):
    _files(tmp_path / "dir", "a.png", "b.jpg", "deep/c.png")
    _files(tmp_path, "secret.png")
    (tmp_path / "dir" / "link.png").symlink_to(tmp_path / "secret.png")

    names = [Path(i.source).name for i in scan_folder(tmp_path / "dir", glob="*.png")]

    assert names == ["a.png", "c.png"]


def test_an_unsafe_path_is_reported_before_a_template_problem(tmp_path):
    template = tmp_path / "page.txt"
    template.write_text("{title} {year}", encoding="utf-8")
    manifest = tmp_path / "inside" / "m.jsonl"
    manifest.parent.mkdir()
    manifest.write_text(json.dumps({"source": "../../x.png", "title": "T"}) + "\n", encoding="utf-8")

    [item] = read_manifest(manifest, text_template=str(template))

    assert item.error == "unsafe-path"


def test_an_id_column_is_the_items_identity(tmp_path):
    _files(tmp_path, "a.png", "b.png")
    manifest = tmp_path / "list.csv"
    manifest.write_text("source,ID\na.png,acc-1911-042\nb.png, \n", encoding="utf-8")

    first, second = read_manifest(manifest)

    assert (first.key, second.key) == ("list.csv#acc-1911-042", None)


def test_two_manifests_numbering_from_one_do_not_reset_each_others_rows(tmp_path):
    """Issue 24: ``id`` is scoped to its manifest. Two CSVs both with id=1 are two ledger rows;
    reading the second does not send the first's finished row back to the start."""
    from mwingest.ledger.ledger import Ledger, State

    _files(tmp_path, "a.png", "b.png")
    (tmp_path / "scans.csv").write_text("source,id\na.png,1\n", encoding="utf-8")
    (tmp_path / "letters.csv").write_text("source,id\nb.png,1\n", encoding="utf-8")
    [scan] = read_manifest(tmp_path / "scans.csv")
    [letter] = read_manifest(tmp_path / "letters.csv")
    assert scan.key != letter.key
    wiki = "http://127.0.0.1:9412/w/api.php"
    with Ledger(tmp_path / "ledger.sqlite3") as ledger:
        first = ledger.begin(wiki, scan.source, sha1="a" * 40, size=1, target="A.png",
                             key=scan.key)
        ledger.transition(first.id, State.VALIDATED)
        second = ledger.begin(wiki, letter.source, sha1="b" * 40, size=1, target="B.png",
                              key=letter.key)
        assert second.id != first.id
        kept = ledger.get(first.id)
        assert (kept.state, kept.target, kept.sha1) == (State.VALIDATED, "A.png", "a" * 40)
        # The same manifest read again (another machine, another mount) is the same item.
        (tmp_path / "elsewhere").mkdir()
        _files(tmp_path / "elsewhere", "a.png")
        (tmp_path / "elsewhere" / "scans.csv").write_text("source,id\na.png,1\n", encoding="utf-8")
        [again] = read_manifest(tmp_path / "elsewhere" / "scans.csv")
        assert ledger.begin(wiki, again.source, sha1="a" * 40, size=1, target="A.png",
                            key=again.key).id == first.id
