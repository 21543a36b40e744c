"""How a command that runs a flow runs it: which Prefect, the login first, the display.

Why apart from the commands: this is the hot path of every ad hoc upload, measured in
``bench/bench_cli.py``. The Prefect API is chosen before Prefect is imported; Prefect and the
flows are imported in a thread while the main thread checks the login (the login the run then
takes over); the process ends right after Prefect's own exit handlers have sent the run's last
logs.
"""

from __future__ import annotations

import contextlib
import os
import sys
from typing import TYPE_CHECKING, Any

import typer

from mwingest.cli.output import JsonLines, exit_code, fail, print_table
from mwingest.runtime.prefectenv import PrefectChoice

if TYPE_CHECKING:
    from mwingest.job.settings import BatchSettings

#: ``-v``: Prefect's INFO lines on the console too (set by the app's callback).
VERBOSE = {"on": False}
#: The exit status :func:`exit_after_prefect` ends the process with; None: a normal exit.
_EXIT_CODE: dict[str, int | None] = {"code": None}
#: Set when the run lost its Prefect API: nothing is left to send it, the command ends at once.
_PREFECT_LOST = {"lost": False}


def use_prefect(*, start: bool = True) -> PrefectChoice:
    """Pick the Prefect API before Prefect is imported. With ``start``, the local server is
    started (and the command says so in one line) when there is none; without, that case is a
    local choice without an ``api_url`` yet."""
    from mwingest.runtime.localserver import LocalServerError
    from mwingest.runtime.prefectenv import choose

    try:
        return choose(lambda line: typer.echo(line, err=True), start=start)
    except (LocalServerError, ValueError) as exc:
        raise fail(str(exc)) from None


def run_flow(sources: list[str], settings: BatchSettings, *, wiki: str | None,
             username: str | None, credentials: str | None, as_json: bool,
             filename: str | None = None) -> None:
    """Run the batch flow over ``sources``; report as JSON lines, a live display or plain lines."""
    if username:
        os.environ["MWINGEST_USERNAME"] = username
    from mwingest.api import IngestSetupError, PrefectLostError, ingest, preflight

    choice = use_prefect(start=False)
    if choice.api_url or choice.kind == "ephemeral":  # Prefect's settings are known: load it now
        import_flows_meanwhile()
    try:
        if not credentials:
            preflight(wiki)  # a wrong URL or password: exit 2 before the run starts
    except IngestSetupError as exc:
        raise fail(str(exc)) from None
    if choice.kind == "local" and choice.api_url is None:
        choice = use_prefect()  # no server yet, and the login works: start one now
    if choice.kind == "local" and choice.api_url:
        from mwingest.runtime.warm import ensure_started

        ensure_started(choice.api_url)  # the next flow command starts warm
    display = _display(sources, settings.safety.glob, settings.describing.text_template or None,
                       as_json)
    stop_on_interrupt()
    try:
        with display if hasattr(display, "__enter__") else contextlib.nullcontext():
            outcomes = ingest(sources, wiki=wiki, credentials_block=credentials,
                              filename=filename, settings=settings, on_outcome=display,
                              on_progress=getattr(display, "progress", None),
                              on_pace=getattr(display, "pace", None), quiet=True,
                              verbose=VERBOSE["on"], check_connection=False)
    except IngestSetupError as exc:
        _PREFECT_LOST["lost"] = isinstance(exc, PrefectLostError)
        raise fail(str(exc)) from None
    display.finish(outcomes)
    if not as_json and sys.stderr.isatty():
        print_table(outcomes)
    raise typer.Exit(exit_code(outcomes))


#: After Ctrl-C, how long a run may take to wind down before the command ends anyway.
INTERRUPT_GRACE_S = 5.0


def stop_on_interrupt() -> None:
    """Ctrl-C stops the command within ``INTERRUPT_GRACE_S``, a second Ctrl-C at once.

    Why not Python's default alone: the KeyboardInterrupt reaches the flow, but the flow's end
    waits for its worker threads, and a file waiting for a reviewer polls the server for as long
    as ``--review-wait`` allows (measured: no exit 40 s after Ctrl-C). The run's heartbeats stop
    with the process, so the server marks what was in flight ``Crashed``; every file keeps its
    ledger row and stash key for the next run."""
    import signal
    import threading

    def hard_exit() -> None:
        sys.stderr.write("mwingest: stopped; a file in flight continues from its stash next time\n")
        sys.stderr.flush()
        os._exit(130)

    def interrupted(_signum: int, _frame: object) -> None:
        if getattr(interrupted, "once", False):
            hard_exit()
        interrupted.once = True  # type: ignore[attr-defined]
        timer = threading.Timer(INTERRUPT_GRACE_S, hard_exit)
        timer.daemon = True
        timer.start()
        raise KeyboardInterrupt

    signal.signal(signal.SIGINT, interrupted)


def _display(sources: list[str], glob: str, text_template: str | None,
             as_json: bool) -> Any:
    """JSON lines, the live display (a terminal) or plain lines (anything else)."""
    if as_json:
        return JsonLines()
    if sys.stderr.isatty():
        from mwingest.cli.progress import LiveProgress, batch_size

        return LiveProgress(*batch_size(sources, glob, text_template))
    from mwingest.cli.progress import PlainLines

    return PlainLines()


def exit_after_prefect() -> None:
    """End the process once Prefect's own exit handlers have run, skipping the interpreter's
    teardown of Prefect's module graph and event-loop threads (~0.3-0.5 s of every flow command,
    measured). Registered before Prefect is imported, so it runs after Prefect's handlers have
    sent the run's last logs and events; files and the ledger are closed by then."""
    code = _EXIT_CODE["code"]
    if code is None:
        return
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    os._exit(code)


def import_flows_meanwhile() -> None:
    """Import Prefect and the flows in a thread while the main thread checks the login: the
    import is a second of CPU, the login mostly waiting for the wiki."""
    import importlib
    import threading

    def load() -> None:
        with contextlib.suppress(Exception):  # the main thread's own import reports any problem
            importlib.import_module("flows.ingest")

    threading.Thread(target=load, name="mwingest-import", daemon=True).start()


#: How long Prefect's exit handlers may take to send the run's last logs and events.
EXIT_DRAIN_S = 15.0


def exit_fast_with(code: int) -> None:
    """Let :func:`exit_after_prefect` end the process with ``code`` (a flow command has ended),
    and end it anyway after :data:`EXIT_DRAIN_S`.

    Why the deadline: Prefect drains its event and log workers at interpreter exit, before
    ``atexit``; with its server gone each queued event waits ~7 s for a websocket that never
    connects, so a run that lost its server never ended (issue 24: measured, still draining
    200 s after the run's last line). A healthy server takes well under a second."""
    import threading

    _EXIT_CODE["code"] = code

    def give_up() -> None:
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(Exception):
                stream.flush()
        os._exit(code)

    if _PREFECT_LOST["lost"]:  # its logs and events have nowhere to go: our line is the last
        give_up()
    timer = threading.Timer(EXIT_DRAIN_S, give_up)
    timer.daemon = True
    timer.start()
