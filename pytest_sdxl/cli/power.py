"""The ``power`` command: how often each signal of the gate catches an injected slowdown, and its false alarms.

``--across rounds`` (the default) measures both sides of each trial in this process; ``--across processes``
measures them in fresh processes interleaved as ``ab`` does, the slowdown only in the head's: what CI gets;
there ``--untouched`` measures another variant beside the slowed one in every process, its flags false alarms.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pytest_sdxl.cli.ab import budget_argument, choose_cpus, cpus_argument, passed_arguments
from pytest_sdxl.cli.options import (
    add_gate_options,
    add_plugin_options,
    add_settings_options,
    checked_file,
    positive_count,
    rules_from,
    settings_from,
)
from pytest_sdxl.cli.power_calibration import calibration_from_file, this_card
from pytest_sdxl.cli.power_options import injections_argument, refuse_untouched, trial_count, work_folder
from pytest_sdxl.cli.power_resume import resumed_calibration, resumed_trials
from pytest_sdxl.errors import SettingsError

# The budget's clock; the tests put a fake in its place.
clock = time.monotonic

if TYPE_CHECKING:
    from pytest_sdxl.analysis.comparison import Rules
    from pytest_sdxl.measure.interleave import ProcessRunner
    from pytest_sdxl.measure.power import PowerResult
    from pytest_sdxl.settings import Settings


def add_command(commands: Any) -> None:
    power = commands.add_parser(
        "power", help="Measure how often each signal catches an injected slowdown, and its false alarms"
    )
    add_settings_options(power, leave_out=("variants", "report", "trace"))
    power.add_argument("--variant", default="batch", help="The variant whose path is slowed (default: %(default)s)")
    power.add_argument(
        "--trials",
        type=trial_count,
        default=10,
        help="Trials per injection; across processes with --json, 0 measures the calibration only, for later "
        "--resume commands to size their trials from (default: %(default)s)",
    )
    power.add_argument(
        "--rounds",
        type=positive_count,
        default=None,
        help="Timed rounds a run (default: enough for 10 calls, and 48 samples a side beside a reference)",
    )
    power.add_argument(
        "--inject",
        type=injections_argument,
        default="host:2%,host:5%,host:10%,device:2%,device:5%,device:10%",
        help="Slowdowns to inject, kind:share of one call; host = a sleep per call, device = extra kernels "
        "(default: %(default)s)",
    )
    power.add_argument(
        "--across",
        choices=("rounds", "processes"),
        default="rounds",
        help="Where a trial's sides come from: rounds of one process, or fresh processes interleaved as "
        "pytest-sdxl ab measures a pull request, the slowdown only in the head's (default: %(default)s)",
    )
    power.add_argument(
        "--processes",
        type=positive_count,
        default=None,
        help="Across processes: processes a side each comparison may take, stopping once decided as ab does "
        "(default: ab's --pairs default)",
    )
    power.add_argument(
        "--untouched",
        metavar="VARIANT",
        help="Across processes: a variant measured in every process beside the slowed one, never slowed; its "
        "flags are counted apart, every one a false alarm (default: none)",
    )
    power.add_argument(
        "--cpus",
        type=cpus_argument,
        default="auto",
        help="Across processes: the CPUs every process is pinned to, as ab's --cpus (default: %(default)s)",
    )
    power.add_argument(
        "--work-folder",
        metavar="DIR",
        help="Across processes: keep each process's files here; with --resume, a trial an earlier command over this "
        "folder left unfinished goes on, its finished processes reused (default: a temporary folder, removed at "
        "the end)",
    )
    power.add_argument(
        "--calibration",
        metavar="FILE",
        help="Across processes: size the injections from this earlier run's --json file (same variant, model and "
        "card) instead of a first unchanged process, so trials spread over several commands measure one slowdown "
        "(default: calibrate here)",
    )
    power.add_argument(
        "--resume",
        action="store_true",
        help="Across processes: keep the trials already in --json's file and measure only those --trials still asks "
        "for, sized from its calibration (the same options on the same card; no file yet: start it)",
    )
    power.add_argument(
        "--budget-s",
        type=budget_argument,
        default=None,
        metavar="SECONDS",
        help="Start no trial that would end past this many seconds, at the trials' pace so far; across processes "
        "with --work-folder, no process, at the slowest process's pace, a trial cut between processes going on with "
        "--resume (default: no limit)",
    )
    add_gate_options(power)
    power.add_argument("--output", metavar="FILE", help="Also write the table to this markdown file")
    power.add_argument("--json", metavar="FILE", help="Also write the counts to this JSON file")
    add_plugin_options(power)
    power.set_defaults(handler=power_command)


def power_command(arguments: argparse.Namespace) -> int:
    """Detection and false-alarm rates per signal for injected slowdowns of one variant."""
    from pytest_sdxl.measure.power import POWER_GATE, POWER_SIGNALS, power_report
    from pytest_sdxl.measure.process_reuse import ProcessBudgetSpent

    checked_file(arguments.output, "--output")
    checked_file(arguments.json, "--json")
    if arguments.trials == 0 and (arguments.across != "processes" or not arguments.json):
        raise SettingsError(
            "--trials 0 measures the calibration only, kept for later --resume or --calibration commands: it needs "
            "--across processes and --json FILE; give 1 or more trials otherwise"
        )
    settings = settings_from(arguments)
    rules = rules_from(arguments, POWER_SIGNALS, POWER_GATE)
    earlier = resumed_trials(arguments, settings) if arguments.resume else None
    kept = 0 if earlier is None else earlier.trials
    if earlier is not None:
        progress(
            f"pytest-sdxl power: resuming {arguments.json}: {kept} trial(s) kept, "
            f"{max(arguments.trials - kept, 0)} to measure"
        )

    def with_earlier(result: PowerResult) -> PowerResult:
        from pytest_sdxl.measure.power_results import combined

        return result if earlier is None else combined([earlier, result])

    started = clock()
    saved: list[PowerResult] = []

    def save(result: PowerResult) -> None:
        """The files as they stand, rewritten once calibrated and after every trial: a run stopped midway keeps its
        calibration and finished trials.

        Then, with a budget, no trial starts that would end past it at the trials' pace (``trial_pace``): a trial
        cut short is lost work. With a work folder across processes the budget is kept process by process instead
        (``measure.process_reuse``): a trial cut between processes goes on in the next ``--resume`` command.
        """
        saved[:] = [result]
        save_files(arguments, with_earlier(result))
        if arguments.budget_s is None or kept + result.trials >= arguments.trials or by_process(arguments):
            return
        spent = clock() - started
        pace = trial_pace(result, earlier, spent)
        if pace is not None and spent + pace > arguments.budget_s:
            raise BudgetSpent(result, spent, pace)

    if earlier is not None and kept >= arguments.trials:
        total = earlier  # every trial asked for is in the file already: nothing is measured
    else:
        try:
            total = with_earlier(measured(arguments, settings, rules, save, earlier))
        except BudgetSpent as stop:
            total = with_earlier(stop.result)
            progress(
                f"pytest-sdxl power: stopped after {kept + stop.result.trials} of {arguments.trials} trials: another "
                f"would pass --budget-s {arguments.budget_s:g} ({stop.spent:.0f} s spent, {stop.pace:.0f} s a trial)"
            )
        except ProcessBudgetSpent as stop:
            if not saved:  # the calibration process itself would not fit: nothing was measured
                raise SettingsError(f"--budget-s {arguments.budget_s:g} holds no process: {stop}") from None
            total = with_earlier(saved[0])
            progress(
                f"pytest-sdxl power: stopped after {kept + saved[0].trials} of {arguments.trials} trials, within the "
                f"next: {stop}; its finished processes are kept in {arguments.work_folder}, and the same command with "
                "--resume goes on from them"
            )
    print(power_report(total))
    save_files(arguments, total)
    return 0


def by_process(arguments: argparse.Namespace) -> bool:
    """Whether the budget is kept process by process: across processes, their files kept in a work folder."""
    return arguments.across == "processes" and arguments.work_folder is not None


class BudgetSpent(Exception):
    """Raised after the files are written, when the next trial would end past ``--budget-s``."""

    def __init__(self, result: PowerResult, spent: float, pace: float) -> None:
        super().__init__(f"budget spent after {result.trials} trials")
        self.result, self.spent, self.pace = result, spent, pace


def trial_pace(result: PowerResult, earlier: PowerResult | None, spent: float) -> float | None:
    """Seconds the next trial is expected to take; None where nothing says yet (the first trial then starts).

    Across processes, the mean of every trial timed on this card, the file's (``--resume``) and this command's: a
    resumed command knows its first trial's cost before starting it. Otherwise this command's seconds a trial,
    its calibration counted in, which only makes the pace look slower.
    """
    timed = [*(earlier.trial_seconds if earlier is not None else []), *result.trial_seconds]
    if timed:
        return sum(timed) / len(timed)
    return spent / result.trials if result.trials else None


def measured(
    arguments: argparse.Namespace,
    settings: Settings,
    rules: Rules,
    save: Callable[[PowerResult], None],
    earlier: PowerResult | None = None,
) -> PowerResult:
    """This command's trials in the mode asked for, ``save`` called after each; ``earlier``: those kept (--resume)."""
    from pytest_sdxl.measure.power import measure_power
    from pytest_sdxl.variants.registry import parse

    if arguments.across == "processes":
        return across_processes(arguments, settings, rules, save, earlier)
    else:
        for flag in ("processes", "work_folder", "calibration"):
            if getattr(arguments, flag) is not None:
                raise SettingsError(f"--{flag.replace('_', '-')} applies to --across processes only")
        if arguments.untouched is not None:
            raise SettingsError(
                "--untouched needs --across processes: the untouched variant is measured in the slowed one's "
                "fresh processes, and --across rounds measures one variant in this process"
            )
        return measure_power(
            settings,
            parse(arguments.variant),
            trials=arguments.trials,
            injections=arguments.inject,
            rules=rules,
            report=progress,
            rounds=arguments.rounds,
            on_trial=save,
        )


