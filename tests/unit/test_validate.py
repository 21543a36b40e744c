"""Verdicts over the whole corpus, and the orchestration rules of :mod:`mwingest.checks.validate`.

The wiki-side truth for the same corpus is checked in
``tests/integration/test_validation_agreement.py``; here every case must get the reason the corpus
expects, offline.
"""

from __future__ import annotations

import hashlib
import os
import random
import tracemalloc
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

from mwingest.checks.validate import Verdict, find_duplicates, validate_file, validate_folder, validate_many
from mwingest.wiki.siteinfo import WikiRules
from tests.corpus import WIKI_EXTENSIONS, Case, build_corpus, good_extensions, png, svg

RULES = WikiRules(file_extensions=WIKI_EXTENSIONS, max_upload_size=5 * 1024**3)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Case]:
    return {case.key: case for case in build_corpus(tmp_path_factory.mktemp("corpus"), seed=7)}


def test_corpus_shape(corpus: dict[str, Case]) -> None:
    cases = list(corpus.values())
    assert good_extensions(cases) == set(WIKI_EXTENSIONS)
    assert sum(1 for c in cases if not c.good) >= 30
    files = [c.path.read_bytes() for c in cases if c.path.is_file() and c.path.stat().st_size]
    assert len({hashlib.sha1(b).hexdigest() for b in files}) == len(files), "corpus bytes must be unique"


def test_every_case_gets_its_expected_verdict(corpus: dict[str, Case]) -> None:
    got = {key: validate_file(c.path, RULES, filename=c.wanted) for key, c in corpus.items()}
    wrong = {key: (v.reason, v.ok, v.codes) for key, v in got.items()
             if (v.reason, v.ok) != (corpus[key].reason, corpus[key].ok)}
    assert wrong == {}
    for key, verdict in got.items():
        for finding in verdict.findings:
            assert finding.message.startswith(f"{corpus[key].wanted}: "), finding
            assert finding.message.rstrip().endswith("."), finding.message


def test_good_files_carry_size_sha1_and_the_wiki_name(corpus: dict[str, Case]) -> None:
    for case in corpus.values():
        if not case.good:
            continue
        verdict = validate_file(case.path, RULES, filename=case.wanted)
        data = case.path.read_bytes()
        assert (verdict.size, verdict.sha1) == (len(data), hashlib.sha1(data).hexdigest())
        assert verdict.findings == () and verdict.ok and verdict.reason is None
        assert verdict.filename and verdict.filename[0].isupper()


@pytest.mark.parametrize(("key", "wiki_name"), [
    ("noext-png", "Noext.png"), ("colon", "A-b.png"), ("slash", "Dir-sub.png"), ("rtl-mark", "Ab.png"),
    ("odd-chars", "A-b-c--d--e--f.png"), ("nfd-name", "\u00c9t\u0301.png"),
])
def test_normalised_names_are_warnings_with_the_target_name(corpus: dict[str, Case], key: str,
                                                            wiki_name: str) -> None:
    verdict = validate_file(corpus[key].path, RULES, filename=corpus[key].wanted)
    assert verdict.ok and verdict.filename == wiki_name
    for finding in verdict.findings:
        assert (finding.code, finding.severity) == ("bad-filename", "warn")
        assert finding.detail["wiki_name"] == wiki_name


def test_all_findings_are_reported_in_the_wikis_order(tmp_path: Path) -> None:
    path = tmp_path / "page.php.txt"
    path.write_bytes(b"<html><body>hi</body></html>")
    verdict = validate_file(path, RULES)
    assert verdict.codes == ("script-content", "mime-mismatch", "filetype-prohibited", "filetype-not-allowed")
    assert verdict.reason == "script-content" and not verdict.ok


def test_size_limit_and_warn_only_verdicts(tmp_path: Path) -> None:
    path = tmp_path / "a b#c.png"
    path.write_bytes(png(random.Random(1), "t"))
    small = WikiRules(file_extensions=WIKI_EXTENSIONS, max_upload_size=100)
    too_big = validate_file(path, small)
    assert too_big.reason == "file-too-large" and too_big.findings[0].detail["limit"] == 100
    assert too_big.sha1 is not None  # still hashed: the ledger keys on it
    warned = validate_file(path, RULES)
    assert warned.ok and warned.reason == "bad-filename" and warned.filename == "A_b-c.png"


