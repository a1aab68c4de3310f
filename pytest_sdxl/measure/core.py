"""The one measurement core: warm-up, the timed loop, the stage split, device signals, run records.

Every caller that times generations comes through here: the notes' protocol (a fresh load per
run), the plugin's ``sdxl_benchmark`` (pytest-benchmark drives the rounds), asv's ratios, the
``overhead`` and ``power`` commands, and the GPU tools. The order inside ``measure_pipeline`` is
the method:

1. **warm-up**: one checked pass over the round's calls (its images are the run's images, for
   PSNR), then more untimed calls at each shape the round uses until every shape has been called
   ``Composition.warmup_calls`` times (compiled, traced and graph-captured UNets capture or
   re-optimize on a later call than the first); a cached-embeddings pipeline has then encoded
   every timed prompt, so its timed calls hit the cache;
2. **timed rounds**: each call between two synchronized clock readings, nothing else inside; at
   least ``MIN_TIMED_CALLS`` calls per run, so a batch run (one call a round) has samples enough;
3. **stage split**: a warm pass with the stage timer attached (its marks are not free);
4. **device signals**: an untimed profiled pass per run (kernel time and launches per image, per
   stage) and FLOPs once (in all and per stage), because the profiler slows the host and must never
   share a timed pass; with them the card's matrix peak (measured once per card and cached).

The GPU's energy counter (energy.py) is read around each timed round, outside every per-call clock
reading: a run's joules per image count the variant's own calls only.

Peak GPU memory is the variant's own: the peak is reset after the pipeline is built, and shared
components the variant leaves unused are not counted.
"""

from __future__ import annotations

import math
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import numpy as np

from pytest_sdxl.errors import ImageCheckError
from pytest_sdxl.results.schema import RunRecord

if TYPE_CHECKING:
    from pytest_sdxl.measure.energy import EnergyCounter
    from pytest_sdxl.settings import Settings
    from pytest_sdxl.variants.assembly import VariantPipeline
    from pytest_sdxl.variants.registry import Composition

# A run's timed calls: the batch row had one sample per run before, and no statistic survives that.
MIN_TIMED_CALLS = 10
# Samples per side and run when a side-by-side reference is timed. Each run's rounds are cut into
# blocks of ``WALL_BLOCK_SAMPLES`` of the variant's samples, and each block's variant and reference minima
# are one point of the host-adjusted wall test (host_adjusted.py). On an H100, blocks of 12 batch calls,
# ten a side, caught a 5 % host-side slowdown of the batch path in 9 of 10 trials with no false alarm in
# 10, where the plain ratio of minima over three runs of 30 caught 1 in 10 (docs/results/2026-11-27b).
# Four blocks a run, so the notes' three runs give twelve a side.
WALL_BLOCK_SAMPLES = 12
MIN_RATIO_SAMPLES = 4 * WALL_BLOCK_SAMPLES
# Profiled passes a measurement makes at most, one per run from the first: kernel time moves well
# under 1 % from pass to pass, so five a side judge it, while each pass costs a profiler session
# (seconds on an H100). Many short runs, which the wall ratio needs on a noisy host
# (docs/results/2026-11-27), then stay affordable; the runs past these carry no device signals.
MAX_PROFILED_RUNS = 5
Group = tuple[list[str], list[int]]
# A driver runs ``count`` rounds, each after an untimed ``before`` (the side-by-side reference's
# round): plainly here, or through pytest-benchmark's pedantic mode (``setup=before``) in the plugin.
Driver = Callable[[Callable[[], list[float]], int, Callable[[], object]], object]
Report = Callable[[str, str], None]
# One timed round as split into runs: its samples, or its joules.
Round = TypeVar("Round")


def seeds_for(settings: Settings) -> list[int]:
    """Prompt i uses seed + i, whatever the variant: the same prompt and seed give the same image."""
    return [settings.seed + index for index in range(len(settings.prompts))]


