"""The reference protocol: per variant, R runs of load, first generation and timed generations.

The protocol of the SDXL-Turbo optimization write-up (on an RTX 3060 Ti) this project started from:
1 + 4 prompts, 3 runs. One run, a fresh process there: a fresh load of every component (never the
in-process cache) plus applying the variant is **Load Time**; the first prompt's generation is **Init Gen
Time**; then the measurement core (``pytest_sdxl.measure.core``) warms every shape the timed calls
use and times at least ten calls over the other prompts, one pipeline call each (or one call for
all of them in batch mode): **Avg Gen Time** per image (mean and median). **Total Time** is load,
first generation, warm-up and timed calls. The stage split and the device signals come from the
core's untimed passes after the timed calls. Each run's images are compared with the baseline's
for the same prompts and seeds (PSNR, SSIM, and LPIPS where its weights are on disk).

A variant that cannot run here is ``skipped`` with the reason; one that fails (out of memory,
NaN images, any exception) is ``failed`` with a clear reason, its GPU memory is freed, and the
protocol carries on with the next variant.
"""

from __future__ import annotations

import dataclasses
import math
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from pytest_sdxl.errors import SettingsError, VariantUnavailable
from pytest_sdxl.machine.interrupts import LATCH
from pytest_sdxl.machine.probes import resolved_precision
from pytest_sdxl.measure.calls import seeds_for, side_by_side_reference, timed_groups
from pytest_sdxl.measure.core import measure_pipeline
from pytest_sdxl.measure.profiles import measuring_options, settings_block, timed_budget_s, variant_settings
from pytest_sdxl.measure.progress import Progress, ProgressEvent
from pytest_sdxl.measure.records import failure_reason, own_reference, variant_note
from pytest_sdxl.measure.session_budget import SessionDeadline
from pytest_sdxl.results.records import RunRecord, VariantRecord
from pytest_sdxl.results.schema import ResultSet, settings_as_dict
from pytest_sdxl.variants.registry import BASELINE, Composition, compose

if TYPE_CHECKING:
    from pytest_sdxl.settings import Settings

__all__ = [
    "Progress",
    "ProgressEvent",
    "RunRecord",
    "VariantRecord",
    "measure_run",
    "run_protocol",
    "run_variant",
]


def check_prompt_count(settings: Settings) -> None:
    if len(settings.prompts) < 2:
        raise SettingsError(
            f"the protocol needs at least 2 prompts (1 first generation + 1 or more timed), got "
            f"{len(settings.prompts)}; give a prompt file with more lines or use the default five"
        )


def forget_compiled_graphs() -> None:
    """Drop torch.compile's in-process caches so each run compiles afresh, as a new process would."""
    dynamo = sys.modules.get("torch._dynamo")
    if dynamo is not None:
        dynamo.reset()


def import_libraries() -> None:
    """Import what a load needs before the clock starts: Python's import time is not Load Time."""
    import diffusers
    import transformers

    for name in ("StableDiffusionXLPipeline", "AutoencoderKL", "AutoencoderTiny", "UNet2DConditionModel"):
        getattr(diffusers, name)
    for name in ("CLIPTextModel", "CLIPTextModelWithProjection"):
        getattr(transformers, name)


def measure_run(
    settings: Settings,
    composition: Composition,
    run: int,
    reference_images: np.ndarray | None,
    progress: Progress | None = None,
    trace_path: Path | None = None,
    session_share_s: float = math.inf,
) -> tuple[RunRecord, np.ndarray, int]:
    """One run from a fresh load; returns its record, the timed prompts' images and the image size.

    ``session_share_s``: what a session budget leaves this run of the variant (``measure_variant``).
    """
    from pytest_sdxl.machine.compile_cache import CacheProbe
    from pytest_sdxl.machine.devices import free_memory, resolve_device, resolve_dtype
    from pytest_sdxl.measure.timing import SyncClock
    from pytest_sdxl.pipelines.process_age import first_timed_round_s
    from pytest_sdxl.pipelines.sources import image_size_for, load_components
    from pytest_sdxl.variants.assembly import VariantPipeline

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
    pipeline = reference = None
    try:
        report("load")
        started = clock.now()
        components = load_components(settings.model, device, dtype, settings.tiny_vae, settings.fp16_vae)
        size = image_size_for(settings, components)
        pipeline = VariantPipeline(components, composition, size, settings.steps, max(session_share_s, 0.0))
        del components  # the pipeline holds what it needs; nothing else may keep GPU memory alive
        loaded = clock.now()
        report("first generation")
        probe = CacheProbe()
        probe.start()
        pipeline.generate(prompts[:1], seeds[:1])
        first_done = clock.now()
        cache_use = probe.stop().describe()
        beside = side_by_side_reference(composition)
        if beside is not None:  # built after the clock: the reference is the harness's, not the variant's load
            reference = VariantPipeline(pipeline.components, beside, size, settings.steps)
        # The variant's budget is shared by its runs, each a fresh load.
        options = measuring_options(settings, 1, device.type, 1 / settings.runs)
        measured = measure_pipeline(
            pipeline,
            timed_groups(composition, prompts, seeds),
            dataclasses.replace(options, report=report, calls_at_one=1, trace_path=trace_path),
            side_by_side=reference,
            reference_images=reference_images if options.quality else None,
        )
        record = measured.runs[0]
        record.run = run
        record.load_s = loaded - started
        record.init_gen_s = first_done - loaded
        record.total_s = record.load_s + record.init_gen_s + measured.warmup_s + measured.timed_s_per_run[0]
        record.compile_cache = cache_use
        record.process_start_s = first_timed_round_s() if run == 1 else None
        return record, measured.images, size
    finally:
        for built in (pipeline, reference):
            if built is not None:
                built.close()
        pipeline = reference = None
        free_memory(device)


