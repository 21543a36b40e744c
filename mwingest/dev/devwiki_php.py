"""The PHP text of a throwaway wiki: its router script and the LocalSettings it appends.

Kept apart from :mod:`mwingest.dev.devwiki` (which provisions, starts and stops the wiki) because it
is configuration, read on its own when a test needs to know how the test wiki is set up; with it,
the ``php -S`` command line that serves it.
"""

from __future__ import annotations

import re
import signal
import subprocess
from collections.abc import Mapping
from pathlib import Path
from typing import Any

EXTRA_EXTENSIONS = ("svg", "pdf", "tif", "tiff", "webp", "ogg", "ogv", "webm", "mp3", "wav")

ROUTER_PHP = r"""<?php
// devwiki router: /images/ comes from this wiki's own directory, the rest from MediaWiki's code.
$path = rawurldecode(parse_url($_SERVER['REQUEST_URI'], PHP_URL_PATH) ?? '/');
if (str_starts_with($path, '/images/')) {
    $base = realpath(__DIR__ . '/images');
    $file = realpath($base . substr($path, strlen('/images')));
    $hidden = str_starts_with($path, '/images/deleted/') || str_starts_with($path, '/images/temp/');
    if ($file === false || $hidden || !str_starts_with($file, $base . '/') || !is_file($file)) {
        http_response_code(404);
        return true;
    }
    header('Content-Type: ' . (mime_content_type($file) ?: 'application/octet-stream'));
    header('Content-Length: ' . filesize($file));
    readfile($file);
    return true;
}
return false;
"""


def php_literal(value: Any) -> str:
    """Render a Python value as a PHP literal, for settings such as ``$wgRateLimits``."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"
    if isinstance(value, Mapping):
        return "[" + ", ".join(f"{php_literal(k)} => {php_literal(v)}" for k, v in value.items()) + "]"
    if isinstance(value, list | tuple):
        return "[" + ", ".join(php_literal(v) for v in value) + "]"
    raise TypeError(f"no PHP literal for {type(value).__name__}")


def _base_settings(generated: str) -> str:
    """install.php's LocalSettings made directory-relative, plus the settings every variant shares."""
    text = re.sub(r'^\$wgSQLiteDataDir = .*$', '$wgSQLiteDataDir = __DIR__ . "/data";',
                  generated, count=1, flags=re.M)
    exts = ", ".join(php_literal(e) for e in EXTRA_EXTENSIONS)
    return text + f"""
# ---- devwiki: shared settings -------------------------------------------------------------
# Every cache in SQLite: php -S workers share no memory (sessions, chunk status, rate limits).
$wgMainCacheType = $wgSessionCacheType = $wgParserCacheType = $wgMessageCacheType = CACHE_DB;
# The rate limiter's counters too ($wgRateLimits), and each refusal in logs/ratelimit.log.
$wgStatsCacheType = CACHE_DB;
$wgDebugLogGroups['ratelimit'] = __DIR__ . '/logs/ratelimit.log';
# Everything the wiki writes stays in this directory (Debian's defaults point at /var).
$wgCacheDirectory = __DIR__ . '/cache';
$wgTmpDirectory = __DIR__ . '/tmp';
$wgUploadDirectory = __DIR__ . '/images';
$wgUploadPath = '/images';
$wgDeletedDirectory = __DIR__ . '/images/deleted';
$wgDBerrorLog = __DIR__ . '/logs/dberror.log';
foreach (['exception', 'error', 'fatal'] as $group) {{
    $wgDebugLogGroups[$group] = __DIR__ . "/logs/$group.log";
}}
$wgUploadStashScalerBaseUrl = false;
# No outbound traffic: no mail, no Commons, no pingback, no ImageMagick (may be a stand-in here).
$wgEnableEmail = $wgEnableUserEmail = $wgEmailAuthentication = false;
$wgUseInstantCommons = $wgPingback = $wgAllowExternalImages = $wgUseImageMagick = false;
$wgRCFeeds = [];
$wgShowExceptionDetails = true;
# Uploads as the spec's test wiki has them.
$wgEnableUploads = $wgEnableBotPasswords = $wgEnableAsyncUploads = true;
$wgFileExtensions = array_values(array_unique(array_merge($wgFileExtensions, [{exts}])));
"""


