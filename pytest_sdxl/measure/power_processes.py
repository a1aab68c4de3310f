"""Detection power across fresh processes: what a base/head job (``pytest-sdxl ab``) catches, and its false alarms.

``power``'s default mode measures both sides of a trial inside one process, so the drift between two
processes of the same code is not in its rates. This mode's trial is what CI gets: per comparison, the
interleaved measurement of ``ab`` (``measure.interleave``: ABBA blocks of fresh ``run`` processes, one
run each, looks with alpha split over them, the early stop), base and head both the code under test, with
the injected slowdown applied only in the head's processes (``measure.injection``, through the
environment). The comparisons of a trial share its base processes (``measure.interleave_heads``): each is
judged as its own ``ab`` job would judge it, for a third fewer processes a trial with two injections. The
unchanged comparison of a trial compares two unchanged sides: anything it flags is a false alarm. The
injections are sized from a first unchanged process: a share of its fastest wall time per pipeline call
(host) or of its median kernel time per call (device; the wall time where there are no kernels), or from
an earlier run's calibration on the same card (``power --calibration``: trials over several commands). On a
busy shared host the trials' processes may still run at another speed than that one, so the table's
median ratios say how large the injection turned out.

A trial may span commands: with its processes kept in a work folder, the runner the command line hands in
records each finished process and takes it for run in a later command (``measure.process_reuse``), so a trial
cut between processes by a budget goes on where it stopped, judged as one command would have judged it.

With an untouched variant (``power --untouched``), every process measures it beside the slowed one
(``run --variants SLOWED,UNTOUCHED``), as a pull request's job measures a change among variants it does not
touch. The injection names the slowed variant, so the untouched one's calls are never slowed: its flags,
counted apart, are false alarms in the conditions of the detections (the same processes, drift and Holm
family), what a gate over several variants raises on the variants a change left alone.
"""

from __future__ import annotations

import math
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from pytest_sdxl.analysis.comparison import MetricComparison, Rules
from pytest_sdxl.analysis.stats import median_over_fastest
from pytest_sdxl.errors import SdxlError
from pytest_sdxl.machine.host_state import merge as merge_host_states
from pytest_sdxl.machine.interrupts import stopped_by
from pytest_sdxl.measure.injection import CHILD_ENTRY, VARIABLE, Injection
from pytest_sdxl.measure.interleave import (
    DEFAULT_PAIRS,
    HEAD,
    ProcessOutcome,
    ProcessRequest,
    ProcessRunner,
    Side,
    process_command,
    run_process,
    undecided,
)
from pytest_sdxl.measure.interleave_heads import HeadsPlan, measure_heads_interleaved
from pytest_sdxl.measure.power import PowerResult, injection_name
from pytest_sdxl.results.schema import load_results

if TYPE_CHECKING:
    from pytest_sdxl.settings import Settings
    from pytest_sdxl.variants.registry import Composition


class ProcessFailed(SdxlError):
    """A process of a trial failed: the message names it and ends with its standard error."""


@dataclass(frozen=True)
class ProcessTrials:
    """How the trials' processes start and where they report."""

    python: str
    run_arguments: tuple[str, ...]  # every setting for ``run`` but --variants, which is the slowed variant
    folder: Path
    pairs: int = DEFAULT_PAIRS
    cpus: frozenset[int] | None = None


@dataclass(frozen=True)
class Calibration:
    """What the injections are sized from: one unchanged process's milliseconds per pipeline call of the variant.

    ``kernel_ms`` is NaN where there are no kernels (a CPU). ``source``: the ``power --json`` file it was read
    from (``power --calibration``), "" where this run's own first process measured it.
    """

    wall_ms: float
    kernel_ms: float
    source: str = ""
    # The calibration process's wall seconds, start to exit (NaN where an earlier file's calibration is taken).
    process_s: float = math.nan


def variants_argument(composition: Composition, untouched: Composition | None) -> tuple[str, str]:
    """Every process's ``--variants``: the slowed variant, and the untouched one beside it where there is one."""
    return ("--variants", composition.id if untouched is None else f"{composition.id},{untouched.id}")


