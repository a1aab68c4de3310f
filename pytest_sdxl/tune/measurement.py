"""The ``tune`` search's measuring function: each candidate built from shared components and timed by the core.

Components are built or loaded once; each candidate gets its own ``VariantPipeline`` (sharing what it
does not change), measured by ``measure.core.measure_pipeline`` (warm-up, ``runs`` runs of timed
rounds, the stage split for peak memory, one profiled pass for kernel time), then closed so the
next candidate starts with its GPU memory back.

Batch size: at batch 1 a round is one call per prompt. At batch size B a batch composition makes one
call of B prompts, the prompts repeated to fill it and prompt i seeded ``seed + i`` as everywhere, so
its first images have the baseline's prompts and seeds and are compared with them (PSNR, SSIM, and
LPIPS where its weights are on disk).
"""

from __future__ import annotations

import statistics
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING

import numpy as np

from pytest_sdxl.measure.calls import Group, call_groups, seeds_for
from pytest_sdxl.measure.core import MeasuringOptions, measure_pipeline
from pytest_sdxl.measure.records import image_quality
from pytest_sdxl.tune.candidates import Candidate, Measurement, TuneResult
from pytest_sdxl.tune.options import TuneOptions
from pytest_sdxl.tune.search import search
from pytest_sdxl.variants.registry import Composition

if TYPE_CHECKING:
    from pytest_sdxl.settings import Settings

# Profiled passes a candidate: one. Kernel time moves well under 1 % from pass to pass, enough to rank
# candidates, and each pass costs seconds on a large GPU: with three, a 4-minute search measured only
# single variants (the user guide's method page, "Profiled passes").
TUNE_PROFILED_RUNS = 1


def filled_batch(prompts: Sequence[str], first_seed: int, batch_size: int) -> tuple[list[str], list[int]]:
    """``batch_size`` prompts, the given ones repeated in order, prompt i seeded ``first_seed + i``."""
    filled = [prompts[index % len(prompts)] for index in range(batch_size)]
    return filled, [first_seed + index for index in range(batch_size)]


def round_groups(composition: Composition, settings: Settings, batch_size: int) -> list[Group]:
    """The calls of one timed round: every prompt one by one, or one call of ``batch_size`` in batch mode."""
    if composition.is_batch:
        prompts, seeds = filled_batch(settings.prompts, settings.seed, batch_size)
        return call_groups(composition, prompts, seeds)
    return call_groups(composition, list(settings.prompts), seeds_for(settings))


class CoreMeasurer:
    """Measures a composition at a batch size through the measurement core; keeps the baseline's images."""

    def __init__(
        self, settings: Settings, runs: int, rounds: int | None, report: Callable[[str, str], None] | None
    ) -> None:
        from pytest_sdxl.pipelines.sources import components_for, image_size_for

        self.settings = settings
        self.runs = runs
        self.rounds = rounds
        self.report = report
        self.components = components_for(settings)
        self.size = image_size_for(settings, self.components)
        self.baseline_images: np.ndarray | None = None

    def unmet(self, composition: Composition) -> list[str]:
        dtype_name = str(self.components.dtype).removeprefix("torch.")
        return composition.unmet_requirements(self.components.device.type, dtype_name)

    def __call__(self, composition: Composition, batch_size: int) -> Measurement:
        from pytest_sdxl.machine.devices import release_after_failure
        from pytest_sdxl.variants.assembly import VariantPipeline

        groups = round_groups(composition, self.settings, batch_size)
        pipeline = None
        try:
            pipeline = VariantPipeline(self.components, composition, self.size, self.settings.steps)
            options = MeasuringOptions(
                runs=self.runs,
                rounds=self.rounds,
                report=self.report,
                count_flops=False,
                profiled_runs=TUNE_PROFILED_RUNS,
                lpips_weights=self.settings.lpips_weights,
            )
            measured = measure_pipeline(pipeline, groups, options)
        except Exception as error:
            if pipeline is not None:
                pipeline.close()
                pipeline = None
            release_after_failure(error, self.components.device)
            raise
        finally:
            if pipeline is not None:
                pipeline.close()
        images = measured.images
        quality = None
        if not composition.names and batch_size == 1:
            self.baseline_images = images
        elif self.baseline_images is not None:
            compared = min(len(images), len(self.baseline_images))
            quality = image_quality(self.baseline_images[:compared], images[:compared], self.settings.lpips_weights)
        kernel = [value for run in measured.runs if run.device is not None for value in run.device.kernel_ms]
        return Measurement(
            run_minima_ms=tuple(min(run.gen_s) * 1000 for run in measured.runs),
            kernel_ms=statistics.median(kernel) if kernel else None,
            psnr_db=None if quality is None else quality.psnr_db,
            peak_gpu_mem_gb=measured.runs[0].peak_gpu_mem_gb,
            ssim=None if quality is None else quality.ssim,
            lpips=None if quality is None else quality.lpips,
            lpips_not_applicable="" if quality is None else quality.lpips_not_applicable,
        )


def options_for_weights(settings: Settings, options: TuneOptions) -> TuneOptions:
    """The options with what is known about random weights: the model's, and each replacement VAE's."""
    from dataclasses import replace

    from pytest_sdxl.pipelines.sources import RANDOM_VAE, architecture_of

    random_parts = frozenset(
        name
        for name, source in (("tiny_vae", settings.tiny_vae), ("fp16_vae", settings.fp16_vae))
        if source == RANDOM_VAE
    )
    return replace(
        options, random_weights=architecture_of(settings.model) is not None, random_weight_variants=random_parts
    )


def tune_settings(
    settings: Settings,
    names: Sequence[str],
    options: TuneOptions,
    runs: int,
    rounds: int | None = None,
    on_candidate: Callable[[Candidate], None] | None = None,
    report: Callable[[str, str], None] | None = None,
    known: Mapping[tuple[str, int], Measurement] | None = None,
) -> TuneResult:
    """The search over ``names`` on the settings' model and device, every candidate measured by the core.

    ``known``: an earlier call's measurements (``tune.resume.read_known``), reused instead of measured.
    """
    measurer = CoreMeasurer(settings, runs, rounds, report)
    return search(
        names,
        measurer,
        options_for_weights(settings, options),
        unmet=measurer.unmet,
        on_candidate=on_candidate,
        known=known,
    )
