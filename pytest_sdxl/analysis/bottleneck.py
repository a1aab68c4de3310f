"""What holds a variant back: the host launching kernels, or the GPU, and there which stage.

From figures the measurement already has (no new measurement):

- the **busy fraction**, GPU kernel time over wall time per image. Below ``LAUNCH_BOUND_BELOW`` the
  GPU idles most of the time, waiting for the host: the variant is launch-bound, and what helps is
  fewer launches (a CUDA graph, compilation) or more work per launch (a bigger batch); eager one-step
  SDXL-Turbo is launch-bound on a fast GPU. Up to ``GPU_BOUND_FROM`` it is partly launch-bound: both
  sides matter.
- once GPU-bound, the **stage with the most kernel time** and its share of the card's measured matrix
  peak (``serving.StageRoofline``). Under ``NEAR_ROOF_FROM`` the stage's kernels are far from
  the matrix units' roof: memory traffic or small kernels hold it, not arithmetic. From it on the
  stage is compute-heavy, and the verdict says how far under the measured peak it still is. The roofline here
  has no memory side (traffic is not measured), so the verdict says "memory or small kernels", not
  one of them.

Each verdict is a sentence with its figures, and "n/a" with the reason where a figure is missing.
The three bounds are chosen to separate groups of measured busy fractions and peak shares, not
measured constants themselves (the user guide's method page, "What holds a variant back").
Standard library only.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from pytest_sdxl.analysis.serving import StageRoofline

LAUNCH_BOUND_BELOW = 0.5
GPU_BOUND_FROM = 0.8
NEAR_ROOF_FROM = 0.4


def present(value: float | None) -> bool:
    return value is not None and not math.isnan(value) and value > 0


def busiest_stage(stages: Sequence[StageRoofline]) -> StageRoofline | None:
    timed = [stage for stage in stages if present(stage.kernel_ms)]
    return max(timed, key=lambda stage: stage.kernel_ms or 0.0, default=None)


def roof_clause(share: float | None) -> str:
    if share is None or math.isnan(share):
        return " (no matrix peak measured here to place it on the roofline)"
    if share < NEAR_ROOF_FROM:
        return f" at {share:.0%} of the matrix peak: memory traffic or small kernels, not the matrix units"
    # Half the peak is already good for whole-model kernels; say how far is left rather than "at the roof".
    return f" at {share:.0%} of the matrix peak: compute-heavy, {1 / share:.1f}x under the measured peak"


def stage_clause(stages: Sequence[StageRoofline], kernel_ms: float, whole: StageRoofline | None = None) -> str:
    """Which stage the GPU spends its time in, and how near the matrix roof that stage runs.

    Where the stages cannot be timed apart (one graph for the whole generation), the whole call is
    placed on the roofline instead.
    """
    stage = busiest_stage(stages)
    if stage is None or stage.kernel_ms is None:
        if whole is None or not whole.flops_per_image:
            return "no per-stage kernel time to say which stage"
        return "no per-stage kernel time to say which stage; the whole call runs" + roof_clause(whole.kernel_share)
    return f"{stage.stage} takes {stage.kernel_ms:.1f} of {kernel_ms:.1f} kernel ms" + roof_clause(stage.kernel_share)


def what_holds_back(
    wall_ms: float | None,
    kernel_ms: float | None,
    stages: Sequence[StageRoofline] = (),
    whole: StageRoofline | None = None,
) -> str:
    """One sentence: launch-bound, partly, or GPU-bound (and where), with the figures it rests on."""
    if wall_ms is None or not present(wall_ms):
        return "n/a: no wall time measured"
    if kernel_ms is None or not present(kernel_ms):
        return "n/a: no GPU kernel time (no CUDA kernels here)"
    busy = kernel_ms / wall_ms
    host_ms = max(wall_ms - kernel_ms, 0.0)
    # One decimal: a whole percent would print 79.9 % as "80%" beside the band that starts at 80 %.
    figures = f"GPU busy {busy:.1%} ({kernel_ms:.1f} kernel ms of {wall_ms:.1f} wall ms per image)"
    if busy < LAUNCH_BOUND_BELOW:
        return (
            f"launch-bound: {figures}; {host_ms:.1f} ms per image is the host launching kernels, "
            "which a CUDA graph, compilation or a bigger batch removes"
        )
    if busy < GPU_BOUND_FROM:
        return f"partly launch-bound: {figures}; {stage_clause(stages, kernel_ms, whole)}"
    return f"GPU-bound: {figures}; {stage_clause(stages, kernel_ms, whole)}"
