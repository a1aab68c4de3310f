"""The ``report`` command (a results file's tables, markdown, chart again); the tables ``run`` and ``merge`` print."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from pytest_sdxl.results.schema import ResultSet


def add_command(commands: Any) -> None:
    report = commands.add_parser("report", help="Write the markdown and the chart of a results.json again")
    report.add_argument("results", help="A results.json written by run, or the --report folder holding one")
    report.add_argument("--output", metavar="DIR", help="Folder for results.md and results.png (default: beside it)")
    report.set_defaults(handler=report_command)


def print_tables(result_set: ResultSet) -> None:
    from pytest_sdxl.reports.serving import serving_table
    from pytest_sdxl.reports.tables import protocol_table, summary_table

    print(summary_table(result_set))
    print("\n" + "\n".join(serving_table(result_set)))
    for record in result_set.variants:
        if record.runs:
            print(f"\n{record.variant} ({record.kind})\n{protocol_table(record)}")


def report_command(arguments: argparse.Namespace) -> int:
    """The markdown and the chart of a results file again, next to it unless --output says where."""
    from pytest_sdxl.cli.options import checked_folder
    from pytest_sdxl.errors import ResultsWriteError
    from pytest_sdxl.machine.folders import writable_folder
    from pytest_sdxl.reports.tables import write_reports
    from pytest_sdxl.results.schema import load_results, results_path

    checked_folder(arguments.output, "--output")
    source = results_path(arguments.results)
    folder = Path(arguments.output) if arguments.output else source.parent
    if not arguments.output:
        # Checked before the tables are printed: the folder beside a results file is often another's, or read-only.
        writable_folder(
            folder,
            "report",
            accepted="a folder that can be written to; give --output DIR to write results.md and results.png there",
            what="the results file's folder",
        )
    result_set = load_results(source)
    print_tables(result_set)
    try:
        written = write_reports(result_set, folder, include_json=False)
    except OSError as error:
        where = error.filename or folder
        raise ResultsWriteError(
            f"cannot write {where}: {error.strerror or error}; the results file is left as it was; "
            "give --output DIR to write results.md and results.png elsewhere"
        ) from error
    print("\nwritten: " + ", ".join(str(path) for path in written.values()))
    if written.chart_failure:  # the chart is the one optional file: its absence is said, the command still ends 0
        print(f"pytest-sdxl report: warning: results.png not drawn: {written.chart_failure}", file=sys.stderr)
    return 0
