"""Filename prediction and sanitising (spec §9, §5), against the spec's table of observed cases.

``T`` in the spec's table is a per-run number; here it is the fixed token ``7301``. The agreement
with a real wiki on a few hundred more names lives in tests/integration/test_names_agreement.py.
"""

from __future__ import annotations

import unicodedata

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mwingest.wiki.names import (
    DEFAULT_BAD_PREFIXES,
    MAX_NAME_BYTES,
    TitlePrediction,
    has_bad_prefix,
    is_thumbnail_like,
    normalised_extension,
    predict_title,
    sanitise,
    title_key,
    unique_variant,
)
from mwingest.wiki.siteinfo import WikiRules

T = "7301"
# The spec's test wiki: default extensions plus these (spec header).
RULES = WikiRules(file_extensions=frozenset(
    ["png", "gif", "jpg", "jpeg", "webp", "svg", "pdf", "tif", "tiff", "ogg", "ogv", "webm", "mp3", "wav"]))

# (sent, wiki name or None, error, badfilename) — spec §9 "Observed" table, row by row.
SPEC_TABLE: list[tuple[str, str | None, str | None, bool]] = [
    (f"my photo {T}.png", f"My_photo_{T}.png", None, False),
    (f"my_photo_{T}.png", f"My_photo_{T}.png", None, False),
    (f"a   b{T}.png", f"A_b{T}.png", None, True),
    (f"  lead{T} .png  ", f"Lead{T}_.png", None, True),
    (f"a:b{T}.png", f"A-b{T}.png", None, True),
    (f"dir/sub{T}.png", f"Dir-sub{T}.png", None, True),
    (f"dir\\sub{T}.png", f"Dir-sub{T}.png", None, True),
    (f"a#b{T}.png", f"A-b{T}.png", None, True),
    (f"a<b>{T}.png", f"A-b-{T}.png", None, True),
    (f"a[b]{T}.png", f"A-b-{T}.png", None, True),
    (f"a{{b}}|{T}.png", f"A-b--{T}.png", None, True),
    (f"a\tb{T}.png", f"A-b{T}.png", None, True),
    (f"a\x7fb{T}.png", f"A-b{T}.png", None, True),
    (f"a?b+c'd\"{T}.png", f"A?b+c'd\"{T}.png", None, False),
    (f"a&b{T}.png", f"A&b{T}.png", None, False),
    (f"a%20b{T}.png", None, "illegal-filename", False),
    (f"a&amp;b{T}.png", None, "illegal-filename", False),
    (f"a~~~{T}.png", None, "illegal-filename", False),
    (f"a\x01b{T}.png", None, "illegal-filename", False),
    (f"../up{T}.png", f"..-up{T}.png", None, True),
    (f".hidden{T}.png", f".hidden{T}.png", None, False),
    (".png", None, "filename-tooshort", False),
    (f"File:pref{T}.png", f"Pref{T}.png", None, True),
    (f"Image:alias{T}.png", f"Alias{T}.png", None, True),
    (f"Talk:talk{T}.png", f"Talk-talk{T}.png", None, True),
    (f"wikipedia:iw{T}.png", f"Wikipedia-iw{T}.png", None, True),
    (f"über{T}.png", f"Über{T}.png", None, False),
    (f"ß{T}.png", f"SS{T}.png", None, False),
    (f"e\u0301{T}.png", f"\u00c9{T}.png", None, False),
    (f"a\u00a0b{T}.png", f"A_b{T}.png", None, True),
    (f"a\u3000b{T}.png", f"A_b{T}.png", None, True),
    (f"a\u200eb{T}.png", f"Ab{T}.png", None, True),
    (f"a\u200bb{T}.png", f"A\u200bb{T}.png", None, False),
    (f"😀{T}.png", f"😀{T}.png", None, False),
    (f"upper{T}.PNG", f"Upper{T}.PNG", None, False),
    (f"double{T}.jpg.png", f"Double{T}.jpg.png", None, False),
    (f"dot{T}.", None, "filetype-missing", False),
    (f"extspace{T}.png ", f"Extspace{T}.png", None, True),
    ("A" * 236 + ".png", "A" * 236 + ".png", None, False),
    ("A" * 237 + ".png", None, "filename-toolong", False),
    ("\u00e9" * 117 + "12.png", "\u00c9" + "\u00e9" * 116 + "12.png", None, False),
    ("Shell.php.png", None, "filetype-banned", False),
]


