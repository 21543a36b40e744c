"""A human decision on a warned file, through a Prefect pause form.

Why a subflow: when nobody answers before the timeout, Prefect fails the *paused* run, and catching
``FlowPauseTimeout`` inside it does not save it (Prefect 3.9 findings §3). Pausing inside a small
subflow lets the batch flow carry on and end the item ``needs-review`` with its stash key kept.

The form is read by a person in the UI's Resume dialog (run menu ⋮ → Resume): the markdown from
:func:`describe_conflict` on top, then the fields of :class:`ReviewDecision` with their titles
and help texts.
"""

from __future__ import annotations

from typing import Literal

from prefect import flow, get_run_logger
from prefect.flow_runs import pause_flow_run
from prefect.input import RunInput
from pydantic import Field

from flows.heartbeat import heartbeats
from flows.plainparams import plain_parameters
from mwingest.base import markdown as md


class ReviewDecision(RunInput):
    """The form a reviewer fills in the Prefect UI (Resume dialog)."""

    # No default: nothing is preselected, and the UI refuses Resume until a choice is made (a
    # person who presses Resume without reading must not skip the file by accident).
    action: Literal["skip", "publish", "rename"] = Field(
        title="Decision",
        description="skip: leave the wiki as it is · publish: upload anyway, as a new version of "
                    "the existing file · rename: upload under the new name below")
    # A plain string, not ``str | None``: the UI renders an optional string as a str/None switch
    # that a reviewer has to flip before typing. Empty means "let mwingest pick a free name".
    new_filename: str = Field(
        default="", title="New file name",
        description="Used with 'rename', e.g. 'Sunset (2).jpg'. Leave empty to let mwingest pick "
                    "a free name.")
    note: str = Field(default="", title="Note", description="Optional: why (kept in the ledger)")


def describe_conflict(source: str, target: str, warnings: dict, *, sha1: str | None,
                      size: int | None, existing: dict | None, pictures: str = "",
                      structured: str = "") -> str:
    """The markdown shown above the form: what the conflict is, with both files' facts and, when
    the wiki makes thumbnails, both pictures side by side (``pictures``, from
    :func:`mwingest.wiki.pictures.review_pictures`); ``structured``: the captions and statements
    the file brings."""
    # Every name and every word of the wiki's is escaped: a file or a wiki message must not
    # become a link, a picture or HTML in the form (mwingest.base.markdown).
    lines = [f"### {md.code(target)} needs a decision", "",
             f"Uploading **{md.text(source)}** as {md.code('File:' + target)}, the wiki warned: "
             + ", ".join(md.code(code) for code in warnings) + ".", ""]
    lines.append(f"* this file: {size if size is not None else '?'} bytes, "
                 f"SHA-1 {md.code(sha1 or '?')}")
    if existing:
        link = existing.get("descriptionurl") or ""
        lines.append(f"* already on the wiki: [{md.text(existing.get('title', target))}]"
                     f"({md.url(link)}), {md.text(existing.get('size', '?'))} bytes, SHA-1 "
                     f"{md.code(existing.get('sha1', '?'))}, uploaded "
                     f"{md.text(existing.get('timestamp', '?'))} by {md.text(existing.get('user', '?'))}")
    for code, value in warnings.items():
        lines.append(f"* warning {md.code(code)}: {md.text(value)}")
    if structured:
        lines.append(f"* its structured data, written once it lands: {md.text(structured)}")
    if pictures:
        lines += ["", pictures]
    lines += ["", "Choose **skip** (keep the wiki as it is), **publish** (a new version of the "
              "existing file) or **rename** (upload under another name)."]
    return "\n".join(lines)


@flow(name="ask-reviewer", flow_run_name="review · {target}")
def ask_reviewer(target: str, description: str, timeout_s: int = 3600,
                 poll_interval_s: int = 2) -> dict:
    """Pause until a person answers the form; the answer as a dict. Times out by failing."""
    get_run_logger().info("File:%s waits for a decision: open this run's menu (⋮) and choose "
                          "Resume; without an answer within %d s it stays needs-review",
                          target, timeout_s)
    # No initial data besides the description: ``with_initial_data(action=...)`` rebuilds the
    # field from its type alone, and the form then loses the field's title and help text.
    with heartbeats():  # its process killed while it waits: the server marks it Crashed too
        decision = pause_flow_run(
            wait_for_input=ReviewDecision.with_initial_data(description=description),
            timeout=timeout_s, poll_interval=poll_interval_s)
    return decision.model_dump(include={"action", "new_filename", "note"})


plain_parameters(ask_reviewer)
