"""Import flows for the Prefect UI and for schedules: a folder, a manifest, a list of URLs.

Why separate flows from ``ingest-batch``: a person filling a form in the UI should see only the
fields that matter for *their* kind of import, each with a title and a description, the warning
policy as choices, and the credentials picked from a list of blocks (never typed in). All of them
run the same batch body (:func:`flows.ingest.run_batch`), so every run has the same history.
"""

from __future__ import annotations

from typing import Annotated, Literal

from prefect import flow
from prefect.task_runners import ThreadPoolTaskRunner
from pydantic import BaseModel, ConfigDict, Field, field_validator

from flows.ingest import MAX_WORKERS, run_batch
from mwingest.base.policy import Action
from mwingest.checks.netsafe import AllowList
from tasks.blocks import MediaWikiCredentials


class PublishSettings(BaseModel):
    """How the files are described and sent."""

    model_config = ConfigDict(frozen=True)  # one shared instance is every flow's default

    comment: str = Field("Uploaded with mwingest", title="Upload summary",
                         description="The edit summary of each upload (file history, logs)")
    text: str = Field(
        "", title="Page text",
        description="Wikitext for new file description pages, e.g. "
                    "{{Information|…}} and categories")
    text_template: str = Field(
        "", title="Page text template (file path)",
        description="A wikitext file whose {column} placeholders are filled from manifest columns "
                    "and the file's metadata ({date}, {author}, {description}, {gps.lat} …), e.g. "
                    "examples/information.wiki")
    location: bool = Field(
        False, title="Add the GPS position",
        description="A {{Location|lat|lon}} line from each photo's GPS position (off: a position "
                    "can be private)")
    licence: str = Field(
        "", title="Licence template",
        description="For rows without a licence column value, e.g. cc-by-4.0")
    require_licence: bool = Field(
        False, title="Require a licence",
        description="Refuse files without a licence (missing-licence); add {{licence}} to texts "
                    "that do not use it")
    required_columns: list[str] = Field(
        default_factory=list, title="Required manifest columns",
        description="Columns every row must fill (besides headers ending in *); a row without one "
                    "is rejected (missing-column-value)")
    tags: list[str] = Field(default_factory=list, title="Change tags",
                            description="Tags (defined on the wiki) added to every upload")
    chunk_size_mb: float = Field(16.0, ge=0.0625, le=100.0, title="Chunk size (MiB)",
                                 description="Files larger than this go up in chunks of this size")
    concurrency: int = Field(4, ge=1, le=MAX_WORKERS, title="Files at once",
                             description="How many files are uploaded in parallel")
    ledger_path: str = Field(
        "", title="Ledger file or database URL",
        description="Where the run records each file (default: the worker's "
                    "MWINGEST_LEDGER_URL, else its per-user data directory). A URL here "
                    "is stored with the run: give its password through PGPASSWORD or "
                    "~/.pgpass on the worker, never in the URL")
    # Safety: strict by default (README, "Running imports you did not write").
    manifest_root: str = Field(
        "", title="Widen the manifest root (folder)",
        description="Manifest paths may lead here too, not only into the manifest's own folder "
                    "(empty: the manifest's folder only)")
    allow_hosts: list[str] = Field(
        default_factory=list, title="Allowed internal hosts",
        description="host, host:port or *.domain that URLs may reach although they are loopback "
                    "or private addresses (empty: public addresses only)")
    stash_hours: float = Field(
        0.0, ge=0.0, le=720.0, title="Stash lifetime (hours)",
        description="How long the wiki keeps uploaded-but-unpublished files; reviews wait at "
                    "most half of it (0: 48 on Wikimedia wikis, else MediaWiki's default 6)")
    retry_budget_s: float = Field(
        150.0, ge=0.0, le=3600.0, title="Ride out faults for (seconds)",
        description="How long a wiki restart, lost answers or maxlag are retried per request "
                    "before a file fails (it keeps its stash key and offset for the next run)")
    max_pixels: int = Field(
        0, ge=0, le=10_000_000_000, title="Largest image (pixels)",
        description="Images with more pixels are refused as decompression bombs (0: 89,478,485, "
                    "Pillow's limit); images too large to decode in memory pass with a warning")
    url_mode: Literal["wiki", "local"] = Field(
        "wiki", title="Who downloads URLs",
        description="wiki: the wiki copies the checked URL (copy uploads must be on); local: the "
                    "worker downloads it, capped at the wiki's size limit, and uploads the file")

    @field_validator("allow_hosts")
    @classmethod
    def _hosts_are_well_formed(cls, value: list[str]) -> list[str]:
        """A malformed entry (``host:http``) is the form's error, not a failed run later."""
        AllowList.parse(value, env=False)
        return value


