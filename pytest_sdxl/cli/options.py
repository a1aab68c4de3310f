"""What the ``pytest-sdxl`` commands share: exit statuses, settings flags, plugin-variant flags, the gate's rules.

Options of ``run``, ``power``, ``overhead`` and ``tune`` are the plugin's (``pytest_sdxl.options.OPTIONS``)
without the ``sdxl-`` prefix; each falls back to its ``PYTEST_SDXL_*`` environment variable, then its default.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Iterable
from pathlib import Path

from pytest_sdxl.analysis.comparison import DEFAULT_KERNEL_THRESHOLD, DEFAULT_THRESHOLD, Rules
from pytest_sdxl.machine import interrupts as machine_interrupts
from pytest_sdxl.options import OPTIONS, RUNS_RANGE
from pytest_sdxl.settings import Settings, resolve

# Exit statuses beyond 0 (fine): 1 a regression (compare) or a failed variant (run), 2 a usage error,
# 3 nothing measured (every variant skipped), so a CI job never passes without numbers.
REGRESSED_OR_FAILED, USAGE_ERROR, NOTHING_MEASURED = 1, 2, 3
# A command stopped by SIGINT (130) or SIGTERM (143): 128 + the signal's number, as shells report it.
INTERRUPTED, TERMINATED = machine_interrupts.INTERRUPTED, machine_interrupts.TERMINATED
# Output cut short by its reader (``pytest-sdxl variants | head``): 128 + SIGPIPE, as shells report it.
OUTPUT_CLOSED = 141


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


# Settings of a session that measures a matrix of variants (``run``) and of no other command: a session budget
# shares one deadline among the variants, which power, overhead and tune (one variant, or budgets of their own)
# and ab (base and head processes, within --budget-s) do not have.
SESSION_ONLY = ("session_budget",)


def add_settings_options(parser: argparse.ArgumentParser, leave_out: Iterable[str] = (), session: bool = False) -> None:
    """The plugin's options as ``--name`` flags; unset ones are left to the environment and defaults.

    ``session``: with the options of a whole measuring session (``SESSION_ONLY``), for ``run``.
    """
    for option in OPTIONS:
        if option.name in leave_out or (option.name in SESSION_ONLY and not session):
            continue
        # An option whose help says its default in words keeps those words; the rest get the table's value.
        default = "" if "(default" in option.help else f"default: {option.default or 'none'}; "
        parser.add_argument(
            option.flag,
            dest=option.name,
            default=None,
            metavar=option.metavar,
            help=f"{option.help} ({default}environment {option.environment_variable})",
        )


def settings_from(arguments: argparse.Namespace) -> Settings:
    command_line = {option.name: getattr(arguments, option.name, None) for option in OPTIONS}
    return resolve(command_line, os.environ, {}, ini_name="no ini file", flag_style="cli")


def positive_count(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not accepted; give a whole number of at least 1")
    return int(text)


def run_count(text: str) -> int:
    """A number of runs within the settings' range (as ``run --runs``), for commands with their own --runs."""
    low, high = RUNS_RANGE
    if not text.isdigit() or not low <= int(text) <= high:
        raise argparse.ArgumentTypeError(f"{text!r} is not accepted; accepted: a whole number from {low} to {high}")
    return int(text)


def checked_folder(value: str | None, flag: str) -> Path | None:
    """An output folder a command's own option names, checked before anything is read or measured."""
    from pytest_sdxl.machine.folders import writable_folder

    return None if value is None else writable_folder(value, f"command line {flag}")


def checked_file(value: str | None, flag: str) -> Path | None:
    """An output file a command's own option names, checked before anything is read or measured."""
    from pytest_sdxl.machine.folders import writable_file

    return None if value is None else writable_file(value, f"command line {flag}")


def checked_output_file(value: str | None, flag: str) -> Path | None:
    """A file a command's own option names for ``write_atomically`` (compare's --output, --summary), checked before
    anything is read or measured; a stream (/dev/stdout, a FIFO, a device) as it is, since it is written in place.
    """
    from pytest_sdxl.machine.folders import FILE_ACCEPTED, writable_file
    from pytest_sdxl.results.schema import written_in_place

    if value is None:
        return None
    if written_in_place(Path(value).expanduser()):
        return Path(value).expanduser()
    return writable_file(value, f"command line {flag}", accepted=f"{FILE_ACCEPTED}, or a stream such as /dev/stdout")


def threshold_argument(text: str) -> float:
    from pytest_sdxl.analysis.comparison import parse_threshold

    try:
        return parse_threshold(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def statistic_argument(text: str) -> str:
    from pytest_sdxl.analysis.comparison import parse_statistic

    try:
        return parse_statistic(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def alpha_argument(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0 < value < 1:
        raise argparse.ArgumentTypeError(f"alpha {text!r} is not accepted; give a significance level like 0.05")
    return value


def rules_from(arguments: argparse.Namespace, metrics: tuple[str, ...], gate: tuple[str, ...]) -> Rules:
    """The rules of a comparison from the options ``add_gate_options`` added."""
    return Rules(
        threshold=arguments.threshold,
        kernel_threshold=arguments.kernel_threshold,
        alpha=arguments.alpha,
        wall_statistic=arguments.wall_statistic,
        metrics=metrics,
        gate=gate,
    )


def add_gate_options(parser: argparse.ArgumentParser) -> None:
    """The rules of a comparison: thresholds per signal, the wall statistic and the significance level."""
    parser.add_argument(
        "--threshold",
        type=threshold_argument,
        default=DEFAULT_THRESHOLD,
        help="Smallest wall-time (and load, memory) slowdown the gate must catch, e.g. 5%% or 0.05; a significant "
        f"change past half of it is flagged (default: {DEFAULT_THRESHOLD * 100:g}%%)",
    )
    parser.add_argument(
        "--kernel-threshold",
        type=threshold_argument,
        default=DEFAULT_KERNEL_THRESHOLD,
        help="Smallest GPU kernel-time slowdown the gate must catch; flagged past half of it "
        f"(default: {DEFAULT_KERNEL_THRESHOLD * 100:g}%%)",
    )
    parser.add_argument(
        "--wall-statistic",
        type=statistic_argument,
        default="min",
        help="Per-run statistic of wall time compared across runs: min, q10, q25, median, mean (default: %(default)s)",
    )
    parser.add_argument(
        "--alpha", type=alpha_argument, default=0.05, help="Significance level, after Holm (default: %(default)s)"
    )
