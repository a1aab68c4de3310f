"""The ``run``, ``report`` and ``merge`` commands: the notes' protocol measured, reported again, joined."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pytest_sdxl.cli.options import (
    INTERRUPTED,
    NOTHING_MEASURED,
    REGRESSED_OR_FAILED,
    add_plugin_options,
    add_settings_options,
    settings_from,
)
from pytest_sdxl.errors import SettingsError
from pytest_sdxl.results.schema import ResultSet


def add_run_commands(commands: Any) -> None:
    run = commands.add_parser("run", help="Run the notes' protocol over the chosen variants and report")
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

    report = commands.add_parser("report", help="Write the markdown and the chart of a results.json again")
    report.add_argument("results", help="A results.json written by run")
    report.add_argument("--output", metavar="DIR", help="Folder for results.md and results.png (default: beside it)")
    report.set_defaults(handler=report_command)

    merge = commands.add_parser(
        "merge", help="Join results files of one setup (the lanes of a multi-GPU run) into one results.json and report"
    )
    merge.add_argument("results", nargs="+", help="results.json files written by run, two or more")
    merge.add_argument("--output", metavar="DIR", required=True, help="Folder for the joined results.json, .md, .png")
    joining = merge.add_mutually_exclusive_group()
    joining.add_argument(
        "--first", action="store_true", help="Keep the first file's record of a variant measured in several files"
    )
    joining.add_argument(
        "--pool-runs",
        action="store_true",
        help="The files are sessions of the same variants: keep every session's runs of each variant (renumbered)",
    )
    merge.set_defaults(handler=merge_command)


def print_tables(result_set: ResultSet) -> None:
    from pytest_sdxl.reports.serving import serving_table
    from pytest_sdxl.reports.tables import notes_table, summary_table

    print(summary_table(result_set))
    print("\n" + "\n".join(serving_table(result_set)))
    for record in result_set.variants:
        if record.runs:
            print(f"\n{record.variant} ({record.kind})\n{notes_table(record)}")


def run_command(arguments: argparse.Namespace) -> int:
    """The notes' protocol over the chosen variants; tables printed, files written to --report."""
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


def report_command(arguments: argparse.Namespace) -> int:
    """The markdown and the chart of a results file again, next to it unless --output says where."""
    from pytest_sdxl.reports.tables import write_reports
    from pytest_sdxl.results.schema import load_results

    source = Path(arguments.results)
    result_set = load_results(source)
    print_tables(result_set)
    folder = Path(arguments.output) if arguments.output else source.parent
    written = write_reports(result_set, folder, include_json=False)
    print("\nwritten: " + ", ".join(str(path) for path in written.values()))
    return 0


def merge_command(arguments: argparse.Namespace) -> int:
    """Results files of one setup as one results.json with its markdown and chart."""
    from pytest_sdxl.reports.tables import write_reports
    from pytest_sdxl.results.merge import merge_files

    merged = merge_files(arguments.results, keep_first=arguments.first, pool_runs=arguments.pool_runs)
    for note in merged.notes:
        print(f"pytest-sdxl merge: {note}")
    print_tables(merged.result_set)
    written = write_reports(merged.result_set, Path(arguments.output))
    print("\nwritten: " + ", ".join(str(path) for path in written.values()))
    return 0
