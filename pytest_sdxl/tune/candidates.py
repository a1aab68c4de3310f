"""What the ``tune`` search measured and decided: each candidate's measurement and status, and the result.

A ``Candidate`` is one composition at one batch size: measured, rejected on quality, skipped or failed.
The ``TuneResult`` holds every candidate and says which one is chosen: among those within the noise
margin of the fastest (or of the most images per second), the one with the fewest variants. Standard
library only: the report, the resume and the command line read these without measuring anything.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass, field
from typing import Any

from pytest_sdxl.tune.options import TuneOptions
from pytest_sdxl.variants.registry import BASELINE

ESTIMATOR = "median over runs of each run's fastest call (wall ms per image)"
RANDOM_WEIGHTS_NOTE = "lossy (random weights: PSNR not meaningful)"
OK, REJECTED, SKIPPED, FAILED = "ok", "rejected", "skipped", "failed"
SEARCH, THROUGHPUT = "search", "throughput"


@dataclass(frozen=True)
class Measurement:
    """What the measuring function found for one composition at one batch size."""

    # Each run's fastest call, ms per image: their median is the estimate.
    run_minima_ms: tuple[float, ...]
    kernel_ms: float | None = None
    psnr_db: float | None = None
    peak_gpu_mem_gb: float | None = None
    # Beside PSNR, against the baseline's images (analysis.quality); None where not compared.
    ssim: float | None = None
    lpips: float | None = None
    lpips_not_applicable: str = ""

    @property
    def ms_per_image(self) -> float:
        return statistics.median(self.run_minima_ms)


@dataclass
class Candidate:
    """One composition at one batch size: measured, rejected on quality, skipped or failed."""

    composition: str
    kind: str
    batch_size: int = 1
    phase: str = SEARCH
    step: int = 0
    parent: str = ""
    status: str = OK
    reason: str = ""
    quality: str = ""
    measurement: Measurement | None = None
    # Taken from an earlier call's tune.json (``tune.resume``), not measured in this one.
    resumed: bool = False

    @property
    def ok(self) -> bool:
        return self.status == OK and self.measurement is not None

    @property
    def ms_per_image(self) -> float:
        return math.nan if self.measurement is None else self.measurement.ms_per_image

    @property
    def images_per_s(self) -> float:
        return 1000.0 / self.ms_per_image if self.measurement is not None else math.nan

    def as_dict(self) -> dict[str, Any]:
        measurement = self.measurement
        return {
            "composition": self.composition,
            "kind": self.kind,
            "batch_size": self.batch_size,
            "phase": self.phase,
            "step": self.step,
            "parent": self.parent,
            "status": self.status,
            "reason": self.reason,
            "quality": self.quality,
            "ms_per_image": self.ms_per_image,
            "images_per_s": self.images_per_s,
            "run_minima_ms": [] if measurement is None else list(measurement.run_minima_ms),
            "kernel_ms_per_image": None if measurement is None else measurement.kernel_ms,
            "psnr_db": None if measurement is None else measurement.psnr_db,
            "ssim": None if measurement is None else measurement.ssim,
            "lpips": None if measurement is None else measurement.lpips,
            "peak_gpu_mem_gb": None if measurement is None else measurement.peak_gpu_mem_gb,
            "resumed": self.resumed,
        }


@dataclass
class TuneResult:
    options: TuneOptions
    candidates: list[Candidate] = field(default_factory=list)
    # Compositions the search reached but compose() refuses (a conflicting pair): never built.
    conflicts_avoided: list[str] = field(default_factory=list)
    elapsed_s: float = 0.0
    cut_short: bool = False
    stop_reason: str = ""
    throughput_note: str = ""

    def ranked(self) -> list[Candidate]:
        """Batch-1 rows: measured ones fastest first, then rejected (fastest first), failed, skipped."""
        order = {OK: 0, REJECTED: 1, FAILED: 2, SKIPPED: 3}
        rows = [item for item in self.candidates if item.phase == SEARCH]
        return sorted(rows, key=lambda item: (order[item.status], nan_last(item.ms_per_image)))

    def measured_fastest(self) -> Candidate | None:
        """The batch-1 composition with the lowest measured ms per image, however small its lead."""
        measured = [item for item in self.candidates if item.phase == SEARCH and item.ok]
        return min(measured, key=lambda item: item.ms_per_image, default=None)

    def fastest(self) -> Candidate | None:
        """The chosen batch-1 composition: the one with the fewest variants within the margin of the measured fastest.

        A lead smaller than the noise margin is not a finding, and every variant added is one more
        thing to maintain and to go wrong: among compositions that tie within the margin the simplest wins.
        """
        best = self.measured_fastest()
        if best is None:
            return None
        tied = [
            item
            for item in self.candidates
            if item.phase == SEARCH and item.ok and item.ms_per_image <= best.ms_per_image * (1 + self.options.margin)
        ]
        return min(tied, key=lambda item: (len(compose_id_names(item.composition)), item.ms_per_image))

    def measured_best_throughput(self) -> Candidate | None:
        """Most images per second over every measured batch size (batch 1 is the search's), however small its lead."""
        measured = [item for item in self.candidates if item.ok]
        return max(measured, key=lambda item: item.images_per_s, default=None)

    def best_throughput(self) -> Candidate | None:
        """The chosen throughput: within the margin of the most images/s, the fewest variants, then the smallest batch.

        As at batch 1, a lead inside the noise margin is not a finding; among those that tie, a simpler
        composition has less to go wrong and a smaller batch keeps each request's latency lower.
        """
        best = self.measured_best_throughput()
        if best is None:
            return None
        tied = [
            item
            for item in self.candidates
            if item.ok and item.images_per_s * (1 + self.options.margin) >= best.images_per_s
        ]
        return min(
            tied, key=lambda item: (len(compose_id_names(item.composition)), item.batch_size, -item.images_per_s)
        )

    def as_dict(self) -> dict[str, Any]:
        options = self.options
        fastest, throughput, measured_fastest = self.fastest(), self.best_throughput(), self.measured_fastest()
        measured_throughput = self.measured_best_throughput()
        return {
            "schema": "pytest-sdxl-tune",
            "version": 1,
            "estimator": ESTIMATOR,
            "options": {
                "beam": options.beam,
                "budget_s": options.budget_s,
                "min_psnr_db": options.quality.min_psnr,
                "min_ssim": options.quality.min_ssim,
                "max_lpips": options.quality.max_lpips,
                "margin": options.margin,
                "batch_sizes": list(options.batch_sizes),
                "random_weights": options.random_weights,
            },
            "elapsed_s": self.elapsed_s,
            "cut_short": self.cut_short,
            "stop_reason": self.stop_reason,
            "throughput_note": self.throughput_note,
            "fastest": None if fastest is None else fastest.as_dict(),
            "measured_fastest": None if measured_fastest is None else measured_fastest.as_dict(),
            "best_throughput": None if throughput is None else throughput.as_dict(),
            "measured_best_throughput": None if measured_throughput is None else measured_throughput.as_dict(),
            "candidates": [item.as_dict() for item in self.candidates],
            "conflicts_avoided": list(self.conflicts_avoided),
        }


def nan_last(value: float) -> float:
    return math.inf if math.isnan(value) else value


def compose_id_names(composition_id: str) -> list[str]:
    return [] if composition_id == BASELINE else composition_id.split("+")
