"""The ``compare`` command: two results files signal by signal, each by its own rule; exit status 1 on a regression.

Where a side's runs span several processes, the processes are the samples (``analysis.processes``); where
each side is one process, every output says that process-to-process drift was not judged.

Before the verdict it says both sides' GPU state and the head's image quality (``compare_review``); a
variant over the quality budget on real weights fails it like a regression.
"""

from __future__ import annotations

import argparse
from typing import Any

from pytest_sdxl.analysis.comparison import DEFAULT_GATE, METRIC_NAMES
from pytest_sdxl.cli.compare_review import add_review_options
from pytest_sdxl.cli.options import REGRESSED_OR_FAILED, add_gate_options, rules_from


def add_command(commands: Any) -> None:
    compare = commands.add_parser("compare", help="Compare two results files; exit status 1 when anything regressed")
    compare.add_argument("base", help="The reference results.json, or the --report folder holding it")
    compare.add_argument("new", help="The results.json to check, or the --report folder holding it")
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
    compare.add_argument(
        "--output",
        metavar="FILE",
        help="Also write what is printed to this file: the table, or the markdown with --format markdown",
    )
    add_review_options(compare)
    compare.add_argument(
        "--allow-mismatch",
        action="store_true",
        help="Compare results of another model, image size, steps, dtype, prompts, card or software stack, "
        "printing each difference as a warning (without it they are refused, exit status 2)",
    )
    compare.set_defaults(handler=compare_command)


def metrics_argument(text: str) -> tuple[str, ...]:
    from pytest_sdxl.analysis.comparison import parse_metrics

    try:
        return parse_metrics(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def compare_command(arguments: argparse.Namespace) -> int:
    """Ratios new / base per variant and signal, each by its own rule; 1 when anything regressed."""
    from pytest_sdxl.analysis.comparison import ONE_PROCESS_NOTE, compare_results, drift_note
    from pytest_sdxl.cli.compare_review import markdown_of, review_of, status_with, unwritten
    from pytest_sdxl.cli.options import checked_output_file
    from pytest_sdxl.reports.comparison import comparison_table, kernel_diffs
    from pytest_sdxl.results.compatibility import comparison_warnings
    from pytest_sdxl.results.schema import load_results, results_path

    # Both before the results are read: a place that cannot be written must not wait for the verdict to say so.
    checked_output_file(arguments.output, "--output")
    checked_output_file(arguments.summary, "--summary")
    base_path, new_path = str(results_path(arguments.base)), str(results_path(arguments.new))
    base, new = load_results(base_path), load_results(new_path)
    # Refused (NotComparable, exit status 2) unless --allow-mismatch, which prints them above the verdict.
    mismatches = comparison_warnings((base_path, base), (new_path, new), arguments.allow_mismatch)
    rules = rules_from(arguments, arguments.metrics, arguments.gate)
    comparisons = compare_results(base, new, rules)
    review = review_of(base, new, arguments)
    # A comparison of one process a side says so in each output: its verdicts cannot see process-to-process drift.
    drift = drift_note(comparisons)
    markdown = markdown_of(base, new, comparisons, rules, review, notes=[*mismatches, *([drift] if drift else [])])
    text = comparison_table(comparisons)
    diffs = kernel_diffs(base, new, comparisons)
    if diffs:
        text += "\n\n" + diffs
    failures = [unwritten(arguments.summary, markdown, "--summary")]
    if arguments.format == "markdown":
        # The verdict, the GPU state and the quality are in the markdown: stdout holds it alone.
        print(markdown, end="")
        # --output writes what the chosen format prints: here the markdown, the verdict in it.
        failures.append(unwritten(arguments.output, markdown, "--output"))
        status = REGRESSED_OR_FAILED if any(item.regressed for item in comparisons) or review.over_budget else 0
        return status_with(status, failures)
    print(text)
    failures.append(unwritten(arguments.output, text + "\n", "--output"))
    regressed = sorted({f"{item.variant} {item.metric}" for item in comparisons if item.regressed})
    if mismatches:
        print("\n" + "\n".join(mismatches))
    print("\n" + "\n".join(review.lines()))
    limits = (
        f"gate {','.join(rules.gate)}: wall {rules.threshold * 100:g}% (per-run {rules.wall_statistic}), kernel time "
        f"{rules.kernel_threshold * 100:g}%, kernel launches exact; flagged past half a threshold at Holm-adjusted "
        f"p < {rules.alpha}"
    )
    if drift:
        limits += f"; {ONE_PROCESS_NOTE}"
    if regressed:
        print(f"\nregressed ({limits}): {', '.join(regressed)}")
    if review.over_budget:
        print(f"\n{review.verdict()}")
    if regressed or review.over_budget:
        return status_with(REGRESSED_OR_FAILED, failures)
    print(f"\nno regression ({limits})")
    return status_with(0, failures)
