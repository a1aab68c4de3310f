"""The ``pytest-sdxl`` / ``python -m pytest_sdxl`` command line: dispatch to one function per command.

- ``variants``: every variant and whether it can run here;
- ``run``: the notes' protocol over the chosen variants, tables in the terminal, files in ``--report``;
- ``report``: the markdown and chart of a results.json again;
- ``compare``: two results files signal by signal (kernel launches exact, kernel time, wall time), Holm-adjusted,
  a kernel diff for each flagged variant; exit status 1 when anything regressed;
- ``overhead``: what the harness adds to a raw loop of the same pipeline calls;
- ``power``: detection and false-alarm rates of each signal for injected slowdowns;
- ``tune``: a beam search over compositions of variants for the fastest at batch 1 and the most images/s.

Options of ``run`` and ``overhead`` are the plugin's (settings.OPTIONS) without the ``sdxl-``
prefix; each falls back to its ``PYTEST_SDXL_*`` environment variable, then its default.
Exit status: 0 fine, 1 a regression (compare) or a failed variant (run), 2 a usage error, 3 nothing
measured (run: every variant was skipped, e.g. no CUDA device for ``--device cuda:7`` or
``--variants cpu_offload`` on a CPU), so a CI job never passes without numbers.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

from pytest_sdxl.comparison import DEFAULT_GATE, DEFAULT_KERNEL_THRESHOLD, DEFAULT_THRESHOLD, METRIC_NAMES, Rules
from pytest_sdxl.errors import SdxlError, SettingsError
from pytest_sdxl.results import ResultSet
from pytest_sdxl.settings import OPTIONS, Settings, resolve

# Options that mean nothing to the overhead command (it times one variant, in one process).
NOT_FOR_OVERHEAD = ("runs", "variants", "report")
# tune has its own --variants (single names to compose), --runs (per measurement) and --out/--report.
NOT_FOR_TUNE = ("runs", "variants", "report", "trace")
# Exit statuses beyond 0 (fine): see the module docstring.
REGRESSED_OR_FAILED, USAGE_ERROR, NOTHING_MEASURED = 1, 2, 3
# A run stopped by SIGINT (Ctrl-C, `timeout --signal=INT`): 128 + the signal's number, as shells report it.
INTERRUPTED = 130


def variants_command(arguments: argparse.Namespace) -> int:
    """List every variant with its kind, requirements and whether it can run here (and why not)."""
    from pytest_sdxl.variant_listing import variant_table

    print(variant_table(device=arguments.device, dtype=arguments.dtype))
    return 0


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
    from pytest_sdxl.plugin_variants import load_for_command_line

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


def print_tables(result_set: ResultSet) -> None:
    from pytest_sdxl.reports import notes_table, summary_table
    from pytest_sdxl.serving_report import serving_table

    print(summary_table(result_set))
    print("\n" + "\n".join(serving_table(result_set)))
    for record in result_set.variants:
        if record.runs:
            print(f"\n{record.variant} ({record.kind})\n{notes_table(record)}")


def run_command(arguments: argparse.Namespace) -> int:
    """The notes' protocol over the chosen variants; tables printed, files written to --report."""
    from pytest_sdxl import resume
    from pytest_sdxl.compile_cache import activate, summary_line
    from pytest_sdxl.progress import ProgressDisplay
    from pytest_sdxl.protocol import run_protocol
    from pytest_sdxl.reports import measuring_line, write_reports
    from pytest_sdxl.results import save_results
    from pytest_sdxl.variants import all_single_variants

    settings = settings_from(arguments)
    # Before the first compile; a SettingsError (the folder cannot be made) is a usage error in main.
    activate(settings.compile_cache)
    compositions = list(settings.variants or all_single_variants())
    report = settings.report
    earlier = None
    if arguments.resume:
        if report is None:
            raise SettingsError("--resume needs --report DIR: it continues the results.json in that folder")
        earlier = resume.earlier_results(report)
        if earlier is not None:
            resume.check_resumable(earlier, settings, report)
    to_measure = resume.still_to_measure(compositions, earlier)
    if earlier is not None:
        kept = len(compositions) - len(to_measure)
        print(
            f"pytest-sdxl run: resuming {report}: {kept} variant(s) kept, {len(to_measure)} to measure", file=sys.stderr
        )
    display = None if arguments.quiet or not to_measure else ProgressDisplay(len(to_measure))

    so_far: ResultSet | None = earlier

    def keep_what_was_measured(measured: ResultSet) -> None:
        # Saved after each variant: a killed run leaves the variants measured so far readable, marked running.
        nonlocal so_far
        so_far = with_unmeasured(resume.joined(earlier, measured, report) or measured, compositions, "running")
        if report is not None:
            save_results(so_far, report / "results.json")

    print(f"pytest-sdxl run: {settings.describe()}", file=sys.stderr)
    try:
        measured = (
            run_protocol(settings, to_measure, display, on_variant=keep_what_was_measured) if to_measure else None
        )
    except KeyboardInterrupt:
        if so_far is None:
            raise
        # Every file of what was measured, marked interrupted and naming the variants not reached.
        result_set = with_unmeasured(so_far, compositions, "interrupted")
        print(f"\npytest-sdxl run: interrupted; not measured: {', '.join(result_set.not_measured)}", file=sys.stderr)
        if report is not None:
            written = write_reports(result_set, report)
            print("written: " + ", ".join(str(path) for path in written.values()), file=sys.stderr)
        return INTERRUPTED
    result_set = with_unmeasured(resume.joined(earlier, measured, report) or ResultSet(), compositions, "interrupted")
    print_tables(result_set)
    for line in measuring_line(result_set):
        print("\n" + line.removeprefix("- "))
    uses = {record.variant: record.compile_cache for record in result_set.variants if record.compile_cache}
    if uses:
        print("\n" + summary_line(settings.compile_cache, uses))
    if report is not None:
        written = write_reports(result_set, report)
        print("\nwritten: " + ", ".join(str(path) for path in written.values()))
    failed = [record.variant for record in result_set.variants if record.status == "failed"]
    if failed:
        print(f"\nfailed: {', '.join(failed)}", file=sys.stderr)
        return REGRESSED_OR_FAILED
    if not any(record.runs for record in result_set.variants):
        print("\npytest-sdxl: nothing was measured: every variant was skipped", file=sys.stderr)
        for record in result_set.variants:
            print(f"- {record.variant}: {record.reason}", file=sys.stderr)
        return NOTHING_MEASURED
    return 0


