"""Our verdicts against the real wiki's on media other projects wrote (issue 14).

The files are the real-media corpus in ``shared/corpora/real-media/files`` (Pillow's, librsvg's,
TimedMediaHandler's, pypdf's and DjVuLibre's test media; some renamed, cut short or with bytes
added; ``ORIGINS.tsv`` says which). Nothing here labels them: each file is sent to the throwaway
wiki under its own name (``stash=1`` with ``ignorewarnings``: the wiki runs every content and
name check of a publish, and nothing is published), and its answer is the label.

The claims, file by file:

* where the wiki refuses, we refuse, with the reason code :func:`ours_for` maps its error to;
* where the wiki accepts, we pass, unless our own decoders prove damage (a reason code in
  :data:`DAMAGE_CODES`: a file the wiki would store broken);
* where the wiki renames a file it accepts (``badfilename``, e.g. a name without extension gets
  one from the content), our verdict names the same title.

The failure message lists every disagreement; the figures are printed either way.
"""

from __future__ import annotations

import collections
from typing import Any

import pytest

from mwingest.checks.validate import Verdict, validate_file
from tests.corpus import REAL_MEDIA
from tests.integration.test_validation_agreement import RawApi, api, ours_for, rules  # noqa: F401

pytestmark = pytest.mark.wiki

CORPUS = REAL_MEDIA
#: Our refusals that need no wiki to back them: our decoders found the file damaged, or its
#: declared size is a decompression bomb. The wiki stores such files.
DAMAGE_CODES = frozenset({"corrupt-image", "truncated-media", "corrupt-media", "corrupt-pdf",
                          "decompression-bomb"})


@pytest.fixture(scope="module")
def compared(api: RawApi, rules: Any) -> list[tuple[str, dict[str, Any], Verdict]]:  # noqa: F811
    if not CORPUS.is_dir():
        pytest.skip(f"no real-media corpus at {CORPUS}")
    out = []
    for path in sorted(CORPUS.iterdir()):
        if not path.is_file():
            continue
        answer = api.upload(path.read_bytes(), path.name, stash="1", ignorewarnings="1")
        out.append((path.name, answer, validate_file(path, rules, filename=path.name)))
    return out


def _judge(answer: dict[str, Any], verdict: Verdict) -> tuple[str, str | None]:
    """(category, disagreement or None) for one file."""
    ours = "ok" if verdict.ok else verdict.reason
    if "error" in answer:
        expected = ours_for(answer["error"])
        if verdict.ok:
            return "wiki refuses", f"the wiki refuses ({expected}), we pass"
        if verdict.reason != expected:
            return "both refuse", f"both refuse; the wiki's reason is {expected}, ours {ours}"
        return "both refuse", None
    if not verdict.ok:
        if verdict.reason in DAMAGE_CODES:
            return "damage we prove", None
        message = verdict.findings[0].message if verdict.findings else ""
        return "we refuse", f"the wiki accepts, we refuse: {ours} ({message})"
    warned = answer["upload"].get("warnings", {}).get("badfilename")
    if warned is not None and verdict.filename != warned:
        return "both accept", f"the wiki names it {warned!r}, we predict {verdict.filename!r}"
    return "both accept", None


def test_real_media_verdicts_agree_with_the_wiki(
        compared: list[tuple[str, dict[str, Any], Verdict]]) -> None:
    judged = {name: _judge(answer, verdict) for name, answer, verdict in compared}
    figures = collections.Counter(category for category, _why in judged.values())
    wrong = {name: why for name, (_category, why) in judged.items() if why}
    summary = (f"{len(judged)} files: {len(judged) - len(wrong)} agree, {len(wrong)} disagree; "
               + ", ".join(f"{k}: {v}" for k, v in sorted(figures.items())))
    print(summary)
    assert not wrong, summary + "\n" + "\n".join(f"  {name}: {why}" for name, why in wrong.items())
    # The corpus must exercise both sides, or agreement would say nothing.
    assert figures["both accept"] >= 100 and figures["both refuse"] >= 50, summary
