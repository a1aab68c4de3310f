"""The ``variants`` command: every variant, what it does, and whether it can run on this machine (and why not)."""

from __future__ import annotations

import argparse
from typing import Any

from pytest_sdxl.cli.options import add_plugin_options


def add_command(commands: Any) -> None:
    listing = commands.add_parser("variants", help="List every variant and whether it can run on this machine")
    listing.add_argument("--device", default="auto", help="Device to check against (default: %(default)s)")
    listing.add_argument("--dtype", default="auto", help="Precision to check against (default: %(default)s)")
    listing.add_argument(
        "--verbose", "-v", action="store_true", help="Under each variant: how it works, what it needs, its conflicts"
    )
    add_plugin_options(listing)
    listing.set_defaults(handler=variants_command)


def variants_command(arguments: argparse.Namespace) -> int:
    """List every variant with its kind, requirements and whether it can run here (and why not)."""
    from pytest_sdxl.reports.variant_listing import variant_table

    print(variant_table(device=arguments.device, dtype=arguments.dtype, verbose=arguments.verbose))
    return 0