@pytest.mark.parametrize(("sent", "title", "error", "badfilename"), SPEC_TABLE)
def test_spec_table_row(sent: str, title: str | None, error: str | None, badfilename: bool) -> None:
    prediction = predict_title(sent, RULES)
    assert (prediction.title, prediction.error, prediction.badfilename) == (title, error, badfilename)
    assert prediction.ok is (error is None)


def test_banned_part_anywhere_is_reported_like_blacklisted() -> None:
    prediction = predict_title("Shell.php.png", RULES)
    assert prediction.banned_parts == ("php",)
    assert prediction.extension == "png"
    # A banned final extension: the name check says banned (the content check may answer first).
    assert predict_title("Pic.jpg.EXE", RULES).banned_parts == ("exe",)
    # The part before the first dot is not an extension: "php.png" is fine.
    assert predict_title("php.png", RULES).title == "Php.png"


def test_final_extension_must_be_allowed_case_insensitively() -> None:
    assert predict_title("notes.txt", RULES).error == "filetype-banned"
    assert predict_title("notes.txt", RULES).banned_parts == ()
    assert predict_title("Scan.TIFF", RULES).extension == "TIFF"


def test_no_extension_takes_the_content_extension() -> None:
    assert predict_title(f"noext{T}", RULES).error == "filetype-missing"
    guessed = predict_title(f"noext{T}", RULES, content_ext="png")
    assert (guessed.title, guessed.badfilename, guessed.extension) == (f"Noext{T}.png", True, "png")


def test_length_is_measured_before_replacement_and_after_the_prefix() -> None:
    # 240 bytes of name after "File:" is fine; 241 bytes is too long even though "<" → "-".
    assert predict_title("File:" + "a" * 236 + ".png", RULES).ok
    assert predict_title("<" * 237 + ".png", RULES).error == "filename-toolong"
    # A control char becomes U+FFFD (3 bytes) before the check: 238 + 3 > 240.
    assert predict_title("a" * 234 + "\x01.png", RULES).error == "filename-toolong"
    assert predict_title("x" * 300 + ".png", RULES).error == "filename-toolong"


def test_file_prefix_parsing_follows_the_title_parser() -> None:
    assert predict_title("file : low.png", RULES).title == "Low.png"
    assert predict_title(":File:colon.png", RULES).title == "Colon.png"
    # Entities are decoded when the File: prefix is parsed, so these two become valid names.
    assert predict_title("File:a&amp;b.png", RULES).title == "A&b.png"
    assert predict_title("File&#58;x.png", RULES).title == "X.png"
    # An invalid File: title keeps its prefix, which then turns into "File-".
    assert predict_title("File:../x.png", RULES).title == "File-..-x.png"
    # A fragment cuts the name: only "A" is left, so the extension comes from the content.
    assert predict_title("File:a#b.png", RULES).error == "filetype-missing"
    assert predict_title("File:a#b.png", RULES, content_ext="png").title == "A.png"


def test_local_namespace_names_come_from_the_rules() -> None:
    german = WikiRules(namespaces={"datei": 6, "bild": 6, "file": 6, "image": 6, "talk": 1})
    assert predict_title("Datei:Haus.png", german).title == "Haus.png"
    assert predict_title("Datei:Haus.png", RULES).title == "Datei-Haus.png"


