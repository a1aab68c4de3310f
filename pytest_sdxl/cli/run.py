"""The ``run`` command: the reference protocol over the chosen variants, tables printed, files written, resumable."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import Any

from pytest_sdxl.cli.options import (
    INTERRUPTED,
    NOTHING_MEASURED,
    REGRESSED_OR_FAILED,
    add_plugin_options,
    add_settings_options,
    settings_from,
)
from pytest_sdxl.cli.report import print_tables
from pytest_sdxl.errors import SettingsError
from pytest_sdxl.results.schema import ResultSet


def add_command(commands: Any) -> None:
    run = commands.add_parser("run", help="Run the reference protocol over the chosen variants and report")
    add_settings_options(run)
    run.add_argument("--quiet", action="store_true", help="No progress display")
    run.add_argument(
        "--resume",
        action="store_true",
        help="Keep the variants already in --report's results.json and measure only the others "
        "(after an interrupted run, or to grow a matrix over several sessions)",
    )
    add_plugin_options(run)
    run.set_defaults(handler=run_command)


def run_command(arguments: argparse.Namespace) -> int:
    """The reference protocol over the chosen variants; tables printed, files written to --report."""
    from pytest_sdxl.machine.compile_cache import activate, summary_line
    from pytest_sdxl.measure import resume
    from pytest_sdxl.measure.progress import ProgressDisplay
    from pytest_sdxl.measure.protocol import run_protocol
    from pytest_sdxl.reports.tables import measuring_summary, write_reports
    from pytest_sdxl.results.schema import save_results
    from pytest_sdxl.variants.registry import all_single_variants

    settings = settings_from(arguments)
    # Before the first compile; a SettingsError (the folder cannot be made) is a usage error in main.
    activate(settings.compile_cache)
    compositions = list(settings.variants or all_single_variants())
    report = settings.report
    earlier = None
    if arguments.resume:
        if report is None:
            raise SettingsError("--resume needs --report DIR: it continues the results.json in that folder")
        earlier = resume.earlier_results(report)
        if earlier is not None:
            resume.check_resumable(earlier, settings, report)
    to_measure = resume.still_to_measure(compositions, earlier)
    if earlier is not None:
        kept = len(compositions) - len(to_measure)
        print(
            f"pytest-sdxl run: resuming {report}: {kept} variant(s) kept, {len(to_measure)} to measure", file=sys.stderr
        )
    display = None if arguments.quiet or not to_measure else ProgressDisplay(len(to_measure))

    so_far: ResultSet | None = earlier

    def keep_what_was_measured(measured: ResultSet) -> None:
        # Saved after each variant: a killed run leaves the variants measured so far readable, marked running.
        nonlocal so_far
        so_far = with_unmeasured(resume.joined(earlier, measured, report), compositions, "running")
        if report is not None:
            save_results(so_far, report / "results.json")

    print(f"pytest-sdxl run: {settings.describe()}", file=sys.stderr)
    try:
        if to_measure:
            measured = run_protocol(settings, to_measure, display, on_variant=keep_what_was_measured)
            combined = resume.joined(earlier, measured, report)
        else:
            # Nothing left to measure happens only on a resume whose earlier results hold every variant.
            assert earlier is not None
            combined = earlier
    except KeyboardInterrupt:
        if so_far is None:
            raise
        # Every file of what was measured, marked interrupted and naming the variants not reached.
        result_set = with_unmeasured(so_far, compositions, "interrupted")
        print(f"\npytest-sdxl run: interrupted; not measured: {', '.join(result_set.not_measured)}", file=sys.stderr)
        if report is not None:
            written = write_reports(result_set, report)
            print("written: " + ", ".join(str(path) for path in written.values()), file=sys.stderr)
        return INTERRUPTED
    result_set = with_unmeasured(combined, compositions, "interrupted")
    print_tables(result_set)
    measuring = measuring_summary(result_set)
    if measuring:
        print("\n" + measuring)
    uses = {record.variant: record.compile_cache for record in result_set.variants if record.compile_cache}
    if uses:
        print("\n" + summary_line(settings.compile_cache, uses))
    if report is not None:
        written = write_reports(result_set, report)
        print("\nwritten: " + ", ".join(str(path) for path in written.values()))
    failed = [record.variant for record in result_set.variants if record.status == "failed"]
    if failed:
        print(f"\nfailed: {', '.join(failed)}", file=sys.stderr)
        return REGRESSED_OR_FAILED
    if not any(record.runs for record in result_set.variants):
        print("\npytest-sdxl: nothing was measured: every variant was skipped", file=sys.stderr)
        for record in result_set.variants:
            print(f"- {record.variant}: {record.reason}", file=sys.stderr)
        return NOTHING_MEASURED
    return 0


def with_unmeasured(result_set: ResultSet, compositions: Sequence[Any], reason: str) -> ResultSet:
    """The result set marked partial (results.PARTIAL_REASONS) when some compositions have no record yet."""
    import dataclasses

    measured = {record.variant for record in result_set.variants}
    missing = [composition.id for composition in compositions if composition.id not in measured]
    return dataclasses.replace(result_set, partial=reason if missing else "", not_measured=missing)
