"""The ``ab`` command: base and head measured in one job, in alternating fresh processes, judged as ``compare`` does.

Each side is a Python interpreter (a virtual environment's, or its folder) that imports its own
``pytest_sdxl`` and code under test; ``measure.interleave`` runs the processes and stops once every
gated signal is decided. The pooled sides land in ``--report DIR`` as base/results.json and
head/results.json (each process's own files in base/process-NN/ and head/process-NN/), the comparison's
markdown as comparison.md. A gated signal still undecided when the measurement ends (no regression found,
but its interval does not rule out a slowdown of its threshold) is said as such, never as a pass that was
seen. Exit status 1 on a regression or a failed process (and, with ``--fail-undecided``, on an undecided
signal), 0 otherwise, 2 on a usage error, 130 on SIGINT with what finished kept.
"""

from __future__ import annotations

import argparse
import os
import sys
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pytest_sdxl.cli.ab_sides import imported_package, interpreter, quiet_flags_known
from pytest_sdxl.cli.ab_summary import measurement_summary, undecided_lines
from pytest_sdxl.cli.compare import metrics_argument
from pytest_sdxl.cli.compare_review import add_review_options
from pytest_sdxl.cli.options import (
    NOTHING_MEASURED,
    REGRESSED_OR_FAILED,
    USAGE_ERROR,
    add_gate_options,
    add_plugin_options,
    add_settings_options,
    checked_folder,
    checked_output_file,
    positive_count,
    rules_from,
    settings_from,
)
from pytest_sdxl.errors import SettingsError

if TYPE_CHECKING:
    from pytest_sdxl.measure.interleave import Interleaved

# Settings each process gets from ab itself: one run a process, its own report folder, no traces.
NOT_PASSED = ("runs", "report", "trace")


def add_command(commands: Any) -> None:
    from pytest_sdxl.analysis.comparison import DEFAULT_GATE, METRIC_NAMES
    from pytest_sdxl.measure.interleave import DEFAULT_PAIRS, ORDERS

    ab = commands.add_parser(
        "ab", help="Measure base and head in alternating fresh processes on this machine and compare them"
    )
    ab.add_argument("--base-python", required=True, metavar="PATH", help="The base's interpreter or venv folder")
    ab.add_argument("--head-python", required=True, metavar="PATH", help="The head's interpreter or venv folder")
    ab.add_argument(
        "--report", required=True, metavar="DIR", help="Folder for every process's files and the pooled ones"
    )
    ab.add_argument(
        "--pairs",
        type=positive_count,
        default=DEFAULT_PAIRS,
        help="Processes a side at most, in ABBA blocks; the measurement stops earlier once every gated signal "
        "is decided (default: %(default)s)",
    )
    ab.add_argument(
        "--order", choices=ORDERS, default="abba", help="abba, or each block in a random order (default: %(default)s)"
    )
    ab.add_argument("--order-seed", type=int, default=0, help="Seed of --order random (default: %(default)s)")
    ab.add_argument(
        "--cpus",
        type=cpus_argument,
        default="auto",
        help="CPUs both sides' processes are pinned to: auto (those this process may use, less CPU 0 when there "
        "are more than 2), a list like 2-5,7, or off (default: %(default)s)",
    )
    ab.add_argument(
        "--budget-s",
        type=budget_argument,
        default=None,
        metavar="SECONDS",
        help="Start no block that would end past this many seconds of measuring (default: no limit)",
    )
    ab.add_argument(
        "--fail-undecided",
        action="store_true",
        help="Exit 1 also when a gated signal is still undecided at the end: no regression found, but its interval "
        "does not rule out a slowdown of its threshold (default: exit 0 and name it)",
    )
    add_settings_options(ab, leave_out=NOT_PASSED)
    add_gate_options(ab)
    ab.add_argument(
        "--metrics", type=metrics_argument, default=",".join(METRIC_NAMES), help="Signals to compare (default: all)"
    )
    ab.add_argument(
        "--gate",
        type=metrics_argument,
        default=",".join(DEFAULT_GATE),
        help="Signals whose regression fails the comparison (default: %(default)s)",
    )
    add_review_options(ab)
    add_plugin_options(ab)
    ab.set_defaults(handler=ab_command)