def with_unmeasured(result_set: ResultSet, compositions: Sequence[Any], reason: str) -> ResultSet:
    """The result set marked partial (results.PARTIAL_REASONS) when some compositions have no record yet."""
    import dataclasses

    measured = {record.variant for record in result_set.variants}
    missing = [composition.id for composition in compositions if composition.id not in measured]
    return dataclasses.replace(result_set, partial=reason if missing else "", not_measured=missing)


def report_command(arguments: argparse.Namespace) -> int:
    """The markdown and the chart of a results file again, next to it unless --output says where."""
    from pytest_sdxl.reports import write_reports
    from pytest_sdxl.results import load_results

    source = Path(arguments.results)
    result_set = load_results(source)
    print_tables(result_set)
    folder = Path(arguments.output) if arguments.output else source.parent
    written = write_reports(result_set, folder, include_json=False)
    print("\nwritten: " + ", ".join(str(path) for path in written.values()))
    return 0


def merge_command(arguments: argparse.Namespace) -> int:
    """Results files of one setup as one results.json with its markdown and chart."""
    from pytest_sdxl.reports import write_reports
    from pytest_sdxl.results_merge import merge_files

    merged = merge_files(arguments.results, keep_first=arguments.first)
    for note in merged.notes:
        print(f"pytest-sdxl merge: {note}")
    print_tables(merged.result_set)
    written = write_reports(merged.result_set, Path(arguments.output))
    print("\nwritten: " + ", ".join(str(path) for path in written.values()))
    return 0


