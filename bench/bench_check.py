"""Peak memory and time of validation (``validate_file``) per file, on the largest inputs.

Why per file in a fresh interpreter: the peak RSS of one check must not hide behind an earlier
file's, and imports (Pillow, pypdf, tifffile) are paid before measuring. Each file is checked in
a child process that imports mwingest, resets its high-water mark (``/proc/self/clear_refs``),
runs ``validate_file`` once, and reports wall time, CPU time, RSS growth (VmHWM) and Python's
traced peak.

Inputs: the N largest files of the real-media corpus (``shared/corpora/real-media/files``), plus
generated large ones of the kinds whose checks read the whole file: a 512 MiB Ogg (every page's
CRC), a 512 MiB WAV, a 512 MiB WebM with one big cluster, a 48-megapixel PNG, and a 512 MiB file
of zeros named ``.mp3``. Generated files live in a temporary folder and are removed afterwards.

Run: ``python bench/bench_check.py [--top 12] [--generated-mib 512] [--no-generated]``
"""

from __future__ import annotations

import argparse
import json
import os
import struct
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CORPUS = REPO.parent / "shared" / "corpora" / "real-media" / "files"
EXTENSIONS = frozenset({"png", "gif", "jpg", "jpeg", "webp", "svg", "pdf", "tif", "tiff", "ogg", "ogv",
                        "oga", "opus", "webm", "mp3", "wav", "flac", "mid", "djvu"})

_CHILD = r"""
import json, os, sys, time, tracemalloc, resource
from pathlib import Path
from mwingest.wiki.siteinfo import WikiRules
from mwingest.checks.validate import validate_file
import mwingest.checks.content, mwingest.checks.mediacheck  # noqa: imports first
import mwingest.checks.pdfcheck, mwingest.checks.tiffcheck  # noqa: imports first
import pypdf, tifffile  # noqa: F401  (lazy in the code: paid here, not in the measurement)

def hwm():
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    return 0

path, exts = sys.argv[1], frozenset(sys.argv[2].split(","))
rules = WikiRules(file_extensions=exts, max_upload_size=8 << 30)
Path("/proc/self/clear_refs").write_text("5")
before = hwm()
tracemalloc.start()
cpu0, t0 = time.process_time(), time.perf_counter()
verdict = validate_file(path, rules)
wall, cpu = time.perf_counter() - t0, time.process_time() - cpu0
_now, peak = tracemalloc.get_traced_memory()
print(json.dumps({"reason": verdict.reason or "ok", "ok": verdict.ok, "wall": wall, "cpu": cpu,
                  "hwm_growth": hwm() - before, "traced_peak": peak}))
"""


def measure(path: Path) -> dict:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    done = subprocess.run([sys.executable, "-c", _CHILD, str(path), ",".join(sorted(EXTENSIONS))],
                          capture_output=True, text=True, env=env, timeout=900, check=False)
    if done.returncode != 0:
        return {"error": done.stderr.strip().splitlines()[-1:] or ["?"]}
    return json.loads(done.stdout.strip().splitlines()[-1])


def _ogg(path: Path, mib: int) -> None:
    """Ogg pages of 255 full segments each (one packet continuing across pages), CRCs right."""
    sys.path.insert(0, str(REPO))
    from mwingest.checks.mediacheck import ogg_crc

    body = os.urandom(255 * 255)
    with open(path, "wb") as out:
        seq = 0
        while out.tell() < mib << 20:
            flags = 2 if seq == 0 else 1
            header = struct.pack("<4sBBqIII", b"OggS", 0, flags, -1, 0x1234, seq, 0) + bytes([255])
            page = header + b"\xff" * 255 + body
            out.write(page[:22] + struct.pack("<I", ogg_crc(page)) + page[26:])
            seq += 1


def _wav(path: Path, mib: int) -> None:
    size = mib << 20
    with open(path, "wb") as out:
        out.write(b"RIFF" + (size + 36).to_bytes(4, "little") + b"WAVEfmt " + (16).to_bytes(4, "little")
                  + bytes.fromhex("01000200" "44ac0000" "10b10200" "04001000")
                  + b"data" + size.to_bytes(4, "little"))
        out.truncate(44 + size)


def _webm(path: Path, mib: int) -> None:
    """The corpus's one-frame WebM, its Segment made of unknown size, plus one Cluster of *mib*
    MiB holding one block (a sparse file): the check walks element headers, never the frame data."""
    sys.path.insert(0, str(REPO))
    import random

    from tests.corpus import webm

    small = webm(random.Random(1), "bench")
    segment = small.index(b"\x18\x53\x80\x67")
    children = segment + 4 + (9 - small[segment + 4].bit_length())
    big = mib << 20
    block = big - 3 - 9  # the cluster holds a Timestamp (3 bytes) and one SimpleBlock
    with open(path, "wb") as out:
        out.write(small[:segment] + b"\x18\x53\x80\x67\x01\xff\xff\xff\xff\xff\xff\xff" + small[children:])
        out.write(b"\x1f\x43\xb6\x75" + (0x01 << 56 | big).to_bytes(8, "big") + b"\xe7\x81\x00"
                  + b"\xa3" + (0x01 << 56 | block).to_bytes(8, "big") + b"\x81\x00\x00\x80")
        out.truncate(out.tell() + block - 4)


def _png(path: Path, megapixels: int) -> None:
    from PIL import Image

    side = int((megapixels * 1_000_000) ** 0.5)
    Image.new("L", (side, side), 128).save(path, format="PNG")


def _zeros_mp3(path: Path, mib: int) -> None:
    """An ID3 tag and then zeros: no frame, so the walk ends at once (corrupt-media)."""
    path.write_bytes(b"ID3\x03\x00\x00\x00\x00\x00\x00")
    os.truncate(path, mib << 20)


def generated(folder: Path, mib: int) -> list[Path]:
    made = []
    for name, make in (("big.ogg", lambda p: _ogg(p, mib)), ("big.wav", lambda p: _wav(p, mib)),
                       ("big.webm", lambda p: _webm(p, mib)), ("big-48mp.png", lambda p: _png(p, 48)),
                       ("zeros.mp3", lambda p: _zeros_mp3(p, mib))):
        path = folder / name
        make(path)
        made.append(path)
    return made


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--top", type=int, default=12, help="largest corpus files to check")
    parser.add_argument("--generated-mib", type=int, default=512, help="size of the generated media")
    parser.add_argument("--no-generated", action="store_true")
    args = parser.parse_args(argv)
    files = sorted((p for p in CORPUS.iterdir() if p.is_file()), key=lambda p: p.stat().st_size,
                   reverse=True)[: args.top] if CORPUS.is_dir() else []
    with tempfile.TemporaryDirectory(prefix="mwingest-bench-check-") as tmp:
        if not args.no_generated:
            files += generated(Path(tmp), args.generated_mib)
        print(f"{'file':<48} {'size':>10} {'verdict':<18} {'wall s':>7} {'cpu s':>7} {'RSS +MiB':>9} "
              f"{'traced MiB':>10}")
        for path in files:
            result = measure(path)
            size = f"{path.stat().st_size / (1 << 20):.1f}M"
            if "error" in result:
                print(f"{path.name[:48]:<48} {size:>10} ERROR {result['error']}")
                continue
            print(f"{path.name[:48]:<48} {size:>10} {result['reason'][:18]:<18} {result['wall']:>7.2f} "
                  f"{result['cpu']:>7.2f} {result['hwm_growth'] / (1 << 20):>9.1f} "
                  f"{result['traced_peak'] / (1 << 20):>10.1f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