def save_files(arguments: argparse.Namespace, result: PowerResult) -> None:
    """The table and counts as they stand, to the files asked for."""
    from pytest_sdxl.measure.power import power_report
    from pytest_sdxl.results.schema import encode_float, write_atomically

    if arguments.output:
        write_atomically(arguments.output, power_report(result) + "\n")
    if arguments.json:
        # Strict JSON: a calibration that does not apply (no kernels on a CPU) is written as "nan".
        write_atomically(arguments.json, json.dumps(encode_float(result.as_dict()), indent=2) + "\n")


def progress(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def across_processes(
    arguments: argparse.Namespace,
    settings: Settings,
    rules: Rules,
    save: Callable[[PowerResult], None],
    earlier: PowerResult | None = None,
) -> PowerResult:
    """Trials of fresh processes of this interpreter, each comparison interleaved as ``ab`` does.

    ``earlier``: trials an earlier command measured (``--resume``): this one sizes its injections from their
    calibration and measures only the trials after theirs.
    """
    from pytest_sdxl.machine.bytecode import bytecode_note
    from pytest_sdxl.measure import interleave
    from pytest_sdxl.measure.power import injection_name
    from pytest_sdxl.measure.power_processes import ProcessTrials, measure_power_across_processes
    from pytest_sdxl.measure.process_reuse import recording_and_reusing, within_budget
    from pytest_sdxl.variants.registry import parse

    if arguments.rounds is not None:
        raise SettingsError("--rounds applies to --across rounds only: each process runs the protocol's own rounds")
    slowed = parse(arguments.variant)
    untouched = None if arguments.untouched is None else parse(arguments.untouched)
    if untouched is not None:
        refuse_untouched(arguments.untouched, untouched, slowed)
    here = this_card(settings)
    calibration = None
    if earlier is not None:
        calibration = resumed_calibration(earlier, arguments.json)
    elif arguments.calibration is not None:
        calibration = calibration_from_file(arguments.calibration, settings, slowed, here)
        progress(
            f"pytest-sdxl power: injections sized from {arguments.calibration}: {calibration.wall_ms:.2f} ms wall "
            "a call" + ("" if math.isnan(calibration.kernel_ms) else f", {calibration.kernel_ms:.2f} ms kernel time")
        )
    cpus, pinning = choose_cpus(arguments.cpus)
    beside = "" if untouched is None else f"; untouched beside {slowed.id}: {untouched.id}"
    progress(f"pytest-sdxl power: across processes of {sys.executable}; CPUs: {pinning}{beside}")
    if bytecode := bytecode_note():
        progress(f"pytest-sdxl power: {bytecode}")
    with contextlib.ExitStack() as stack:
        runner: ProcessRunner = interleave.run_process
        if arguments.work_folder is not None:
            # Resumed, the folder may hold an earlier command's processes: those of this experiment are reused.
            experiment: dict[str, object] = {
                "variant": slowed.id,
                "untouched variant": "none" if untouched is None else untouched.id,
                "injection set": sorted(injection_name(kind, level) for kind, level in arguments.inject),
                "processes a side": arguments.processes or interleave.DEFAULT_PAIRS,
                "model": settings.model,
                "card": here,
            }
            folder = work_folder(arguments.work_folder, arguments.resume, experiment)
            if arguments.budget_s is not None:
                # Before this command's first process ends, the calibration process's seconds say what one costs.
                first_pace = calibration.process_s if calibration is not None else math.nan
                # Counted from here: what came before (the options, the --json file read) took milliseconds.
                known = first_pace if math.isfinite(first_pace) else None
                runner = within_budget(runner, arguments.budget_s, clock, clock(), known)
            runner = recording_and_reusing(runner, here)  # outside the budget: a reused process costs nothing
        else:
            folder = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="pytest-sdxl-power-")))
        kept = 0 if earlier is None else earlier.trials
        trials = ProcessTrials(
            sys.executable,
            passed_arguments(arguments),
            folder,
            pairs=arguments.processes or interleave.DEFAULT_PAIRS,
            cpus=cpus,
        )
        return measure_power_across_processes(
            trials,
            settings,
            slowed,
            arguments.trials - kept,
            arguments.inject,
            rules,
            runner=runner,
            report=progress,
            on_trial=save,
            untouched=untouched,
            calibration=calibration,
            card=here,
            first_trial=kept + 1,
            clock=clock,
        )
