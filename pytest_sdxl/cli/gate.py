"""The ``compare``, ``power`` and ``overhead`` commands: the gate, its detection power, the harness's cost."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from pytest_sdxl.analysis.comparison import (
    DEFAULT_GATE,
    DEFAULT_KERNEL_THRESHOLD,
    DEFAULT_THRESHOLD,
    METRIC_NAMES,
    Rules,
)
from pytest_sdxl.cli.options import (
    REGRESSED_OR_FAILED,
    add_plugin_options,
    add_settings_options,
    positive_count,
    settings_from,
    threshold_argument,
)

# Options that mean nothing to the overhead command (it times one variant, in one process).
NOT_FOR_OVERHEAD = ("runs", "variants", "report")


def add_gate_commands(commands: Any) -> None:
    compare = commands.add_parser("compare", help="Compare two results files; exit status 1 when anything regressed")
    compare.add_argument("base", help="The reference results.json")
    compare.add_argument("new", help="The results.json to check")
    add_gate_options(compare)
    compare.add_argument(
        "--metrics",
        type=metrics_argument,
        default=",".join(METRIC_NAMES),
        help="Comma-separated signals to compare (default: %(default)s)",
    )
    compare.add_argument(
        "--gate",
        type=metrics_argument,
        default=",".join(DEFAULT_GATE),
        help="Signals whose regression fails the comparison; the others are shown only (default: %(default)s)",
    )
    compare.add_argument("--output", metavar="FILE", help="Also write the table to this markdown file")
    compare.set_defaults(handler=compare_command)

    power = commands.add_parser(
        "power", help="Measure how often each signal catches an injected slowdown, and its false alarms"
    )
    add_settings_options(power, leave_out=("variants", "report", "trace"))
    power.add_argument("--variant", default="batch", help="The variant whose path is slowed (default: %(default)s)")
    power.add_argument("--trials", type=positive_count, default=10, help="Trials per injection (default: %(default)s)")
    power.add_argument(
        "--rounds",
        type=positive_count,
        default=None,
        help="Timed rounds a run (default: enough for 10 calls, and 30 samples a side beside a reference)",
    )
    power.add_argument(
        "--inject",
        type=injections_argument,
        default="host:2%,host:5%,host:10%,device:2%,device:5%,device:10%",
        help="Slowdowns to inject, kind:share of one call; host = a sleep per call, device = extra kernels "
        "(default: %(default)s)",
    )
    add_gate_options(power)
    power.add_argument("--output", metavar="FILE", help="Also write the table to this markdown file")
    power.add_argument("--json", metavar="FILE", help="Also write the counts to this JSON file")
    add_plugin_options(power)
    power.set_defaults(handler=power_command)

    overhead = commands.add_parser("overhead", help="Measure what the harness adds to a raw loop of pipeline calls")
    add_settings_options(overhead, leave_out=NOT_FOR_OVERHEAD)
    overhead.add_argument("--variant", default="baseline", help="The variant to time (default: %(default)s)")
    overhead.add_argument(
        "--rounds", type=positive_count, default=10, help="Rounds of each timing mode (default: %(default)s)"
    )
    overhead.add_argument("--json", metavar="FILE", help="Also write the samples and ratios to this JSON file")
    add_plugin_options(overhead)
    overhead.set_defaults(handler=overhead_command)


def metrics_argument(text: str) -> tuple[str, ...]:
    from pytest_sdxl.analysis.comparison import parse_metrics

    try:
        return parse_metrics(text)
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


def compare_command(arguments: argparse.Namespace) -> int:
    """Ratios new / base per variant and signal, each by its own rule; 1 when anything regressed."""
    from pytest_sdxl.analysis.comparison import compare_results
    from pytest_sdxl.reports.comparison import comparison_table, kernel_diffs
    from pytest_sdxl.results.schema import load_results, write_atomically

    base, new = load_results(arguments.base), load_results(arguments.new)
    rules = rules_from(arguments, arguments.metrics, arguments.gate)
    comparisons = compare_results(base, new, rules)
    text = comparison_table(comparisons)
    diffs = kernel_diffs(base, new, comparisons)
    if diffs:
        text += "\n\n" + diffs
    print(text)
    if arguments.output:
        write_atomically(arguments.output, text + "\n")
    regressed = sorted({f"{item.variant} {item.metric}" for item in comparisons if item.regressed})
    limits = (
        f"gate {','.join(rules.gate)}: wall {rules.threshold * 100:g}% (per-run {rules.wall_statistic}), kernel time "
        f"{rules.kernel_threshold * 100:g}%, kernel launches exact; flagged past half a threshold at Holm-adjusted "
        f"p < {rules.alpha}"
    )
    if regressed:
        print(f"\nregressed ({limits}): {', '.join(regressed)}")
        return REGRESSED_OR_FAILED
    print(f"\nno regression ({limits})")
    return 0


def overhead_command(arguments: argparse.Namespace) -> int:
    """The harness's cost: the protocol's avg gen against a raw loop of the same calls, side by side."""
    from pytest_sdxl.measure.overhead import measure_overhead, overhead_report
    from pytest_sdxl.results.schema import write_atomically
    from pytest_sdxl.variants.registry import parse

    settings = settings_from(arguments)
    result = measure_overhead(settings, parse(arguments.variant), rounds=arguments.rounds)
    print(overhead_report(result))
    if arguments.json:
        write_atomically(arguments.json, json.dumps(result.as_dict(), indent=2) + "\n")
    return 0


def power_command(arguments: argparse.Namespace) -> int:
    """Detection and false-alarm rates per signal for injected slowdowns of one variant."""
    from pytest_sdxl.measure.power import POWER_GATE, POWER_SIGNALS, PowerResult, measure_power, power_report
    from pytest_sdxl.results.schema import encode_float, write_atomically
    from pytest_sdxl.variants.registry import parse

    settings = settings_from(arguments)
    rules = rules_from(arguments, POWER_SIGNALS, POWER_GATE)

    def save(result: PowerResult) -> None:
        """The files as they stand, rewritten after every trial: a run stopped midway keeps its finished trials."""
        if arguments.output:
            write_atomically(arguments.output, power_report(result) + "\n")
        if arguments.json:
            # Strict JSON: a calibration that does not apply (no kernels on a CPU) is written as "nan".
            write_atomically(arguments.json, json.dumps(encode_float(result.as_dict()), indent=2) + "\n")

    result = measure_power(
        settings,
        parse(arguments.variant),
        trials=arguments.trials,
        injections=arguments.inject,
        rules=rules,
        report=lambda line: print(line, file=sys.stderr, flush=True),
        rounds=arguments.rounds,
        on_trial=save,
    )
    print(power_report(result))
    save(result)
    return 0


def injections_argument(text: str) -> tuple[tuple[str, float], ...]:
    """'host:5%,device:2%' -> (('host', 0.05), ('device', 0.02)); the error says what is accepted."""
    from pytest_sdxl.measure.power import KINDS

    chosen = []
    for part in (item.strip() for item in text.split(",") if item.strip()):
        kind, _, level = part.partition(":")
        if kind not in KINDS or not level:
            raise argparse.ArgumentTypeError(
                f"injection {part!r} not accepted; give kind:level, kind {' or '.join(KINDS)}, e.g. host:5%,device:2%"
            )
        chosen.append((kind, threshold_argument(level)))
    if not chosen:
        raise argparse.ArgumentTypeError(f"no injection in {text!r}; e.g. host:5%,device:2%")
    return tuple(chosen)


def add_gate_options(parser: argparse.ArgumentParser) -> None:
    """The rules of a comparison: thresholds per signal, the wall statistic and the significance level."""
    parser.add_argument(
        "--threshold",
        type=threshold_argument,
        default=DEFAULT_THRESHOLD,
        help="Smallest wall-time (and load, memory) slowdown the gate must catch, e.g. 5%% or 0.05; a significant "
        "change past half of it is flagged (default: 5%%)",
    )
    parser.add_argument(
        "--kernel-threshold",
        type=threshold_argument,
        default=DEFAULT_KERNEL_THRESHOLD,
        help="Smallest GPU kernel-time slowdown the gate must catch; flagged past half of it (default: 2%%)",
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
