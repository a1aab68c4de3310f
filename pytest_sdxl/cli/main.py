"""The ``pytest-sdxl`` / ``python -m pytest_sdxl`` command line: the parser, ``--version``, and dispatch.

One module per command: ``variants``, ``run``, ``report``, ``merge``, ``compare``, ``ab``, ``power``, ``overhead``,
``tune`` and ``asv`` (``asv init``); ``options`` holds what they share (exit statuses, the settings and
plugin-variant flags, the gate's rules).

Exit status: 0 fine, 1 a regression (compare) or a failed variant (run), 2 a usage error, 3 nothing
measured (run: every variant was skipped, e.g. no CUDA device for ``--device cuda:7`` or
``--variants cpu_offload`` on a CPU), so a CI job never passes without numbers; 130 and 143 a command stopped by
SIGINT or SIGTERM; 141 its output closed by the reader (``| head``).
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from pytest_sdxl import __version__
from pytest_sdxl.cli import ab, asv, compare, merge, overhead, power, report, run, tune, variants
from pytest_sdxl.cli.options import (
    INTERRUPTED,
    NOTHING_MEASURED,
    OUTPUT_CLOSED,
    REGRESSED_OR_FAILED,
    TERMINATED,
    USAGE_ERROR,
    load_plugin_variants,
)
from pytest_sdxl.errors import SdxlError
from pytest_sdxl.machine.interrupts import LATCH, exit_status

# The exit statuses, importable from here as from options.
__all__ = [
    "INTERRUPTED",
    "NOTHING_MEASURED",
    "OUTPUT_CLOSED",
    "REGRESSED_OR_FAILED",
    "TERMINATED",
    "USAGE_ERROR",
    "build_parser",
    "main",
]

# In the order ``--help`` lists them.
COMMANDS = (variants, run, report, merge, compare, ab, power, overhead, tune, asv)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="pytest-sdxl",
        description="SDXL-Turbo optimization variants, measured; the user guide (docs/index.md in the "
        "repository) explains each command",
    )
    parser.add_argument(
        "--version", action="version", version=f"%(prog)s {__version__}", help="Show the version and exit"
    )
    commands = parser.add_subparsers(dest="command", required=True)
    for command in COMMANDS:
        command.add_command(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    arguments = parser.parse_args(argv)
    LATCH.install()
    try:
        if hasattr(arguments, "plugins"):
            # Before any variant name is parsed: --variants may name a plugin's variant.
            load_plugin_variants(arguments)
        status: int = arguments.handler(arguments)
    except SdxlError as error:
        print(f"pytest-sdxl: error: {error}", file=sys.stderr)
        return USAGE_ERROR
    except KeyboardInterrupt as interrupt:
        # `run` says itself what it kept; every other command saves as it goes (tune.json after each
        # candidate, power's files after each trial), so what is on disk is what finished.
        print(f"pytest-sdxl {arguments.command}: interrupted; files written so far are kept", file=sys.stderr)
        return exit_status(interrupt)
    except BrokenPipeError:
        # The reader stopped reading (``| head``): what was wanted was printed. Point stdout at nothing, so the
        # interpreter's last flush does not fail a second time with a traceback.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return OUTPUT_CLOSED
    finally:
        LATCH.uninstall()
    return status


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