def call_groups(composition: Composition, prompts: Sequence[str], seeds: Sequence[int]) -> list[Group]:
    """The calls of one round over these prompts: one call per prompt, or one call for all in batch mode."""
    pairs = list(zip(prompts, seeds, strict=True))
    if composition.is_batch:
        return [([prompt for prompt, _ in pairs], [seed for _, seed in pairs])]
    return [([prompt], [seed]) for prompt, seed in pairs]


def timed_groups(composition: Composition, prompts: Sequence[str], seeds: Sequence[int]) -> list[Group]:
    """The timed calls of the notes' protocol: every prompt after the first, which is the first generation."""
    return call_groups(composition, prompts[1:], seeds[1:])


def rounds_per_run(groups: Sequence[Group], reference_groups: Sequence[Group] = ()) -> int:
    """Rounds a run needs: ``MIN_TIMED_CALLS`` timed calls, and ``MIN_RATIO_SAMPLES`` a side beside a reference."""
    needed = math.ceil(MIN_TIMED_CALLS / max(len(groups), 1))
    if reference_groups:
        needed = max(needed, math.ceil(MIN_RATIO_SAMPLES / max(min(len(groups), len(reference_groups)), 1)))
    return max(1, needed)


def images_in(groups: Sequence[Group]) -> int:
    return sum(len(prompts) for prompts, _ in groups)


def failure_reason(error: BaseException) -> str:
    """One line that says what went wrong: out of memory, a bad image, or the exception itself."""
    from pytest_sdxl.machine.devices import is_out_of_memory

    text = str(error).strip().splitlines()[0] if str(error).strip() else ""
    if is_out_of_memory(error):
        return f"out of memory: {text}"[:500]
    if isinstance(error, ImageCheckError):
        return f"bad images: {text}"[:500]
    return f"{type(error).__name__}: {text}"[:500]


def image_psnr(reference: np.ndarray | None, images: np.ndarray) -> float | None:
    from pytest_sdxl.pipelines.images import psnr

    if reference is None or reference.shape != images.shape:
        return None
    return psnr(reference, images)


def variant_note(composition: Composition) -> str:
    """What a reader of this variant's figures must know (empty when nothing)."""
    notes = [composition.no_effect_reason()] if composition.no_effect_reason() else []
    if composition.has("cached_embeds"):
        notes.append(
            "the warm-up encodes every timed prompt, so the timed calls reuse the cached "
            "embeddings (the prompts repeat, as in serving); text encoding is paid once per prompt, untimed"
        )
    return "; ".join(notes)


def warm_up(pipeline: VariantPipeline, groups: Sequence[Group], calls_at_one: int = 0) -> tuple[np.ndarray, int]:
    """Warm every shape the timed calls use; returns the checked images of one round and the calls made.

    ``calls_at_one`` counts calls of one prompt made already (the protocol's first generation).
    """
    images = np.concatenate([pipeline.generate(prompts, seeds) for prompts, seeds in groups], axis=0)
    made = len(groups)
    seen: dict[int, int] = {1: calls_at_one}
    for prompts, _ in groups:
        seen[len(prompts)] = seen.get(len(prompts), 0) + 1
    wanted = pipeline.composition.warmup_calls
    for prompts, seeds in groups:
        while seen[len(prompts)] < wanted:
            pipeline.generate(prompts, seeds, check=False)
            seen[len(prompts)] += 1
            made += 1
    return images, made


