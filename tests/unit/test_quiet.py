"""Validation prints nothing on stderr (issue 14): decoder chatter goes to the debug log.

Pillow warns (corrupt EXIF, invalid APNG), libtiff writes to file descriptor 2 from C, tifffile
and pypdf log warnings; all of them used to land between the rows of ``mwingest check``. The
real-media corpus has files that provoke each. A fresh interpreter validates them all and its
stderr must stay empty, while the debug log, when asked for, receives the messages.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.corpus import REAL_MEDIA

REPO = Path(__file__).resolve().parents[2]
CORPUS = REAL_MEDIA

_CHILD = r"""
import logging, sys
from pathlib import Path
from mwingest.wiki.siteinfo import WikiRules
from mwingest.checks.validate import validate_file

if sys.argv[2] == "debug":
    handler = logging.FileHandler(sys.argv[3])
    logging.getLogger("mwingest.decoders").addHandler(handler)
    logging.getLogger("mwingest.decoders").setLevel(logging.DEBUG)
rules = WikiRules(file_extensions=frozenset("png gif jpg jpeg webp tif tiff pdf svg".split()))
for path in sorted(Path(sys.argv[1]).iterdir()):
    if path.suffix.lower() in (".png", ".gif", ".jpg", ".webp", ".tif", ".tiff", ".pdf"):
        validate_file(path, rules)
print("done")
"""


@pytest.mark.skipif(not CORPUS.is_dir(), reason="no real-media corpus beside the repository")
def test_validation_writes_nothing_to_stderr(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(REPO), "PYTHONWARNINGS": "default"}
    log = tmp_path / "debug.log"
    quiet = subprocess.run([sys.executable, "-c", _CHILD, str(CORPUS), "plain", str(log)],
                           capture_output=True, text=True, env=env, timeout=600, check=True)
    assert quiet.stdout.strip() == "done"
    assert quiet.stderr == ""
    debug = subprocess.run([sys.executable, "-c", _CHILD, str(CORPUS), "debug", str(log)],
                           capture_output=True, text=True, env=env, timeout=600, check=True)
    assert debug.stderr == ""
    text = log.read_text()
    # what used to reach stderr is in the debug log: Python warnings, library logs, libtiff's C output
    assert "UserWarning" in text and "TIFF decoder wrote to stderr" in text, text[:2000]
