"""The one measurement core: warm-up, the timed loop, the stage split and device signals of one pipeline.

Every caller that times generations comes through here: the reference protocol (a fresh load per
run), the plugin's ``sdxl_benchmark`` (pytest-benchmark drives the rounds), asv's ratios, the
``overhead`` and ``power`` commands and ``tune``. The steps of ``measure_pipeline`` are the method:

1. **warm-up**: one checked pass over the round's calls (its images are the run's images, for
   PSNR, SSIM and LPIPS against the baseline's), then more untimed calls at each shape the round
   uses until every shape has been called ``Composition.warmup_calls`` times (compiled, traced
   and graph-captured UNets capture or re-optimize on a later call than the first); a
   cached-embeddings pipeline has then encoded every timed prompt, so its timed calls hit the cache;
2. **timed rounds**: each call between two synchronized clock readings, nothing else inside; at
   least ``MIN_TIMED_CALLS`` calls per run, so a batch run (one call a round) has samples enough;
3. **stage split**: a warm pass with the stage timer attached (its marks are not free);
4. **device signals**: an untimed profiled pass per run (kernel time and launches per image, per
   stage) and FLOPs once (in all and per stage), because the profiler slows the host and must never
   share a timed pass; with them the card's matrix peak (measured once per card and cached).

The GPU's energy counter (energy.py) is read around each timed round, outside every per-call clock
reading: a run's joules per image count the variant's own calls only. The GPU's state (clocks,
temperature, power, throttle reasons: machine.gpu_state) is read once after each timed round, also
outside the clock readings (a reading costs about 0.14 ms on an H100) and with the device
synchronized, so it shows the clocks the round's work ran at; each run keeps the summary of its
rounds'. Peak GPU memory is the variant's own: the peak is reset after the pipeline is built, and
shared components the variant leaves unused are not counted. ``records`` turns what was measured into run records.
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from pytest_sdxl.machine.host_state import HostStateSample, read_host, thread_wait_seconds
from pytest_sdxl.measure.calls import Group, call_functions, images_in, same_calls, warm_shapes, warm_up
from pytest_sdxl.measure.records import (
    WALL_BLOCK_SAMPLES,
    SharedFigures,
    TimedRounds,
    image_quality,
    run_records,
    timed_seconds_per_run,
    variant_note,
)
from pytest_sdxl.measure.sequential import Sampler, StoppingRule, StopSampling, kernel_passes
from pytest_sdxl.pipelines.process_age import mark_first_timed_round
from pytest_sdxl.results.records import RunRecord

if TYPE_CHECKING:
    from pytest_sdxl.machine.gpu_state import GpuStateReader, GpuStateSample
    from pytest_sdxl.measure.energy import EnergyCounter
    from pytest_sdxl.variants.assembly import VariantPipeline

# Timed calls a run makes at least: a batch run makes one call a round, and a run of one sample has
# no spread and no interval (the user guide's method page, "Timed calls per run").
MIN_TIMED_CALLS = 10
# Samples per side and run beside a side-by-side reference: four wall blocks, so the reference
# protocol's three runs give twelve blocks a side.
MIN_RATIO_SAMPLES = 4 * WALL_BLOCK_SAMPLES
# Profiled passes a measurement makes at most, one per run from the first. Kernel time moves well
# under 1 % from pass to pass, so five judge it, while each pass costs a profiler session (seconds on
# a large GPU): many short runs, which the wall ratio needs on a noisy host, stay affordable (the user
# guide's method page, "Profiled passes"). The runs past these carry no device signals.
MAX_PROFILED_RUNS = 5
# Sequential sampling (``measure.sequential``): one wall block a run at least, and this many in all (the
# host-adjusted wall test needs two a side; the fixed protocol takes four a run); at most the fixed
# protocol's rounds times SEQUENTIAL_CAP.
MIN_SEQUENTIAL_WALL_BLOCKS = 2
SEQUENTIAL_CAP = 2
# A driver runs ``count`` rounds, each after an untimed ``before`` (the side-by-side reference's
# round): plainly here, or through pytest-benchmark's pedantic mode (``setup=before``) in the plugin.
Driver = Callable[[Callable[[], list[float]], int, Callable[[], object]], object]
Report = Callable[[str, str], None]


def rounds_per_run(
    groups: Sequence[Group], reference_groups: Sequence[Group] = (), ratio_samples: int = MIN_RATIO_SAMPLES
) -> int:
    """Rounds a run needs: ``MIN_TIMED_CALLS`` timed calls, and ``ratio_samples`` a side beside a reference."""
    needed = math.ceil(MIN_TIMED_CALLS / max(len(groups), 1))
    if reference_groups:
        needed = max(needed, math.ceil(ratio_samples / max(min(len(groups), len(reference_groups)), 1)))
    return max(1, needed)


def stopping_rule(
    groups: Sequence[Group], reference_groups: Sequence[Group], runs: int, budget_s: float
) -> StoppingRule:
    """The sequential rule of a measurement's timed rounds (``measure.sequential``), for the wall gate's threshold.

    At least one wall block a run beside a reference (the wall test's units), ``MIN_SEQUENTIAL_WALL_BLOCKS`` in
    all, and ``MIN_TIMED_CALLS`` calls a run; at most ``SEQUENTIAL_CAP`` times the fixed protocol's rounds.
    """
    from pytest_sdxl.analysis.comparison import DEFAULT_THRESHOLD

    fewest = rounds_per_run(groups, reference_groups, WALL_BLOCK_SAMPLES)
    fixed = rounds_per_run(groups, reference_groups)
    # As many rounds as a wall block holds (``records.wall_blocks``: WALL_BLOCK_SAMPLES of the variant's samples).
    block = max(1, math.ceil(WALL_BLOCK_SAMPLES / max(len(groups), 1)))
    least = max(runs * fewest, MIN_SEQUENTIAL_WALL_BLOCKS * block if reference_groups else 0)
    return StoppingRule(DEFAULT_THRESHOLD, least, runs * fixed * SEQUENTIAL_CAP, budget_s, block_rounds=block)


class TimedLoop:
    """The one timed loop: each pipeline call between two synchronized clock readings, nothing else inside.

    With an energy counter, the counter is read before the round's first clock reading and after its
    last (the device is synchronized there): ``round_joules`` holds each round's joules, None where a
    read failed. With a GPU state reader, the state is read after the round's last clock reading (and
    after the energy counter): ``round_gpu_states`` holds each round's reading, None where none was had.
    With ``host_state``, the host's counters are read around the round's calls (``machine.host_state``):
    ``round_host_states`` holds how much of each round the host kept the timing thread from a CPU, and
    ``round_waits`` each call's share of it (seconds per image; an empty round where it was not read).
    """

    def __init__(
        self,
        pipeline: VariantPipeline,
        groups: Sequence[Group],
        energy: EnergyCounter | None = None,
        gpu_state: GpuStateReader | None = None,
        host_state: bool = False,
    ) -> None:
        from pytest_sdxl.measure.timing import SyncClock

        self.pipeline = pipeline
        self.groups = list(groups)
        self.clock = SyncClock(pipeline.device)
        self.rounds: list[list[float]] = []
        self.energy = energy
        self.round_joules: list[float | None] = []
        self.gpu_state = gpu_state
        self.round_gpu_states: list[GpuStateSample | None] = []
        self.host_state = host_state
        self.round_host_states: list[HostStateSample] = []
        self.round_waits: list[list[float]] = []

    def round(self) -> list[float]:
        """One pass over the round's calls; seconds per image of each call."""
        mark_first_timed_round()  # the process's age at its first timed round: what a process costs to start
        before = self.energy.joules() if self.energy is not None else None
        round_start = read_host() if self.host_state else None
        waited = round_start.waited_s if round_start is not None else None
        samples: list[float] = []
        waits: list[float] = []
        for prompts, seeds in self.groups:
            started = self.clock.now()
            self.pipeline.generate(prompts, seeds, check=False)
            samples.append((self.clock.now() - started) / len(prompts))
            if waited is not None:
                # Read right after the call's last clock reading: what the call waited for a CPU, per image.
                now_waited = thread_wait_seconds()
                if now_waited is not None:
                    waits.append((now_waited - waited) / len(prompts))
                waited = now_waited
        if round_start is not None:
            self.round_host_states.append(HostStateSample.between(round_start, read_host()))
        if self.energy is not None:
            after = self.energy.joules()
            self.round_joules.append(None if before is None or after is None else after - before)
        if self.gpu_state is not None:
            self.round_gpu_states.append(self.gpu_state.sample())
        # A call by call wait, or none at all for the round: a partial list would pair waits with the wrong calls.
        self.round_waits.append(waits if len(waits) == len(samples) else [])
        self.rounds.append(samples)
        return samples


