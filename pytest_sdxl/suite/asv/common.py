"""Shared state of the asv suite, built lazily: settings, variants, components, pipelines, ratios.

asv imports the suite to discover it and again in every benchmark process, so importing it must
stay cheap: nothing here imports torch, diffusers or transformers at module level. Components are
loaded on first use and kept for the life of one benchmark process.

Every setting comes from the ``PYTEST_SDXL_*`` environment variables the pytest plugin reads too:
``PYTEST_SDXL_MODEL`` picks the model source (default ``random:tiny``), ``PYTEST_SDXL_VARIANTS`` picks
the variants benchmarked (``auto``, the default, below; ``all``: every one that can run here),
``PYTEST_SDXL_RUNS`` sets the protocol's runs. Variants that installed pytest plugins add through the
``pytest_sdxl_variants`` hook (and modules named in ``PYTEST_PLUGINS``) are loaded first, as the command
line loads them.

On a CPU the defaults are sized for a hosted runner's ``asv continuous`` (two commits, each in a
few minutes on 2 cores): a representative variant set (``CPU_VARIANTS``) and, on the tiny model,
shorter side-by-side ratios (``TINY_CPU_RATIO_ROUNDS``) and one protocol run. On a GPU every
default stays as it was; each CPU default gives way to the variable that names it.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import os
import statistics
import sys
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, TypedDict

from pytest_sdxl.settings import Settings, resolve
from pytest_sdxl.variants.registry import Composition, all_single_variants, compose, parse

if TYPE_CHECKING:
    from pytest_sdxl.measure.core import TimedLoop
    from pytest_sdxl.pipelines.sources import Components
    from pytest_sdxl.variants.assembly import VariantPipeline

# Combinations worth a history of their own beside every single variant: tiny_vae batched, and with cached embeddings.
COMBINATIONS = ("tiny_vae+batch", "tiny_vae+cached_embeds")
# The default on a CPU: one variant per path the gate watches, not every variant that could run.
# The plain pipeline (every ratio's denominator), the batch path (once slower than a loop) alone and
# on a swapped component, a component swap (tiny_vae) and a pipeline-level cache (cached_embeds).
# Left out, and why: the compiled and traced UNets (compile_unet, compile_max_autotune,
# compile_pipeline, trace_unet) compile again in every benchmark process and in every protocol run,
# minutes of inductor's C++ builds on 2 cores, and time C++ kernels that say nothing of the GPU's
# (tests/test_variant_images.py checks they match the baseline); half precisions a CPU runs slowly
# or not at all (bf16, fp16_vae); and variants whose point is GPU memory or GPU kernels (vae_slicing,
# vae_tiling, fused_qkv, channels_last, sdpa_math, tome), which on the tiny model time like the
# baseline plus their overhead. PYTEST_SDXL_VARIANTS=all brings back every variant that can run.
CPU_VARIANTS = ("baseline", "tiny_vae", "cached_embeds", "batch", "tiny_vae+batch")
TINY_MODEL = "random:tiny"
# Side-by-side ratios on the tiny model on a CPU: rounds a side and seconds of per-image time in all.
# On a GPU the measurement core's 48 rounds and 5 s stand (detection power where a regression is a
# few percent); a 64x64 tiny CPU generation took about 60 ms, so the core's rounds (30 then) made each ratio 15-20 s.
# On a shared 2-core CPU the host's load, not the round count, sets the spread: tiny_vae+batch over
# baseline moved 17 % over six processes with 12 rounds and 14 % over eight with 30, tiny_vae over
# baseline read 0.694 from 30 rounds and 0.706 from 10 in one process. With 12 rounds
# test_asv_continuous.py's slower batch path (a tripling, flagged beyond 60 %, margins its comment
# explains) is still caught in both batch ratios and an unchanged commit flags nothing.
TINY_CPU_RATIO_ROUNDS = 12
TINY_CPU_RATIO_SECONDS = 1.0
# The protocol's runs on the tiny model on a CPU unless PYTEST_SDXL_RUNS says otherwise (elsewhere the
# profile's: 2 under the default full, 3 under reference). Each run is a fresh load timed beside its
# side-by-side reference (30 rounds for a batch when measured): one run of the five CPU_VARIANTS took 47 s
# on 2 cores, so three would take most of the 3 minutes a quick run has there; on the tiny model these
# figures are a history of seconds, the ratios the gate.
TINY_CPU_PROTOCOL_RUNS = 1
BATCH_SIZES = (2, 4)
# Images per side of a ratio: enough for a batch to differ from a loop, few enough to repeat often.
RATIO_IMAGES = 4
PROTOCOL_METRICS = ("load_s", "init_gen_s", "avg_gen_s", "total_s")
STAGE_METRICS = ("text_encode_ms", "unet_ms", "vae_decode_ms")


@functools.cache
def settings() -> Settings:
    """The suite's settings, from ``PYTEST_SDXL_*`` environment variables, else the defaults."""
    # Before PYTEST_SDXL_VARIANTS is parsed: it may name a plugin's variant.
    plugin_variants()
    return resolve({}, os.environ, {}, ini_name="asv", flag_style="cli")


