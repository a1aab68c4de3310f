"""From what the measurement core timed to the records a results file keeps.

The timed rounds are cut into runs, each run into wall blocks beside its side-by-side reference, and
each run gets its record with the figures measured once for all of them (stage split, peak memory,
image quality) and the summary of the GPU state read after each of its rounds. Also what a
variant's record says in words: its note and why it failed. Nothing here runs a pipeline or reads
a clock (``core`` does both).
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

import numpy as np

from pytest_sdxl.analysis.quality import QualityScores
from pytest_sdxl.errors import ImageCheckError
from pytest_sdxl.machine import host_state
from pytest_sdxl.machine.gpu_state import GpuStateSample, summarize
from pytest_sdxl.machine.process_identity import process_id
from pytest_sdxl.measure.energy import joules_per_image
from pytest_sdxl.results.records import DeviceSignals, RunRecord

if TYPE_CHECKING:
    from pytest_sdxl.variants.registry import Composition

# Samples of the variant in one wall block when a side-by-side reference is timed: each block's variant
# and reference minima are one point of the host-adjusted wall test (analysis/host_adjusted.py). Blocks of
# 12 batch calls caught a 5 % host-side slowdown of the batch path in 9 of 10 trials, with no false alarm
# in 10 unchanged ones, where the ratio of minima over three runs of 30 calls caught 1 in 10 (the user
# guide's method page, "Blocks of rounds and the host-adjusted wall test").
WALL_BLOCK_SAMPLES = 12
# One timed round as split into runs: its samples, or its joules.
# What a baseline run says of its LPIPS: it is the reference (PSNR infinite, SSIM 1 by definition).
OWN_REFERENCE = "the reference images themselves"
Round = TypeVar("Round")


@dataclass
class TimedRounds:
    """What the timed rounds left: seconds per image of each call, round by round, for both sides, and energy."""

    own: list[list[float]]
    # The side-by-side reference's rounds and its id; empty without one.
    reference: list[list[float]] = field(default_factory=list)
    reference_id: str = ""
    # Joules of each of the variant's rounds (None where a read failed); None where no energy counter opened.
    joules: list[float | None] | None = None
    # Why there is no energy figure, read after the rounds (a read that failed during them says why).
    energy_reason: str = ""
    # The GPU's state read after each of the variant's rounds (None where a read failed), and why there is none.
    gpu_states: list[GpuStateSample | None] = field(default_factory=list)
    gpu_state_reason: str = ""
    # How much of each of the variant's rounds, and of its reference's, the host kept the timing thread from a CPU.
    host_states: list[host_state.HostStateSample] = field(default_factory=list)
    reference_host_states: list[host_state.HostStateSample] = field(default_factory=list)
    # Each call's wait for a CPU, seconds per image, round by round beside ``own`` and ``reference`` (a round
    # without them is empty).
    own_waits: list[list[float]] = field(default_factory=list)
    reference_waits: list[list[float]] = field(default_factory=list)


@dataclass(frozen=True)
class SharedFigures:
    """What one measurement measures once and every run's record carries: from the untimed passes and the warm-up."""

    stages: dict[str, float]
    peak_gpu_mem_gb: float | None
    # The warm-up's images against the baseline's (PSNR, SSIM, LPIPS); None without a reference.
    quality: QualityScores | None
    warmup_calls: int


def split_into_runs(rounds: list[Round], runs: int) -> list[list[Round]]:
    """Consecutive blocks of rounds, one per run (fewer blocks when fewer rounds ran)."""
    if not rounds:
        return []
    count = min(runs, len(rounds))
    size = math.ceil(len(rounds) / count)
    return [rounds[start : start + size] for start in range(0, len(rounds), size)]


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


def nth_block(blocks: Sequence[Sequence[Round]], number: int) -> Sequence[Round]:
    """Run ``number``'s block (counted from 1), empty where fewer runs than that were recorded."""
    return blocks[number - 1] if number <= len(blocks) else []


def call_waits(
    rounds: Sequence[Sequence[float]], wait_blocks: Sequence[Sequence[list[float]]], number: int
) -> list[float]:
    """Run ``number``'s waits for a CPU beside its samples (``rounds``), call by call; empty unless every round
    has them."""
    waits = nth_block(wait_blocks, number)
    if len(waits) != len(rounds) or any(len(wait) != len(one) for wait, one in zip(waits, rounds, strict=True)):
        return []
    return [wait for one_round in waits for wait in one_round]


def timed_seconds_per_run(timed: TimedRounds, runs: int, images_per_call: Sequence[int]) -> list[float]:
    """Seconds inside the timed calls of each run: each call's seconds per image times its images."""
    return [
        math.fsum(
            sample * images for one_round in block for sample, images in zip(one_round, images_per_call, strict=True)
        )
        for block in split_into_runs(timed.own, runs)
    ]


