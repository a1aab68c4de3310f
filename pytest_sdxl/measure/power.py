"""Detection power, measured: how often each signal flags a known slowdown, and how often nothing.

One pipeline of the chosen variant is built once. A trial measures it through the measurement core
(``runs`` runs of at least ten timed calls, then the profiled passes) unchanged, and once with each
injected slowdown; ``analysis.comparison.compare_results`` then judges, signal by signal, the previous
unchanged measurement against this trial's unchanged one (a false alarm when anything is flagged)
and against each injected one (a detection when the signal is flagged). Injections, sized from a
calibration of the unchanged pipeline:

- ``host``: a fixed sleep per pipeline call, a share of the call's wall time (a slower Python path);
- ``device``: an extra matrix product per call on the device, a share of the call's kernel time
  (a slower kernel). On a CPU it is CPU work, and only wall time can see it.

This mode (``across="rounds"``) measures every trial in one process, so the process-to-process drift
of a real ``compare`` between two CI runs is not in its rates (the user guide's method page, "Detection
power", says what it adds). ``measure.power_processes`` is the other mode (``across="processes"``): each
trial's sides are fresh processes, interleaved as ``pytest-sdxl ab`` measures a pull request.
"""

from __future__ import annotations

import math
import statistics
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from pytest_sdxl.analysis.comparison import DEFAULT_GATE, Rules, compare_results
from pytest_sdxl.results.records import VariantRecord
from pytest_sdxl.results.schema import ResultSet
from pytest_sdxl.variants.registry import Composition

if TYPE_CHECKING:
    from pytest_sdxl.settings import Settings

KINDS = ("host", "device")
# Where a trial's two sides come from: the rounds of one process, or fresh processes (``power_processes``).
ACROSS = ("rounds", "processes")
DEFAULT_INJECTIONS = tuple((kind, level) for kind in KINDS for level in (0.02, 0.05, 0.10))
POWER_SIGNALS = ("avg_gen_s", "wall_ratio", "kernel_ms", "kernels")
# Judged as `compare` judges by default: the gated signals form the Holm family that decides, and
# absolute wall time is shown beside them without diluting it.
POWER_GATE = tuple(signal for signal in POWER_SIGNALS if signal in DEFAULT_GATE)
# Profiled passes a measurement: kernel time moves well under 1 % from pass to pass, so three a side
# judge it (a 2 % device-side slowdown was flagged in 10 trials of 10 with three: the user guide's method
# page, "Profiled passes"), and each pass beyond costs seconds over many measurements, time the wall
# signal needs for its rounds.
POWER_PROFILED_RUNS = 3


