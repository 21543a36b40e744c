"""A throwaway MediaWiki with structured data on files (Wikibase + WikibaseMediaInfo, as Commons).

Started from ``../shared/sdcwiki/sdcwiki.sh PORT DIR`` (beside the repository, as in CI; another
copy with ``MWINGEST_SDCWIKI``): MediaWiki 1.39 from Debian's package, SQLite, PHP's built-in
server, about 4 s. Its directory and server are removed at the end of the session. The wiki has
no properties or items: each test makes its own (:func:`make_property`, :func:`make_item`),
so the ids are local ones (``P1``, ``Q1``), given to the batch through its statement map.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[1]


def sdcwiki_script() -> Path:
    """``sdcwiki.sh``: in ``$MWINGEST_SDCWIKI``, else in ``../shared/sdcwiki`` beside the
    repository — or beside the main checkout, for a ``git worktree`` kept elsewhere."""
    if os.environ.get("MWINGEST_SDCWIKI"):
        return Path(os.environ["MWINGEST_SDCWIKI"]) / "sdcwiki.sh"
    roots = [REPO]
    common = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--path-format=absolute",
                             "--git-common-dir"], capture_output=True, text=True, check=False)
    if common.returncode == 0 and common.stdout.strip():
        roots.append(Path(common.stdout.strip()).parent)
    candidates = [root.parent / "shared" / "sdcwiki" / "sdcwiki.sh" for root in roots]
    return next((c for c in candidates if c.is_file()), candidates[0])


def _free_port() -> int:
    """A free loopback port outside 8000-8999 (those are other people's test servers)."""
    while True:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        if not 8000 <= port <= 8999:
            return port


@dataclass
class SdcWiki:
    """The running wiki: its API, the bot password of its admin (the batch's account)."""

    api_url: str
    username: str
    password: str
    root: Path

    def session(self, api_url: str | None = None) -> Any:
        """A session of the batch's account, logged in (through ``api_url``, e.g. a proxy)."""
        import requests

        from mwingest.wiki.credentials import Credentials
        from mwingest.wiki.session import WikiSession

        http = requests.Session()
        http.trust_env = False  # the wiki is on loopback: never through a proxy of the machine
        session = WikiSession(Credentials(api_url=api_url or self.api_url, username=self.username,
                                          password=self.password), http=http, maxlag=None)
        session.login()
        return session


@pytest.fixture(scope="session")
def sdc_wiki(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SdcWiki]:
    script = sdcwiki_script()
    if not script.is_file():
        pytest.fail(f"{script} is missing: the structured-data wiki lives in ../shared/sdcwiki "
                    "beside the repository (or set MWINGEST_SDCWIKI)")
    root = tmp_path_factory.mktemp("sdcwiki")
    port = _free_port()
    ran = subprocess.run(["bash", str(script), str(port), str(root)], capture_output=True,
                         text=True, timeout=300, check=False)
    pid_file = root / "pid"
    try:
        if ran.returncode != 0 or not pid_file.exists():
            pytest.fail(f"sdcwiki did not start ({ran.returncode}): {ran.stderr[-2000:]}")
        yield SdcWiki(f"http://127.0.0.1:{port}/api.php", "Admin@ingest",
                      (root / "botpw.txt").read_text().strip(), root)
    finally:
        if pid_file.exists():
            with contextlib.suppress(ProcessLookupError, ValueError):
                os.killpg(int(pid_file.read_text().strip()), signal.SIGKILL)
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="module")
def sdc(sdc_wiki: SdcWiki) -> dict[str, Any]:
    """(Per test module.) The test's own properties and items, and the batch's statement map onto them."""
    from mwingest.wiki.siteinfo import fetch_rules

    s = sdc_wiki.session()
    tag = secrets.token_hex(3)  # a property's label is unique on the wiki: one set per module
    props = {"depicts": make_property(s, f"depicts {tag}", "wikibase-item"),
             "creator": make_property(s, f"creator {tag}", "wikibase-item"),
             "inception": make_property(s, f"inception {tag}", "time"),
             "copyright_licence": make_property(s, f"copyright licence {tag}", "wikibase-item"),
             "note": make_property(s, f"note {tag}", "string")}
    items = {name: make_item(s, f"{name} {tag}")
             for name in ("harbour", "ship", "photographer", "cc-by-4.0")}
    return {"props": props, "items": items, "session": s, "rules": fetch_rules(s)}


def make_entity(session: Any, kind: str, label: str, **extra: Any) -> str:
    """A new property or item (``kind``) with an English label; its id."""
    data = {"labels": {"en": {"language": "en", "value": label}}, **extra}
    answer = session.post({"action": "wbeditentity", "new": kind, "data": json.dumps(data)})
    return str(answer["entity"]["id"])


def make_property(session: Any, label: str, datatype: str) -> str:
    return make_entity(session, "property", label, datatype=datatype)


def make_item(session: Any, label: str) -> str:
    return make_entity(session, "item", label)


def entity_of(session: Any, title: str) -> dict[str, Any]:
    """``wbgetentities`` of ``File:title``'s MediaInfo entity, as the wiki holds it."""
    pages = session.get({"action": "query", "titles": f"File:{title}"})["query"]["pages"]
    mid = f"M{pages[0]['pageid']}"
    return session.get({"action": "wbgetentities", "ids": mid})["entities"][mid]
