"""The ``--sdxl-report`` files of a pytest session: results.json kept current as it runs, every file at its end.

Nothing measured is lost. results.json is rewritten after every sdxl test, so even a killed session
leaves each variant that had ended (the file says "running" and names the variants not measured
yet). At the session's end every file is written once more; a session stopped before all its
variants ended (SIGINT or pytest.exit: INTERRUPTED, and under xdist a signal reaches the controller
and its workers alike; -x or --maxfail) writes them too, naming the variants it never reached.
Only the process that holds every record writes: the session itself or, under xdist, the
controller, to which the workers hand each variant's record test by test (``workers``). Each file
is written atomically. Standard library and pytest only at import time.
"""

from __future__ import annotations

import contextlib
from typing import Any

import pytest

from pytest_sdxl.plugin.state import SessionState


def stop_reason(session: pytest.Session) -> str:
    """Why the session stopped before its last test (results.schema.PARTIAL_REASONS), or "" when it ran them all."""
    if session.exitstatus == pytest.ExitCode.INTERRUPTED:
        return "interrupted"  # under xdist, -x and --maxfail also end the controller this way
    if session.shouldfail or session.shouldstop:
        return "stopped"
    return ""


def report_machine(state: SessionState) -> dict[str, Any]:
    """The machine the files name, looked up once (imports torch)."""
    if state.report_machine is None:
        from pytest_sdxl.machine.probes import machine_info

        # A worker list such as cuda:0,cuda:1 is no torch device: its first card names the machine.
        state.report_machine = machine_info(state.settings.device.split(",")[0])
    return state.report_machine


def save_progress(state: SessionState) -> None:
    """Rewrite results.json with every variant ended so far: what a killed session leaves behind.

    Only results.json: the markdown and the chart are written at the session's end.
    """
    folder = state.settings.report
    if folder is None or not state.records:
        return
    from pytest_sdxl.analysis.serving import serving_block
    from pytest_sdxl.results.schema import save_results

    # Should this write fail, the session's end writes every file again and says so when it cannot.
    with contextlib.suppress(OSError):
        result_set = state.result_set(report_machine(state), partial="running")
        save_results(result_set, folder / "results.json", derived=serving_block)


def finish_report(state: SessionState, session: pytest.Session) -> None:
    """At the session's end: every --sdxl-report file, partial when the session stopped early.

    Runs before the terminal summary, where a regression check may raise.
    """
    from pytest_sdxl.reports.tables import partial_description, write_reports

    reason = stop_reason(session)
    unreached = state.unreached_variants() if reason else []
    state.partial_line = f"sdxl: partial results: {partial_description(reason, unreached)}" if unreached else ""
    folder = state.settings.report
    if folder is None:
        return
    try:
        written = write_reports(state.result_set(report_machine(state), reason), folder)
        state.report_line = f"sdxl: wrote {', '.join(path.name for path in written.values())} to {folder}"
    except OSError as error:  # the measurements are in the terminal and pytest-benchmark's files anyway
        state.report_line = f"sdxl: could not write the report to {folder}: {error}"