class TimedLoop:
    """The one timed loop: each pipeline call between two synchronized clock readings, nothing else inside.

    With an energy counter, the counter is read before the round's first clock reading and after its
    last (the device is synchronized there): ``round_joules`` holds each round's joules, None where a
    read failed.
    """

    def __init__(self, pipeline: VariantPipeline, groups: Sequence[Group], energy: EnergyCounter | None = None) -> None:
        from pytest_sdxl.measure.timing import SyncClock

        self.pipeline = pipeline
        self.groups = list(groups)
        self.clock = SyncClock(pipeline.device)
        self.rounds: list[list[float]] = []
        self.energy = energy
        self.round_joules: list[float | None] = []

    def round(self) -> list[float]:
        """One pass over the round's calls; seconds per image of each call."""
        before = self.energy.joules() if self.energy is not None else None
        samples = []
        for prompts, seeds in self.groups:
            started = self.clock.now()
            self.pipeline.generate(prompts, seeds, check=False)
            samples.append((self.clock.now() - started) / len(prompts))
        if self.energy is not None:
            after = self.energy.joules()
            self.round_joules.append(None if before is None or after is None else after - before)
        self.rounds.append(samples)
        return samples


def alternating_rounds(
    first: Callable[[], float],
    second: Callable[[], float],
    min_rounds: int = MIN_RATIO_SAMPLES,
    min_seconds: float = 5.0,
    max_rounds: int = 61,
) -> tuple[list[float], list[float]]:
    """Samples of two sides timed back to back, round after round, in alternating order.

    Each side is a function that times itself (a ``TimedLoop`` round) and returns seconds per
    image. Whatever slows the machine for a while slows both sides; alternating the order keeps
    either from always running on a warmer cache. Rounds go on until ``min_rounds`` are done and
    ``min_seconds`` measured, or ``max_rounds``.
    """
    firsts: list[float] = []
    seconds: list[float] = []
    measured = 0.0
    for round_index in range(max_rounds):
        if round_index % 2 == 0:
            firsts.append(first())
            seconds.append(second())
        else:
            seconds.append(second())
            firsts.append(first())
        measured += firsts[-1] + seconds[-1]
        if len(firsts) >= min_rounds and measured >= min_seconds:
            break
    return firsts, seconds


def ratio_of_minima(first: Sequence[float], second: Sequence[float]) -> float:
    """min(first) / min(second): host jitter only adds time, so each side's minimum is its steadiest figure.

    On an H100 the batch-over-one-by-one ratio of minima from 40 alternating rounds moved 1.3 %
    across fresh processes, where the ratio of medians moved 37 % (REFERENCE.md).
    """
    return min(first) / min(second)


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


def stages_per_image(times: Any, images: int) -> dict[str, float]:
    """Stage milliseconds per image; the four stage keys add up to ``total_ms``."""
    count = max(images, 1)
    stages = {
        "text_encode_ms": times.text_encode_ms / count,
        "unet_ms": times.unet_total_ms / count,
        "vae_decode_ms": times.vae_decode_ms / count,
    }
    stages["total_ms"] = times.total_ms / count
    stages["other_ms"] = stages["total_ms"] - stages["text_encode_ms"] - stages["unet_ms"] - stages["vae_decode_ms"]
    stages["unet_step_ms"] = times.unet_ms
    stages["unet_calls_per_image"] = times.unet_calls / count
    return stages


def stage_split(pipeline: VariantPipeline, groups: Sequence[Group]) -> dict[str, float]:
    """Milliseconds per image of each stage, from one warm pass with the stage timer attached."""
    from pytest_sdxl.measure.timing import StageTimer

    with StageTimer(pipeline.pipe, pipeline.device) as timer:
        for prompts, seeds in groups:
            with timer.generation():
                pipeline.generate(prompts, seeds, check=False)
        times = timer.read()
    return stages_per_image(times, images_in(groups))


def call_functions(pipeline: VariantPipeline, groups: Sequence[Group]) -> list[Callable[[], int]]:
    """One function per call of the round, each returning the images it made (for the profiled passes)."""

    def make(prompts: list[str], seeds: list[int]) -> Callable[[], int]:
        def call() -> int:
            pipeline.generate(prompts, seeds, check=False)
            return len(prompts)

        return call

    return [make(prompts, seeds) for prompts, seeds in groups]


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