def threshold_argument(text: str) -> float:
    from pytest_sdxl.comparison import parse_threshold

    try:
        return parse_threshold(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def metrics_argument(text: str) -> tuple[str, ...]:
    from pytest_sdxl.comparison import parse_metrics

    try:
        return parse_metrics(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def statistic_argument(text: str) -> str:
    from pytest_sdxl.comparison import parse_statistic

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
    from pytest_sdxl.comparison import Rules

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
    from pytest_sdxl.comparison import compare_results
    from pytest_sdxl.comparison_report import comparison_table, kernel_diffs
    from pytest_sdxl.results import load_results, write_atomically

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
    from pytest_sdxl.overhead import measure_overhead, overhead_report
    from pytest_sdxl.results import write_atomically
    from pytest_sdxl.variants import parse

    settings = settings_from(arguments)
    result = measure_overhead(settings, parse(arguments.variant), rounds=arguments.rounds)
    print(overhead_report(result))
    if arguments.json:
        write_atomically(arguments.json, json.dumps(result.as_dict(), indent=2) + "\n")
    return 0


def power_command(arguments: argparse.Namespace) -> int:
    """Detection and false-alarm rates per signal for injected slowdowns of one variant."""
    from pytest_sdxl.power import POWER_GATE, POWER_SIGNALS, PowerResult, measure_power, power_report
    from pytest_sdxl.results import encode_float, write_atomically
    from pytest_sdxl.variants import parse

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
    from pytest_sdxl.power import KINDS

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


def positive_count(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not accepted; give a whole number of at least 1")
    return int(text)


def tune_command(arguments: argparse.Namespace) -> int:
    """The beam search over compositions; the ranked table printed, tune.json/.md/.png written to --out."""
    from pytest_sdxl.compile_cache import activate
    from pytest_sdxl.machine import machine_info, resolved_precision
    from pytest_sdxl.results import settings_as_dict
    from pytest_sdxl.tune import Candidate, TuneOptions, TuneResult
    from pytest_sdxl.tune_measurement import tune_settings
    from pytest_sdxl.tune_options import parse_candidates
    from pytest_sdxl.tune_report import tune_markdown, write_tune_reports
    from pytest_sdxl.tune_resume import conditions, read_known

    settings = settings_from(arguments)
    names = parse_candidates(arguments.candidates)
    activate(settings.compile_cache)
    options = TuneOptions(
        beam=arguments.beam,
        budget_s=arguments.budget,
        min_psnr_db=arguments.min_psnr,
        margin=arguments.margin,
        batch_sizes=arguments.batch_sizes,
    )
    settings_record = settings_as_dict(settings)
    context = {
        "conditions": conditions(settings_record, arguments.runs, arguments.rounds),
        "machine": {**machine_info(), **resolved_precision(settings)},
    }
    known = read_known(arguments.resume, context["conditions"], context["machine"]) if arguments.resume else {}
    size = "auto" if settings.size is None else str(settings.size)
    header = (
        f"pytest-sdxl tune: model={settings.model} device={settings.device} dtype={settings.dtype} size={size} "
        f"steps={settings.steps} prompts={len(settings.prompts)} runs={arguments.runs} "
        f"rounds={arguments.rounds or 'auto'} candidates={','.join(names)}"
    )
    if arguments.resume:
        header += f" resumed={arguments.resume} ({len(known)} measurements to reuse)"
    seen: list[Candidate] = []

    def say(candidate: Candidate) -> None:
        seen.append(candidate)
        if not arguments.quiet:
            figure = f"{candidate.ms_per_image:.2f} ms/image" if candidate.measurement is not None else ""
            source = " (from --resume)" if candidate.resumed else ""
            print(
                f"tune: {candidate.composition} at batch {candidate.batch_size}: {figure}{source} {candidate.status} "
                f"{candidate.reason}".rstrip(),
                file=sys.stderr,
                flush=True,
            )
        if settings.report is not None:
            # Rewritten after every candidate, so that a search stopped midway can be resumed from it.
            partial = TuneResult(options, candidates=list(seen), stop_reason="in progress (or stopped midway)")
            write_tune_reports(partial, settings.report, settings_record, header, chart=False, context=context)

    print(header, file=sys.stderr)
    result = tune_settings(settings, names, options, arguments.runs, arguments.rounds, on_candidate=say, known=known)
    print(tune_markdown(result, header))
    if settings.report is not None:
        written = write_tune_reports(result, settings.report, settings_record, header, context=context)
        print("written: " + ", ".join(str(path) for path in written))
    if result.fastest() is None:
        print(f"\npytest-sdxl: nothing was measured: {result.stop_reason}", file=sys.stderr)
        return NOTHING_MEASURED
    return 0


def tune_argument(parse: Callable[[str], object]) -> Callable[[str], object]:
    """An argparse type from one of tune's parsers: its ValueError becomes argparse's usage error."""

    def parsed(text: str) -> object:
        try:
            return parse(text)
        except ValueError as error:
            raise argparse.ArgumentTypeError(str(error)) from None

    return parsed


def add_tune_command(commands: Any) -> None:
    from pytest_sdxl.tune import (
        DEFAULT_BATCH_SIZES,
        DEFAULT_BEAM,
        DEFAULT_BUDGET,
        DEFAULT_MARGIN,
        DEFAULT_MIN_PSNR_DB,
    )
    from pytest_sdxl.tune_options import parse_batch_sizes, parse_budget, parse_min_psnr

    tune = commands.add_parser(
        "tune", help="Search compositions of variants for the fastest per image and the most images per second"
    )
    add_settings_options(tune, leave_out=NOT_FOR_TUNE)
    tune.add_argument(
        "--variants",
        dest="candidates",
        default="all",
        metavar="LIST",
        help="Comma-separated single variants the search may compose (default: %(default)s)",
    )
    tune.add_argument(
        "--beam", type=positive_count, default=DEFAULT_BEAM, help="Compositions kept each step (default: %(default)s)"
    )
    tune.add_argument(
        "--budget",
        type=tune_argument(parse_budget),
        default=DEFAULT_BUDGET,
        help="Time for the search, after the model is loaded: seconds (90s), minutes (10m) or hours (1h); the "
        "baseline is always measured, and with batch among the candidates the last quarter is the throughput "
        "step's (default: %(default)s)",
    )
    tune.add_argument(
        "--min-psnr",
        type=tune_argument(parse_min_psnr),
        default=DEFAULT_MIN_PSNR_DB,
        metavar="DB",
        help="Image-quality floor against the baseline, in dB; lossy variants on random weights are not held to it "
        "(default: %(default)s)",
    )
    tune.add_argument(
        "--margin",
        type=threshold_argument,
        default=f"{DEFAULT_MARGIN:.0%}",
        help="Noise margin: a composition must beat its parent by more than this to go on (default: %(default)s)",
    )
    tune.add_argument(
        "--batch-sizes",
        type=tune_argument(parse_batch_sizes),
        default=",".join(map(str, DEFAULT_BATCH_SIZES)),
        help="Batch sizes the throughput step measures, prompts repeated to fill a batch (default: %(default)s)",
    )
    tune.add_argument(
        "--runs",
        type=positive_count,
        default=3,
        help="Runs per measurement; the estimate is the median of per-run minima (default: %(default)s)",
    )
    tune.add_argument(
        "--rounds",
        type=positive_count,
        default=None,
        help="Timed rounds a run (default: enough for 10 timed calls)",
    )
    tune.add_argument(
        "--out",
        "--report",
        dest="report",
        default=None,
        metavar="DIR",
        help="Folder to write tune.json, tune.md and tune.png to (environment PYTEST_SDXL_REPORT)",
    )
    tune.add_argument(
        "--resume",
        metavar="TUNE_JSON",
        default=None,
        help="Reuse the measurements of an earlier call's tune.json (same model, settings, card and software); "
        "--out rewrites tune.json after every candidate, so a stopped search goes on from there",
    )
    tune.add_argument("--quiet", action="store_true", help="No progress lines")
    add_plugin_options(tune)
    tune.set_defaults(handler=tune_command)


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

    run = commands.add_parser("run", help="Run the notes' protocol over the chosen variants and report")
    add_settings_options(run)
    run.add_argument("--quiet", action="store_true", help="No progress display")
    run.add_argument(
        "--resume",
        action="store_true",
        help="Keep the variants already in --report's results.json and measure only the others "
        "(after an interrupted run, or to grow a matrix over several sessions)",
    )
    add_plugin_options(run)
    run.set_defaults(handler=run_command)

    report = commands.add_parser("report", help="Write the markdown and the chart of a results.json again")
    report.add_argument("results", help="A results.json written by run")
    report.add_argument("--output", metavar="DIR", help="Folder for results.md and results.png (default: beside it)")
    report.set_defaults(handler=report_command)

    merge = commands.add_parser(
        "merge", help="Join results files of one setup (the lanes of a multi-GPU run) into one results.json and report"
    )
    merge.add_argument("results", nargs="+", help="results.json files written by run, two or more")
    merge.add_argument("--output", metavar="DIR", required=True, help="Folder for the joined results.json, .md, .png")
    merge.add_argument(
        "--first", action="store_true", help="Keep the first file's record of a variant measured in several files"
    )
    merge.set_defaults(handler=merge_command)

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
