"""What ``run`` keeps: results.json saved after every run through the report folder's writer; the interrupt's line.

``run`` saves its results after every run (``measure.protocol.run_protocol``'s ``on_save``), so SIGINT or
SIGTERM anywhere (Ctrl-C, a CI job's time limit) keeps every run that finished: the files are written once
more, marked ``interrupted`` (a variant stopped between its runs is marked partial itself), and one line says
what was kept and where; the exit status is 130 or 143. A write that fails (a full disk, the folder's lock held
past its wait) stops the run with a line saying what the file still holds (and, for the lock, which file keeps
what could not be written). Every write goes through ``results.store.ReportFolder``: locked, merged with what
other sessions wrote to the folder, atomic. The chart is the one optional file: where drawing it fails, the
others are written all the same and the line says so.
"""

from __future__ import annotations

import contextlib
import dataclasses
import signal
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from pytest_sdxl.errors import ResultsWriteError
from pytest_sdxl.results.records import VariantRecord
from pytest_sdxl.results.schema import ResultSet
from pytest_sdxl.results.sessions import new_session_id

if TYPE_CHECKING:
    from pytest_sdxl.reports.tables import ReportFiles
    from pytest_sdxl.results.store import ReportFolder, ReportFolderLocked
    from pytest_sdxl.settings import Settings
    from pytest_sdxl.variants.registry import Composition


class RunSaving:
    """One ``run``'s saves: empty until ``start`` (the settings known), then after every run and at the end."""

    def __init__(self, chart: bool = True) -> None:
        self.chart = chart  # False: results.png is not drawn (run --no-chart)
        self.session_id = new_session_id()
        self.report: Path | None = None
        self.compositions: list[Composition] = []
        self.folder: ReportFolder | None = None
        # The session's results as last saved (the earlier ones of a resume joined in), or None before any.
        self.so_far: ResultSet | None = None
        self.earlier: ResultSet | None = None
        # What results.json holds from this session, said as its last save left it (the records live on and grow).
        self.held = "nothing of this run was saved before"
        # Why the last save drew no results.png ("" when it did, or was not asked to: --no-chart).
        self.chart_failure = ""

    def start(
        self,
        settings: Settings,
        compositions: Sequence[Composition],
        earlier: ResultSet | None,
        to_measure: Sequence[Composition],
        resumed: bool,
    ) -> None:
        """Announce the session in the report folder: ReportFolderConflict (a usage error) before measuring."""
        from pytest_sdxl.machine.probes import machine_info, resolved_precision
        from pytest_sdxl.results.schema import settings_as_dict
        from pytest_sdxl.results.store import ReportFolder, Writer

        self.report, self.compositions, self.earlier = settings.report, list(compositions), earlier
        if self.report is None:
            return
        writer = Writer(
            command="run --resume" if resumed else "run",
            settings=settings_as_dict(settings) | resolved_precision(settings),
            machine=machine_info(settings.device),
            measures=tuple(composition.id for composition in to_measure),
            carries=tuple(record.variant for record in earlier.variants) if earlier is not None else (),
            session=self.session_id,
        )
        folder = ReportFolder(self.report, writer, replace=not resumed)
        with self.failed_writes_named():
            folder.open()
        self.folder = folder

    def keep(self, measured: ResultSet) -> None:
        """After every run: what this session measured so far, joined to the earlier results, saved marked running."""
        from pytest_sdxl.measure import resume

        self.so_far = with_unmeasured(resume.joined(self.earlier, measured, self.report), self.compositions, "running")
        if self.folder is not None:
            with self.failed_writes_named(self.so_far):
                self.saved(self.folder.save(self.so_far))

    def write(self, result_set: ResultSet) -> ResultSet:
        """Every report file of the set (results.json merged under the folder's lock); returns what was written."""
        from pytest_sdxl.analysis.serving import serving_block
        from pytest_sdxl.reports.tables import write_reports

        if self.folder is None or self.report is None:
            return result_set
        report, chart = self.report, self.chart
        drawn: list[ReportFiles] = []

        def reports(merged: ResultSet) -> None:  # under the folder's lock, so they show what results.json holds
            drawn.append(write_reports(merged, report, include_json=False, include_chart=chart))

        with self.failed_writes_named(result_set):
            written = self.folder.save(result_set, derived=serving_block, then=reports)
        self.chart_failure = drawn[-1].chart_failure if drawn else ""
        self.saved(written)
        return written

    def files_written(self) -> list[str]:
        """The report files the last write left, by name: results.png only where it was asked for and drawn."""
        return ["results.json", "results.md", *(["results.png"] if self.chart and not self.chart_failure else [])]

    def files_said(self) -> str:
        """'(results.json, results.md, results.png)', or without the chart, with why it was not drawn if it failed."""
        said = f"({', '.join(self.files_written())})"
        return f"{said}; results.png not drawn: {self.chart_failure}" if self.chart_failure else said

    def saved(self, written: ResultSet) -> None:
        kept = self.kept_variants(written)
        self.held = f"it holds {kept}" if kept else "it holds no variant yet"

    def kept_variants(self, result_set: ResultSet) -> str:
        """'baseline (3 runs), tiny_vae (1 of 3 runs)': each variant of the set and what of it is kept."""
        asked = self.runs_asked
        return ", ".join(f"{record.variant} ({what_was_kept(record, asked)})" for record in result_set.variants)

    @contextlib.contextmanager
    def failed_writes_named(self, unsaved: ResultSet | None = None) -> Iterator[None]:
        """An OSError while writing (a full disk, a read-only folder) or the folder's lock held past its wait, as
        ResultsWriteError: which file, why, and what it still holds; for the lock, where ``unsaved`` (what could not
        be written) is kept instead. Measuring on would put runs at risk that no file can keep, so ``run`` stops."""
        from pytest_sdxl.results.store import ReportFolderLocked

        try:
            yield
        except ReportFolderLocked as error:
            raise ResultsWriteError(self.locked_out(error, unsaved)) from error
        except OSError as error:
            where = error.filename or self.report
            why = error.strerror or str(error)
            raise ResultsWriteError(
                f"cannot write {where}: {why}; {self.held}. Free the space or make the folder writable, then go on "
                "with --resume"
            ) from error

    def locked_out(self, error: ReportFolderLocked, unsaved: ResultSet | None) -> str:
        """What a save that could not take the folder's lock says: who holds it, what results.json still holds, and
        where what this save would have written is kept."""
        line = f"cannot write {self.report / 'results.json' if self.report else error.folder}: {error.why}; {self.held}"
        if unsaved is None:  # as the folder was opened: nothing measured yet
            return f"{line}. Nothing was measured; run again once the lock is free, or give another --report folder"
        runs = f"This run's results so far, {self.kept_variants(unsaved) or 'no variant yet'},"
        if error.rescue is None:
            return f"{line}. {runs} are lost: {error.kept}"
        return (
            f"{line}. {runs} are kept in {error.rescue} (results.json as this save would have left it): once the "
            "lock is free, move it over results.json, then go on with --resume"
        )

    def interrupted(self) -> str:
        """After SIGINT or SIGTERM: every file of what finished, marked interrupted; returns the line that says what
        was kept."""
        if self.so_far is None:
            return self.nothing_kept()
        result_set = with_unmeasured(self.so_far, self.compositions, "interrupted")
        for record in result_set.variants:
            if record.partial == "running":
                record.partial = "interrupted"
        missing = f"not measured: {', '.join(result_set.not_measured)}; " if result_set.not_measured else ""
        kept = self.kept_variants(result_set)
        if self.folder is None:
            return f"pytest-sdxl run: interrupted; {missing}measured {kept}, nothing written: no --report folder"
        try:
            with stops_ignored():  # a second Ctrl-C (or SIGTERM) must not leave the files of the first half written
                self.write(result_set)
        except ResultsWriteError as error:
            # Still the interrupt's exit status: the stop is what ended the run; the line says what was not written.
            return f"pytest-sdxl run: interrupted; {missing}measured {kept}, but {error}"
        return f"pytest-sdxl run: interrupted; {missing}kept {kept} in {self.report} {self.files_said()}"

    @property
    def runs_asked(self) -> int:
        runs = self.so_far.settings.get("runs") if self.so_far is not None else None
        return int(runs) if isinstance(runs, int) else 0

    def nothing_kept(self) -> str:
        line = "pytest-sdxl run: interrupted before any run finished"
        if self.report is None:
            return line
        results = self.report / "results.json"
        return f"{line}; {results} is as it was" if results.exists() else f"{line}; nothing written to {self.report}"

    def close(self) -> None:
        if self.folder is not None:
            self.folder.close()


