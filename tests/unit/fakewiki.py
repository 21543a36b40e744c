"""A small in-memory model of MediaWiki 1.39's upload API, for the per-file job's unit tests.

Why a fake, and only here: the state-machine tests drive a job from every state through every
answer the wiki can give — an answer lost *after* the wiki acted at a chosen request, a stash copy
that expired between two steps, a name taken between a warning and a decision — on demand and in
milliseconds, hundreds of times. A real wiki cannot be made to do that on demand; the integration
tests (``test_flow_faults``, ``test_job_crash_matrix``, ``test_flow_outage``) take the same paths
against the real wiki wherever it can be made to. Answers have the shapes of spec §4–§7, and
errors are raised the way :class:`mwingest.wiki.session.WikiSession` raises them (``api_error``,
:class:`ResponseLostError`, :class:`TransportError`), so the job sees what it would see from
MediaWiki 1.39.
"""

from __future__ import annotations

import hashlib
import itertools
from collections import Counter
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from mwingest.base.errors import ResponseLostError, TransportError, api_error


def db_key(name: str) -> str:
    name = name.replace(" ", "_")
    return name[:1].upper() + name[1:]


def _sha1(data: bytes) -> str:
    return hashlib.sha1(data).hexdigest()  # noqa: S324 - the wiki's own content hash