class WarningPolicyForm(BaseModel):
    """What to do when the wiki warns about a file (skip / publish / rename / review / fail)."""

    model_config = ConfigDict(frozen=True)

    exists: Action = Field(Action.REVIEW, title="Name already taken (exists)",
                           description="A file with this name exists with other content")
    duplicate: Action = Field(Action.SKIP, title="Same file under another name (duplicate)")
    nochange: Action = Field(Action.SKIP, title="Already the current version (nochange)")
    duplicate_archive: Action = Field(Action.REVIEW, title="Same as a deleted file (duplicate-archive)")
    was_deleted: Action = Field(Action.REVIEW, title="Name of a deleted file (was-deleted)")
    badfilename: Action = Field(Action.RENAME, title="Name would be changed (badfilename)")
    exists_normalized: Action = Field(Action.REVIEW,
                                      title="Similar name exists (exists-normalized)")
    other_name_warnings: Action = Field(
        Action.REVIEW, title="Other name warnings",
        description="page-exists, thumb, thumb-name, bad-prefix")
    # Found by mwingest before the upload: publish lets the file go up, any other action refuses it.
    missing_template: Action = Field(
        Action.FAIL, title="Template not on the wiki (missing-template)",
        description="The page text uses a template the wiki does not have; publish: upload anyway")
    red_category: Action = Field(
        Action.PUBLISH, title="Category not on the wiki (red-category)",
        description="The page text puts the file in a category without a page; publish: upload "
                    "with a warning, any other choice refuses the file")

    def overrides(self) -> dict[str, str]:
        """The policy as warning code → action, for the batch."""
        out = {name.replace("_", "-"): value.value for name, value in self
               if name != "other_name_warnings"}
        for code in ("page-exists", "thumb", "thumb-name", "bad-prefix"):
            out[code] = self.other_name_warnings.value
        return out


def _run(credentials: MediaWikiCredentials, sources: list[str], settings: PublishSettings,
         policy: WarningPolicyForm, review_timeout_s: int, **extra: object) -> list[dict]:
    # Optional text fields are "" in the form (a plain textbox in the UI): "" means not set.
    return run_batch(credentials.to_credentials(), sources, comment=settings.comment,
                     text=settings.text or None, text_template=settings.text_template or None,
                     tags=settings.tags,
                     chunk_size_mb=settings.chunk_size_mb, on_warning=policy.overrides(),
                     concurrency=settings.concurrency, review_timeout_s=review_timeout_s,
                     ledger_path=settings.ledger_path or None,
                     manifest_root=settings.manifest_root or None,
                     allow_hosts=list(settings.allow_hosts), url_mode=settings.url_mode,
                     stash_hours=settings.stash_hours or None,
                     retry_budget_s=settings.retry_budget_s,
                     max_pixels=settings.max_pixels or None, location=settings.location,
                     licence=settings.licence or None, require_licence=settings.require_licence,
                     required_columns=list(settings.required_columns),
                     **extra)  # type: ignore[arg-type]


#: The forms' defaults. Prefect's parameter schema keeps only a plain ``default`` of a signature's
#: ``Field``: with ``default_factory`` the field became *required*, and the server refused every
#: run that left it out ("'settings' is a required property").
DEFAULT_SETTINGS = PublishSettings()
DEFAULT_POLICY = WarningPolicyForm()
#: Bounds in the type, not the signature's ``Field``: Prefect copies only a ``Field``'s default and
#: description into the schema, so ``ge``/``le`` there would not reach the form or the server.
ReviewWait = Annotated[int, Field(ge=0, le=86400)]