def test_case_sensitive_wiki_keeps_the_first_letter() -> None:
    rules = WikiRules(case="case-sensitive")
    prediction = predict_title("lower case.png", rules)
    assert (prediction.title, prediction.badfilename) == ("lower_case.png", False)


def test_legal_title_chars_are_read_as_a_php_byte_class() -> None:
    # Without \x80-\xFF every byte of a non-ASCII character is illegal: "ü" (2 bytes) → "--".
    ascii_only = WikiRules(legal_title_chars=" %!\"$&'()*,\\-.\\/0-9:;=?@A-Z\\\\^_`a-z~+")
    assert predict_title("über.png", ascii_only).title == "--ber.png"
    # "\-" is a literal dash, not a range: "," and "." stay legal, "+" too, "[" does not.
    assert predict_title("a,b-c+d[e.png", RULES).title == "A,b-c+d-e.png"
    assert predict_title("a>b.png", RULES).title == "A-b.png"


def test_bidi_and_unicode_spaces() -> None:
    assert predict_title("\u202bright\u202c to left.png", RULES).title == "Right_to_left.png"
    # Isolates (U+2066..2069) are not among the removed marks: they stay.
    assert predict_title("x\u2066y.png", RULES).title == "X\u2066y.png"
    assert predict_title("a\u2003\u2009b.png", RULES).title == "A_b.png"


def test_non_nfc_input_is_composed_first() -> None:
    decomposed = "Cafe\u0301.png"
    prediction = predict_title(decomposed, RULES)
    assert prediction.title == "Caf\u00e9.png"
    assert not prediction.badfilename  # the wiki compares with the NFC form it received


# --- sanitise --------------------------------------------------------------------------------


def _accepted_unchanged(name: str) -> bool:
    prediction = predict_title(name, RULES)
    return prediction.ok and not prediction.badfilename


@pytest.mark.parametrize(("raw", "clean"), [
    ("my photo.png", "My photo.png"),
    ("File:x.php.png", "X-php.png"),
    ("a   b%20c&amp;d~~~~.PNG", "A b-20c&amp-d~~-~.PNG"),
    ("\u202e\u202ex\x01.png", "X.png"),
    ("dir/sub\\name:x.jpg", "Dir-sub-name-x.jpg"),
    ("../up.png", "..-up.png"),
    ("ß.png", "SS.png"),
    ("e\u0301t\u00e9.gif", "\u00c9t\u00e9.gif"),
    ("x_y__z.webp", "X y z.webp"),
])
def test_sanitise_examples(raw: str, clean: str) -> None:
    assert sanitise(raw, RULES) == clean
    assert _accepted_unchanged(clean)


def test_sanitise_extension_handling() -> None:
    with pytest.raises(ValueError, match="ext_hint"):
        sanitise("notes.txt", RULES)
    with pytest.raises(ValueError, match="not an allowed"):
        sanitise("notes", RULES, ext_hint="exe")
    assert sanitise("notes.txt", RULES, ext_hint="png") == "Notes.txt.png"
    assert sanitise("prog.exe", RULES, ext_hint=".png") == "Prog-exe.png"
    assert sanitise("dot.", RULES, ext_hint="png") == "Dot.png"
    assert sanitise(".png", RULES) == "File.png"
    assert sanitise(" \x01\u200e ", RULES, fallback_stem="Upload", ext_hint="jpg") == "Upload.jpg"
    assert sanitise("::", RULES, ext_hint="jpg") == "--.jpg"


def test_sanitise_trims_to_240_bytes_without_splitting_characters() -> None:
    for filler in ("\u00e9", "😀", "\u4e2d", "a"):
        raw = "x" + filler * 250 + ".jpeg"
        clean = sanitise(raw, RULES)
        encoded = clean.encode("utf-8")
        assert len(encoded) <= MAX_NAME_BYTES
        assert len(encoded) > MAX_NAME_BYTES - 4  # trimmed only as much as needed
        assert clean.endswith(".jpeg")
        stem = clean[: -len(".jpeg")]
        assert ("X" + filler * 250).startswith(stem)  # whole code points of the original
        assert _accepted_unchanged(clean)