class FakeWiki:
    """Files, the user's stash and chunk sessions; faults by request kind and number."""

    api_url = "http://fake.invalid/w/api.php"

    def __init__(self, user: str = "Tester") -> None:
        self.user = user
        self.files: dict[str, list[dict[str, Any]]] = {}  # DB key → versions, newest first
        self.stash: dict[str, dict[str, Any]] = {}  # key → data, status, filesize, first chunk
        self.urls: dict[str, bytes] = {}  # what a copy upload of a URL fetches
        self.kinds: Counter[str] = Counter()  # requests seen, by kind
        self.chunk_bytes = 0  # every chunk byte that reached the wiki, resends included
        self._faults: dict[tuple[str, int], str] = {}
        self._keys = itertools.count(1)

    # --- set-up --------------------------------------------------------------------------------
    def put(self, name: str, data: bytes, user: str = "Someone") -> None:
        """A file already on the wiki (someone else's upload, by default)."""
        self._land(db_key(name), data, user)

    def fault(self, kind: str, mode: str = "lost", nth: int = 1) -> None:
        """The ``nth`` next request of ``kind`` (chunk, upload, publish, copy, checkstatus,
        imageinfo, allimages, mystashedfiles, stashimageinfo) fails: ``lost`` (the wiki acts,
        the answer is lost), ``refused`` (never sent) or an API error code."""
        self._faults[(kind, self.kinds[kind] + nth)] = mode

    def expire_stash(self) -> None:
        """The wiki's stash cleanup ran (``$wgUploadStashMaxAge`` passed)."""
        self.stash.clear()

    def versions(self, name: str) -> list[dict[str, Any]]:
        return self.files.get(db_key(name), [])

    # --- the session's two methods -----------------------------------------------------------------
    def get(self, params: Mapping[str, Any]) -> dict[str, Any]:
        if params.get("prop") == "imageinfo":
            return self._run("imageinfo", self._imageinfo, params, None)
        if params.get("list") == "allimages":
            return self._run("allimages", self._allimages, params, None)
        if params.get("list") == "mystashedfiles":
            return self._run("mystashedfiles", self._mystashed, params, None)
        if params.get("prop") == "stashimageinfo":
            return self._run("stashimageinfo", self._stashinfo, params, None)
        raise AssertionError(f"the fake wiki does not know {dict(params)}")

    def post(self, params: Mapping[str, Any], files: Mapping[str, Any] | None = None,
             **_: Any) -> dict[str, Any]:
        if params.get("checkstatus"):
            return self._run("checkstatus", self._checkstatus, params, files)
        if files and "chunk" in files:
            return self._run("chunk", self._chunk, params, files)
        if files and "file" in files:
            return self._run("upload", self._upload, params, files)
        if params.get("url"):
            return self._run("copy", self._copy, params, files)
        if params.get("filekey"):
            return self._run("publish", self._publish_key, params, files)
        raise AssertionError(f"the fake wiki does not know {dict(params)}")

    def _run(self, kind: str, handler: Any, params: Mapping[str, Any],
             files: Mapping[str, Any] | None) -> dict[str, Any]:
        self.kinds[kind] += 1
        mode = self._faults.pop((kind, self.kinds[kind]), None)
        if mode == "refused":
            raise TransportError(f"fake: connection refused ({kind})")
        if mode not in (None, "lost"):
            raise api_error(mode, f"fake: {mode}")
        answer = handler(params, files)
        if mode == "lost":
            raise ResponseLostError(f"fake: the answer to {kind} was lost")
        return answer

    # --- uploads ---------------------------------------------------------------------------------
    @staticmethod
    def _read(part: Any) -> bytes:
        body = part.open()
        if isinstance(body, bytes):
            return body
        try:
            return body.read()
        finally:
            body.close()

    def _new_key(self, suffix: str) -> str:
        return f"fake{next(self._keys)}.{suffix}"

    def _chunk(self, params: Mapping[str, Any], files: Mapping[str, Any]) -> dict[str, Any]:
        data, offset, size = self._read(files["chunk"]), int(params["offset"]), int(params["filesize"])
        self.chunk_bytes += len(data)
        if offset == 0:
            key = self._new_key("chunks")
            self.stash[key] = {"data": b"", "status": "chunks", "filesize": size, "first": data}
        else:
            key = str(params.get("filekey"))
            session = self.stash.get(key)
            if session is None or session["status"] != "chunks":
                raise api_error("stashfailed", "No chunked upload session with this key.")
            if offset != len(session["data"]):
                raise api_error("stashfailed", "Invalid chunk offset", {"offset": str(len(session["data"]))})
        session = self.stash[key]
        session["data"] += data
        if len(session["data"]) < size:
            return {"upload": {"result": "Continue", "offset": len(session["data"]), "filekey": key}}
        final = self._new_key("final")
        self.stash[final] = {"data": session["data"], "status": "finished", "filesize": size}
        session["status"], session["final"] = "done", final
        return {"upload": {"result": "Success", "filekey": final,
                           "imageinfo": self._info(session["data"])}}

    def _checkstatus(self, params: Mapping[str, Any], _: Any) -> dict[str, Any]:
        entry = self.stash.get(str(params["filekey"]))
        if entry is None:
            raise api_error("uploadstash-file-not-found", "Key not found in stash")
        if entry["status"] == "chunks":
            return {"upload": {"result": "Continue", "offset": len(entry["data"])}}
        key = entry.get("final", params["filekey"])
        return {"upload": {"result": "Success", "filekey": key, "imageinfo": self._info(entry["data"])}}

    def _upload(self, params: Mapping[str, Any], files: Mapping[str, Any]) -> dict[str, Any]:
        return self._take(self._read(files["file"]), params)

    def _copy(self, params: Mapping[str, Any], _: Any) -> dict[str, Any]:
        if params["url"] not in self.urls:
            raise api_error("http-bad-status", "Error fetching file from remote source 404 Not Found")
        return self._take(self.urls[params["url"]], params)

    def _publish_key(self, params: Mapping[str, Any], _: Any) -> dict[str, Any]:
        key = str(params["filekey"])
        entry = self.stash.get(key)
        if entry is None or entry["status"] != "finished":
            raise api_error("uploadstash-file-not-found", f"Key \"{key}\" not found in stash.")
        return self._take(entry["data"], params, stash_key=key)

    def _take(self, data: bytes, params: Mapping[str, Any], stash_key: str | None = None
              ) -> dict[str, Any]:
        """A publish: warnings (unless ignored), or the new version."""
        name = db_key(str(params["filename"]))
        if params.get("stash"):
            key = self._new_key("stashed")
            self.stash[key] = {"data": data, "status": "finished", "filesize": len(data)}
            return {"upload": {"result": "Success", "filekey": key}}
        sha1, current = _sha1(data), self.files.get(name)
        if current and current[0]["sha1"] == sha1 and params.get("ignorewarnings"):
            raise api_error("fileexists-no-change", "The upload is an exact duplicate of the "
                            f"current version of [[:File:{name}]].")
        warnings: dict[str, Any] = {}
        if current:
            warnings["exists"] = name
            if current[0]["sha1"] == sha1:
                warnings["nochange"] = {"timestamp": current[0]["timestamp"]}
        dupes = [n for n, v in self.files.items() if n != name and v[0]["sha1"] == sha1]
        if dupes:
            warnings["duplicate"] = dupes
        if warnings and not params.get("ignorewarnings"):
            key = stash_key or self._new_key("warned")
            self.stash[key] = {"data": data, "status": "finished", "filesize": len(data)}
            return {"upload": {"result": "Warning", "warnings": warnings, "filekey": key}}
        if stash_key:
            self.stash.pop(stash_key, None)
        self._land(name, data, self.user)
        return {"upload": {"result": "Success", "filename": name,
                           "imageinfo": self.files[name][0]}}

    def _land(self, name: str, data: bytes, user: str) -> None:
        version = {**self._info(data), "user": user,
                   "timestamp": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
                   "descriptionurl": f"http://fake.invalid/wiki/File:{name}",
                   "url": f"http://fake.invalid/images/{name}"}
        self.files.setdefault(name, []).insert(0, version)

    @staticmethod
    def _info(data: bytes) -> dict[str, Any]:
        return {"sha1": _sha1(data), "size": len(data)}

    # --- queries ---------------------------------------------------------------------------------
    def _imageinfo(self, params: Mapping[str, Any], _: Any) -> dict[str, Any]:
        name = db_key(str(params["titles"]).split(":", 1)[1])
        title = "File:" + name.replace("_", " ")
        if name not in self.files:
            return {"query": {"pages": [{"title": title, "missing": True}]}}
        limit = len(self.files[name]) if params.get("iilimit") == "max" else 1
        return {"query": {"pages": [{"title": title, "imageinfo": self.files[name][:limit]}]}}

    def _allimages(self, params: Mapping[str, Any], _: Any) -> dict[str, Any]:
        sha1 = str(params["aisha1"]).lower()
        return {"query": {"allimages": [{"name": n, **v[0]} for n, v in sorted(self.files.items())
                                        if v[0]["sha1"] == sha1]}}

    def _mystashed(self, params: Mapping[str, Any], _: Any) -> dict[str, Any]:
        rows = [{"filekey": k, "status": e["status"], "size": len(e["data"])}
                for k, e in self.stash.items() if e["status"] in ("chunks", "finished")]
        return {"query": {"mystashedfiles": rows}}

    def _stashinfo(self, params: Mapping[str, Any], _: Any) -> dict[str, Any]:
        keys = params["siifilekey"]
        out = []
        for key in keys if isinstance(keys, list) else [keys]:
            entry = self.stash.get(key)
            if entry is None:
                raise api_error("uploadstash-file-not-found", f"Key \"{key}\" not found in stash.")
            data = entry.get("first") if entry["status"] == "chunks" else entry["data"]
            out.append(self._info(data or b""))
        return {"query": {"stashimageinfo": out}}
