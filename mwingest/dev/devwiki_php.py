"""The PHP text of a throwaway wiki: its router script and the LocalSettings it appends.

Kept apart from :mod:`mwingest.dev.devwiki` (which provisions, starts and stops the wiki) because it
is configuration, read on its own when a test needs to know how the test wiki is set up.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
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
