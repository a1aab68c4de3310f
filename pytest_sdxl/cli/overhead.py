"""The ``overhead`` command: what the harness adds to a raw loop of the same pipeline calls, side by side."""

from __future__ import annotations

import argparse
import json
from typing import Any

from pytest_sdxl.cli.options import (
    add_plugin_options,
    add_settings_options,
    checked_file,
    positive_count,
    settings_from,
)

# Options that mean nothing to the overhead command (it times one variant, in one process).
NOT_FOR_OVERHEAD = ("runs", "variants", "report")


def add_command(commands: Any) -> None:
    overhead = commands.add_parser("overhead", help="Measure what the harness adds to a raw loop of pipeline calls")
    add_settings_options(overhead, leave_out=NOT_FOR_OVERHEAD)
    overhead.add_argument("--variant", default="baseline", help="The variant to time (default: %(default)s)")
    overhead.add_argument(
        "--rounds", type=positive_count, default=10, help="Rounds of each timing mode (default: %(default)s)"
    )
    overhead.add_argument("--json", metavar="FILE", help="Also write the samples and ratios to this JSON file")
    add_plugin_options(overhead)
    overhead.set_defaults(handler=overhead_command)


def overhead_command(arguments: argparse.Namespace) -> int:
    """The harness's cost: the protocol's avg gen against a raw loop of the same calls, side by side."""
    from pytest_sdxl.measure.overhead import measure_overhead, overhead_report
    from pytest_sdxl.results.schema import write_atomically
    from pytest_sdxl.variants.registry import parse

    checked_file(arguments.json, "--json")
    settings = settings_from(arguments)
    result = measure_overhead(settings, parse(arguments.variant), rounds=arguments.rounds)
    print(overhead_report(result))
    if arguments.json:
        write_atomically(arguments.json, json.dumps(result.as_dict(), indent=2) + "\n")
    return 0
