"""The batch's settings: one frozen model for the CLI, the Python API, the UI's forms, the flows,
planned imports and their shards.

Why one model: the settings were written out by hand six times (flow signatures, the API, the
CLI, the UI's form, the plan), and what fell between the copies was lost — a planned import's
shards ran without the batch's warning policy, page text and tags. Now every entry point builds a
:class:`BatchSettings` and hands it on whole; defaults live here and nowhere else, and a plan
stores it as JSON so that every shard runs with exactly what the person chose.

The groups are what a person thinks about: how files are *described*, how they are *sent*, what
is *safe* to reach, what to do *when the wiki warns*. Prefect renders the model as one nested
form, each field with a title and a help text. Two rules from Prefect 3.9 (see the findings):
defaults are plain values, never ``default_factory`` (Prefect's schema turned those fields into
required ones), and text fields use ``""`` for "not set" (the form shows a plain textbox).

No secrets here: this travels as flow parameters, which Prefect stores and shows.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator, model_validator

from mwingest.base.defaults import DEFAULT_CHUNK_MB, DEFAULT_COMMENT, DEFAULT_CONCURRENCY, MAX_WORKERS
from mwingest.base.items import IngestItem
from mwingest.base.options import IngestOptions
from mwingest.base.policy import DEFAULT_ACTIONS, Action, WarningPolicy
from mwingest.base.redact import NO_PASSWORD_PATTERN
from mwingest.base.retry import DEFAULT_BUDGET_S, RetryPolicy
from mwingest.checks.netsafe import AllowList
from mwingest.describe.sources import collect
from mwingest.describe.structured import COMMONS_LICENCE_ITEMS, DEFAULT_STATEMENTS


class _Group(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    @field_validator("*", mode="before")
    @classmethod
    def _none_is_unset(cls, value: Any, info: ValidationInfo) -> Any:
        """``None`` (the flat API's "not given") means the field's default."""
        if value is None:
            field = cls.model_fields[info.field_name]  # type: ignore[index]
            if field.default is not None:
                return field.default
        return value


def _entity_ids(value: dict[str, str], prefix: str, refusal: str) -> dict[str, str]:
    """``value`` if each of its values is a Wikibase id with ``prefix`` (``Q42``, ``P180``)."""
    import re

    bad = {k: v for k, v in value.items() if not re.fullmatch(rf"{prefix}[1-9][0-9]*", str(v))}
    if bad:
        raise ValueError(f"{refusal}: {bad}")
    return value


class Describing(_Group):
    """How each file's description page is written."""

    comment: str = Field(DEFAULT_COMMENT, title="Upload summary",
                         description="The edit summary of each upload (file history, logs)")
    text: str = Field("", title="Page text",
                      description="Wikitext for new file description pages, e.g. "
                                  "{{Information|…}} and categories")
    text_template: str = Field(
        "", title="Page text template (file path)",
        description="A wikitext file whose {column} placeholders are filled from manifest columns "
                    "and the file's metadata ({date}, {author}, {description}, {gps.lat} …), e.g. "
                    "examples/information.wiki")
    tags: list[str] = Field([], title="Change tags",
                            description="Tags (defined on the wiki) added to every upload")
    location: bool = Field(False, title="Add the GPS position",
                           description="A {{Location|lat|lon}} line from each photo's GPS position "
                                       "(off: a position can be private)")
    licence: str = Field("", title="Licence template",
                         description="For rows without a licence column value, e.g. cc-by-4.0")
    require_licence: bool = Field(
        False, title="Require a licence",
        description="Refuse files without a licence (missing-licence); add {{licence}} to texts "
                    "that do not use it")
    required_columns: list[str] = Field(
        [], title="Required manifest columns",
        description="Columns every row must fill (besides headers ending in *); a row without one "
                    "is rejected (missing-column-value)")
    check_pages: bool = Field(
        True, title="Check templates and categories first",
        description="Look up every template and category the texts use before a byte is sent "
                    "(missing-template, red-category)")
    statements: dict[str, str] = Field(
        dict(DEFAULT_STATEMENTS), title="Statement columns (column → property)",
        description="Manifest columns written as statements on each file's structured data "
                    "(with captions from caption.<language> columns), each to a property id; "
                    "Wikidata's ids by default, as Commons uses them")

    fill_statements: bool = Field(
        False, title="Licence and inception statements from the description",
        description="An empty copyright_licence cell takes the item of the row's licence "
                    "template (see licence items), an empty inception the row's date")
    licence_items: dict[str, str] = Field(
        {}, title="More licence items (template → item)",
        description="The item each licence template stands for in copyright_licence "
                    "statements, on top of Wikidata's for Commons' common CC licences")

    @field_validator("licence_items")
    @classmethod
    def _item_ids(cls, value: dict[str, str]) -> dict[str, str]:
        """``{"cc-by-4.0": "Q20007257"}``: an item id per template, refused here if malformed."""
        return _entity_ids(value, "Q", "licence items need item ids (Q…)")

    def fill(self) -> dict[str, str] | None:
        """The licence map for :func:`mwingest.describe.structured.cells`, when filling is on."""
        return {**COMMONS_LICENCE_ITEMS, **self.licence_items} if self.fill_statements else None

    @field_validator("statements")
    @classmethod
    def _property_ids(cls, value: dict[str, str]) -> dict[str, str]:
        """``{"depicts": "P180"}``: a property id per column, refused here if malformed."""
        return _entity_ids(value, "P", "statement columns need property ids (P…)")


class Sending(_Group):
    """How the bytes go up, and how faults are ridden out."""

    chunk_size_mb: float = Field(DEFAULT_CHUNK_MB, ge=0.0625, le=100.0, title="Chunk size (MiB)",
                                 description="Files larger than this go up in chunks of this size")
    concurrency: int = Field(DEFAULT_CONCURRENCY, ge=1, le=MAX_WORKERS, title="Files at once",
                             description="How many files are uploaded in parallel")
    async_assembly: bool = Field(
        False, title="Assemble big files in a job",
        description="The wiki assembles a chunked file in its job queue (async=1), for files too "
                    "big to assemble within one request; its job runner must run")
    url_mode: Literal["wiki", "local"] = Field(
        "wiki", title="Who downloads URLs",
        description="wiki: the wiki copies the checked URL (copy uploads must be on); local: the "
                    "worker downloads it, capped at the wiki's size limit, and uploads the file")
    retry_budget_s: float = Field(
        DEFAULT_BUDGET_S, ge=0.0, le=3600.0, title="Ride out faults for (seconds)",
        description="How long a wiki restart, lost answers or maxlag are retried per request "
                    "before a file fails (it keeps its stash key and offset for the next run)")
    stash_hours: float = Field(
        0.0, ge=0.0, le=720.0, title="Stash lifetime (hours)",
        description="How long the wiki keeps uploaded-but-unpublished files; reviews wait at "
                    "most half of it (0: 48 on Wikimedia wikis, else MediaWiki's default 6)")


class Safety(_Group):
    """What a batch may reach: strict by default (README, "Running imports you did not write")."""

    glob: str = Field("*", title="File pattern",
                      description="Which files of a folder, e.g. *.tif (default: every file)")
    recursive: bool = Field(True, title="Into subfolders",
                            description="Scan a folder's subfolders too")
    manifest_root: str = Field(
        "", title="Widen the manifest root (folder)",
        description="Manifest paths may lead here too, not only into the manifest's own folder "
                    "(empty: the manifest's folder only)")
    allow_hosts: list[str] = Field(
        [], title="Allowed internal hosts",
        description="host, host:port or *.domain that URLs may reach although they are loopback "
                    "or private addresses (empty: public addresses only)")
    max_pixels: int = Field(
        0, ge=0, le=10_000_000_000, title="Largest image (pixels)",
        description="Images with more pixels are refused as decompression bombs (0: 89,478,485, "
                    "Pillow's limit); images too large to decode in memory pass with a warning")

    @field_validator("allow_hosts")
    @classmethod
    def _hosts_are_well_formed(cls, value: list[str]) -> list[str]:
        """A malformed entry (``host:http``) is the form's error, not a failed run later."""
        AllowList.parse(value, env=False)
        return value


#: The form's named warnings (``other_name_warnings`` stands for four codes) → warning codes.
_OTHER_NAMES = ("page-exists", "thumb", "thumb-name", "bad-prefix")


class OnWarning(_Group):
    """What to do when the wiki warns about a file (skip / publish / rename / review / fail)."""

    exists: Action = Field(DEFAULT_ACTIONS["exists"], title="Name already taken (exists)",
                           description="A file with this name exists with other content")
    duplicate: Action = Field(DEFAULT_ACTIONS["duplicate"],
                              title="Same file under another name (duplicate)")
    nochange: Action = Field(DEFAULT_ACTIONS["nochange"],
                             title="Already the current version (nochange)")
    duplicate_archive: Action = Field(DEFAULT_ACTIONS["duplicate-archive"],
                                      title="Same as a deleted file (duplicate-archive)")
    was_deleted: Action = Field(DEFAULT_ACTIONS["was-deleted"],
                                title="Name of a deleted file (was-deleted)")
    badfilename: Action = Field(DEFAULT_ACTIONS["badfilename"],
                                title="Name would be changed (badfilename)")
    exists_normalized: Action = Field(DEFAULT_ACTIONS["exists-normalized"],
                                      title="Similar name exists (exists-normalized)")
    other_name_warnings: Action = Field(
        DEFAULT_ACTIONS["page-exists"], title="Other name warnings",
        description="page-exists, thumb, thumb-name, bad-prefix")
    # Found by mwingest before the upload: publish lets the file go up, any other action refuses it.
    missing_template: Action = Field(
        DEFAULT_ACTIONS["missing-template"], title="Template not on the wiki (missing-template)",
        description="The page text uses a template the wiki does not have; publish: upload anyway")
    red_category: Action = Field(
        DEFAULT_ACTIONS["red-category"], title="Category not on the wiki (red-category)",
        description="The page text puts the file in a category without a page; publish: upload "
                    "with a warning, any other choice refuses the file")
    other: dict[str, Action] = Field(
        {}, title="Other warning codes",
        description="warning code → action for codes not listed above, e.g. "
                    "{\"duplicateversions\": \"skip\"}")

    @model_validator(mode="before")
    @classmethod
    def _codes(cls, data: Any) -> Any:
        """A mapping of warning codes (``{"red-category": "fail"}``, the CLI's and the flat
        API's way) is read as codes; the form's own field names pass as they are."""
        if isinstance(data, str):
            return cls.from_codes(data).model_dump()
        if isinstance(data, Mapping) and any(key not in cls.model_fields for key in data):
            return cls.from_codes({k: str(v) for k, v in data.items()}).model_dump()
        return data

    def overrides(self) -> dict[str, str]:
        """The policy as warning code → action, for the batch."""
        out = {name.replace("_", "-"): Action(value).value for name, value in self
               if name not in ("other_name_warnings", "other")}
        for code in _OTHER_NAMES:
            out[code] = Action(self.other_name_warnings).value
        out.update({code: Action(action).value for code, action in self.other.items()})
        return out

    def policy(self) -> WarningPolicy:
        return WarningPolicy.parse(self.overrides())

    @classmethod
    def from_codes(cls, codes: Mapping[str, str] | str | None) -> OnWarning:
        """``{"exists": "rename"}`` or the CLI's ``"exists=rename,…"``: named fields where the
        form has one, the rest under ``other``. An unknown action raises ``ValueError``."""
        parsed = WarningPolicy.parse(codes).overrides or {}
        named = {n for n in cls.model_fields if n not in ("other_name_warnings", "other")}
        fields: dict[str, Any] = {}
        other: dict[str, Action] = {}
        for code, action in parsed.items():
            name = code.replace("-", "_")
            (fields.__setitem__(name, action) if name in named else other.__setitem__(code, action))
        return cls(**fields, other=other)


class BatchSettings(BaseModel):
    """Everything a batch is told, in one frozen model (no secrets: it travels as parameters)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    describing: Describing = Field(Describing(), title="Describing the files")
    sending: Sending = Field(Sending(), title="Sending")
    safety: Safety = Field(Safety(), title="What the batch may reach")
    on_warning: OnWarning = Field(OnWarning(), title="When the wiki warns")
    review_timeout_s: int = Field(
        -1, ge=-1, le=86400, title="Review wait (seconds)",
        description="Seconds a file that needs a decision waits for an answer in the UI; then it "
                    "stays needs-review with its stash key for `mwingest review` (-1: up to an "
                    "hour when a Prefect UI can show the form, else none)")
    ledger_path: str = Field(
        "", title="Ledger file or database URL", json_schema_extra={"pattern": NO_PASSWORD_PATTERN},
        description="Where the run records each file (default: the worker's MWINGEST_LEDGER_URL, "
                    "else its per-user data directory). Never a password in it: give that "
                    "through PGPASSWORD or ~/.pgpass on the worker")

    @field_validator("review_timeout_s", mode="before")
    @classmethod
    def _none_waits_by_default(cls, value: Any) -> Any:
        return -1 if value is None else value

    @field_validator("ledger_path", mode="before")
    @classmethod
    def _no_password_in_the_ledger(cls, value: Any) -> Any:
        """Refused here, when the settings are made: before any flow run stores them."""
        from mwingest.ledger.store import parameter_location

        return parameter_location(value) or ""

    @model_validator(mode="before")
    @classmethod
    def _flat_names(cls, data: Any) -> Any:
        """Flat names (``{"comment": …, "review_timeout_s": 0}``) go into their groups, so a
        deployment's or a test's parameters may name just the leaves they set."""
        if not isinstance(data, Mapping) or all(key in cls.model_fields for key in data):
            return data
        out: dict[str, Any] = {}
        for key, value in data.items():
            if key in cls.model_fields:
                out[key] = value.model_dump() if isinstance(value, BaseModel) else value
        for key, value in data.items():
            if key in cls.model_fields:
                continue
            group = _GROUP_OF.get(key)
            if group is None:
                raise ValueError(f"unknown batch setting {key!r}")
            out[group] = {**out.get(group, {}), key: value}
        return out

    @classmethod
    def from_flat(cls, base: BatchSettings | None = None, **flat: Any) -> BatchSettings:
        """The model from flat names (``comment=…, tags=…, on_warning={…}``), on top of ``base``.

        Every leaf has one name across the groups, so the CLI and the Python API can take them
        as plain keyword arguments. An unknown name raises ``TypeError``."""
        unknown = sorted(k for k in flat if k not in _GROUP_OF and k not in cls.model_fields)
        if unknown:
            raise TypeError(f"unknown batch setting(s): {', '.join(unknown)}")
        return cls.model_validate({**(base or cls()).model_dump(), **flat})

    def options(self, *, min_chunk_size: int = 0) -> IngestOptions:
        """What every file's job shares (:class:`~mwingest.base.options.IngestOptions`)."""
        d, s, safe = self.describing, self.sending, self.safety
        return IngestOptions(
            comment=d.comment, text=d.text or None, tags=tuple(d.tags),
            chunk_size=max(int(s.chunk_size_mb * 1024 * 1024), min_chunk_size),
            policy=self.on_warning.policy(), allow_hosts=tuple(safe.allow_hosts),
            url_mode=s.url_mode, stash_hours=s.stash_hours or None,
            retry=self.retry(), async_assembly=s.async_assembly,
            max_pixels=safe.max_pixels or None)

    def retry(self) -> RetryPolicy:
        """The batch's one retry policy: for opening the wiki and the checks before the upload
        as for every file's steps (the same budget everywhere)."""
        return RetryPolicy(budget_s=self.sending.retry_budget_s)

    def collect(self, sources: Iterable[str]) -> list[IngestItem]:
        """The batch's items from its sources, described as these settings say."""
        d, safe = self.describing, self.safety
        return collect(sources, glob=safe.glob, recursive=safe.recursive,
                       text_template=d.text_template or None, root=safe.manifest_root or None,
                       location=d.location, required=d.required_columns,
                       licence=d.licence or None, require_licence=d.require_licence,
                       default_text=d.text or None, statement_columns=tuple(d.statements),
                       fill=d.fill())

    @property
    def review_wait(self) -> int | None:
        """Seconds to wait for a reviewer, or None: decided by whether a UI can show the form."""
        return None if self.review_timeout_s < 0 else self.review_timeout_s


#: Which group each flat name belongs to (every leaf's name is unique across the groups).
_GROUP_OF = {name: group for group in ("describing", "sending", "safety")
             for name in BatchSettings.model_fields[group].annotation.model_fields}  # type: ignore[union-attr]

#: The defaults, as one shared instance (Prefect keeps a signature's plain default in the schema).
DEFAULT_SETTINGS = BatchSettings()