def side_by_side_reference(composition: Composition) -> Composition | None:
    """What a variant's wall time is measured against, round by round in the same process.

    A batch composition against the same composition one prompt per call (a slower batch path moves
    that ratio and nothing else), any other variant against the baseline; the baseline against nothing.
    Between two processes the machine moves more than within one, and the ratio cancels that.
    """
    from pytest_sdxl.variants.registry import compose

    if composition.is_batch:
        return compose(name for name in composition.names if name != "batch")
    return None if not composition.names else compose([])


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


def measure_pipeline(
    pipeline: VariantPipeline,
    groups: Sequence[Group],
    runs: int = 1,
    rounds: int | None = None,
    driver: Driver = plain_driver,
    reference_images: np.ndarray | None = None,
    side_by_side: VariantPipeline | None = None,
    trace_path: Path | None = None,
    calls_at_one: int = 0,
    report: Report | None = None,
    split_stages: bool = True,
    count_flops: bool = True,
    profiled_runs: int = MAX_PROFILED_RUNS,
) -> PipelineMeasurement:
    """Warm up, time ``runs`` x ``rounds`` rounds, split the stages, profile; one record per run.

    ``rounds`` defaults to ``rounds_per_run`` (with the reference's calls). ``side_by_side`` (see
    ``side_by_side_reference``) runs one untimed-by-the-variant round of the same prompts before
    each timed round, timed by its own loop: each run then holds the reference's samples too. The
    records hold NaN for load, first generation and total: the caller that loaded the pipeline
    fills them in. The ``power`` command, which measures one pipeline over and over, leaves out the
    stage split and FLOPs and profiles fewer runs (``profiled_runs``, at most ``MAX_PROFILED_RUNS``).
    Peak memory comes from the stage-split pass, where the variant runs alone.
    """
    from pytest_sdxl.machine.devices import reset_peak_memory
    from pytest_sdxl.measure.device_signals import flops_by_stage, kernel_signals, trace_one_generation
    from pytest_sdxl.measure.energy import joules_per_image, open_counter
    from pytest_sdxl.measure.matrix_peak import matrix_peak
    from pytest_sdxl.measure.timing import SyncClock

    def say(step: str, detail: str = "") -> None:
        if report is not None:
            report(step, detail)

    reference_groups: list[Group] = []
    if side_by_side is not None:
        prompts = [prompt for group_prompts, _ in groups for prompt in group_prompts]
        seeds = [seed for _, group_seeds in groups for seed in group_seeds]
        reference_groups = call_groups(side_by_side.composition, prompts, seeds)
    per_run = rounds or rounds_per_run(groups, reference_groups)
    clock = SyncClock(pipeline.device)
    reset_peak_memory(pipeline.device)
    say("warm-up")
    started = clock.now()
    images, warmup_calls = warm_up(pipeline, groups, calls_at_one)
    warmup_s = clock.now() - started
    energy_counter, energy_reason = open_counter(pipeline.device)
    loop = TimedLoop(pipeline, groups, energy_counter)
    reference_loop = None
    if side_by_side is not None:
        warm_up(side_by_side, reference_groups)
        reference_loop = TimedLoop(side_by_side, reference_groups)
    say("timed", f"{runs * per_run} rounds of {len(groups)} call(s)")
    driver(loop.round, runs * per_run, reference_loop.round if reference_loop is not None else nothing)
    say("stage split")
    reset_peak_memory(pipeline.device)
    stages = stage_split(pipeline, groups) if split_stages else {}
    peak_memory = own_peak_memory_gb(pipeline)
    calls = call_functions(pipeline, groups)
    say("device signals")
    signals = [
        kernel_signals(pipeline.pipe, calls, pipeline.device)
        for _ in range(min(runs, profiled_runs, MAX_PROFILED_RUNS))
    ]
    flops, stage_flops = flops_by_stage(pipeline.pipe, calls[0]) if count_flops else (None, {})
    peak, peak_reason = matrix_peak(pipeline.device, pipeline.components.dtype) if count_flops else (None, "")
    for item in signals:
        item.flops = flops
        item.stage_flops = dict(stage_flops)
        item.matrix_peak_tflops, item.matrix_peak_not_applicable = peak, peak_reason
    if trace_path is not None:
        trace_one_generation(pipeline.pipe, calls[0], pipeline.device, trace_path)
    psnr = image_psnr(reference_images, images)
    records = []
    timed_s_per_run = []
    calls_images = [len(prompts) for prompts, _ in groups]
    # pytest-benchmark may run fewer rounds than asked (--benchmark-disable runs one): split what ran.
    blocks = split_into_runs(loop.rounds, runs)
    energy_blocks = split_into_runs(loop.round_joules, runs) if energy_counter is not None else []
    reference_blocks = split_into_runs(reference_loop.rounds, runs) if reference_loop is not None else []
    energy_reason = energy_counter.not_applicable if energy_counter is not None else energy_reason
    for number, block in enumerate(blocks, start=1):
        samples = [sample for one_round in block for sample in one_round]
        reference_block = reference_blocks[number - 1] if number <= len(reference_blocks) else []
        timed_s_per_run.append(
            math.fsum(
                sample * images for one_round in block for sample, images in zip(one_round, calls_images, strict=True)
            )
        )
        energy_block = energy_blocks[number - 1] if number <= len(energy_blocks) else []
        energy_j, energy_note = joules_per_image(list(energy_block), len(block) * images_in(groups), energy_reason)
        records.append(
            RunRecord(
                run=number,
                load_s=math.nan,
                init_gen_s=math.nan,
                gen_s=samples,
                avg_gen_s=statistics.fmean(samples),
                median_gen_s=statistics.median(samples),
                total_s=math.nan,
                stages=dict(stages),
                peak_gpu_mem_gb=peak_memory,
                psnr_db=psnr,
                warmup_calls=warmup_calls,
                device=signals[number - 1] if number <= len(signals) else None,
                reference=side_by_side.id if side_by_side is not None else "",
                reference_gen_s=[sample for one_round in reference_block for sample in one_round],
                wall_blocks=wall_blocks(block, reference_block),
                energy_j_per_image=energy_j,
                energy_not_applicable=energy_note,
            )
        )
    return PipelineMeasurement(
        runs=records,
        images=images,
        warmup_s=warmup_s,
        timed_s_per_run=timed_s_per_run,
        note=variant_note(pipeline.composition),
        flops=flops,
    )


