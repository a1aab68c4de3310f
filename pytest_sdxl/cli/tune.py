"""The ``tune`` command: a beam search over compositions of variants, measured, with its report."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from typing import Any

from pytest_sdxl.cli.options import (
    NOTHING_MEASURED,
    add_plugin_options,
    add_settings_options,
    checked_folder,
    positive_count,
    run_count,
    settings_from,
    threshold_argument,
)
from pytest_sdxl.cli.quality_options import add_quality_budget_options, budget_from

# tune has its own --variants (single names to compose), --runs (per measurement) and --out/--report.
NOT_FOR_TUNE = ("runs", "variants", "report", "trace")


def tune_command(arguments: argparse.Namespace) -> int:
    """The beam search over compositions; the ranked table printed, tune.json/.md/.png written to --out."""
    from pytest_sdxl.machine.compile_cache import activate
    from pytest_sdxl.machine.probes import machine_info, resolved_precision
    from pytest_sdxl.results.schema import settings_as_dict
    from pytest_sdxl.tune.measurement import tune_settings
    from pytest_sdxl.tune.options import parse_candidates
    from pytest_sdxl.tune.report import tune_markdown, write_tune_reports
    from pytest_sdxl.tune.resume import conditions, read_known
    from pytest_sdxl.tune.search import Candidate, TuneOptions, TuneResult

    checked_folder(arguments.report, "--out")  # named as typed; settings check it again as --report
    settings = settings_from(arguments)
    names = parse_candidates(arguments.candidates)
    activate(settings.compile_cache)
    options = TuneOptions(
        beam=arguments.beam,
        budget_s=arguments.budget,
        quality=budget_from(arguments),
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


def add_command(commands: Any) -> None:
    from pytest_sdxl.tune.options import parse_batch_sizes, parse_budget
    from pytest_sdxl.tune.search import (
        DEFAULT_BATCH_SIZES,
        DEFAULT_BEAM,
        DEFAULT_BUDGET,
        DEFAULT_MARGIN,
        DEFAULT_MIN_PSNR_DB,
    )

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
    # A candidate under the budget is rejected: neither chosen nor built upon.
    add_quality_budget_options(tune, min_psnr=DEFAULT_MIN_PSNR_DB)
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
        type=run_count,
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
