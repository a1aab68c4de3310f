"""The ``pytest-sdxl`` / ``python -m pytest_sdxl`` command line: dispatch to one function per command."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from pytest_sdxl.errors import SdxlError


def variants_command(arguments: argparse.Namespace) -> int:
    """List every variant with its kind, requirements and whether it can run here (and why not)."""
    from pytest_sdxl.variant_listing import variant_table

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
    listing.set_defaults(handler=variants_command)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    arguments = parser.parse_args(argv)
    try:
        status: int = arguments.handler(arguments)
    except SdxlError as error:
        print(f"pytest-sdxl: error: {error}", file=sys.stderr)
        return 2
    return status


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