def raw_round(pipeline: VariantPipeline, groups: Sequence[Group]) -> float:
    """Seconds per image of a bare loop of the pipeline calls, synchronized only at both ends.

    The reference the ``overhead`` command holds the timed loop against: no per-call clock, no checks.
    """
    import torch

    from pytest_sdxl.machine.devices import synchronize

    synchronize(pipeline.device)
    started = time.perf_counter()
    for prompts, seeds in groups:
        pipeline.call(prompts, [torch.Generator("cpu").manual_seed(seed) for seed in seeds])
    synchronize(pipeline.device)
    return (time.perf_counter() - started) / images_in(groups)


def own_peak_memory_gb(pipeline: VariantPipeline) -> float | None:
    """Peak GPU memory since the last reset, less the shared components this variant leaves unused."""
    from pytest_sdxl.machine.devices import BYTES_PER_GB, peak_memory_gb

    peak = peak_memory_gb(pipeline.device)
    if peak is None:
        return None
    return max(peak - pipeline.unused_device_bytes() / BYTES_PER_GB, 0.0)


def plain_driver(one_round: Callable[[], list[float]], count: int, before: Callable[[], object]) -> None:
    for _ in range(count):
        before()
        one_round()


def nothing() -> None:
    """The ``before`` of a measurement without a side-by-side reference."""


