"""The ``pytest-sdxl`` / ``python -m pytest_sdxl`` command line: the parser, and dispatch to one function per command.

Each group of commands lives in its own module:
- ``variants`` (here): every variant and whether it can run here;
- ``cli_run``: ``run`` (the notes' protocol, tables in the terminal, files in ``--report``, ``--resume``),
  ``report`` (markdown and chart again) and ``merge`` (lanes of a multi-GPU run as one report);
- ``cli_gate``: ``compare`` (signal by signal, Holm-adjusted, a kernel diff per flagged variant; exit status 1
  when anything regressed), ``power`` (detection and false-alarm rates) and ``overhead`` (the harness's cost);
- ``cli_tune``: ``tune``, a beam search over compositions for the fastest at batch 1 and the most images/s;
- ``cli_options``: what they share (exit statuses, the settings and plugin-variant flags).

Exit status: 0 fine, 1 a regression (compare) or a failed variant (run), 2 a usage error, 3 nothing
measured (run: every variant was skipped, e.g. no CUDA device for ``--device cuda:7`` or
``--variants cpu_offload`` on a CPU), so a CI job never passes without numbers; 130 a run stopped by SIGINT.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from pytest_sdxl.cli.gate import add_gate_commands
from pytest_sdxl.cli.options import (
    INTERRUPTED,
    NOTHING_MEASURED,
    REGRESSED_OR_FAILED,
    USAGE_ERROR,
    add_plugin_options,
    load_plugin_variants,
)
from pytest_sdxl.cli.run import add_run_commands
from pytest_sdxl.cli.tune import add_tune_command
from pytest_sdxl.errors import SdxlError

# The exit statuses, importable from here as from cli_options.
__all__ = ["INTERRUPTED", "NOTHING_MEASURED", "REGRESSED_OR_FAILED", "USAGE_ERROR", "build_parser", "main"]


def variants_command(arguments: argparse.Namespace) -> int:
    """List every variant with its kind, requirements and whether it can run here (and why not)."""
    from pytest_sdxl.reports.variant_listing import variant_table

    print(variant_table(device=arguments.device, dtype=arguments.dtype))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="pytest-sdxl", description="SDXL-Turbo optimization variants, measured (see README.md)"
    )
    commands = parser.add_subparsers(dest="command", required=True)
    listing = commands.add_parser("variants", help="List every variant and whether it can run on this machine")
    listing.add_argument("--device", default="auto", help="Device to check against (default: %(default)s)")
    listing.add_argument("--dtype", default="auto", help="Precision to check against (default: %(default)s)")
    add_plugin_options(listing)
    listing.set_defaults(handler=variants_command)
    add_run_commands(commands)
    add_gate_commands(commands)
    add_tune_command(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    arguments = parser.parse_args(argv)
    try:
        if hasattr(arguments, "plugins"):
            # Before any variant name is parsed: --variants may name a plugin's variant.
            load_plugin_variants(arguments)
        status: int = arguments.handler(arguments)
    except SdxlError as error:
        print(f"pytest-sdxl: error: {error}", file=sys.stderr)
        return USAGE_ERROR
    return status


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
