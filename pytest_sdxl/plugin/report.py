"""The ``--sdxl-report`` files of a pytest session: results.json kept current as it runs, every file at its end.

Nothing measured is lost. results.json is rewritten after every sdxl test, so even a killed session
leaves each variant that had ended (the file says "running" and names the variants not measured
yet). At the session's end every file is written once more; a session stopped before all its
variants ended (SIGINT or pytest.exit: INTERRUPTED, and under xdist a signal reaches the controller
and its workers alike; -x or --maxfail) writes them too, naming the variants it never reached.
Only the process that holds every record writes: the session itself or, under xdist, the
controller, to which the workers hand each variant's record test by test (``workers``). Each file
is written atomically, results.json through ``results.store.ReportFolder``: under the folder's lock and
merged with what other sessions (a ``run``, another pytest session) wrote there, or refused with a
usage error before the first test where the two would spoil each other's results. A variant's runs
are blocks of one benchmark, recorded when it ends: an interrupt keeps every variant whose benchmark
ended. A report that cannot be written at the end (a full disk, the folder's lock held past its wait)
fails the session (``finish_report``); the chart alone is optional. Standard library and pytest only
at import time.
"""

from __future__ import annotations

import contextlib
import dataclasses
import weakref
from typing import TYPE_CHECKING, Any

import pytest

from pytest_sdxl.plugin.state import SessionState

if TYPE_CHECKING:
    from pytest_sdxl.results.schema import ResultSet
    from pytest_sdxl.results.store import ReportFolder

# Each session's writer of its --sdxl-report folder, by id(state), dropped with the state or at the session's end.
WRITERS: dict[int, ReportFolder] = {}


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


def report_writer(state: SessionState, result_set: ResultSet) -> ReportFolder:
    """This session's writer of its report folder, announced there on first use (ReportFolderConflict if refused)."""
    writer = WRITERS.get(id(state))
    if writer is not None:
        return writer
    from pytest_sdxl.results.store import ReportFolder, Writer

    assert state.settings.report is not None
    planned = tuple(state.planned) or tuple(state.records)
    announced = Writer(
        command="pytest",
        settings=result_set.settings,
        machine=result_set.machine,
        measures=planned,
        session=result_set.session_ids[0],
    )
    writer = ReportFolder(state.settings.report, announced)
    writer.open()
    WRITERS[id(state)] = writer
    weakref.finalize(state, forget_writer, id(state))
    return writer


def forget_writer(key: int) -> None:
    writer = WRITERS.pop(key, None)
    if writer is not None:
        writer.close()


def announce(state: SessionState) -> None:
    """Before the first test: this session's writer, refused with a usage error where it clashes with a live one."""
    from pytest_sdxl.results.store import ReportFolderConflict, ReportFolderLocked

    if state.settings.report is None or not state.planned:
        return
    try:
        report_writer(state, state.result_set(report_machine(state)))
    except (ReportFolderConflict, ReportFolderLocked) as error:  # locked: nothing is measured yet, nothing lost
        raise pytest.UsageError(f"pytest-sdxl: {error}") from None


def saved(state: SessionState, result_set: ResultSet, then: Any = None) -> None:
    """results.json written through the session's writer, under the session's one id whatever the set was given."""
    from pytest_sdxl.analysis.serving import serving_block

    writer = report_writer(state, result_set)
    result_set = dataclasses.replace(result_set, session_ids=[writer.writer.session])
    writer.save(result_set, derived=serving_block, then=then)


def save_progress(state: SessionState) -> None:
    """Rewrite results.json with every variant ended so far: what a killed session leaves behind.

    Only results.json: the markdown and the chart are written at the session's end.
    """
    from pytest_sdxl.errors import SdxlError

    folder = state.settings.report
    if folder is None or not state.records:
        return
    # Should this write fail, the session's end writes every file again and says so when it cannot.
    with contextlib.suppress(OSError, SdxlError):
        saved(state, state.result_set(report_machine(state), partial="running"))


def finish_report(state: SessionState, session: pytest.Session) -> bool:
    """At the session's end: every --sdxl-report file, partial when the session stopped early; False where they
    could not be written (the session then fails: ``pytest_sessionfinish``), the line saying why.

    Runs before the terminal summary, where a regression check may raise.
    """
    from pytest_sdxl.errors import SdxlError
    from pytest_sdxl.reports.tables import ReportFiles, partial_description, write_reports

    reason = stop_reason(session)
    unreached = state.unreached_variants() if reason else []
    state.partial_line = f"sdxl: partial results: {partial_description(reason, unreached)}" if unreached else ""
    folder = state.settings.report
    if folder is None:
        return True
    drawn: list[ReportFiles] = []
    try:
        saved(
            state,
            state.result_set(report_machine(state), reason),
            then=lambda merged: drawn.append(write_reports(merged, folder, include_json=False)),
        )
    except (OSError, SdxlError) as error:  # the measurements are in the terminal and pytest-benchmark's files anyway
        state.report_line = f"sdxl: could not write the report to {folder}: {error}"
        return False
    finally:
        forget_writer(id(state))
    failure = drawn[-1].chart_failure if drawn else ""
    # The chart is the one optional file: not drawn, the session still passes, and the line says why.
    if failure:
        state.report_line = f"sdxl: wrote results.json, results.md to {folder}; results.png not drawn: {failure}"
    else:
        state.report_line = f"sdxl: wrote results.json, results.md, results.png to {folder}"
    return True