def test_sanitise_re_neutralises_a_banned_part_exposed_by_trimming() -> None:
    raw = "a" * 230 + ".phpxyz.png"  # trimming can cut ".phpxyz" to ".php"
    clean = sanitise(raw, RULES)
    assert _accepted_unchanged(clean)
    assert ".php." not in clean.lower()


RISKY = list(":/\\#<>[]{}|%&;~._- \t\n\r\x00\x01\x1f\x7f\u00a0\u200b\u200e\u200f\u202a\u202e\u3000"
             "\ufffd\ufeff\u0301\u00df\u0130\u01f0\u0149😀e") + ["%20", "&amp;", "&#58;", "File:",
                                                               "Image:", "Talk:", ".php", ".exe", "~~~"]
NAMES = st.lists(st.one_of(st.sampled_from(RISKY), st.characters(), st.text(max_size=4)),
                 max_size=90).map("".join)
EXTS = st.sampled_from(["", ".png", ".PNG", ".jpg", ".php", ".txt", ".", ".png.exe", ".jpeg "])


@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(stem=NAMES, ext=EXTS, repeat=st.integers(min_value=1, max_value=4))
def test_sanitise_output_is_always_accepted_unchanged(stem: str, ext: str, repeat: int) -> None:
    raw = stem * repeat + ext  # repeat: long names, well past 240 bytes
    clean = sanitise(raw, RULES, ext_hint="png")
    assert _accepted_unchanged(clean)
    assert len(clean.encode("utf-8")) <= MAX_NAME_BYTES
    assert unicodedata.is_normalized("NFC", clean)
    assert sanitise(clean, RULES) == clean  # idempotent: a clean name is left alone


@settings(max_examples=300, deadline=None)
@given(name=st.text(max_size=300))
def test_predict_title_never_crashes_and_is_consistent(name: str) -> None:
    prediction = predict_title(name, RULES, content_ext="png")
    assert isinstance(prediction, TitlePrediction)
    if prediction.ok:
        assert prediction.title and " " not in prediction.title
        assert not prediction.title.startswith("_") and not prediction.title.endswith("_")
    else:
        assert prediction.title is None and prediction.error


# --- helpers ---------------------------------------------------------------------------------


def test_unique_variant_and_title_key() -> None:
    assert unique_variant("Sunset.jpg", 2) == "Sunset (2).jpg"
    assert unique_variant("a.b.png", 3) == "a.b (3).png"
    assert unique_variant("noext", 2) == "noext (2)"
    long = unique_variant("\u00e9" * 119 + ".png", 12)
    assert len(long.encode()) <= MAX_NAME_BYTES and long.endswith(" (12).png")
    assert title_key("My photo 1.png") == "My_photo_1.png"


def test_thumbnail_and_prefix_checks_match_upload_base() -> None:
    assert is_thumbnail_like("120px-Orig.png") and is_thumbnail_like("12px-x.png")
    assert not is_thumbnail_like("1apx-x.png") and not is_thumbnail_like("px-x.png")
    assert has_bad_prefix("DSC 1846.jpg")  # compared on the DB key: "DSC_1846"
    assert has_bad_prefix("IMG1234.jpg") and not has_bad_prefix("Img1234.jpg")
    assert "PICT" in DEFAULT_BAD_PREFIXES


@pytest.mark.parametrize(("ext", "norm"), [
    ("JPG", "jpg"), ("jpeg", "jpg"), (".JPEG", "jpg"), ("tiff", "tif"), ("ogv", "ogg"),
    ("PNG", "png"), ("p ng", ""), ("", ""),
])
def test_normalised_extension(ext: str, norm: str) -> None:
    assert normalised_extension(ext) == norm