def wall_blocks(own: Sequence[Sequence[float]], reference: Sequence[Sequence[float]]) -> list[list[float]]:
    """[min own, min reference] of each block of consecutive rounds holding ``WALL_BLOCK_SAMPLES`` of the
    variant's samples; a shorter rest joins the last block."""
    count = min(len(own), len(reference))
    if count == 0:
        return []
    size = max(1, math.ceil(WALL_BLOCK_SAMPLES / max(len(own[0]), 1)))
    starts = list(range(0, count, size))
    if len(starts) > 1 and count - starts[-1] < size:
        starts.pop()
    ends = [*starts[1:], count]
    return [
        [
            min(sample for one_round in own[start:end] for sample in one_round),
            min(sample for one_round in reference[start:end] for sample in one_round),
        ]
        for start, end in zip(starts, ends, strict=True)
    ]


def nothing() -> None:
    """The ``before`` of a measurement without a side-by-side reference."""


def split_into_runs(rounds: list[Round], runs: int) -> list[list[Round]]:
    """Consecutive blocks of rounds, one per run (fewer blocks when fewer rounds ran)."""
    if not rounds:
        return []
    count = min(runs, len(rounds))
    size = math.ceil(len(rounds) / count)
    return [rounds[start : start + size] for start in range(0, len(rounds), size)]
