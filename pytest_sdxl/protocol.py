"""The notes' protocol: per variant, R runs of load, first generation and timed generations.

One run, as in the notes' Run 1..3: a fresh load of every component (never the in-process
cache) plus applying the variant is **Load Time**; the first prompt's generation is **Init Gen
Time**; the remaining prompts, one pipeline call each (or one call for all of them in batch
mode), give **Avg Gen Time** per image (mean and median); **Total Time** is the wall time of
the whole run. Every reading is taken with the device synchronized. The stage timer is attached
during the timed generations only, so the stages split exactly the generations that are averaged.
Each run's images are compared with the baseline's for the same prompts and seeds (PSNR).

A variant that cannot run here is ``skipped`` with the reason; one that fails (out of memory,
NaN images, any exception) is ``failed`` with a clear reason, its GPU memory is freed, and the
protocol carries on with the next variant.
"""

from __future__ import annotations

import math
import statistics
import sys
from collections.abc import Callable, Sequence
from contextlib import nullcontext
from typing import Any

import numpy as np

from pytest_sdxl.errors import ImageCheckError, SettingsError, VariantUnavailable
from pytest_sdxl.images import check_images
from pytest_sdxl.machine import peak_memory_gb, reset_peak_memory, resolved_precision
from pytest_sdxl.progress import Progress, ProgressEvent
from pytest_sdxl.results import ResultSet, RunRecord, VariantRecord, settings_as_dict
from pytest_sdxl.variants import BASELINE, Composition, all_single_variants, compose

# peak_memory_gb and reset_peak_memory live in machine.py; the plugin imports them from here too.
__all__ = [
    "Progress",
    "ProgressEvent",
    "RunRecord",
    "VariantRecord",
    "peak_memory_gb",
    "reset_peak_memory",
    "run_protocol",
    "run_variant",
]


def check_prompt_count(settings: Any) -> None:
    if len(settings.prompts) < 2:
        raise SettingsError(
            f"the protocol needs at least 2 prompts (1 first generation + 1 or more timed), got "
            f"{len(settings.prompts)}; give a prompt file with more lines or use the default five"
        )


def seeds_for(settings: Any) -> list[int]:
    """Prompt i uses seed + i, whatever the variant: the same prompt and seed give the same image."""
    return [settings.seed + index for index in range(len(settings.prompts))]


def forget_compiled_graphs() -> None:
    """Drop torch.compile's in-process caches so each run compiles afresh, like the notes' new process."""
    dynamo = sys.modules.get("torch._dynamo")
    if dynamo is not None:
        dynamo.reset()


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


def image_psnr(reference: np.ndarray | None, images: np.ndarray) -> float | None:
    from pytest_sdxl.images import psnr

    if reference is None or reference.shape != images.shape:
        return None
    return psnr(reference, images)


def timed_groups(
    composition: Composition, prompts: Sequence[str], seeds: Sequence[int]
) -> list[tuple[list[str], list[int]]]:
    """The timed generations after the first: one call per prompt, or one call for all in batch mode."""
    rest = list(zip(prompts[1:], seeds[1:], strict=True))
    if composition.is_batch:
        return [([prompt for prompt, _ in rest], [seed for _, seed in rest])]
    return [([prompt], [seed]) for prompt, seed in rest]


def time_generations(
    pipeline: Any,
    groups: list[tuple[list[str], list[int]]],
    clock: Any,
    timer: Any,
    stage_timer: bool = True,
    report: Callable[[str, str], None] | None = None,
) -> tuple[list[float], list[np.ndarray]]:
    """The protocol's timed loop: seconds per image of each generation, and the images.

    Each generation sits between two synchronized clock readings; the stage timer (attached
    only for this loop when ``stage_timer``) marks it whole, so its stages split exactly it.
    """
    gen_s: list[float] = []
    images: list[np.ndarray] = []
    if stage_timer:
        timer.attach()
    try:
        for index, (group_prompts, group_seeds) in enumerate(groups, start=1):
            if report is not None:
                report("generation", f"{index}/{len(groups)}")
            start = clock.now()
            with timer.generation() if stage_timer else nullcontext():
                generated = pipeline.generate(group_prompts, group_seeds, check=False)
            gen_s.append((clock.now() - start) / len(group_prompts))
            # Checked outside the timed region: the check is the harness's work, not the pipeline's.
            images.append(check_images(generated, pipeline.id))
    finally:
        timer.detach()
    return gen_s, images


def import_libraries() -> None:
    """Import what a load needs before the clock starts: Python's import time is not Load Time."""
    import diffusers
    import transformers

    for name in ("StableDiffusionXLPipeline", "AutoencoderKL", "AutoencoderTiny", "UNet2DConditionModel"):
        getattr(diffusers, name)
    for name in ("CLIPTextModel", "CLIPTextModelWithProjection"):
        getattr(transformers, name)