@dataclass
class PowerResult:
    """Per injection (``host 5%``) and signal: how many trials flagged it; the same for unchanged reruns."""

    variant: str
    model: str
    device: str
    trials: int
    runs: int
    calibration: dict[str, float] = field(default_factory=dict)
    detections: dict[str, dict[str, int]] = field(default_factory=dict)
    false_alarms: dict[str, int] = field(default_factory=dict)
    unchanged_trials: int = 0
    # Per trial and comparison ("none" or an injection): per signal, [ratio new/base, Holm-adjusted p],
    # so a rate can be read with the estimates behind it (how far from the bound a miss was).
    estimates: list[dict[str, dict[str, list[float]]]] = field(default_factory=list)
    rounds: int | None = None
    # Every measurement's raw wall samples, in order (the calibration first, then per trial the
    # unchanged one and each injection's): {"trial", "comparison", "runs": [[gen_s], [reference_gen_s]] per run},
    # so another estimator of the wall ratio can be judged on the same measurements afterwards.
    samples: list[dict[str, Any]] = field(default_factory=list)
    across: str = "rounds"
    # Across processes: the processes a side each comparison may take (it stops earlier once decided), and per
    # trial and comparison {"trial", "comparison", "order": "ABBA...", "stop": why it stopped}.
    processes: int = 0
    interleaved: list[dict[str, Any]] = field(default_factory=list)
    # Across processes, a variant measured in the same processes with no injection (``--untouched``): per
    # comparison ("none" or an injection of the slowed variant) and signal, the trials that flagged it (every
    # one a false alarm), and per trial its estimates as ``estimates`` keeps the slowed variant's.
    untouched: str = ""
    untouched_flags: dict[str, dict[str, int]] = field(default_factory=dict)
    untouched_estimates: list[dict[str, dict[str, list[float]]]] = field(default_factory=list)
    # Across processes: whether a trial's comparisons share their base processes (``measure.interleave_heads``).
    shared_base: bool = False
    # Across processes: the card the trials ran on (the GPU's name, or "CPU <name>"), and the ``power --json`` file
    # whose calibration they reused (``power --calibration``), "" where their own first process calibrated them.
    card: str = ""
    calibration_from: str = ""
    # Across processes: each trial's wall seconds, in order: the pace a later command's --budget-s goes by.
    trial_seconds: list[float] = field(default_factory=list)
    # Across processes: each process's own figures, per trial and variant (``measure.power_processes.process_figures``),
    # so a verdict can be traced to the process that moved it: one process far from its side can hide a slowdown
    # that the others show, and the comparison's ratio and p alone do not say which.
    process_figures: list[dict[str, Any]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def injection_name(kind: str, level: float) -> str:
    return f"{kind} {level * 100:g}%"


@contextmanager
def injected(pipeline: Any, slowdown: Callable[[], None] | None) -> Iterator[None]:
    """Every pipeline call runs ``slowdown`` first, for the duration; nothing when None."""
    if slowdown is None:
        yield
        return
    original = pipeline.call
    had_own = "call" in vars(pipeline)

    def slower_call(*arguments: Any, **keywords: Any) -> Any:
        slowdown()
        return original(*arguments, **keywords)

    pipeline.call = slower_call
    try:
        yield
    finally:
        if had_own:  # an injection inside another gives the outer one back
            pipeline.call = original
        else:
            del pipeline.call  # the class's own method shows through again


def host_sleep(seconds: float) -> Callable[[], None]:
    def sleep() -> None:
        time.sleep(seconds)

    return sleep


def device_work(device: Any, milliseconds: float) -> Callable[[], None]:
    """An extra matrix product per call, its size found so it takes about ``milliseconds`` on the device."""
    import torch

    from pytest_sdxl.machine.devices import synchronize

    dtype = torch.float16 if device.type == "cuda" else torch.float32
    side = 256
    while True:
        matrix = torch.randn(side, side, device=device, dtype=dtype)
        for _ in range(3):
            torch.mm(matrix, matrix)
        synchronize(device)
        started = time.perf_counter()
        for _ in range(5):
            torch.mm(matrix, matrix)
        synchronize(device)
        each_ms = (time.perf_counter() - started) / 5 * 1000
        if each_ms >= milliseconds / 8 or side >= 16384:
            break
        side *= 2
    repeats = max(1, round(milliseconds / max(each_ms, 1e-6)))

    def work() -> None:
        for _ in range(repeats):
            torch.mm(matrix, matrix)

    return work


def measured_record(
    pipeline: Any,
    reference: Any,
    groups: Sequence[Any],
    runs: int,
    slowdown: Callable[[], None] | None,
    rounds: int | None = None,
) -> VariantRecord:
    """One measurement through the core, the slowdown (if any) injected into the variant's path only."""
    from pytest_sdxl.measure.core import MeasuringOptions, measure_pipeline

    options = MeasuringOptions(
        runs=runs, rounds=rounds, split_stages=False, count_flops=False, profiled_runs=POWER_PROFILED_RUNS
    )
    with injected(pipeline, slowdown):
        measured = measure_pipeline(pipeline, groups, options, side_by_side=reference)
    return VariantRecord(pipeline.id, pipeline.composition.kind, runs=measured.runs)


def judged(base: VariantRecord, new: VariantRecord, rules: Rules) -> tuple[set[str], dict[str, list[float]]]:
    """The signals on which ``compare`` calls the new measurement a regression, and each signal's estimate."""
    comparisons = compare_results(ResultSet(variants=[base]), ResultSet(variants=[new]), rules)
    flagged = {item.metric for item in comparisons if item.regressed}
    estimates = {item.metric: [item.ratio, item.p_value] for item in comparisons if item.metric in rules.metrics}
    return flagged, estimates


def measure_power(
    settings: Settings,
    composition: Composition,
    trials: int = 10,
    injections: Sequence[tuple[str, float]] = DEFAULT_INJECTIONS,
    rules: Rules | None = None,
    report: Callable[[str], None] | None = None,
    rounds: int | None = None,
    on_trial: Callable[[PowerResult], None] | None = None,
) -> PowerResult:
    """``trials`` trials of unchanged and injected measurements of one variant, judged by ``rules``.

    ``injections``: (kind, level) pairs, kind ``host`` or ``device``, level the share of one call.
    ``rounds``: rounds a run (default: the core's ``rounds_per_run``). ``on_trial`` gets the result so
    far after each finished trial (its ``trials`` counts the finished ones), so that a run stopped
    midway keeps them.
    """
    from pytest_sdxl.measure.calls import call_groups, seeds_for, side_by_side_reference
    from pytest_sdxl.pipelines.sources import components_for, image_size_for
    from pytest_sdxl.variants.assembly import VariantPipeline

    chosen = rules or Rules(metrics=POWER_SIGNALS, gate=POWER_GATE)
    components = components_for(settings)
    size = image_size_for(settings, components)
    pipeline = VariantPipeline(components, composition, size, settings.steps)
    beside = side_by_side_reference(composition)
    reference = None if beside is None else VariantPipeline(components, beside, size, settings.steps)
    try:
        groups = call_groups(composition, list(settings.prompts[1:]), seeds_for(settings)[1:])

        recorded: list[dict[str, Any]] = []

        def measure(slowdown: Callable[[], None] | None, trial: int, comparison: str) -> VariantRecord:
            """One measurement, its raw wall samples kept in ``recorded``."""
            record = measured_record(pipeline, reference, groups, settings.runs, slowdown, rounds)
            runs = [[list(run.gen_s), list(run.reference_gen_s)] for run in record.runs]
            recorded.append({"trial": trial, "comparison": comparison, "runs": runs})
            return record

        calibration = measure(None, 0, "calibration")
        images_per_call = sum(len(prompts) for prompts, _ in groups) / len(groups)
        wall_call_s = statistics.median(sample for run in calibration.runs for sample in run.gen_s) * images_per_call
        kernel_values = [value for run in calibration.runs if run.device for value in run.device.kernel_ms]
        # Without CUDA kernels (a CPU) the device injection is sized on wall time, and only wall time sees it.
        kernel_call_ms = statistics.median(kernel_values) * images_per_call if kernel_values else math.nan
        result = PowerResult(
            composition.id,
            settings.model,
            str(components.device),
            0,
            settings.runs,
            calibration={"wall_ms_per_call": wall_call_s * 1000, "kernel_ms_per_call": kernel_call_ms},
            rounds=rounds,
            samples=recorded,
        )
        slowdowns: dict[str, Callable[[], None]] = {}
        for kind, level in injections:
            if kind == "host":
                slowdowns[injection_name(kind, level)] = host_sleep(wall_call_s * level)
            else:
                device_ms = wall_call_s * 1000 if math.isnan(kernel_call_ms) else kernel_call_ms
                slowdowns[injection_name(kind, level)] = device_work(components.device, device_ms * level)
        result.detections = {name: {} for name in slowdowns}
        previous = calibration
        for trial in range(1, trials + 1):
            if report is not None:
                report(f"trial {trial}/{trials}")
            unchanged = measure(None, trial, "none")
            result.unchanged_trials += 1
            flagged, estimates = judged(previous, unchanged, chosen)
            trial_estimates = {"none": estimates}
            for signal in flagged:
                result.false_alarms[signal] = result.false_alarms.get(signal, 0) + 1
            for name, slowdown in slowdowns.items():
                slowed = measure(slowdown, trial, name)
                flagged, trial_estimates[name] = judged(unchanged, slowed, chosen)
                for signal in flagged:
                    result.detections[name][signal] = result.detections[name].get(signal, 0) + 1
            result.estimates.append(trial_estimates)
            result.trials = trial
            if on_trial is not None:
                on_trial(result)
            previous = unchanged
        return result
    finally:
        for built in (pipeline, reference):
            if built is not None:
                built.close()


def median_ratio(result: PowerResult, comparison: str, signal: str, untouched: bool = False) -> float:
    """The median over trials of one comparison's ratio new/base on one signal (NaN when none was kept).

    ``untouched``: the untouched variant's ratio in that comparison's processes, not the slowed variant's.
    """
    ratios = [
        trial[comparison][signal][0]
        for trial in (result.untouched_estimates if untouched else result.estimates)
        if signal in trial.get(comparison, {}) and math.isfinite(trial[comparison][signal][0])
    ]
    return statistics.median(ratios) if ratios else math.nan


def power_report(result: PowerResult, signals: Sequence[str] = POWER_SIGNALS) -> str:
    """Detection and false-alarm rates per signal, each with the median ratio new/base over the trials."""
    calibration = result.calibration
    kernel_ms = calibration["kernel_ms_per_call"]
    kernel_text = "no CUDA kernels" if math.isnan(kernel_ms) else f"{kernel_ms:.2f} ms kernel time"
    if result.across == "processes":
        measured = (
            f"each side of a comparison up to {result.processes} fresh processes of one run, interleaved as "
            "pytest-sdxl ab does (--across processes)"
        )
        if result.shared_base:
            measured += ", a trial's comparisons sharing its base processes"
        if result.card:
            measured += f", on {result.card}"
        if result.calibration_from:
            measured += f", sized from the calibration in {result.calibration_from}"
    else:
        rounds = "the core's default rounds" if result.rounds is None else f"{result.rounds} rounds"
        measured = f"{result.runs} runs a measurement of {rounds}, both sides in one process (--across rounds)"
    heads = " | ".join(signal if signal in POWER_GATE else f"{signal} (shown, not gated)" for signal in signals)
    trial_count = f"{result.trials} trial" + ("" if result.trials == 1 else "s")
    lines = [
        f"detection power: {result.variant} on {result.model} ({result.device}), {trial_count}"
        f"{' (the calibration only, for later --resume commands)' if result.trials == 0 else ''}, "
        f"{measured}; one call: {calibration['wall_ms_per_call']:.2f} ms wall, "
        f"{kernel_text}; each cell: trials flagged (median ratio new/base)",
        "",
        f"| injected slowdown | {heads} |",
        "|---|" + "---|" * len(signals),
    ]

    def cell(count: int, trials: int, signal: str, comparison: str, untouched: bool = False) -> str:
        if signal in ("kernel_ms", "kernels") and math.isnan(kernel_ms):
            return "n/a"
        ratio = median_ratio(result, comparison, signal, untouched)
        return f"{count}/{trials}" + ("" if math.isnan(ratio) else f" ({ratio:.3f})")

    for name, flagged in result.detections.items():
        cells = [cell(flagged.get(signal, 0), result.trials, signal, name) for signal in signals]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    cells = [cell(result.false_alarms.get(signal, 0), result.unchanged_trials, signal, "none") for signal in signals]
    lines.append("| none (false alarms) | " + " | ".join(cells) + " |")
    if result.untouched:
        lines += [
            "",
            f"untouched variant: {result.untouched}, measured in the same processes and judged in the same Holm "
            "family, carries no injection: every flag here is a false alarm; each cell: trials flagged (median "
            "ratio new/base)",
            "",
            f"| the slowed variant's injection | {heads} |",
            "|---|" + "---|" * len(signals),
        ]
        for name in ["none", *result.detections]:
            flagged = result.untouched_flags.get(name, {})
            trials = result.unchanged_trials if name == "none" else result.trials
            cells = [cell(flagged.get(signal, 0), trials, signal, name, untouched=True) for signal in signals]
            lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines + undecided_report(result))