def calibrated(
    trials: ProcessTrials,
    settings: Settings,
    composition: Composition,
    runner: ProcessRunner,
    untouched: Composition | None = None,
) -> Calibration:
    """Wall and kernel milliseconds per pipeline call of the variant, from one unchanged process (kernel: NaN)."""
    from pytest_sdxl.measure.calls import call_groups, seeds_for

    side = Side("calibration", (trials.python, "-c", CHILD_ENTRY))
    folder = trials.folder / "calibration"
    command = process_command(side, folder, (*trials.run_arguments, *variants_argument(composition, untouched)))
    outcome = runner(ProcessRequest("calibration", 1, command, {}, trials.cpus, folder))
    if outcome.status != 0:
        raise ProcessFailed(
            f"the calibration process exited with status {outcome.status}: {' '.join(command)}\n"
            f"its standard error ends:\n{outcome.stderr_tail.strip()}"
        )
    record = load_results(folder / "results.json").variant(composition.id)
    if record is None or not record.ok:
        reason = "not in its results" if record is None else f"{record.status}: {record.reason}"
        raise ProcessFailed(f"the calibration process did not measure {composition.id} ({reason})")
    groups = call_groups(composition, list(settings.prompts[1:]), seeds_for(settings)[1:])
    images_per_call = sum(len(prompts) for prompts, _ in groups) / len(groups)
    # The fastest call, not the median: the trials' processes come later, and on a shared host the load of the
    # moment moves a process's median far more than its minimum (host jitter only adds time).
    wall_ms = min(record.samples("gen_s")) * images_per_call * 1000
    kernels = [value for run in record.runs if run.device for value in run.device.kernel_ms]
    kernel_ms = statistics.median(kernels) * images_per_call if kernels else math.nan
    return Calibration(wall_ms, kernel_ms, process_s=outcome.seconds)


def measure_power_across_processes(
    trials: ProcessTrials,
    settings: Settings,
    composition: Composition,
    count: int,
    injections: Sequence[tuple[str, float]],
    rules: Rules,
    runner: ProcessRunner = run_process,
    report: Callable[[str], None] | None = None,
    on_trial: Callable[[PowerResult], None] | None = None,
    untouched: Composition | None = None,
    calibration: Calibration | None = None,
    card: str = "",
    first_trial: int = 1,
    clock: Callable[[], float] = time.monotonic,
) -> PowerResult:
    """``count`` trials, each an unchanged comparison and one per injection, every one interleaved in processes.

    ``untouched``: a variant measured in every process beside the slowed one, never slowed, its flags counted apart.
    ``calibration``: the injections' sizes from an earlier run on this card (trials spread over several commands then
    measure one slowdown), in place of this run's own calibration process. ``card``: where the trials run, recorded.
    ``first_trial``: the number of this run's first trial, where earlier commands measured those before it
    (``power --resume``); the result counts this run's trials only. ``on_trial`` gets the result once calibrated,
    before any trial (so a command cut during its first trial keeps the calibration), then after every trial.
    ``count`` 0 measures the calibration only. ``clock`` times each trial (``PowerResult.trial_seconds``).
    """
    say = report or (lambda line: None)
    reused_s: list[float] = []  # seconds of the processes an earlier command measured, for the trial's seconds
    runner = tallying_reused(reporting_each_process(runner, trials.folder, say), reused_s)
    if calibration is None:
        calibration = calibrated(trials, settings, composition, runner, untouched)
    wall_ms, kernel_ms = calibration.wall_ms, calibration.kernel_ms
    planted: dict[str, Injection] = {}
    for kind, level in injections:
        basis = wall_ms if kind == "host" or math.isnan(kernel_ms) else kernel_ms
        planted[injection_name(kind, level)] = Injection(kind, basis * level, composition.id)
    result = PowerResult(
        composition.id,
        settings.model,
        settings.device,
        0,
        1,
        calibration={"wall_ms_per_call": wall_ms, "kernel_ms_per_call": kernel_ms, "process_s": calibration.process_s},
        detections={name: {} for name in planted},
        across="processes",
        processes=trials.pairs,
        untouched="" if untouched is None else untouched.id,
        untouched_flags={} if untouched is None else {name: {} for name in ["none", *planted]},
        shared_base=True,
        card=card,
        calibration_from=calibration.source,
    )
    plain = (trials.python, "-c", CHILD_ENTRY)
    arguments = (*trials.run_arguments, *variants_argument(composition, untouched))
    last_trial = first_trial + count - 1
    if on_trial is not None:
        on_trial(result)
    for trial in range(first_trial, last_trial + 1):
        trial_started = clock()
        reused_s.clear()
        estimates: dict[str, dict[str, list[float]]] = {}
        untouched_estimates: dict[str, dict[str, list[float]]] = {}
        say(f"trial {trial}/{last_trial}: {', '.join(['none', *planted])}, one base")
        heads = {
            name: Side(HEAD, plain, {} if injection is None else {VARIABLE: injection.spec()})
            for name, injection in [("none", None), *planted.items()]
        }
        folder = trials.folder / f"trial-{trial:02d}"
        plan = HeadsPlan(Side("base", plain), heads, arguments, folder, rules, trials.pairs, trials.cpus)
        outcomes = measure_heads_interleaved(plan, runner)
        for name, outcome in outcomes.items():
            if outcome.interrupted:
                raise stopped_by(outcome.interrupted)
            if outcome.failure is not None:
                raise ProcessFailed(f"trial {trial}, {name}: {outcome.failure.describe()}")
            counts = result.false_alarms if name == "none" else result.detections[name]
            counted(outcome.comparisons, composition.id, rules, counts, estimates.setdefault(name, {}))
            if untouched is not None:
                counted(
                    outcome.comparisons, untouched.id, rules, result.untouched_flags[name],
                    untouched_estimates.setdefault(name, {}),
                )  # fmt: skip
            # What `ab` would have answered where nothing was flagged: the gated signals still open at the last look.
            result.interleaved.append(
                {
                    "trial": trial, "comparison": name, "order": outcome.order, "stop": outcome.stop,
                    "undecided": list(undecided(outcome.comparisons)),
                }
            )  # fmt: skip
        variants = [composition.id] if untouched is None else [composition.id, untouched.id]
        result.process_figures += process_figures(folder, trial, variants)
        result.unchanged_trials += 1
        result.estimates.append(estimates)
        if untouched is not None:
            result.untouched_estimates.append(untouched_estimates)
        result.trials = trial - first_trial + 1
        # A trial taken up from an earlier command's processes counts theirs too: what the whole trial cost.
        result.trial_seconds.append(round(clock() - trial_started + sum(reused_s), 1))
        if on_trial is not None:
            on_trial(result)
    return result