@dataclass(frozen=True)
class MeasuringOptions:
    """How ``measure_pipeline`` measures; the defaults are the reference protocol's single run."""

    runs: int = 1
    # Rounds a run; None: ``rounds_per_run`` (with the side-by-side reference's calls).
    rounds: int | None = None
    driver: Driver = plain_driver
    # Hears each step as it starts (warm-up, timed, stage split, device signals) with a detail.
    report: Report | None = None
    # Calls of one prompt made already (the protocol's first generation), which the warm-up counts.
    calls_at_one: int = 0
    split_stages: bool = True
    count_flops: bool = True
    # Profiled passes, one per run from the first; never more than ``MAX_PROFILED_RUNS``.
    profiled_runs: int = MAX_PROFILED_RUNS
    # Where to keep a Chrome trace of one generation; None keeps none.
    trace_path: Path | None = None
    # The LPIPS backbone's local checkpoint (or its folder); None: LPIPS is n/a with how to provide it.
    lpips_weights: Path | None = None
    # Sequential sampling (the gate and full profiles): rounds stop once the wall interval is narrow enough for
    # the gate's threshold, within ``budget_s`` seconds of timed rounds; False: ``rounds`` rounds a run.
    sequential: bool = False
    budget_s: float = math.inf
    # The GPU's energy counter around each round, and image quality against the baseline's images (the gate
    # profile leaves both out: no gated signal needs them; a caller without quality passes no reference images).
    energy: bool = True
    quality: bool = True

    def say(self, step: str, detail: str = "") -> None:
        if self.report is not None:
            self.report(step, detail)


@dataclass
class PipelineMeasurement:
    """What ``measure_pipeline`` measured on one built pipeline: run records without load or first generation."""

    runs: list[RunRecord]
    images: np.ndarray
    warmup_s: float
    # Seconds inside the timed calls of each run (their per-image samples times the images of each call).
    timed_s_per_run: list[float]
    note: str = ""
    flops: float | None = None
    # How the timed rounds ended: "<n> fixed rounds", or the rounds and why sequential sampling stopped.
    sampling: str = ""


def measure_pipeline(
    pipeline: VariantPipeline,
    groups: Sequence[Group],
    options: MeasuringOptions = MeasuringOptions(),
    side_by_side: VariantPipeline | None = None,
    reference_images: np.ndarray | None = None,
) -> PipelineMeasurement:
    """Warm up, time ``runs`` x ``rounds`` rounds, split the stages, profile; one record per run.

    ``side_by_side`` (see ``side_by_side_reference``) runs one round of the same prompts before each
    timed round, timed by its own loop: each run then holds the reference's samples too.
    ``reference_images`` are the baseline's, for PSNR, SSIM and LPIPS. The records hold NaN for load, first
    generation and total: the caller that loaded the pipeline fills them in. The ``power`` command,
    which measures one pipeline over and over, leaves out the stage split and FLOPs and profiles
    fewer runs. Peak memory comes from the stage-split pass, where the variant runs alone.
    """
    from pytest_sdxl.machine.devices import reset_peak_memory
    from pytest_sdxl.measure.device_signals import profiled_passes

    reference_groups = [] if side_by_side is None else same_calls(side_by_side.composition, groups)
    rounds = options.rounds or rounds_per_run(groups, reference_groups)
    rule = stopping_rule(groups, reference_groups, options.runs, options.budget_s) if options.sequential else None
    reset_peak_memory(pipeline.device)
    options.say("warm-up")
    images, warmup_calls, warmup_s = timed_warm_up(pipeline, groups, options.calls_at_one)
    timed, sampling = timed_rounds(
        pipeline, groups, side_by_side, reference_groups, options.runs * rounds, options, rule
    )
    calls = call_functions(pipeline, groups)
    options.say("stage split")
    stages, peak_memory = stages_and_peak_memory(pipeline, calls, options.split_stages)
    options.say("device signals")
    passes = min(options.runs, options.profiled_runs, MAX_PROFILED_RUNS)
    if options.sequential:
        signals, flops = kernel_passes(pipeline, calls, passes, options.count_flops, options.trace_path)
    else:
        signals, flops = profiled_passes(pipeline, calls, passes, options.count_flops, options.trace_path)
    quality = image_quality(reference_images, images, options.lpips_weights)
    shared = SharedFigures(stages, peak_memory, quality, warmup_calls)
    images_per_call = [len(prompts) for prompts, _ in groups]
    return PipelineMeasurement(
        runs=run_records(timed, options.runs, images_per_call, signals, shared),
        images=images,
        warmup_s=warmup_s,
        timed_s_per_run=timed_seconds_per_run(timed, options.runs, images_per_call),
        note=variant_note(pipeline.composition),
        flops=flops,
        sampling=sampling,
    )


