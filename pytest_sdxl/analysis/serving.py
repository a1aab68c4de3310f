"""What serving teams read, computed from a variant's records: latency percentiles, images/s, energy, roofline.

Everything here is derived from what a results file already holds (the timed samples ``gen_s``,
each run's energy per image, the device signals' FLOPs per stage and the card's matrix peak), so
an old results file gives the same figures it always could and "n/a" with the reason for the rest.

- **Percentiles** of the seconds per image of every timed call (all runs pooled), by linear
  interpolation between the order statistics (numpy's default, ``statistics.quantile``). A
  percentile p is given only from ``100 / (100 - p)`` samples on (p50: 2, p90: 10, p99: 100): with
  fewer, not even one sample is expected above it and the figure is the maximum stretched by the
  interpolation, so the table says "n/a (needs N samples)" instead.
- **images/s**: 1 / mean seconds per image, the sustained throughput of one caller making one
  call after another (a batch call's time is shared out over its images, as in ``gen_s``).
- **Energy**: the median over runs of each run's joules per image (energy.py).
- **Roofline, compute side**: matrix FLOPs per image of each stage over the stage's GPU kernel time
  (what the kernels achieve) and over the stage's time in the stage-split pass (what a caller
  gets), each as a share of the card's measured matrix peak (matrix_peak.py). Memory traffic is
  not measured, so this places a stage against the compute roof only. ``Roofline.whole``
  (``whole call``) does the same for the whole generation (every FLOP over the call's kernel time and its wall time
  per image): the one row a variant whose stages cannot be timed apart (``graph_pipeline``) has.

Standard library only; the record types are imported for annotations alone.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pytest_sdxl.analysis.stats import quantile

if TYPE_CHECKING:
    from pytest_sdxl.results.records import RunRecord, VariantRecord

PERCENTILES = (50, 90, 99)
PERCENTILE_METHOD = "linear interpolation between order statistics; pN given from 100/(100-N) samples"
# The stages a roofline row is drawn for, with the stage-split key of each stage's time per image.
ROOFLINE_STAGES = (("text_encode", "text_encode_ms"), ("unet", "unet_ms"), ("vae_decode", "vae_decode_ms"))
ENERGY_NOT_RECORDED = "n/a: not measured (results written before energy per image was recorded)"
PEAK_NOT_RECORDED = "n/a: no matrix peak recorded"
WHOLE_CALL = "whole call"


def samples_needed(percent: int) -> int:
    """Samples before the p-th percentile is more than the maximum: one sample expected above it, 100 / (100 - p)."""
    if not 0 < percent < 100:
        raise ValueError(f"a percentile lies strictly between 0 and 100, not {percent}")
    return -(-100 // (100 - percent))


@dataclass(frozen=True)
class Percentile:
    """One latency percentile in seconds per image, or None when the samples are too few for it."""

    percent: int
    seconds: float | None
    samples: int

    @property
    def needed(self) -> int:
        return samples_needed(self.percent)

    def describe_ms(self) -> str:
        if self.seconds is None:
            return f"n/a (needs {self.needed} samples, has {self.samples})"
        return f"{self.seconds * 1000:.1f}"


def percentile(samples: list[float], percent: int) -> Percentile:
    """The p-th percentile of the samples by linear interpolation, or None below ``samples_needed``."""
    values = sorted(value for value in samples if not math.isnan(value))
    if len(values) < samples_needed(percent):
        return Percentile(percent, None, len(values))
    return Percentile(percent, quantile(values, percent / 100), len(values))


@dataclass(frozen=True)
class Latency:
    """Latency percentiles of the seconds per image of every timed call, and images per second."""

    samples: int
    percentiles: tuple[Percentile, ...]
    images_per_s: float | None

    def at(self, percent: int) -> Percentile:
        return next(item for item in self.percentiles if item.percent == percent)

    def as_dict(self) -> dict[str, Any]:
        document: dict[str, Any] = {"samples": self.samples, "percentile_method": PERCENTILE_METHOD}
        for item in self.percentiles:
            document[f"p{item.percent}_s"] = item.seconds
            if item.seconds is None:
                document[f"p{item.percent}_needs_samples"] = item.needed
        document["images_per_s"] = self.images_per_s
        return document


def latency(samples: list[float]) -> Latency:
    values = [value for value in samples if not math.isnan(value)]
    mean = statistics.fmean(values) if values else math.nan
    return Latency(
        samples=len(values),
        percentiles=tuple(percentile(values, percent) for percent in PERCENTILES),
        images_per_s=1.0 / mean if values and mean > 0 else None,
    )


@dataclass(frozen=True)
class Energy:
    """Joules per image (median over runs), or why there is no figure."""

    joules_per_image: float | None
    not_applicable: str = ""

    def describe(self) -> str:
        return self.not_applicable if self.joules_per_image is None else f"{self.joules_per_image:.2f}"


def energy(runs: list[RunRecord]) -> Energy:
    if not runs:
        return Energy(None, "n/a: no runs")
    values = [run.energy_j_per_image for run in runs if run.energy_j_per_image is not None]
    if values:
        return Energy(statistics.median(values))
    reason = next((run.energy_not_applicable for run in runs if run.energy_not_applicable), ENERGY_NOT_RECORDED)
    return Energy(None, reason)


def tflops(flops: float | None, milliseconds: float | None) -> float | None:
    """FLOPs over milliseconds, in TFLOP/s; None without either figure or with no time."""
    if flops is None or milliseconds is None or math.isnan(milliseconds) or milliseconds <= 0:
        return None
    return flops / (milliseconds / 1000) / 1e12


def share(achieved: float | None, peak: float | None) -> float | None:
    """Achieved over peak TFLOP/s; None without either."""
    if achieved is None or peak is None or peak <= 0:
        return None
    return achieved / peak


@dataclass(frozen=True)
class StageRoofline:
    """One stage of one variant against the compute roof: FLOPs, times per image, achieved and shares."""

    stage: str
    flops_per_image: float | None
    kernel_ms: float | None
    stage_ms: float | None
    peak_tflops: float | None

    @property
    def kernel_tflops(self) -> float | None:
        return tflops(self.flops_per_image, self.kernel_ms)

    @property
    def stage_tflops(self) -> float | None:
        return tflops(self.flops_per_image, self.stage_ms)

    @property
    def kernel_share(self) -> float | None:
        return share(self.kernel_tflops, self.peak_tflops)

    @property
    def stage_share(self) -> float | None:
        return share(self.stage_tflops, self.peak_tflops)

    def as_dict(self) -> dict[str, Any]:
        return {
            "stage": self.stage,
            "flops_per_image": self.flops_per_image,
            "kernel_ms": self.kernel_ms,
            "stage_ms": self.stage_ms,
            "kernel_tflops": self.kernel_tflops,
            "stage_tflops": self.stage_tflops,
            "kernel_share_of_peak": self.kernel_share,
            "stage_share_of_peak": self.stage_share,
        }


@dataclass(frozen=True)
class Roofline:
    """A variant's stages and its whole call against the card's measured matrix peak (or why there is no peak)."""

    stages: tuple[StageRoofline, ...]
    peak_tflops: float | None
    peak_not_applicable: str = ""
    whole: StageRoofline | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "peak_tflops": self.peak_tflops,
            "peak_not_applicable": self.peak_not_applicable or None,
            "stages": [stage.as_dict() for stage in self.stages],
            "whole_call": None if self.whole is None else self.whole.as_dict(),
        }


def median_or_none(values: list[float]) -> float | None:
    finite = [value for value in values if not math.isnan(value)]
    return statistics.median(finite) if finite else None


def roofline(runs: list[RunRecord]) -> Roofline:
    signals = [run.device for run in runs if run.device is not None]
    peak = next((item.matrix_peak_tflops for item in signals if item.matrix_peak_tflops is not None), None)
    reason = (
        ""
        if peak is not None
        else next(
            (item.matrix_peak_not_applicable for item in signals if item.matrix_peak_not_applicable), PEAK_NOT_RECORDED
        )
    )
    stage_flops = next((item.stage_flops for item in signals if item.stage_flops), {})
    rows = []
    for stage, stage_key in ROOFLINE_STAGES:
        kernel = [item.stage_kernel_ms[stage] for item in signals if stage in item.stage_kernel_ms]
        rows.append(
            StageRoofline(
                stage=stage,
                flops_per_image=stage_flops.get(stage),
                kernel_ms=median_or_none(kernel),
                stage_ms=median_or_none([run.stages[stage_key] for run in runs if stage_key in run.stages]),
                peak_tflops=peak,
            )
        )
    whole = StageRoofline(
        stage=WHOLE_CALL,
        flops_per_image=next((item.flops for item in signals if item.flops), None),
        kernel_ms=median_or_none([value for item in signals for value in item.kernel_ms]),
        # Wall time per image of the timed calls: what a caller gets from the whole call.
        stage_ms=median_or_none([sample * 1000 for run in runs for sample in run.gen_s]),
        peak_tflops=peak,
    )
    return Roofline(tuple(rows), peak, reason, whole)


def serving_summary(record: VariantRecord) -> dict[str, Any]:
    """The derived block results.json and pytest-benchmark's extra_info carry: strict JSON, None for n/a."""
    found = energy(record.runs)
    return {
        "latency": latency(record.samples("gen_s")).as_dict(),
        "energy_j_per_image": found.joules_per_image,
        "energy_not_applicable": found.not_applicable or None,
        "roofline": roofline(record.runs).as_dict(),
    }


def serving_block(record: VariantRecord) -> dict[str, Any]:
    """Each variant's derived block in results.json: ``save_results(result_set, path, derived=serving_block)``."""
    return {"serving": serving_summary(record)}
