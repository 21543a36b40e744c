"""The plainest correct upload loop with ``requests``: the reference the pipeline is measured against.

Correct means: bot-password login (``action=login``), a CSRF token, the file part sent with a
filename (spec §1), chunk offsets and keys taken from the wiki's answers (spec §7), every answer
checked for ``error`` and for its ``result``. Nothing more: no SHA-1 pre-check, no verification, no
retries, no ledger. Chunks are read into memory, one at a time.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from measure import RequestLog


def _plain_session(api: str, log: RequestLog) -> tuple[Any, str]:
    """Bot-password login with action=login, then the CSRF token: three requests."""
    import requests

    http = requests.Session()
    http.trust_env = False  # loopback only, never through a proxy
    q = {"action": "query", "format": "json", "meta": "tokens"}
    login_token = log.timed("query:meta=tokens", lambda: http.get(
        api, params={**q, "type": "login"}).json()["query"]["tokens"]["logintoken"])
    answer = log.timed("login", lambda: http.post(api, data={
        "action": "login", "format": "json", "lgname": os.environ["MWINGEST_USERNAME"],
        "lgpassword": os.environ["MWINGEST_PASSWORD"], "lgtoken": login_token}).json())
    if answer.get("login", {}).get("result") != "Success":
        raise RuntimeError(f"plain login failed: {answer.get('login', {}).get('result')}")
    csrf = log.timed("query:meta=tokens", lambda: http.get(api, params=q).json())
    return http, csrf["query"]["tokens"]["csrftoken"]


def _upload_answer(resp: Any) -> dict[str, Any]:
    body = resp.json()
    if "error" in body:
        raise RuntimeError(f"wiki error {body['error'].get('code')}: {body['error'].get('info')}")
    return body["upload"]


def plain_direct(api: str, files: list[Path], log: RequestLog) -> int:
    """W1: one multipart POST per file (the file part carries its filename), sequentially."""
    http, token = _plain_session(api, log)
    ok = 0
    for path in files:
        data = {"action": "upload", "format": "json", "filename": path.name,
                "comment": "bench plain loop", "token": token}
        content = path.read_bytes()
        up = log.timed("upload:file", lambda d=data, c=content, n=path.name: _upload_answer(
            http.post(api, data=d, files={"file": (n, c, "image/png")})))
        ok += up.get("result") == "Success"
    return ok


def plain_chunked(api: str, path: Path, chunk_size: int, log: RequestLog) -> int:
    """W2: spec §7 — chunks into the stash (offset/filekey from each answer), then publish the key."""
    http, token = _plain_session(api, log)
    size, offset, filekey = path.stat().st_size, 0, None
    base = {"action": "upload", "format": "json", "filename": path.name, "filesize": size,
            "ignorewarnings": 1, "token": token}
    with path.open("rb") as fh:
        while True:
            fh.seek(offset)
            chunk = fh.read(chunk_size)
            data = {**base, "offset": offset, **({"filekey": filekey} if offset else {})}
            up = log.timed("upload:chunk", lambda d=data, c=chunk: _upload_answer(
                http.post(api, data=d, files={"chunk": (path.name, c, "application/octet-stream")})))
            del chunk
            if up["result"] == "Continue":
                offset, filekey = int(up["offset"]), up["filekey"]
                continue
            if up["result"] != "Success":
                raise RuntimeError(f"chunk at {offset} answered {up['result']}")
            filekey = up["filekey"]
            break
    up = log.timed("upload:publish", lambda: _upload_answer(http.post(api, data={
        "action": "upload", "format": "json", "filename": path.name, "filekey": filekey,
        "comment": "bench plain loop", "token": token})))
    return int(up.get("result") == "Success")