@functools.cache
def plugin_variants() -> tuple[str, ...]:
    """Names of the variants plugins add through the ``pytest_sdxl_variants`` hook, registered once a process.

    The command line's loader: installed ``pytest11`` entry points (unless ``PYTEST_DISABLE_PLUGIN_AUTOLOAD``
    is set) and the modules ``PYTEST_PLUGINS`` names. Variants a surrounding pytest session already
    registered count too.
    """
    from pytest_sdxl.plugin.hook_variants import load_for_command_line
    from pytest_sdxl.variants.registry import ADDED_BY

    load_for_command_line()
    return tuple(ADDED_BY)


def suite_variants() -> list[str]:
    """Variant ids to benchmark: ``PYTEST_SDXL_VARIANTS`` if set, else every variant and ``COMBINATIONS``.

    On a CPU the default is ``CPU_VARIANTS`` and the plugins' variants that can run there;
    ``PYTEST_SDXL_VARIANTS=all`` there is every variant that can run on a CPU (those that need a GPU,
    a package or half precision would only be skipped, at the cost of a benchmark process per benchmark).
    """
    chosen = settings().variants
    if chosen is not None:
        return [composition.id for composition in chosen]
    every = [composition.id for composition in all_single_variants()] + list(COMBINATIONS)
    if device_type_without_torch() != "cpu":
        return every
    dtype = "float32" if settings().dtype == "auto" else settings().dtype
    if settings().variant_selection == "auto":
        # A variant a plugin adds is what its author wants timed: it joins the small default set.
        added = [
            name
            for name in plugin_variants()
            if not parse(name).unmet_requirements("cpu", dtype) and not parse(name).slow_on_cpu
        ]
        return [*CPU_VARIANTS, *added]
    return [variant for variant in every if not parse(variant).unmet_requirements("cpu", dtype)]


def tiny_on_cpu() -> bool:
    """Whether the suite runs the tiny model on a CPU, where its shorter ratios and protocol apply."""
    return settings().model == TINY_MODEL and device_type_without_torch() == "cpu"


def device_type_without_torch() -> str:
    """``cpu`` or ``cuda`` for the settings' device, told without torch: asv imports the suite to discover it."""
    import shutil

    from pytest_sdxl.machine.probes import gpus_from_driver

    chosen = settings().device
    if chosen != "auto":
        return "cpu" if chosen == "cpu" else "cuda"
    return "cpu" if gpus_from_driver() is None and shutil.which("nvidia-smi") is None else "cuda"


def batch_variants() -> list[str]:
    """The suite's batch compositions (``batch`` alone when the suite has none)."""
    found = [variant for variant in suite_variants() if parse(variant).is_batch]
    return found or ["batch"]


def batch_bases() -> list[str]:
    """What each batch composition batches: ``tiny_vae`` for ``tiny_vae+batch``, ``baseline`` for ``batch``."""
    return [without_batch(parse(variant)).id for variant in batch_variants()]


def without_batch(composition: Composition) -> Composition:
    return compose(name for name in composition.names if name != "batch")


def with_batch(composition: Composition) -> Composition:
    return compose([*composition.names, "batch"])


def prompts_and_seeds(count: int) -> tuple[list[str], list[int]]:
    """``count`` prompts (the settings' prompts, repeated as needed) and their seeds, seed + i."""
    prompts = settings().prompts
    chosen = [prompts[index % len(prompts)] for index in range(count)]
    return chosen, [settings().seed + index for index in range(count)]


def device() -> Any:
    from pytest_sdxl.machine.devices import resolve_device

    return resolve_device(settings().device)


def require_runnable(variant: str) -> Composition:
    """The composition, or NotImplementedError (asv: skipped) when it cannot run here; loads no model."""
    from pytest_sdxl.errors import VariantUnavailable
    from pytest_sdxl.machine.devices import resolve_dtype

    composition = parse(variant)
    try:
        here = device()
    except VariantUnavailable as error:
        raise NotImplementedError(str(error)) from None
    dtype_name = str(resolve_dtype(settings().dtype, here)).removeprefix("torch.")
    unmet = composition.unmet_requirements(here.type, dtype_name)
    if unmet:
        raise NotImplementedError("; ".join(unmet))
    return composition