_REVIEW_WAIT = ("Seconds a file that needs a decision waits for an answer in the UI; then it "
                "stays needs-review with its stash key (6 h) for `mwingest review`")
_CREDS = "The wiki and how to log in: pick a MediaWiki Credentials block"
#: The form labels are ``json_schema_extra={"title": ...}``: Prefect sets each parameter's schema
#: title to its Python name whatever the ``Field`` says, but merges ``json_schema_extra`` over it.


@flow(name="import-folder", task_runner=ThreadPoolTaskRunner(max_workers=MAX_WORKERS))
def import_folder(
    folder: str = Field(..., description="A folder on the worker, scanned recursively",
                        json_schema_extra={"title": "Folder"}),
    credentials: MediaWikiCredentials = Field(..., description=_CREDS,
                                              json_schema_extra={"title": "Wiki and login"}),
    glob: str = Field("*", description="Which files, e.g. *.tif (default: every file)",
                      json_schema_extra={"title": "File pattern"}),
    settings: PublishSettings = Field(DEFAULT_SETTINGS,
                                      description="How the files are described and sent",
                                      json_schema_extra={"title": "Upload settings"}),
    on_warning: WarningPolicyForm = Field(DEFAULT_POLICY,
                                          description="What to do when the wiki warns",
                                          json_schema_extra={"title": "When the wiki warns"}),
    review_timeout_s: ReviewWait = Field(3600, description=_REVIEW_WAIT,
                                         json_schema_extra={"title": "Review wait (seconds)"}),
) -> list[dict]:
    """Import every file of a folder; files already uploaded (per the ledger) are skipped."""
    return _run(credentials, [folder], settings, on_warning, review_timeout_s, glob=glob)


@flow(name="import-manifest", task_runner=ThreadPoolTaskRunner(max_workers=MAX_WORKERS))
def import_manifest(
    manifest: str = Field(..., description="A .csv, .xlsx (e.g. from 'mwingest sheet') or .jsonl "
                          "file on the worker with a 'source' column (and optional filename, "
                          "text, comment, tags, licence columns)",
                          json_schema_extra={"title": "Manifest file"}),
    credentials: MediaWikiCredentials = Field(..., description=_CREDS,
                                              json_schema_extra={"title": "Wiki and login"}),
    settings: PublishSettings = Field(DEFAULT_SETTINGS,
                                      description="How the files are described and sent",
                                      json_schema_extra={"title": "Upload settings"}),
    on_warning: WarningPolicyForm = Field(DEFAULT_POLICY,
                                          description="What to do when the wiki warns",
                                          json_schema_extra={"title": "When the wiki warns"}),
    review_timeout_s: ReviewWait = Field(3600, description=_REVIEW_WAIT,
                                         json_schema_extra={"title": "Review wait (seconds)"}),
) -> list[dict]:
    """Import the rows of a manifest; a bad row is that row's rejected outcome."""
    return _run(credentials, [manifest], settings, on_warning, review_timeout_s)


@flow(name="import-urls", task_runner=ThreadPoolTaskRunner(max_workers=MAX_WORKERS))
def import_urls(
    urls: list[str] = Field(..., description="http(s) addresses; the wiki downloads each itself",
                            json_schema_extra={"title": "URLs"}),
    credentials: MediaWikiCredentials = Field(..., description=_CREDS,
                                              json_schema_extra={"title": "Wiki and login"}),
    settings: PublishSettings = Field(DEFAULT_SETTINGS,
                                      description="How the files are described and sent",
                                      json_schema_extra={"title": "Upload settings"}),
    on_warning: WarningPolicyForm = Field(DEFAULT_POLICY,
                                          description="What to do when the wiki warns",
                                          json_schema_extra={"title": "When the wiki warns"}),
    review_timeout_s: ReviewWait = Field(3600, description=_REVIEW_WAIT,
                                         json_schema_extra={"title": "Review wait (seconds)"}),
) -> list[dict]:
    """Copy uploads: the wiki downloads each URL itself."""
    return _run(credentials, list(urls), settings, on_warning, review_timeout_s)