def what_was_kept(record: VariantRecord, runs_asked: int) -> str:
    """'1 of 3 runs' for a variant stopped between runs, '3 runs', or 'skipped' / 'failed'."""
    if record.status != "ok":
        return record.status
    runs = len(record.runs)
    if record.partial and runs_asked:
        return f"{runs} of {runs_asked} runs"
    return f"{runs} run" + ("" if runs == 1 else "s")


def with_unmeasured(result_set: ResultSet, compositions: Sequence[Composition], reason: str) -> ResultSet:
    """The result set marked partial (results.PARTIAL_REASONS) when a composition has no record yet, or fewer runs."""
    measured = {record.variant for record in result_set.variants}
    missing = [composition.id for composition in compositions if composition.id not in measured]
    partial = bool(missing) or any(record.partial for record in result_set.variants)
    return dataclasses.replace(result_set, partial=reason if partial else "", not_measured=missing)


def unfinished(earlier: ResultSet | None) -> tuple[ResultSet | None, dict[str, VariantRecord]]:
    """An earlier run's results without the variants it stopped between runs, and those variants (to go on from)."""
    if earlier is None:
        return None, {}
    partial = {record.variant: record for record in earlier.variants if record.partial}
    if not partial:
        return earlier, {}
    kept = [record for record in earlier.variants if not record.partial]
    return dataclasses.replace(earlier, variants=kept), partial


@contextlib.contextmanager
def stops_ignored() -> Iterator[None]:
    """SIGINT and SIGTERM ignored while the block runs, where Python lets this thread set handlers (the main thread)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {signum: signal.signal(signum, signal.SIG_IGN) for signum in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
