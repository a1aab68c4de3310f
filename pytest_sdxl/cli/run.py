"""The ``run`` command: the reference protocol over the chosen variants, tables printed, files written, resumable."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from pytest_sdxl.cli.options import (
    NOTHING_MEASURED,
    REGRESSED_OR_FAILED,
    add_plugin_options,
    add_settings_options,
    settings_from,
)
from pytest_sdxl.cli.report import print_tables
from pytest_sdxl.cli.run_saving import RunSaving, unfinished, with_unmeasured
from pytest_sdxl.errors import ResultsWriteError, SettingsError
from pytest_sdxl.machine.interrupts import exit_status


def add_command(commands: Any) -> None:
    run = commands.add_parser(
        "run", help="Measure the chosen variants (1 + 4 prompts, runs of a fresh load) under a profile, and report"
    )
    add_settings_options(run, session=True)
    run.add_argument("--quiet", action="store_true", help="No progress display")
    run.add_argument(
        "--no-chart",
        action="store_true",
        help="Write no results.png to --report (results.json and results.md only): the chart costs a process "
        "matplotlib's import and a drawing, spent for nothing where only results.json is read, as in the "
        "processes of ab and power",
    )
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
    saving = RunSaving(chart=not arguments.no_chart)
    try:
        return measure_and_report(arguments, saving)
    except ResultsWriteError as error:
        # Not a usage error: the measurement was sound and what was saved stays; the job fails saying so.
        print(f"\npytest-sdxl run: {error}", file=sys.stderr)
        return REGRESSED_OR_FAILED
    except KeyboardInterrupt as interrupt:
        # SIGINT or SIGTERM anywhere: every run that finished is written, marked interrupted; one line says what
        # and where.
        print(f"\n{saving.interrupted()}", file=sys.stderr)
        return exit_status(interrupt)
    finally:
        saving.close()


def measure_and_report(arguments: argparse.Namespace, saving: RunSaving) -> int:
    from pytest_sdxl.machine.compile_cache import activate, summary_line
    from pytest_sdxl.machine.devices import device_type
    from pytest_sdxl.measure import resume
    from pytest_sdxl.measure.progress import ProgressDisplay
    from pytest_sdxl.measure.protocol import run_protocol
    from pytest_sdxl.reports.tables import SESSION_BUDGET_KEYS, measuring_summary, session_budget_summary

    settings = settings_from(arguments)
    # Before the first compile; a SettingsError (the folder cannot be made) is a usage error in main.
    activate(settings.compile_cache)
    compositions, left_out = settings.default_variants(device_type(settings.device))
    report = settings.report
    earlier = None
    if arguments.resume:
        if report is None:
            raise SettingsError("--resume needs --report DIR: it continues the results.json in that folder")
        earlier = resume.earlier_results(report)
        if earlier is not None:
            resume.check_resumable(earlier, settings, report)
    # A variant stopped between its runs is measured on from its next run.
    earlier, carried = unfinished(earlier)
    to_measure = resume.still_to_measure(compositions, earlier)
    if earlier is not None:
        kept = len(compositions) - len(to_measure)
        print(
            f"pytest-sdxl run: resuming {report}: {kept} variant(s) kept, {len(to_measure)} to measure", file=sys.stderr
        )
    display = None if arguments.quiet or not to_measure else ProgressDisplay(len(to_measure))
    # Refused here, before measuring, where another session writing the folder would spoil this one's results.
    saving.start(settings, compositions, earlier, to_measure, resumed=arguments.resume)
    print(f"pytest-sdxl run: {settings.describe()}", file=sys.stderr)
    if left_out:
        from pytest_sdxl.variants.registry import left_out_on_cpu

        print(
            f"pytest-sdxl run: left out on this cpu: {left_out_on_cpu(left_out)}; --variants all, or their names, "
            "times them",
            file=sys.stderr,
        )
    if to_measure:
        # Saved after every run: a stopped or killed run leaves every run it finished readable.
        measured = run_protocol(
            settings, to_measure, display, on_save=saving.keep, carried=carried, session_id=saving.session_id
        )
        combined = resume.joined(earlier, measured, report)
        if combined is not measured:
            # The joined settings are the earlier run's; a session budget and its deadline are this command's.
            this_session = {key: measured.settings[key] for key in SESSION_BUDGET_KEYS if key in measured.settings}
            for key in SESSION_BUDGET_KEYS:
                combined.settings.pop(key, None)
            combined.settings.update(this_session)
    else:
        # Nothing left to measure happens only on a resume whose earlier results hold every variant.
        assert earlier is not None
        combined = earlier
    result_set = with_unmeasured(combined, compositions, "interrupted")
    print_tables(result_set)
    starts = [run.process_start_s for record in result_set.variants for run in record.runs]
    first_start = next((start for start in starts if start is not None), None)
    if first_start is not None:
        print(f"\nprocess start to first timed round: {first_start:.1f} s")
    measuring = measuring_summary(result_set)
    if measuring:
        print("\n" + measuring)
    session = session_budget_summary(result_set)
    if session:
        print(("" if measuring else "\n") + session)
    uses = {record.variant: record.compile_cache for record in result_set.variants if record.compile_cache}
    if uses:
        print("\n" + summary_line(settings.compile_cache, uses))
    if report is not None:
        saving.write(result_set)
        print("\nwritten: " + ", ".join(str(report / name) for name in saving.files_written()))
        if saving.chart_failure:
            # A warning, not a failure: the chart is the one optional file, and the measurements are all written.
            print(f"pytest-sdxl run: warning: results.png not drawn: {saving.chart_failure}", file=sys.stderr)
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
