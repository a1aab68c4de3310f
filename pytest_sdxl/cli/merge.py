"""The ``merge`` command: results files of one setup (the lanes of a multi-GPU run) as one results.json and report."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from pytest_sdxl.cli.options import checked_folder
from pytest_sdxl.cli.report import print_tables


def add_command(commands: Any) -> None:
    merge = commands.add_parser(
        "merge", help="Join results files of one setup (the lanes of a multi-GPU run) into one results.json and report"
    )
    merge.add_argument(
        "results", nargs="+", help="results.json files written by run (or their --report folders), two or more"
    )
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


def merge_command(arguments: argparse.Namespace) -> int:
    """Results files of one setup as one results.json with its markdown and chart."""
    from pytest_sdxl.reports.tables import write_reports
    from pytest_sdxl.results.merge import merge_files

    checked_folder(arguments.output, "--output")
    merged = merge_files(arguments.results, keep_first=arguments.first, pool_runs=arguments.pool_runs)
    for note in merged.notes:
        print(f"pytest-sdxl merge: {note}")
    print_tables(merged.result_set)
    written = write_reports(merged.result_set, Path(arguments.output))
    print("\nwritten: " + ", ".join(str(path) for path in written.values()))
    if written.chart_failure:  # the chart is the one optional file: its absence is said, the command still ends 0
        print(f"pytest-sdxl merge: warning: results.png not drawn: {written.chart_failure}", file=sys.stderr)
    return 0