def undecided_report(result: PowerResult) -> list[str]:
    """Per comparison, the trials that left a gated signal undecided: what ``ab`` answers in their place.

    A miss the gate reports as undecided is not a silent pass (``ab --fail-undecided`` fails it), and an unchanged
    comparison left undecided is the price of that option; the counts say both. Trials measured before the
    ``power --json`` files recorded it (an older file resumed) are left out, and the table says how many counted.
    """
    recorded = [entry for entry in result.interleaved if "undecided" in entry]
    if not recorded:
        return []
    variants = [result.variant] + ([result.untouched] if result.untouched else [])
    heads = " | ".join(f"{variant}{' (untouched)' if variant == result.untouched else ''}" for variant in variants)
    lines = [
        "",
        "undecided: a gated signal not flagged whose interval still reaches its flag line at the last look, which "
        "pytest-sdxl ab answers as undecided (--fail-undecided fails the job on it); each cell: trials undecided, "
        "of those that recorded it",
        "",
        f"| comparison | {heads} | either (the job) |",
        "|---|" + "---|" * (len(variants) + 1),
    ]
    for name in ["none", *result.detections]:
        entries = [entry for entry in recorded if entry["comparison"] == name]
        open_variants = [{item.split(" ")[0] for item in entry["undecided"]} for entry in entries]
        cells = [f"{sum(variant in found for found in open_variants)}/{len(entries)}" for variant in variants]
        cells.append(f"{sum(bool(found) for found in open_variants)}/{len(entries)}")
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return lines