def process_figures(folder: Path, trial: int, variants: Sequence[str]) -> list[dict[str, object]]:
    """Each process of a trial, as its results file holds it: one row per variant it measured.

    A row: ``trial``, ``process`` ("base/process-01", "host-5pct/process-02": the side's folder and the process),
    ``variant``, ``wall_ratio`` (its runs' median), ``fastest_ms`` (its fastest image), ``kernel_ms`` (median kernel
    milliseconds an image; NaN without kernels), ``start_s`` (process start to first timed round; NaN off Linux) and
    ``steadiness``: the median image over the fastest, of the variant's calls and of its reference's ([own,
    reference]; NaN without a reference), near 1 on a quiet host. A stretch of host interference that slows
    every call of a variant moves its fastest call too, which its wall ratio cannot cancel: these say which
    processes ran on a busy host. ``host_waited`` says whether the host took the time: the share of the
    variant's timed calls its timing thread spent waiting for a CPU (NaN where the host gives no run-queue
    wait, ``machine.host_state``). A variant a process did not measure has no row.
    """
    rows: list[dict[str, object]] = []
    for path in sorted(folder.glob("*/process-*/results.json")):
        measured = load_results(path)
        for variant in variants:
            record = measured.variant(variant)
            if record is None or not record.ok:
                continue
            own = record.samples("gen_s")
            kernels = [value for run in record.runs if run.device for value in run.device.kernel_ms]
            starts = [run.process_start_s for run in record.runs if run.process_start_s is not None]
            waited = merge_host_states(run.host_state for run in record.runs if run.host_state).waited_share
            rows.append(
                {
                    "trial": trial,
                    "process": f"{path.parent.parent.name}/{path.parent.name}",
                    "variant": variant,
                    "wall_ratio": statistics.median(run.wall_ratio for run in record.runs),
                    "fastest_ms": min(own) * 1000,
                    "kernel_ms": statistics.median(kernels) if kernels else math.nan,
                    "start_s": starts[0] if starts else math.nan,
                    "steadiness": [
                        median_over_fastest(own),
                        median_over_fastest([value for run in record.runs for value in run.reference_gen_s]),
                    ],
                    "host_waited": math.nan if waited is None else waited,
                }
            )
    return rows


def reporting_each_process(runner: ProcessRunner, folder: Path, say: Callable[[str], None]) -> ProcessRunner:
    """``runner``, with a line said as each process ends: which one, its seconds and its exit status.

    A per-command time limit (a CI job's step, a shared machine's) cuts a long trial where it stands; these lines
    say where its time went.
    """

    def run(request: ProcessRequest) -> ProcessOutcome:
        outcome = runner(request)
        where = request.folder.relative_to(folder)
        if outcome.reused:
            say(f"  {where}: reused, measured by an earlier command in {outcome.seconds:.1f} s")
        else:
            say(f"  {where}: {outcome.seconds:.1f} s, exit status {outcome.status}")
        return outcome

    return run


def tallying_reused(runner: ProcessRunner, reused_s: list[float]) -> ProcessRunner:
    """``runner``, adding the seconds of each process it took from an earlier command to ``reused_s``."""

    def run(request: ProcessRequest) -> ProcessOutcome:
        outcome = runner(request)
        if outcome.reused:
            reused_s.append(outcome.seconds)
        return outcome

    return run


def counted(
    comparisons: Sequence[MetricComparison],
    variant: str,
    rules: Rules,
    counts: dict[str, int],
    estimates: dict[str, list[float]],
) -> None:
    """One variant's flagged signals added to ``counts`` and its estimates ([ratio, p]) kept in ``estimates``.

    Only that variant's items: with two variants a process, the other's flags are not this one's.
    """
    for item in comparisons:
        if item.variant != variant:
            continue
        if item.regressed:
            counts[item.metric] = counts.get(item.metric, 0) + 1
        if item.metric in rules.metrics:
            estimates[item.metric] = [item.ratio, item.p_value]
