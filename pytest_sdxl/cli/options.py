"""What every ``pytest-sdxl`` command shares: exit statuses, the settings flags, the plugin-variant flags.

Options of ``run``, ``power``, ``overhead`` and ``tune`` are the plugin's (settings.OPTIONS) without the
``sdxl-`` prefix; each falls back to its ``PYTEST_SDXL_*`` environment variable, then its default.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Iterable

from pytest_sdxl.settings import OPTIONS, Settings, resolve

# Exit statuses beyond 0 (fine): 1 a regression (compare) or a failed variant (run), 2 a usage error,
# 3 nothing measured (every variant skipped), so a CI job never passes without numbers.
REGRESSED_OR_FAILED, USAGE_ERROR, NOTHING_MEASURED = 1, 2, 3
# A run stopped by SIGINT (Ctrl-C, `timeout --signal=INT`): 128 + the signal's number, as shells report it.
INTERRUPTED = 130


def add_plugin_options(parser: argparse.ArgumentParser) -> None:
    """Where variants from the pytest_sdxl_variants hook come from (installed pytest11 plugins are always loaded)."""
    parser.add_argument(
        "--conftest",
        action="append",
        default=[],
        metavar="PATH",
        help="A conftest.py (or its folder) whose pytest_sdxl_variants hook adds variants; repeatable",
    )
    parser.add_argument(
        "-p",
        dest="plugins",
        action="append",
        default=[],
        metavar="MODULE",
        help="A plugin module whose pytest_sdxl_variants hook adds variants, as pytest's -p; repeatable",
    )


def load_plugin_variants(arguments: argparse.Namespace) -> None:
    from pytest_sdxl.plugin.hook_variants import load_for_command_line

    load_for_command_line(conftests=arguments.conftest, modules=arguments.plugins)


def add_settings_options(parser: argparse.ArgumentParser, leave_out: Iterable[str] = ()) -> None:
    """The plugin's options as ``--name`` flags; unset ones are left to the environment and defaults."""
    for option in OPTIONS:
        if option.name in leave_out:
            continue
        default = option.default or "none"
        parser.add_argument(
            option.flag,
            dest=option.name,
            default=None,
            metavar=option.metavar,
            help=f"{option.help} (default: {default}; environment {option.environment_variable})",
        )


def settings_from(arguments: argparse.Namespace) -> Settings:
    command_line = {option.name: getattr(arguments, option.name, None) for option in OPTIONS}
    return resolve(command_line, os.environ, {}, ini_name="no ini file", flag_style="cli")


def positive_count(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not accepted; give a whole number of at least 1")
    return int(text)


def threshold_argument(text: str) -> float:
    from pytest_sdxl.analysis.comparison import parse_threshold

    try:
        return parse_threshold(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None
