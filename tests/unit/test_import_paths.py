"""Which paths a folder or manifest import may open (no wiki): links that lead out, FIFOs, other
schemes, and how ``--root`` widens the allowed tree (the end-to-end
refusals: tests/integration/test_hostile_inputs.py).
"""

from __future__ import annotations

import os
from pathlib import Path

from mwingest.describe.manifest import read_manifest, scan_folder
from mwingest.describe.sources import collect


def test_folder_import_skips_links_and_linked_folders_that_lead_out(tmp_path):
    folder, outside = tmp_path / "folder", tmp_path / "outside"
    (folder / "sub").mkdir(parents=True)
    outside.mkdir()
    (outside / "secret.png").write_bytes(b"x")
    (folder / "ok.png").write_bytes(b"x")
    (folder / "sub" / "deep.png").write_bytes(b"x")
    (folder / "inner-link.png").symlink_to(folder / "ok.png")
    (folder / "out-link.png").symlink_to(outside / "secret.png")
    (folder / "linked").symlink_to(outside, target_is_directory=True)
    (folder / "dangling.png").symlink_to(tmp_path / "nothing.png")

    recursive = sorted(Path(i.source).name for i in scan_folder(folder))
    flat = sorted(Path(i.source).name for i in scan_folder(folder, recursive=False))

    assert recursive == ["deep.png", "inner-link.png", "ok.png"]
    assert flat == ["inner-link.png", "ok.png"]


def test_fifo_and_other_schemes_in_a_manifest_are_refused_before_any_open(tmp_path):
    os.mkfifo(tmp_path / "pipe.png")  # opening it would block: it must never be opened
    manifest = tmp_path / "m.csv"
    manifest.write_text("source\npipe.png\nFTP://example.org/a.png\nhttps://example.org/b.png\n",
                        encoding="utf-8")

    items = read_manifest(manifest)

    assert [(i.error, i.line) for i in items] == [("unsafe-path", 2), ("unsafe-url", 3),
                                                  (None, 4)]
    assert "regular file" in (items[0].error_message or "")


def test_root_widens_and_never_narrows(tmp_path):
    (tmp_path / "m").mkdir()
    (tmp_path / "other").mkdir()
    for name in ("m/in.png", "above.png", "other/far.png"):
        (tmp_path / name).write_bytes(b"x")
    manifest = tmp_path / "m" / "list.csv"
    manifest.write_text(f"source\nin.png\n../above.png\n{tmp_path / 'other' / 'far.png'}\n",
                        encoding="utf-8")

    strict = [i.error for i in collect([str(manifest)])]
    widened = [i.error for i in collect([str(manifest)], root=str(tmp_path / "other"))]
    wide = [i.error for i in collect([str(manifest)], root=str(tmp_path))]

    assert strict == [None, "unsafe-path", "unsafe-path"]
    assert widened == [None, "unsafe-path", None]  # the manifest's folder still counts
    assert wide == [None, None, None]