def measure_variant(
    settings: Settings,
    composition: Composition,
    reference: np.ndarray | None,
    progress: Progress | None = None,
    on_run: Callable[[VariantRecord, int | None], None] | None = None,
    carried: VariantRecord | None = None,
    session_share_s: float = math.inf,
) -> tuple[VariantRecord, np.ndarray | None, int | None]:
    """Every run of one variant; returns the record, the first run's images and the image size.

    ``on_run`` gets the record after each run, marked partial ("running") until the last, and the image
    size. ``carried``: the variant's runs from an interrupted session, continued from the run after its last.
    ``session_share_s``: under a session budget, the seconds it leaves this variant, everything counted (a
    compile that can give up gives up there, ``variants.definition.Context``).
    The variant's budget of timed rounds is the settings' (``run_protocol`` puts a session budget's share
    there), shared by its runs and recorded as ``budget_s``.
    """
    from pytest_sdxl.machine.devices import device_type

    check_prompt_count(settings)
    started = time.perf_counter()
    if carried is None:
        record = VariantRecord(variant=composition.id, kind=composition.kind, note=variant_note(composition))
    else:
        record = dataclasses.replace(carried, runs=list(carried.runs))
    earlier_s = record.measure_s or 0.0
    record.partial = "running"
    budget_s = timed_budget_s(settings, device_type(settings.device))
    record.budget_s = None if budget_s is None else round(budget_s, 3)
    first_images: np.ndarray | None = None
    size: int | None = None
    for run in range(len(record.runs) + 1, settings.runs + 1):
        # One generation's Chrome trace a variant is enough to read; the first run's is kept.
        trace = trace_file(settings, composition) if run == 1 else None
        try:
            LATCH.raise_if_pressed()  # a Ctrl-C a finalizer swallowed during the last run stops here
            share_left_s = session_share_s - (time.perf_counter() - started)
            run_record, images, size = measure_run(settings, composition, run, reference, progress, trace, share_left_s)
        except VariantUnavailable as error:
            record.status, record.reason = "skipped", str(error)
            break
        except Exception as error:  # one variant's failure must not stop the others
            if LATCH.pressed:
                # A Ctrl-C that landed in library code which turned it into another exception (or one raised
                # while unwinding from it) is the interrupt, not the variant's failure: the run is not recorded.
                LATCH.pressed = False
                raise KeyboardInterrupt from error
            record.status, record.reason = "failed", f"run {run}: {failure_reason(error)}"
            break
        if first_images is None:
            first_images = images
            if reference is None and composition.id == BASELINE:
                # The baseline is its own reference: later runs show whether it is deterministic.
                reference = images
                own_reference(run_record)
        record.runs.append(run_record)
        record.measure_s = round(earlier_s + time.perf_counter() - started, 1)
        if on_run is not None:
            on_run(record, size)
    record.partial = ""
    uses = [f"run {item.run} {item.compile_cache}" for item in record.runs if item.compile_cache]
    record.compile_cache = "; ".join(uses)
    if record.status == "failed":
        from pytest_sdxl.machine.devices import free_memory

        # The exception's traceback kept the failed run's tensors alive until now: hand them back.
        free_memory()
    record.measure_s = round(earlier_s + time.perf_counter() - started, 1)
    if progress is not None:
        progress(ProgressEvent(composition.id, 0, settings.runs, record.status, record.reason))
    return record, first_images, size


