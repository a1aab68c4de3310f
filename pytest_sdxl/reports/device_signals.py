"""The device signals in the reports: a variant's profiled passes in a few numbers per image, or why there are none.

``device_summary`` reduces the ``DeviceSignals`` of a variant's runs to its kernel time (median, and CV over the
profiled calls), kernel launches, the GPU's busy fraction and the achieved TFLOP/s; ``device_cells`` lays them out as
the summary table's device columns, 'n/a' where they do not apply (a CPU). Apart from ``tables``: the
pytest-benchmark JSON (``plugin.benchmark``) and the asv suite take the same summary without the tables.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

from pytest_sdxl.analysis.stats import summarize
from pytest_sdxl.reports import figures
from pytest_sdxl.results.records import RunRecord


@dataclass(frozen=True)
class DeviceSummary:
    """The device signals of a variant's runs in a few numbers (per image), or why they do not apply.

    Busy fraction: the GPU's kernel time over the wall time of the same image (median over the
    runs' profiled calls against the median timed call); achieved TFLOP/s: FLOPs over kernel time.
    """

    not_applicable: str = ""
    kernel_ms: float = math.nan
    kernel_ms_cv: float = math.nan
    kernels: float = math.nan
    stage_kernel_ms: dict[str, float] = field(default_factory=dict)
    flops_per_image: float | None = None
    achieved_tflops: float | None = None
    busy_fraction: float | None = None

    def as_dict(self) -> dict[str, object]:
        # What does not apply is left out, not written as NaN: pytest-benchmark's JSON must stay strict.
        return {
            key: value
            for key, value in asdict(self).items()
            if value not in ("", None) and not (isinstance(value, float) and math.isnan(value))
        }


def device_summary(runs: list[RunRecord]) -> DeviceSummary:
    signals = [run.device for run in runs if run.device is not None]
    if not signals:
        return DeviceSummary(not_applicable="no device signals were measured")
    flops = next((item.flops for item in signals if item.flops is not None), None)
    if not any(item.has_kernels for item in signals):
        return DeviceSummary(not_applicable=signals[0].not_applicable, flops_per_image=flops)
    kernel = summarize([value for item in signals for value in item.kernel_ms])
    wall_ms = summarize([sample for run in runs for sample in run.gen_s]).median * 1000
    stages: dict[str, float] = {}
    for item in signals:
        for stage, value in item.stage_kernel_ms.items():
            stages[stage] = stages.get(stage, 0.0) + value / len(signals)
    return DeviceSummary(
        kernel_ms=kernel.median,
        kernel_ms_cv=kernel.cv,
        kernels=summarize([value for item in signals for value in item.kernels]).median,
        stage_kernel_ms=stages,
        flops_per_image=flops,
        achieved_tflops=flops / (kernel.median / 1000) / 1e12 if flops and kernel.median > 0 else None,
        busy_fraction=kernel.median / wall_ms if wall_ms > 0 else None,
    )


def device_cells(summary: DeviceSummary) -> list[str]:
    """kernel ms (CV), kernels per image, busy fraction, TFLOP/s; 'n/a' where they do not apply."""
    if summary.not_applicable:
        return ["n/a"] * 4
    return [
        f"{figures.significant(summary.kernel_ms)} ({figures.percent(summary.kernel_ms_cv)})",
        f"{summary.kernels:.0f}",
        figures.percent(summary.busy_fraction),
        figures.significant(summary.achieved_tflops),
    ]
