"""Thumbnail lookups against canned API answers: batching, an expired stash key, the table."""

from __future__ import annotations

from typing import Any

from mwingest.base.errors import ApiError
from mwingest.base.items import Outcome
from mwingest.wiki.pictures import Picture, for_outcomes, side_by_side, stash_pictures


class _Api:
    def __init__(self, expired: set[str]) -> None:
        self.expired, self.calls = expired, []

    def get(self, params: dict[str, Any]) -> dict[str, Any]:
        self.calls.append(params)
        if params["prop"] == "stashimageinfo":
            keys = params["siifilekey"].split("|")
            if self.expired & set(keys):
                raise ApiError("uploadstash-file-not-found", "gone")
            return {"query": {"stashimageinfo": [{"thumburl": f"http://w/thumb/{k}", "size": 1}
                                                 for k in keys]}}
        titles = params["titles"].split("|")
        return {"query": {"pages": [{"title": t.replace("_", " "), "imageinfo": [
            {"thumburl": f"http://w/{t}", "width": 4, "height": 3, "size": 10,
             "timestamp": "2026-01-02T03:04:05Z"}]} for t in titles]}}


def test_an_expired_stash_key_costs_only_its_own_picture():
    api = _Api({"k2"})
    got = stash_pictures(api, ["k1", "k2", "k3"], 120)
    assert set(got) == {"k1", "k3"} and got["k1"].thumb_url == "http://w/thumb/k1"


def test_the_summary_asks_once_for_the_files_it_shows():
    outcomes = [Outcome(f"s{i}", f"F {i}.png", "uploaded", url=f"http://w/F_{i}") for i in range(60)]
    outcomes.append(Outcome("s", "Taken.png", "needs-review", filekey="k9"))
    api = _Api(set())
    files, stash = for_outcomes(api, outcomes)
    assert len(files) == 51 and set(stash) == {"k9"}  # 50 landed + the one the waiting file hits
    assert [c["prop"] for c in api.calls] == ["imageinfo", "imageinfo", "stashimageinfo"]


def test_side_by_side_shows_both_pictures_with_their_facts():
    ours = Picture("http://w/ours", width=3, height=4, size=2048, timestamp="2026-01-02T03:04:05Z")
    table = side_by_side(None, ours)
    assert "(no picture)" in table and "![this file](http://w/ours)" in table
    assert "3×4 px, 2,048 bytes, 2026-01-02 03:04:05 UTC" in table
    assert side_by_side(None, None) == ""


def _image_file(path, size, mode="RGB", fmt="PNG"):
    from PIL import Image

    Image.new(mode, size, (10, 200, 30) if mode == "RGB" else None).save(path, format=fmt)
    return path


def test_our_picture_is_made_from_the_local_bytes_and_embedded(tmp_path):
    import base64
    import io

    from PIL import Image

    from mwingest.wiki.pictures import local_picture

    path = _image_file(tmp_path / "Harbour 1911.jpg", (1200, 900), fmt="JPEG")
    picture = local_picture(str(path), sha1="ab" * 20, width=240)
    assert picture is not None and picture.public
    assert picture.thumb_url.startswith("data:image/png;base64,")
    thumb = Image.open(io.BytesIO(base64.b64decode(picture.thumb_url.split(",", 1)[1])))
    assert thumb.size == (240, 180)  # 240 px wide, the proportions kept
    assert (picture.width, picture.height, picture.size) == (1200, 900, path.stat().st_size)
    table = side_by_side(None, picture)
    assert "1200×900 px" in table and f"SHA-1 {'ab' * 6}…" in table
    assert "logged in" not in table  # nothing to log in to: any browser shows it


def test_no_local_picture_for_what_pillow_cannot_read(tmp_path):
    from mwingest.wiki.pictures import local_picture

    (tmp_path / "a.svg").write_text("<svg xmlns='http://www.w3.org/2000/svg'/>")
    assert local_picture(str(tmp_path / "a.svg")) is None
    assert local_picture(str(tmp_path / "missing.png")) is None
    assert local_picture("https://example.org/a.png") is None


def test_a_stashed_picture_says_who_can_see_it():
    ours = Picture("http://w/index.php/Special:UploadStash/thumb/k/240px-k.png")
    assert not ours.public and "logged in" in side_by_side(None, ours)