def timed_warm_up(
    pipeline: VariantPipeline, groups: Sequence[Group], calls_at_one: int
) -> tuple[np.ndarray, int, float]:
    """``warm_up`` between two synchronized clock readings: the checked images, the calls made and the seconds."""
    from pytest_sdxl.measure.timing import SyncClock

    clock = SyncClock(pipeline.device)
    started = clock.now()
    images, calls = warm_up(pipeline, groups, calls_at_one)
    return images, calls, clock.now() - started


def timed_rounds(
    pipeline: VariantPipeline,
    groups: Sequence[Group],
    side_by_side: VariantPipeline | None,
    reference_groups: Sequence[Group],
    count: int,
    options: MeasuringOptions,
    rule: StoppingRule | None = None,
) -> tuple[TimedRounds, str]:
    """Timed rounds through the options' driver, each after the warmed reference's round (if any).

    ``count`` rounds, or with a stopping ``rule`` as many as it asks (its cap at most); also says how they ended.
    """
    from pytest_sdxl.machine.gpu_state import open_gpu_state
    from pytest_sdxl.measure.energy import open_counter

    energy_counter, energy_reason = (
        open_counter(pipeline.device) if options.energy else (None, "not measured (the gate profile)")
    )
    gpu_state = open_gpu_state(pipeline.device)
    loop = TimedLoop(pipeline, groups, energy_counter, gpu_state, host_state=True)
    reference_loop = None
    if side_by_side is not None:
        warm_shapes(side_by_side, reference_groups)
        reference_loop = TimedLoop(side_by_side, reference_groups, host_state=True)
    before: Callable[[], object] = reference_loop.round if reference_loop is not None else nothing
    sampler = None
    if rule is not None:
        sampler = Sampler(rule, loop.rounds, reference_loop.rounds if reference_loop else None, before)
        before, count = sampler.before_round, rule.max_rounds
        options.say("timed", f"{rule.min_rounds} to {count} rounds of {len(groups)} call(s), until narrow enough")
    else:
        options.say("timed", f"{count} rounds of {len(groups)} call(s)")
    with contextlib.suppress(StopSampling):  # the rule had enough before the driver's last round
        options.driver(loop.round, count, before)
    if sampler is None:
        sampling = f"{len(loop.rounds)} fixed rounds"
    else:
        sampling = f"{len(loop.rounds)} rounds ({sampler.stopped_by or f'stopped at the cap of {count}'})"
    return TimedRounds(
        own=loop.rounds,
        reference=reference_loop.rounds if reference_loop is not None else [],
        reference_id=side_by_side.id if side_by_side is not None else "",
        joules=loop.round_joules if energy_counter is not None else None,
        energy_reason=energy_counter.not_applicable if energy_counter is not None else energy_reason,
        gpu_states=loop.round_gpu_states,
        gpu_state_reason=gpu_state.not_applicable,
        host_states=loop.round_host_states,
        reference_host_states=reference_loop.round_host_states if reference_loop is not None else [],
        own_waits=loop.round_waits,
        reference_waits=reference_loop.round_waits if reference_loop is not None else [],
    ), sampling


def stages_and_peak_memory(
    pipeline: VariantPipeline, calls: list[Callable[[], int]], split: bool
) -> tuple[dict[str, float], float | None]:
    """The stage split (when asked) and the variant's own peak GPU memory, counted from a reset just before it."""
    from pytest_sdxl.machine.devices import reset_peak_memory
    from pytest_sdxl.measure.timing import stage_split

    reset_peak_memory(pipeline.device)
    if split:
        return stage_split(pipeline.pipe, pipeline.device, calls), own_peak_memory_gb(pipeline)
    if pipeline.device.type == "cuda":  # peak memory is gated: a plain pass, the variant alone, without the timer
        for call in calls:
            call()
    return {}, own_peak_memory_gb(pipeline)
