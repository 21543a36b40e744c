"""The credentials block's logo, shipped with mwingest and served by the Prefect server itself.

Why not a URL on the web: the UI shows a block type's logo by hot-linking ``logo_url``, so a
logo on another host is a broken image offline and a request to that host from every browser
that opens the form. Prefect wants an ``http(s)`` URL there (a ``data:`` URI breaks
``Block.load``, whose client schema parses it as one), so the logo is put where the server
serves its UI from: a server started with ``PREFECT_UI_STATIC_DIRECTORY`` (:func:`static_env`)
serves every file of that folder without a login, ``/mwingest-logo.png`` among them once
:func:`place` has copied it there. :func:`served_url` asks a server whether it serves it; a
block type registered against a server that does not gets no logo (a plain square in the UI),
never a hot-link.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from pathlib import Path

LOGO = Path(__file__).with_name("mwingest-logo.png")
NAME = LOGO.name
#: The UI bundles Prefect copies into the static folder (the classic UI at ``/``, V2 at ``/v2``).
BUNDLES = ("v1", "v2")


def static_env(root: Path) -> dict[str, str]:
    """The server's environment for a UI served from ``root`` (Prefect copies its bundles there
    on the first start of each version, under a lock, so servers may share one ``root``)."""
    return {"PREFECT_UI_STATIC_DIRECTORY": str(root)}


def place(root: Path) -> bool:
    """Copy the logo into each UI bundle under ``root`` (after the server made them; Prefect
    replaces a bundle when its version changes, so this runs after every start). True when
    the server can serve it now."""
    placed = False
    for bundle in BUNDLES:
        folder = root / bundle
        if not folder.is_dir():
            continue
        target = folder / NAME
        if not target.is_file() or target.read_bytes() != LOGO.read_bytes():
            fresh = target.with_suffix(f".{os.getpid()}.tmp")
            shutil.copyfile(LOGO, fresh)
            os.replace(fresh, target)  # a reader never sees half a file
        placed = True
    return placed


def served_url(api_url: str, get: Callable[[str], tuple[int, str, bytes]]) -> str | None:
    """The logo's URL on the server of ``api_url`` when that server serves our logo, else None.

    ``get(url) -> (status, content type, body)``: one plain GET without credentials, because
    the browser that shows the logo sends none either."""
    base = api_url.rstrip("/").removesuffix("/api")
    url = f"{base}/{NAME}"
    try:
        status, kind, body = get(url)
    except OSError:
        return None
    return url if status == 200 and kind.startswith("image/png") and body == LOGO.read_bytes() else None