@functools.cache
def components() -> Components:
    """The model's components, loaded once per benchmark process and shared by its pipelines."""
    from pytest_sdxl.machine.compile_cache import activate
    from pytest_sdxl.pipelines.sources import components_for

    # Every benchmark process compiles compile_unet again: from the persistent cache (PYTEST_SDXL_COMPILE_CACHE)
    # all but the first compile of a graph are reads, in this run and the next.
    activate(settings().compile_cache)
    return components_for(settings())


def preload_in_fork_server(arguments: Sequence[str]) -> None:
    """Import torch, diffusers and transformers once in asv's fork server, not in each benchmark process.

    asv imports the suite in one server process and forks every benchmark process from it; those
    imports took about 4 s of each process on a 2-core CPU, more than the tiny model's benchmark
    itself. Only imports: no tensor and no CUDA call happens before the fork (CUDA does not survive
    one). Discovery and ``import benchmarks`` stay cheap: they are not the server.
    """
    if arguments[1:2] != ["run_server"]:
        return
    import diffusers
    import torch._dynamo  # compile_unet's first call would import it
    import transformers

    # Attribute access imports diffusers' and transformers' lazy submodules.
    for name in ("StableDiffusionXLPipeline", "UNet2DConditionModel", "AutoencoderKL", "AutoencoderTiny"):
        getattr(diffusers, name)
    for name in ("CLIPTextModel", "CLIPTextModelWithProjection", "CLIPTokenizer"):
        getattr(transformers, name)
    from pytest_sdxl.measure import core as measurement  # noqa: F401
    from pytest_sdxl.measure import protocol  # noqa: F401
    from pytest_sdxl.pipelines import sources  # noqa: F401
    from pytest_sdxl.reports import tables as reports  # noqa: F401
    from pytest_sdxl.variants import assembly  # noqa: F401

    del torch


preload_in_fork_server(sys.argv)


def pipeline(variant: str, warm_prompts: int = 1) -> VariantPipeline:
    """A pipeline for the variant, warmed by the measurement core on ``warm_prompts`` prompts.

    Every shape the benchmark times is called first, as often as the variant needs (compiled and
    captured UNets capture on a later call), and cached embeddings are filled: benchmarks time later calls.
    """
    from pytest_sdxl.errors import VariantUnavailable
    from pytest_sdxl.measure.calls import call_groups, warm_up
    from pytest_sdxl.pipelines.sources import image_size_for
    from pytest_sdxl.variants.assembly import VariantPipeline

    composition = require_runnable(variant)
    loaded = components()
    try:
        built = VariantPipeline(loaded, composition, image_size_for(settings(), loaded), settings().steps)
    except VariantUnavailable as error:
        raise NotImplementedError(str(error)) from None
    warm_up(built, call_groups(composition, *prompts_and_seeds(warm_prompts)))
    return built


def close(*pipelines: VariantPipeline | None) -> None:
    for item in pipelines:
        if item is not None:
            item.close()


def paired_ratio(
    numerator: VariantPipeline, denominator: VariantPipeline, prompts: list[str], seeds: list[int]
) -> float:
    """Per-image time of ``numerator`` over ``denominator`` on the same prompts, side by side in one process.

    Both go through the measurement core's timed loop in alternating rounds; the ratio is of the
    two sides' minima (``measurement.ratio_of_minima``), the figure that survives a shared machine.
    """
    from pytest_sdxl.measure.paired import ratio_of_minima

    return ratio_of_minima(*alternating_samples(numerator, denominator, prompts, seeds))


def alternating_samples(
    numerator: VariantPipeline, denominator: VariantPipeline, prompts: list[str], seeds: list[int]
) -> tuple[list[float], list[float]]:
    """Seconds per image of each side's rounds, timed back to back in alternating order by the measurement core."""
    top, bottom = alternating_loops(numerator, denominator, prompts, seeds)
    return [statistics.fmean(calls) for calls in top.rounds], [statistics.fmean(calls) for calls in bottom.rounds]


def alternating_loops(
    numerator: VariantPipeline, denominator: VariantPipeline, prompts: list[str], seeds: list[int]
) -> tuple[TimedLoop, TimedLoop]:
    """Each side's timed loop after its alternating rounds; ``.rounds`` keeps every call's seconds per image."""
    from pytest_sdxl.measure.calls import call_groups
    from pytest_sdxl.measure.core import TimedLoop
    from pytest_sdxl.measure.paired import alternating_rounds

    top, bottom = (TimedLoop(side, call_groups(side.composition, prompts, seeds)) for side in (numerator, denominator))
    alternating_rounds(
        lambda: statistics.fmean(top.round()), lambda: statistics.fmean(bottom.round()), **ratio_round_limits()
    )
    return top, bottom