def _instance_settings(port: int, *, copy_uploads: bool, max_upload_size: int,
                       rate_limits: Mapping[str, Any] | None, extra_settings: str) -> str:
    """The settings that differ between variants: address, limits, copy uploads, extras."""
    return f"""
# ---- devwiki: this instance ---------------------------------------------------------------
$wgServer = 'http://127.0.0.1:{port}';
$wgScriptPath = '';
$wgCookiePrefix = 'devwiki{port}';  // cookies ignore ports: keep two local wikis apart
$wgMaxUploadSize = {php_literal(max_upload_size)};
$wgAllowCopyUploads = {php_literal(copy_uploads)};
$wgGroupPermissions['user']['upload_by_url'] = {php_literal(copy_uploads)};
$wgRateLimits = {php_literal(dict(rate_limits or {}))};
{extra_settings}
"""


#: Thumbnails with ImageMagick (Debian's imagemagick, installed by scripts/install-system-deps).
THUMBNAIL_SETTINGS = """
$wgUseImageMagick = true;
$wgImageMagickConvertCommand = '/usr/bin/convert';
$wgEnableAutoRotation = true;
$wgShowEXIF = true;
"""


def _die_with_parent() -> None:
    """In the server's process, before exec: SIGTERM when the process that started it dies, even
    by ``kill -9`` (Linux's PR_SET_PDEATHSIG). A test run that was killed left its wikis serving,
    and their directories (big chunked uploads) on disk, until someone noticed."""
    import ctypes

    ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)


def spawn_server(
    root: Path, mw_dir: Path, port: int, workers: int, upload_max: str, post_max: str,
    opcache: bool = False, *, env: dict[str, str], die_with_parent: bool = False,
) -> subprocess.Popen[bytes]:
    """``php -S`` in its own session, so that stop() can kill the master and its workers at once.

    ``env``: PHP's environment for this wiki. ``die_with_parent``: a wiki that lives only as long
    as its starter (a test's, not ``start``'s kept one) ends with it."""
    env = {**env, "PHP_CLI_SERVER_WORKERS": str(workers)}
    ini = {"upload_max_filesize": upload_max, "post_max_size": post_max, "memory_limit": "512M",
           "opcache.enable": str(int(opcache)), "opcache.enable_cli": str(int(opcache)),
           "upload_tmp_dir": str(root / "tmp"), "sys_temp_dir": str(root / "tmp"),
           "max_input_time": "-1",
           # Debian's php.ini gives a request 30 s; a synchronous assembly of a 2 GiB chunked
           # file takes longer here, and PHP killed it half-way (bench/bench_cli.py, 2 GiB).
           "max_execution_time": "600"}
    if opcache:  # MediaWiki stays compiled; the wiki's own folder (LocalSettings.php, which
        # set_setting rewrites, and the router) is never cached, so a new setting applies at once.
        blacklist = root / "opcache-blacklist.txt"
        blacklist.write_text(f"{root}/\n", encoding="utf-8")
        ini["opcache.blacklist_filename"] = str(blacklist)
    args = ["php", *(f"-d{k}={v}" for k, v in ini.items()), "-S", f"127.0.0.1:{port}",
            "-t", str(mw_dir), str(root / "router.php")]
    with (root / "logs" / "php-server.log").open("ab") as log:
        return subprocess.Popen(args, cwd=mw_dir, env=env, stdin=subprocess.DEVNULL, stdout=log,
                                stderr=subprocess.STDOUT, start_new_session=True,
                                preexec_fn=_die_with_parent if die_with_parent else None)