def budget_argument(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not value > 0:
        raise argparse.ArgumentTypeError(f"{text!r} is not accepted; give a number of seconds above 0, e.g. 600")
    return value


def cpus_argument(text: str) -> str:
    """Checked when parsed: auto, off, or a list whose CPUs this process may use."""
    choose_cpus(text)
    return text


def parse_cpu_list(text: str) -> frozenset[int]:
    """'2-5,7' -> {2, 3, 4, 5, 7}, as taskset and asv's --cpu-affinity write them."""
    cpus: set[int] = set()
    for part in (item.strip() for item in text.split(",")):
        low, dash, high = part.partition("-")
        if not low.isdigit() or (dash and not high.isdigit()) or (dash and int(high) < int(low)):
            raise argparse.ArgumentTypeError(
                f"--cpus {text!r} is not accepted; give auto, off, or CPU numbers and ranges like 2-5,7"
            )
        cpus.update(range(int(low), int(high if dash else low) + 1))
    return frozenset(cpus)


def choose_cpus(text: str) -> tuple[frozenset[int] | None, str]:
    """The CPUs to pin both sides to (None: not pinned) and a sentence saying which, or why none."""
    if text == "off":
        return None, "not pinned (--cpus off)"
    if not hasattr(os, "sched_setaffinity"):
        if text != "auto":
            raise argparse.ArgumentTypeError(f"--cpus {text!r}: this platform cannot pin a process's CPUs; use off")
        return None, "not pinned: this platform cannot pin a process's CPUs (no sched_setaffinity)"
    allowed = frozenset(os.sched_getaffinity(0))
    if text == "auto":
        chosen = allowed - {0} if len(allowed) > 2 else allowed
        left = ", CPU 0 left to the rest of the machine" if chosen != allowed else " (2 or fewer: none left out)"
        return chosen, f"pinned to CPUs {cpu_list(chosen)}{left}"
    chosen = parse_cpu_list(text)
    if not chosen <= allowed:
        raise argparse.ArgumentTypeError(
            f"--cpus {text!r}: CPUs {cpu_list(chosen - allowed)} are not available here; "
            f"this process may use {cpu_list(allowed)}"
        )
    return chosen, f"pinned to CPUs {cpu_list(chosen)}"


def cpu_list(cpus: frozenset[int]) -> str:
    return ",".join(str(cpu) for cpu in sorted(cpus))


def empty_folder(value: str, flag: str) -> Path:
    """A writable folder holding nothing yet: processes of an earlier measurement must not mix with this one's."""
    folder = checked_folder(value, flag)
    assert folder is not None
    if folder.is_dir() and any(folder.iterdir()):
        raise SettingsError(
            f"{flag} {value!r} is not empty; give a new or empty folder for this measurement's processes"
        )
    return folder


def passed_arguments(arguments: argparse.Namespace) -> tuple[str, ...]:
    """The settings and plugin options the user gave, for every process's ``run``; unset ones stay unset."""
    from pytest_sdxl.options import OPTIONS

    passed: list[str] = []
    for option in OPTIONS:
        value = getattr(arguments, option.name, None)
        if option.name not in NOT_PASSED and value is not None:
            passed += [option.flag, value]
    for conftest in arguments.conftest:
        passed += ["--conftest", str(Path(conftest).resolve())]
    for module in arguments.plugins:
        passed += ["-p", module]
    return tuple(passed)


def ab_command(arguments: argparse.Namespace) -> int:
    from pytest_sdxl.machine.bytecode import bytecode_note
    from pytest_sdxl.measure import interleave
    from pytest_sdxl.measure.interleave import InterleavePlan, Side, measure_interleaved

    report = empty_folder(arguments.report, "--report")
    # Before any process starts: a summary that cannot be written must not wait for the whole measurement.
    checked_output_file(arguments.summary, "--summary")
    settings_from(arguments)  # a typo in a setting is refused here, not in the first of many processes
    pythons, imports, quiet = {}, {}, {}
    for side, flag in (("base", "--base-python"), ("head", "--head-python")):
        python = interpreter(getattr(arguments, flag[2:].replace("-", "_")), flag)
        imports[side] = imported_package(python, flag)
        quiet[side] = quiet_flags_known(python, flag)
        print(f"pytest-sdxl ab: {side}: {python} imports {imports[side]}", file=sys.stderr)
        pythons[side] = python
    if pythons["base"] != pythons["head"] and imports["base"] == imports["head"]:
        # Two environments that find one checkout (a venv that sees another's editable install) compare it with itself.
        print(
            "pytest-sdxl ab: warning: both interpreters import the same pytest_sdxl; if base and head are two "
            "versions, each environment must hold its own copy",
            file=sys.stderr,
        )
    cpus, pinning = choose_cpus(arguments.cpus)
    print(f"pytest-sdxl ab: CPUs: {pinning}", file=sys.stderr)
    if bytecode := bytecode_note():
        print(f"pytest-sdxl ab: {bytecode}", file=sys.stderr)
    plan = InterleavePlan(
        base=Side("base", (pythons["base"], "-m", "pytest_sdxl"), quiet_flags=quiet["base"]),
        head=Side("head", (pythons["head"], "-m", "pytest_sdxl"), quiet_flags=quiet["head"]),
        run_arguments=passed_arguments(arguments),
        folder=report,
        rules=rules_from(arguments, arguments.metrics, arguments.gate),
        pairs=arguments.pairs,
        order=arguments.order,
        seed=arguments.order_seed,
        budget_s=arguments.budget_s,
        cpus=cpus,
    )
    # Looked up here, not bound as a default: the tests put a fake runner in its place.
    outcome = measure_interleaved(plan, runner=interleave.run_process, report=progress)
    return conclude(outcome, arguments, pinning)


def progress(line: str) -> None:
    print(f"pytest-sdxl ab: {line}", file=sys.stderr, flush=True)


def conclude(outcome: Interleaved, arguments: argparse.Namespace, pinning: str) -> int:
    """Files written, the table printed, the exit status chosen."""
    from pytest_sdxl.cli.compare_review import markdown_of, review_of, status_with, unwritten
    from pytest_sdxl.reports.comparison import comparison_table, kernel_diffs
    from pytest_sdxl.results.compatibility import comparison_warnings
    from pytest_sdxl.results.schema import save_results

    folder = outcome.plan.folder
    written = []
    for side in ("base", "head"):
        pooled = getattr(outcome, side)
        if pooled is not None:
            written.append(str(save_results(pooled, folder / side / "results.json")))
    summary = measurement_summary(outcome, pinning)
    if outcome.failure is not None:
        print(f"\npytest-sdxl ab: {outcome.failure.describe()}", file=sys.stderr)
    if outcome.interrupted or outcome.failure is not None or not outcome.comparisons:
        print(f"\n{summary}\nkept: {', '.join(written) or 'nothing (no process finished)'}", file=sys.stderr)
        if outcome.interrupted:
            return outcome.interrupted
        if outcome.failure is None:
            print("pytest-sdxl ab: nothing to compare: neither side measured a variant", file=sys.stderr)
            return NOTHING_MEASURED
        # The process's own usage error or nothing measured says more than a plain failure.
        status = outcome.failure.status
        return status if status in (USAGE_ERROR, NOTHING_MEASURED) else REGRESSED_OR_FAILED
    base, head = outcome.base, outcome.head
    assert base is not None and head is not None
    rules = outcome.plan.rules
    look_alpha = outcome.looks[-1].alpha
    notes = comparison_warnings(("base", base), ("head", head), allow_mismatch=True)
    still_open = outcome.looks[-1].undecided
    left_open = undecided_lines(outcome.comparisons, still_open, (base, head), rules.alpha)
    review = review_of(base, head, arguments)
    markdown = markdown_of(
        base,
        head,
        outcome.comparisons,
        replace(rules, alpha=look_alpha),
        review,
        [*notes, summary, *left_open],
        undecided=still_open,
    )
    comparison = folder / "comparison.md"
    failures = [unwritten(comparison, markdown, "the comparison"), unwritten(arguments.summary, markdown, "--summary")]
    if not failures[0]:
        written.append(str(comparison))
    regressed = sorted({f"{item.variant} {item.metric}" for item in outcome.comparisons if item.regressed})
    if arguments.format == "markdown":
        print(markdown, end="")
    else:
        print(comparison_table(outcome.comparisons))
        diffs = kernel_diffs(base, head, outcome.comparisons)
        if diffs:
            print("\n" + diffs)
        print("\n" + "\n".join([*notes, summary, *left_open, *review.lines()]))
        verdict = f"regressed: {', '.join(regressed)}" if regressed else "no regression"
        if still_open:
            verdict += f"; undecided: {', '.join(still_open)}"
        print(f"\n{verdict} (gate {','.join(rules.gate)}; each look at p < {look_alpha:.3g} after Holm)")
        print(f"written: {', '.join(written)}")
    failed_undecided = arguments.fail_undecided and bool(still_open)
    status = REGRESSED_OR_FAILED if regressed or review.over_budget or failed_undecided else 0
    # The measurement is never lost to a file not written: the pooled sides are on disk, and the verdict printed.
    return status_with(status, failures, kept=f"the measurement is kept: {', '.join(written)}")