def run_records(
    timed: TimedRounds,
    runs: int,
    images_per_call: Sequence[int],
    signals: Sequence[DeviceSignals],
    shared: SharedFigures,
) -> list[RunRecord]:
    """One record per run of the timed rounds (pytest-benchmark may run fewer rounds than asked: what ran is split).

    Load, first generation and total are NaN: the caller that loaded the pipeline fills them in. The
    profiled passes' signals go to the first runs, one each.
    """
    blocks = split_into_runs(timed.own, runs)
    energy_blocks = split_into_runs(timed.joules, runs) if timed.joules is not None else []
    reference_blocks = split_into_runs(timed.reference, runs)
    gpu_state_blocks = split_into_runs(timed.gpu_states, runs)
    host_state_blocks = split_into_runs(timed.host_states, runs)
    reference_host_blocks = split_into_runs(timed.reference_host_states, runs)
    own_wait_blocks = split_into_runs(timed.own_waits, runs)
    reference_wait_blocks = split_into_runs(timed.reference_waits, runs)
    images_per_round = sum(images_per_call)
    records = []
    for number, block in enumerate(blocks, start=1):
        samples = [sample for one_round in block for sample in one_round]
        reference_block = nth_block(reference_blocks, number)
        energy_block = nth_block(energy_blocks, number)
        energy_j, energy_note = joules_per_image(list(energy_block), len(block) * images_per_round, timed.energy_reason)
        gpu_states = nth_block(gpu_state_blocks, number)
        # The run's timed calls are the variant's and its reference's: the wall ratio reads both.
        host_states = [*nth_block(host_state_blocks, number), *nth_block(reference_host_blocks, number)]
        quality = shared.quality
        records.append(
            RunRecord(
                run=number,
                load_s=math.nan,
                init_gen_s=math.nan,
                gen_s=samples,
                avg_gen_s=statistics.fmean(samples),
                median_gen_s=statistics.median(samples),
                total_s=math.nan,
                stages=dict(shared.stages),
                peak_gpu_mem_gb=shared.peak_gpu_mem_gb,
                psnr_db=None if quality is None else quality.psnr_db,
                ssim=None if quality is None else quality.ssim,
                lpips=None if quality is None else quality.lpips,
                lpips_not_applicable="" if quality is None else quality.lpips_not_applicable,
                warmup_calls=shared.warmup_calls,
                device=signals[number - 1] if number <= len(signals) else None,
                reference=timed.reference_id,
                reference_gen_s=[sample for one_round in reference_block for sample in one_round],
                wall_blocks=wall_blocks(block, reference_block),
                energy_j_per_image=energy_j,
                energy_not_applicable=energy_note,
                gpu_state=summarize(gpu_states, timed.gpu_state_reason),
                host_state=host_state.summarize(host_states),
                gen_waited_s=call_waits(block, own_wait_blocks, number),
                reference_waited_s=call_waits(reference_block, reference_wait_blocks, number),
                process=process_id(),
            )
        )
    return records


def image_quality(
    reference: np.ndarray | None, images: np.ndarray, lpips_weights: Path | None = None
) -> QualityScores | None:
    """The images' PSNR, SSIM and (with local weights) LPIPS against the reference's; None without a reference
    of the same shape."""
    from pytest_sdxl.analysis.quality import measure_quality

    if reference is None or reference.shape != images.shape:
        return None
    # Checked images hold no NaN; a decoder's last rounding step may leave a value a hair outside [0, 1].
    return measure_quality(np.clip(reference, 0.0, 1.0), np.clip(images, 0.0, 1.0), lpips_weights)


def own_reference(run: RunRecord) -> None:
    """Mark a baseline run as its own reference: its images are the ones the others are compared with."""
    run.psnr_db, run.ssim, run.lpips = math.inf, 1.0, None
    run.lpips_not_applicable = OWN_REFERENCE


def variant_note(composition: Composition) -> str:
    """What a reader of this variant's figures must know (empty when nothing)."""
    notes = [composition.no_effect_reason()] if composition.no_effect_reason() else []
    if composition.has("cached_embeds"):
        notes.append(
            "the warm-up encodes every timed prompt, so the timed calls reuse the cached "
            "embeddings (the prompts repeat, as in serving); text encoding is paid once per prompt, untimed"
        )
    return "; ".join(notes)


def failure_reason(error: BaseException) -> str:
    """One line that says what went wrong: out of memory, a bad image, or the exception itself."""
    from pytest_sdxl.machine.devices import is_out_of_memory

    text = str(error).strip().splitlines()[0] if str(error).strip() else ""
    if is_out_of_memory(error):
        return f"out of memory: {text}"[:500]
    if isinstance(error, ImageCheckError):
        return f"bad images: {text}"[:500]
    return f"{type(error).__name__}: {text}"[:500]