def test_odd_paths_never_raise(tmp_path: Path) -> None:
    fifo = tmp_path / "pipe.png"
    os.mkfifo(fifo)
    assert validate_file(fifo, RULES).reason == "not-a-file"  # and does not block on open()
    assert validate_file("bad\0path.png", RULES).reason == "not-found"
    assert validate_file(tmp_path / "nope" / "x.png", RULES).reason == "not-found"


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads files whatever their mode")
def test_unreadable_file(tmp_path: Path) -> None:
    path = tmp_path / "secret.png"
    path.write_bytes(b"x")
    path.chmod(0)
    assert validate_file(path, RULES).reason == "unreadable"


@pytest.mark.parametrize("key", ["png-bomb", "gif-bomb", "svg-laughs", "svg-xxe"])
def test_bombs_are_refused_with_bounded_memory(corpus: dict[str, Case], key: str) -> None:
    tracemalloc.start()
    try:
        verdict = validate_file(corpus[key].path, RULES)
        _size, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert verdict.reason == corpus[key].reason
    assert peak < 100 * 1024 * 1024


class RecordingApi:
    """The ApiGetter seam, answering ``list=allimages`` from a dict (the real wiki is in the
    integration test; this one checks which queries the batch logic makes)."""

    def __init__(self, names_by_sha1: Mapping[str, list[str]]) -> None:
        self.names_by_sha1 = names_by_sha1
        self.calls: list[dict[str, Any]] = []

    def get(self, params: Mapping[str, Any]) -> dict[str, Any]:
        self.calls.append(dict(params))
        names = self.names_by_sha1.get(params["aisha1"], [])
        return {"query": {"allimages": [{"name": n, "sha1": params["aisha1"]} for n in names]}}


def test_validate_many_checks_duplicates_for_acceptable_files_only(tmp_path: Path) -> None:
    data = png(random.Random(3), "t")
    sha1 = hashlib.sha1(data).hexdigest()
    (tmp_path / "a.png").write_bytes(data)
    (tmp_path / "b.png").write_bytes(data)
    (tmp_path / "c.png").write_bytes(b"not a png")
    api = RecordingApi({sha1: ["Existing.png"]})
    first, second, third = validate_many(
        [tmp_path / "a.png", (tmp_path / "b.png", "Wanted b.png"), tmp_path / "c.png"], RULES, api=api)
    assert first.duplicates == ("Existing.png",) and first.codes == ("duplicate-on-wiki",)
    assert second.codes == ("duplicate-in-batch", "duplicate-on-wiki")
    assert second.findings[0].detail["other"] == str(tmp_path / "a.png")
    assert second.filename == "Wanted_b.png" and second.ok
    assert third.reason == "mime-mismatch" and third.duplicates == ()
    assert [c["aisha1"] for c in api.calls] == [sha1, sha1]
    assert api.calls[0] == {"action": "query", "list": "allimages", "aisha1": sha1, "aiprop": "sha1|size",
                            "ailimit": "max"}


def test_validate_many_without_api_and_with_a_filenames_map(tmp_path: Path) -> None:
    (tmp_path / "x.svg").write_bytes(svg("t"))
    verdict, = validate_many([str(tmp_path / "x.svg")], RULES, filenames={str(tmp_path / "x.svg"): "Map.svg"})
    assert verdict.filename == "Map.svg" and verdict.duplicates == ()


def test_find_duplicates_refuses_a_bad_hash() -> None:
    with pytest.raises(ValueError):
        find_duplicates(RecordingApi({}), "xyz")


def test_validate_folder(tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    (tmp_path / "b.svg").write_bytes(svg("b"))
    (tmp_path / ".DS_Store").write_bytes(b"\0\0\0\1Bud1")
    (tmp_path / "sub" / "a.svg").write_bytes(svg("a"))
    deep = validate_folder(tmp_path, RULES)
    relative = [Path(v.source).relative_to(tmp_path).as_posix() for v in deep]
    assert relative == [".DS_Store", "b.svg", "sub/a.svg"]
    assert [v.ok for v in deep] == [False, True, True]
    flat = validate_folder(tmp_path, RULES, recursive=False)
    assert [Path(v.source).name for v in flat] == [".DS_Store", "b.svg"]
    missing: list[Verdict] = validate_folder(tmp_path / "nowhere", RULES)
    assert [v.reason for v in missing] == ["not-found"]


def test_sha1_file_limit_hashes_only_the_head(tmp_path) -> None:
    import hashlib

    from mwingest.base.hashing import sha1_file

    data = bytes(range(256)) * 50
    path = tmp_path / "head.bin"
    path.write_bytes(data)
    for limit in (0, 1, 1000, len(data), len(data) + 9):
        assert sha1_file(path, limit=limit, chunk_size=333) == hashlib.sha1(data[:limit]).hexdigest()