def measure_run(
    settings: Any,
    composition: Composition,
    run: int,
    reference: np.ndarray | None,
    progress: Progress | None = None,
    stage_timer: bool = True,
) -> tuple[RunRecord, np.ndarray, int]:
    """One run from a fresh load; returns its record, all its images (first prompt first) and the image size."""
    from pytest_sdxl.assembly import VariantPipeline
    from pytest_sdxl.devices import free_memory, resolve_device, resolve_dtype
    from pytest_sdxl.sources import image_size_for, load_components
    from pytest_sdxl.timing import StageTimer, SyncClock

    def report(step: str, detail: str = "") -> None:
        if progress is not None:
            progress(ProgressEvent(composition.id, run, settings.runs, step, detail))

    device = resolve_device(settings.device)
    dtype = resolve_dtype(settings.dtype, device)
    import_libraries()
    clock = SyncClock(device)
    prompts, seeds = list(settings.prompts), seeds_for(settings)
    forget_compiled_graphs()
    free_memory(device)
    reset_peak_memory(device)
    pipeline = None
    try:
        report("load")
        started = clock.now()
        components = load_components(settings.model, device, dtype, settings.tiny_vae, settings.fp16_vae)
        size = image_size_for(settings, components)
        pipeline = VariantPipeline(components, composition, size, settings.steps)
        del components  # the pipeline holds what it needs; nothing else may keep GPU memory alive
        loaded = clock.now()
        report("first generation")
        images = [pipeline.generate(prompts[:1], seeds[:1])]
        first_done = clock.now()
        timer = StageTimer(pipeline.pipe, device)
        groups = timed_groups(composition, prompts, seeds)
        gen_s, timed_images = time_generations(pipeline, groups, clock, timer, stage_timer, report)
        images += timed_images
        finished = clock.now()
        stage_times = timer.read()
        all_images = np.concatenate(images, axis=0)
        record = RunRecord(
            run=run,
            load_s=loaded - started,
            init_gen_s=first_done - loaded,
            gen_s=gen_s,
            avg_gen_s=statistics.fmean(gen_s),
            median_gen_s=statistics.median(gen_s),
            total_s=finished - started,
            stages=stages_per_image(stage_times, len(prompts) - 1) if stage_timer else {},
            peak_gpu_mem_gb=peak_memory_gb(device),
            psnr_db=image_psnr(reference, all_images),
        )
        return record, all_images, size
    finally:
        if pipeline is not None:
            pipeline.close()
        pipeline = None
        free_memory(device)


def failure_reason(error: BaseException) -> str:
    """One line that says what went wrong: out of memory, a bad image, or the exception itself."""
    from pytest_sdxl.devices import is_out_of_memory

    text = str(error).strip().splitlines()[0] if str(error).strip() else ""
    if is_out_of_memory(error):
        return f"out of memory: {text}"[:500]
    if isinstance(error, ImageCheckError):
        return f"bad images: {text}"[:500]
    return f"{type(error).__name__}: {text}"[:500]


def measure_variant(
    settings: Any,
    composition: Composition,
    reference: np.ndarray | None,
    progress: Progress | None = None,
) -> tuple[VariantRecord, np.ndarray | None, int | None]:
    """Every run of one variant; returns the record, the first run's images and the image size."""
    check_prompt_count(settings)
    record = VariantRecord(variant=composition.id, kind=composition.kind)
    first_images: np.ndarray | None = None
    size: int | None = None
    for run in range(1, settings.runs + 1):
        try:
            run_record, images, size = measure_run(settings, composition, run, reference, progress)
        except VariantUnavailable as error:
            record.status, record.reason = "skipped", str(error)
            break
        except Exception as error:  # one variant's failure must not stop the others
            record.status, record.reason = "failed", f"run {run}: {failure_reason(error)}"
            break
        if first_images is None:
            first_images = images
            if reference is None and composition.id == BASELINE:
                # The baseline is its own reference: later runs show whether it is deterministic.
                reference = images
                run_record.psnr_db = math.inf
        record.runs.append(run_record)
    if record.status == "failed":
        from pytest_sdxl.devices import free_memory

        # The exception's traceback kept the failed run's tensors alive until now: hand them back.
        free_memory()
    if progress is not None:
        progress(ProgressEvent(composition.id, 0, settings.runs, record.status, record.reason))
    return record, first_images, size


def run_variant(
    settings: Any,
    composition: Composition,
    baseline_images: np.ndarray | None = None,
    progress: Progress | None = None,
) -> VariantRecord:
    """The notes' protocol for one variant: ``settings.runs`` runs, each from a fresh load."""
    return measure_variant(settings, composition, baseline_images, progress)[0]


def reference_images(settings: Any, progress: Progress | None = None) -> np.ndarray | None:
    """The baseline's images for the settings' prompts and seeds (untimed), or None if it cannot run."""
    if progress is not None:
        progress(ProgressEvent(BASELINE, 0, settings.runs, "reference images for PSNR"))
    try:
        _, images, _ = measure_run(settings.with_changes(runs=1), compose([]), 1, None, stage_timer=False)
    except Exception:  # without a reference the variants still run; their PSNR stays empty
        return None
    return images


def run_protocol(
    settings: Any,
    compositions: Sequence[Composition] | None = None,
    progress: Progress | None = None,
    on_variant: Callable[[ResultSet], None] | None = None,
) -> ResultSet:
    """The protocol over the compositions (default: the settings' variants, else all single variants).

    The baseline runs first so every other variant's PSNR has a reference; without the baseline in
    the list, its images are generated once, untimed. ``on_variant`` gets the result set after each
    variant (the command line saves it there, so an interrupted run keeps what was measured).
    """
    from pytest_sdxl.machine import machine_info

    check_prompt_count(settings)
    chosen = list(compositions if compositions is not None else settings.variants or all_single_variants())
    baseline = compose([])
    order = sorted(chosen, key=lambda composition: composition != baseline)
    result = ResultSet(settings=settings_as_dict(settings), machine=machine_info(settings.device))
    result.settings.update(resolved_precision(settings))
    reference = None if baseline in chosen else reference_images(settings, progress)
    records: dict[str, VariantRecord] = {}
    for composition in order:
        record, images, size = measure_variant(settings, composition, reference, progress)
        if composition == baseline and images is not None:
            reference = images
        if size is not None:
            result.settings.setdefault("image_size", size)
        records[composition.id] = record
        result.variants = [records[item.id] for item in chosen if item.id in records]
        if on_variant is not None:
            on_variant(result)
    return result
