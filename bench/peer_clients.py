"""The peers of ``bench_peers.py``: one process each, uploading every file of a folder.

Run as ``python peer_clients.py plain|pywikibot|mwclient FOLDER``; the wiki and the bot password
come from ``MWINGEST_API_URL`` / ``MWINGEST_USERNAME`` / ``MWINGEST_PASSWORD`` (never argv), and
pywikibot's generated configuration from ``PYWIKIBOT_DIR``. Each logs in once and sends one
upload per file, in name order, as a person would write it with that library; it exits non-zero
when any file did not land, so a bench figure never counts a failed upload as a fast one.

Why whole processes: the bench compares what a user runs, start-up included, and takes the
start-up off by subtracting a one-file run of the same tool (``bench_peers.py``).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from urllib.parse import urlsplit


def plain(files: list[Path]) -> int:
    """The plainest correct loop: login, a CSRF token, one multipart POST per file, each answer
    checked for ``error`` and ``result``."""
    import requests

    api = os.environ["MWINGEST_API_URL"]
    http = requests.Session()
    http.trust_env = False
    q = {"action": "query", "meta": "tokens", "format": "json"}
    lt = http.get(api, params={**q, "type": "login"}).json()["query"]["tokens"]["logintoken"]
    r = http.post(api, data={"action": "login", "format": "json", "lgtoken": lt,
                             "lgname": os.environ["MWINGEST_USERNAME"],
                             "lgpassword": os.environ["MWINGEST_PASSWORD"]}).json()
    if r["login"]["result"] != "Success":
        raise SystemExit(f"login: {r}")
    token = http.get(api, params=q).json()["query"]["tokens"]["csrftoken"]
    ok = 0
    for path in files:
        with path.open("rb") as fh:
            up = http.post(api, data={"action": "upload", "format": "json", "token": token,
                                      "filename": path.name, "comment": "bench plain"},
                           files={"file": (path.name, fh, "image/png")}).json()
        ok += up.get("upload", {}).get("result") == "Success"
    return ok


def mwclient_upload(files: list[Path]) -> int:
    """mwclient: ``Site.login`` with the bot password, then ``Site.upload`` per file (it stops at
    warnings, as mwingest does: no ``ignore``)."""
    import mwclient

    url = urlsplit(os.environ["MWINGEST_API_URL"])
    site = mwclient.Site(url.netloc, path=url.path.rsplit("/", 1)[0] + "/", scheme=url.scheme,
                         clients_useragent="mwingest-bench")
    site.login(os.environ["MWINGEST_USERNAME"], os.environ["MWINGEST_PASSWORD"])
    ok = 0
    for path in files:
        with path.open("rb") as fh:
            answer = site.upload(fh, filename=path.name, description="bench mwclient",
                                 comment="bench mwclient")
        ok += answer.get("result") == "Success"
    return ok


def pywikibot_upload(files: list[Path]) -> int:
    """pywikibot: the generated family (``PYWIKIBOT_DIR``), login, ``APISite.upload`` per file
    (warnings stop it: ``ignore_warnings=False``)."""
    import pywikibot

    site = pywikibot.Site("en", "benchwiki")
    site.login()
    ok = 0
    for path in files:
        page = pywikibot.FilePage(site, f"File:{path.name}")
        ok += bool(site.upload(page, source_filename=str(path), comment="bench pywikibot",
                               text="bench pywikibot", ignore_warnings=False,
                               report_success=False))
    return ok


def pywikibot_config(folder: Path, api_url: str, username: str, password: str) -> None:
    """A user-config, a family and a password file for the throwaway wiki, in ``folder``
    (a temp dir): pywikibot reads them from ``PYWIKIBOT_DIR``. No write throttle: the peers
    are compared at their fastest, as mwingest is."""
    user, _, app = username.partition("@")
    url = urlsplit(api_url)
    fams = folder / "families"
    fams.mkdir(parents=True, exist_ok=True)
    (fams / "benchwiki_family.py").write_text(
        "from pywikibot import family\n\n"
        "class Family(family.Family):\n"
        "    name = 'benchwiki'\n"
        f"    langs = {{'en': {url.netloc!r}}}\n\n"
        f"    def scriptpath(self, code):\n        return {url.path.rsplit('/', 1)[0]!r}\n\n"
        f"    def protocol(self, code):\n        return {url.scheme!r}\n")
    (folder / "user-password.py").write_text(f"({user!r}, BotPassword({app!r}, {password!r}))\n")
    os.chmod(folder / "user-password.py", 0o600)
    (folder / "user-config.py").write_text(
        "family = 'benchwiki'\nmylang = 'en'\n"
        f"usernames['benchwiki']['en'] = {user!r}\n"
        "password_file = 'user-password.py'\n"
        "put_throttle = 0\nmaxlag = 0\nmax_retries = 1\nnoisysleep = 1000.0\n"
        "user_agent_format = 'mwingest-bench {script_product}'\n"
        f"base_dir = {str(folder)!r}\n")


def main() -> int:
    tool, folder = sys.argv[1], Path(sys.argv[2])
    files = sorted(p for p in folder.iterdir() if p.is_file())
    ok = {"plain": plain, "mwclient": mwclient_upload, "pywikibot": pywikibot_upload}[tool](files)
    if ok != len(files):
        print(f"{tool}: {ok} of {len(files)} uploaded", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
