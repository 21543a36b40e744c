"""``mwingest demo``: the whole product on an embedded default, in about a minute.

A throwaway wiki from Debian's MediaWiki package, a generated sample batch (images, one file large
enough to go in chunks, one duplicate of a file already on the wiki, one file that must be refused)
and the real batch flow on ephemeral Prefect. It prints the outcome table and where the history is.
"""

from __future__ import annotations

import io
import os
import random
import tempfile
import wave
from pathlib import Path

from rich.console import Console

DEMO_CHUNK = 2 * 1024 * 1024


def _png(rng: random.Random, size: tuple[int, int] = (64, 48)) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.frombytes("RGB", size, rng.randbytes(size[0] * size[1] * 3)).save(buf, "PNG")
    return buf.getvalue()


def _jpeg(rng: random.Random) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.frombytes("RGB", (96, 64), rng.randbytes(96 * 64 * 3)).save(buf, "JPEG", quality=85)
    return buf.getvalue()


def _wav(path: Path, seconds: float, rng: random.Random) -> None:
    with wave.open(str(path), "wb") as out:
        out.setnchannels(2)
        out.setsampwidth(2)
        out.setframerate(44100)
        out.writeframes(rng.randbytes(int(44100 * seconds) * 4))


def make_sample_batch(folder: Path, seed: int | None = None) -> dict[str, Path]:
    """Write the sample files; returns them by role."""
    rng = random.Random(seed)
    folder.mkdir(parents=True, exist_ok=True)
    files = {
        "image-1": folder / "Harbour at dawn.png",
        "image-2": folder / "Lighthouse keeper's logbook.jpg",
        "image-3": folder / "Tram depot 1911.png",
        "large": folder / "Foghorn recording.wav",
        "duplicate": folder / "Harbour at dusk.png",
        "bad": folder / "Not really a photo.jpg",
    }
    files["image-1"].write_bytes(_png(rng))
    files["image-2"].write_bytes(_jpeg(rng))
    files["image-3"].write_bytes(_png(rng, (80, 60)))
    _wav(files["large"], 40.0, rng)  # ≈ 7 MiB: goes up in 2 MiB chunks
    files["duplicate"].write_bytes(_png(rng, (72, 40)))  # the demo puts it on the wiki first
    files["bad"].write_text("<html><body><script>alert('not an image')</script></body></html>")
    return files


def _put_on_wiki_first(wiki: object, path: Path) -> None:
    """Upload ``path``'s bytes under another name, so the batch meets a real duplicate."""
    from mwingest.wiki.connect import open_wiki
    from mwingest.wiki.credentials import Credentials
    from mwingest.wiki.upload import upload_file

    session, _ = open_wiki(Credentials(wiki.api_url, wiki.username, wiki.password))  # type: ignore[attr-defined]
    upload_file(session, path, f"{path.stem} (earlier upload){path.suffix}",
                comment="uploaded before the demo batch")


def run_demo(*, keep: bool = False) -> int:
    """Run the demo; the exit status is the CLI's (0 when every file ended as expected)."""
    from prefect.settings import PREFECT_HOME

    from mwingest.api import ingest
    from mwingest.dev.devwiki import start_wiki
    from mwingest.ledger.ledger import default_path
    from mwingest.runtime.localserver import read_state

    console = Console()
    console.print("[bold]mwingest demo[/]: starting a throwaway wiki…")
    wiki = start_wiki(keep=keep)
    try:
        os.environ.update(MWINGEST_API_URL=wiki.api_url, MWINGEST_USERNAME=wiki.username,
                          MWINGEST_PASSWORD=wiki.password)
        with tempfile.TemporaryDirectory(prefix="mwingest-demo-") as tmp:
            folder = Path(tmp) / "sample"
            files = make_sample_batch(folder)
            _put_on_wiki_first(wiki, files["duplicate"])
            ledger = default_path().with_name("demo-ledger.sqlite3")
            console.print(f"wiki: {wiki.api_url}\nsample batch: {len(files)} files in {folder}")
            outcomes = ingest([str(folder)], wiki=wiki.api_url,
                              chunk_size_mb=DEMO_CHUNK / (1024 * 1024),
                              review_timeout_s=0, ledger_path=str(ledger),
                              comment="mwingest demo", text="A sample file from the mwingest demo.")
            from rich.table import Table

            table = Table(title="outcomes")
            for col in ("file", "outcome", "reason", "wiki page"):
                table.add_column(col)
            for o in outcomes:
                table.add_row(Path(o.source).name, o.outcome, o.reason or "", o.url or "")
            console.print(table)
            server = read_state()
            where = (f"the local Prefect server's UI at {server.ui_url} (with the outcome table "
                     "and summary artifacts; `mwingest server stop` stops it)"
                     if server is not None and os.environ.get("PREFECT_API_URL") == server.api_url
                     else f"Prefect ({PREFECT_HOME.value()}/prefect.db; `prefect server start` "
                          "shows it, with the outcome table and summary artifacts)")
            console.print(f"History: this run is in {where}; every step is in the ledger: "
                          f"`mwingest status --ledger {ledger}`.")
            # The demo is expected to refuse one file and skip the duplicate; anything else is a bug.
            by_name = {Path(o.source).name: o.outcome for o in outcomes}
            expected = {files["bad"].name: "rejected", files["duplicate"].name: "skipped"}
            good = [p.name for k, p in files.items() if k not in ("bad", "duplicate")]
            ok = all(by_name.get(n) == v for n, v in expected.items()) and all(
                by_name.get(n) == "uploaded" for n in good)
            console.print("[green]demo finished as expected[/]" if ok else "[red]unexpected outcomes[/]")
            if keep:
                console.print(f"the wiki keeps running at {wiki.api_url}; its files are in {wiki.root}")
            return 0 if ok else 1
    finally:
        if not keep:
            wiki.stop()
