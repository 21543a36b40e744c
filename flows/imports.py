"""Import flows for the Prefect UI and for schedules: a folder, a manifest, a list of URLs.

Why separate flows from ``ingest-batch``: a person filling a form in the UI should see only the
fields that matter for *their* kind of import, each with a title and a description (the batch's
settings are one nested form, :class:`~mwingest.job.settings.BatchSettings`: the warning policy
as choices), and the credentials picked from a list of blocks (never typed in). All of them
run the same batch body (:func:`flows.ingest.run_batch`), so every run has the same history.
"""

from __future__ import annotations

from prefect import flow
from prefect.task_runners import ThreadPoolTaskRunner
from pydantic import Field

from flows.ingest import run_batch
from mwingest.job.settings import DEFAULT_SETTINGS, MAX_WORKERS, BatchSettings
from tasks.blocks import MediaWikiCredentials

_CREDS = "The wiki and how to log in: pick a MediaWiki Credentials block"
_SETTINGS = "How the files are described and sent, what the batch may reach, when the wiki warns"
#: The form labels are ``json_schema_extra={"title": ...}``: Prefect sets each parameter's schema
#: title to its Python name whatever the ``Field`` says, but merges ``json_schema_extra`` over it.
#: The settings' default is the one shared instance: Prefect's parameter schema keeps only a plain
#: ``default`` of a signature's ``Field`` (with ``default_factory`` the field became *required*).


def _run(credentials: MediaWikiCredentials, sources: list[str],
         settings: BatchSettings) -> list[dict]:
    return run_batch(credentials.to_credentials(), sources, settings)


@flow(name="import-folder", task_runner=ThreadPoolTaskRunner(max_workers=MAX_WORKERS))
def import_folder(
    folder: str = Field(..., description="A folder on the worker, scanned recursively",
                        json_schema_extra={"title": "Folder"}),
    credentials: MediaWikiCredentials = Field(..., description=_CREDS,
                                              json_schema_extra={"title": "Wiki and login"}),
    settings: BatchSettings = Field(DEFAULT_SETTINGS, description=_SETTINGS,
                                    json_schema_extra={"title": "Batch settings"}),
) -> list[dict]:
    """Import every file of a folder; files already uploaded (per the ledger) are skipped."""
    return _run(credentials, [folder], settings)


@flow(name="import-manifest", task_runner=ThreadPoolTaskRunner(max_workers=MAX_WORKERS))
def import_manifest(
    manifest: str = Field(..., description="A .csv, .xlsx (e.g. from 'mwingest sheet') or .jsonl "
                          "file on the worker with a 'source' column (and optional filename, "
                          "text, comment, tags, licence columns)",
                          json_schema_extra={"title": "Manifest file"}),
    credentials: MediaWikiCredentials = Field(..., description=_CREDS,
                                              json_schema_extra={"title": "Wiki and login"}),
    settings: BatchSettings = Field(DEFAULT_SETTINGS, description=_SETTINGS,
                                    json_schema_extra={"title": "Batch settings"}),
) -> list[dict]:
    """Import the rows of a manifest; a bad row is that row's rejected outcome."""
    return _run(credentials, [manifest], settings)


@flow(name="import-urls", task_runner=ThreadPoolTaskRunner(max_workers=MAX_WORKERS))
def import_urls(
    urls: list[str] = Field(..., description="http(s) addresses; the wiki downloads each itself",
                            json_schema_extra={"title": "URLs"}),
    credentials: MediaWikiCredentials = Field(..., description=_CREDS,
                                              json_schema_extra={"title": "Wiki and login"}),
    settings: BatchSettings = Field(DEFAULT_SETTINGS, description=_SETTINGS,
                                    json_schema_extra={"title": "Batch settings"}),
) -> list[dict]:
    """Copy uploads: the wiki downloads each URL itself."""
    return _run(credentials, list(urls), settings)