def run_variant(
    settings: Settings,
    composition: Composition,
    baseline_images: np.ndarray | None = None,
    progress: Progress | None = None,
) -> VariantRecord:
    """The reference protocol for one variant: ``settings.runs`` runs, each from a fresh load."""
    return measure_variant(settings, composition, baseline_images, progress)[0]


def trace_file(settings: Settings, composition: Composition) -> Path | None:
    """Where ``--trace DIR`` keeps this variant's Chrome trace (``DIR/<variant>.json``), or None."""
    folder = getattr(settings, "trace", None)
    return None if folder is None else Path(folder) / f"{composition.id}.json"


def reference_images(settings: Settings, progress: Progress | None = None) -> np.ndarray | None:
    """The baseline's images of the timed prompts and their seeds (untimed), or None if it cannot run."""
    from pytest_sdxl.pipelines.sources import components_for, image_size_for
    from pytest_sdxl.variants.assembly import VariantPipeline

    if progress is not None:
        progress(ProgressEvent(BASELINE, 0, settings.runs, "reference images for PSNR"))
    pipeline = None
    try:
        components = components_for(settings, cache=False)
        pipeline = VariantPipeline(components, compose([]), image_size_for(settings, components), settings.steps)
        del components
        return pipeline.generate(list(settings.prompts[1:]), seeds_for(settings)[1:])
    except Exception:  # without a reference the variants still run; their PSNR stays empty
        return None
    finally:
        if pipeline is not None:
            pipeline.close()


def run_protocol(
    settings: Settings,
    compositions: Sequence[Composition] | None = None,
    progress: Progress | None = None,
    on_save: Callable[[ResultSet], None] | None = None,
    carried: Mapping[str, VariantRecord] | None = None,
    session_id: str | None = None,
) -> ResultSet:
    """The protocol over the compositions (default: the settings' variants, ``Settings.default_variants``).

    The baseline runs first so every other variant's PSNR has a reference; without the baseline in
    the list, its images are generated once, untimed. ``on_save`` gets the result set after every run
    and at every variant's end (the command line saves it there, so an interrupted run keeps every run
    it finished); a variant still being measured is marked partial. ``carried``: variants that an
    interrupted session measured in part, by id, continued from their next run. ``session_id``: the
    result set's (results.sessions), where the caller chose it.

    Under a session budget (``Settings.session_budget``, ``measure.session_budget``) the deadline starts
    here; each variant is measured under its share of what is left, and the result set's settings say
    how long the measuring took and how far past the deadline it ended (``session_overrun_s``).
    """
    from pytest_sdxl.machine.devices import device_type, threads_in_use
    from pytest_sdxl.machine.probes import machine_info

    check_prompt_count(settings)
    deadline = None if settings.session_budget is None else SessionDeadline(settings.session_budget)
    chosen = list(
        compositions if compositions is not None else settings.default_variants(device_type(settings.device))[0]
    )
    baseline = compose([])
    order = sorted(chosen, key=lambda composition: composition != baseline)
    result = ResultSet(settings=settings_as_dict(settings), machine=machine_info(settings.device))
    result.settings.update(resolved_precision(settings))
    result.settings.update(settings_block(settings))
    # After resolved_precision, which resolved the device and so applied the CPU's thread default.
    result.settings.update(threads_in_use())
    if session_id is not None:
        result.session_ids = [session_id]
    wants_quality = settings.profile != "gate"
    reference = None if baseline in chosen or not wants_quality else reference_images(settings, progress)
    records: dict[str, VariantRecord] = {}

    def keep(record: VariantRecord, size: int | None) -> None:
        if size is not None:
            result.settings.setdefault("image_size", size)
        records[record.variant] = record
        result.variants = [records[item.id] for item in chosen if item.id in records]
        if deadline is not None:
            result.settings.update(deadline.recorded())
        if on_save is not None:
            on_save(result)

    kind = device_type(settings.device)
    for index, composition in enumerate(order):
        measured_under = variant_settings(settings, deadline, kind, len(order) - index)
        share_s = math.inf if deadline is None else deadline.equal_part_s(len(order) - index)
        # By position, so that a wrapper of measure_variant taking (settings, composition, *rest) passes them on.
        record, images, size = measure_variant(
            measured_under, composition, reference, progress, keep, (carried or {}).get(composition.id), share_s
        )
        if composition == baseline and images is not None:
            reference = images
        keep(record, size)
    return result
