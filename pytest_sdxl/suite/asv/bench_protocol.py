"""The reference protocol's metrics per variant over commits: load, init gen, avg gen, each stage, peak GPU memory.

The protocol (``pytest_sdxl.measure.protocol``: fresh load, first generation, timed generations, the
stage timer attached) runs once per commit for every variant in ``setup_cache``; its medians
over the runs are plain numbers, so they pickle, and each ``track_*`` only reads one. Pipelines
never go through the cache: they are built inside the protocol's own process.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, ClassVar

from pytest_sdxl.suite.asv import common

Summaries = Mapping[str, Mapping[str, Any]]


def metric_tracker(metric: str, unit: str) -> Callable[[Any, Summaries, str], float]:
    """A ``track_*`` method reading one metric of the variant's summary (asv names it by its attribute)."""

    def track(self: Any, summaries: Summaries, variant: str) -> float:
        return float(self.summary[metric])

    track.unit = unit  # type: ignore[attr-defined]
    track.__name__ = track.__qualname__ = f"track_{metric}"
    return track


def device_tracker(signal: str, unit: str) -> Callable[[Any, Summaries, str], float]:
    """A ``track_*`` method reading one device signal (per image); skipped with the reason where it does not apply."""

    def track(self: Any, summaries: Summaries, variant: str) -> float:
        device = self.summary.get("device", {})
        if signal not in device:
            from asv_runner.benchmarks.mark import SkipNotImplemented

            raise SkipNotImplemented(f"{signal}: {device.get('not_applicable', 'not measured')}")
        return float(device[signal])

    track.unit = unit  # type: ignore[attr-defined]
    track.__name__ = track.__qualname__ = f"track_{signal}"
    return track


class ProtocolMetrics:
    """One number per metric and variant: the median over the protocol's runs.

    ``PYTEST_SDXL_RUNS`` runs, by default the profile's (2, or 3 under ``reference``), and 1 on the tiny model
    on a CPU (``common.protocol_settings``).
    """

    params: ClassVar[list[list[Any]]] = [common.suite_variants()]
    param_names: ClassVar[list[str]] = ["variant"]
    timeout = 120

    def setup_cache(self) -> dict[str, dict[str, Any]]:
        return common.protocol_summaries(common.suite_variants())

    # Every variant, every run from a fresh load: on a GPU with compile_unet this takes minutes.
    setup_cache.timeout = 3600  # type: ignore[attr-defined]

    def setup(self, summaries: Summaries, variant: str) -> None:
        self.summary = common.summary_for(summaries, variant)

    track_load_s = metric_tracker("load_s", "seconds")
    track_init_gen_s = metric_tracker("init_gen_s", "seconds")
    track_avg_gen_s = metric_tracker("avg_gen_s", "seconds")
    track_total_s = metric_tracker("total_s", "seconds")
    track_text_encode_ms = metric_tracker("text_encode_ms", "ms")
    track_unet_ms = metric_tracker("unet_ms", "ms")
    track_vae_decode_ms = metric_tracker("vae_decode_ms", "ms")

    track_kernel_ms = device_tracker("kernel_ms", "ms")
    track_kernel_launches = device_tracker("kernels", "launches")
    track_gpu_busy_fraction = device_tracker("busy_fraction", "fraction")
    track_achieved_tflops = device_tracker("achieved_tflops", "TFLOP/s")

    def track_peak_gpu_mem_gb(self, summaries: Summaries, variant: str) -> float:
        peak = self.summary["peak_gpu_mem_gb"]
        if peak is None:
            from asv_runner.benchmarks.mark import SkipNotImplemented

            raise SkipNotImplemented("peak GPU memory: no GPU here")
        return float(peak)

    track_peak_gpu_mem_gb.unit = "GB"  # type: ignore[attr-defined]