def paired_host_normalized_ratio(
    numerator: VariantPipeline, denominator: VariantPipeline, prompts: list[str], seeds: list[int]
) -> float:
    """``paired_ratio``'s sides restated at one host speed (``host_normalized``): a number the host leaves alone.

    The same alternating rounds give each side's fastest wall time per image; an untimed profiled
    pass after them gives each side's kernel time per image (``kernel_seconds``).
    """
    from pytest_sdxl.analysis.host_normalized import host_normalized_ratio

    tops, bottoms = alternating_samples(numerator, denominator, prompts, seeds)
    return host_normalized_ratio(
        min(tops), kernel_seconds(numerator, prompts, seeds), min(bottoms), kernel_seconds(denominator, prompts, seeds)
    )


def kernel_seconds(pipeline: VariantPipeline, prompts: list[str], seeds: list[int]) -> float:
    """The pipeline's GPU kernel time per image on these prompts, from the measurement core's profiled pass."""
    from pytest_sdxl.measure.calls import call_functions, call_groups
    from pytest_sdxl.measure.device_signals import kernel_signals

    calls = call_functions(pipeline, call_groups(pipeline.composition, prompts, seeds))
    signals = kernel_signals(pipeline.pipe, calls, pipeline.device)
    if not signals.kernel_ms:
        raise NotImplementedError(signals.not_applicable or "no kernel time was recorded")
    return statistics.median(signals.kernel_ms) / 1000


class RoundLimits(TypedDict, total=False):
    """``measurement.alternating_rounds``' limits the suite overrides; those left out keep its defaults."""

    min_rounds: int
    min_seconds: float


def ratio_round_limits() -> RoundLimits:
    """The tiny CPU's shorter side-by-side ratios; elsewhere (a GPU, a full-size model) the core's defaults."""
    if tiny_on_cpu():
        return {"min_rounds": TINY_CPU_RATIO_ROUNDS, "min_seconds": TINY_CPU_RATIO_SECONDS}
    return {}


def protocol_settings() -> Settings:
    """The settings the protocol runs with: ``TINY_CPU_PROTOCOL_RUNS`` on the tiny model on a CPU, unless set."""
    chosen = settings()
    if tiny_on_cpu() and chosen.sources["runs"] == "default":
        return dataclasses.replace(chosen, runs=TINY_CPU_PROTOCOL_RUNS)
    return chosen


def protocol_summaries(variants: Sequence[str]) -> dict[str, dict[str, Any]]:
    """The reference protocol for each variant, reduced to one number per metric (the median over runs).

    Returns plain dictionaries (asv pickles them for ``setup_cache``): ``status`` and ``reason``, and
    for variants that ran, every metric of ``PROTOCOL_METRICS`` and ``STAGE_METRICS``,
    ``peak_gpu_mem_gb`` (None on a CPU) and ``device`` (``reports.DeviceSummary.as_dict``: kernel time,
    launches, busy fraction, FLOPs; ``not_applicable`` on a CPU).
    """
    from pytest_sdxl.measure.protocol import run_variant
    from pytest_sdxl.reports.device_signals import device_summary

    device()  # on a CPU: one torch thread unless OMP_NUM_THREADS is set (machine.devices)
    chosen = protocol_settings()
    summaries: dict[str, dict[str, Any]] = {}
    for variant in variants:
        try:
            composition = require_runnable(variant)
        except NotImplementedError as reason:
            summaries[variant] = {"status": "skipped", "reason": str(reason)}
            continue
        record = run_variant(chosen, composition)
        summary: dict[str, Any] = {"status": record.status, "reason": record.reason}
        if record.status == "ok" and record.runs:
            for metric in PROTOCOL_METRICS:
                summary[metric] = statistics.median(float(getattr(run, metric)) for run in record.runs)
            for stage in STAGE_METRICS:
                summary[stage] = statistics.median(float(run.stages.get(stage, math.nan)) for run in record.runs)
            peaks = [run.peak_gpu_mem_gb for run in record.runs if run.peak_gpu_mem_gb is not None]
            summary["peak_gpu_mem_gb"] = max(peaks) if peaks else None
            summary["device"] = device_summary(record.runs).as_dict()
        summaries[variant] = summary
    return summaries


def summary_for(summaries: Mapping[str, Mapping[str, Any]], variant: str) -> Mapping[str, Any]:
    """One variant's summary; NotImplementedError (asv: skipped) or RuntimeError (asv: failed) otherwise."""
    summary = summaries.get(variant)
    if summary is None:
        raise NotImplementedError(f"{variant} was not measured (not in PYTEST_SDXL_VARIANTS when the cache was built)")
    if summary["status"] == "skipped":
        raise NotImplementedError(summary["reason"])
    if summary["status"] != "ok":
        raise RuntimeError(f"{variant} failed in the protocol: {summary['reason']}")
    return summary
