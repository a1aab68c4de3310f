"""The wall gate's test: a variant's wall time, new over base, at the same speed of the host.

Each run times the variant beside its side-by-side reference (``measure.core.side_by_side_reference``)
in alternating rounds, and each block of those rounds keeps both sides' minima. The plain ratio of
minima assumes the two sides slow down in proportion when the host does. They do not: the sides
differ in how much of their wall time is the CPU launching kernels, so a batch path can rise three
quarters as much as its one-by-one reference when the host slows, and a host slower for half a minute
moves the plain ratio by several percent (the user guide's method page, "Blocks of rounds and the
host-adjusted wall test").

So the comparison fits the analysis of covariance

    log(variant minimum) = a + b * log(reference minimum) + d * [block is new]

over the blocks of both sides, with one slope ``b`` (the host's grip on the variant relative to the
reference), and tests ``d``: ``exp(d)`` is the variant's wall time, new over base, at equal
reference speed.
With ``b = 1`` this is the ratio of minima again. The t test has n - 3 degrees of freedom, and its
standard error grows when the two sides ran at different host speeds, where the slope matters.
Where the references did not vary within either side, the slope cannot be estimated: the test then
falls back to ``b = 1`` and says so.

The fit is a few sums (scipy.stats has no analysis of covariance); its t distribution is scipy's,
through ``stats.t_on_logarithms``. The tests check it against a least-squares fit.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from pytest_sdxl.analysis.stats import CONFIDENCE, RunComparison, t_on_logarithms

# (variant minimum, reference minimum) of one run, in seconds per image.
RunPair = tuple[float, float]


def log_pairs(blocks: Sequence[Sequence[float]], side: str) -> list[tuple[float, float]]:
    """Each block's [variant minimum, reference minimum] as logarithms; the error names the bad block."""
    pairs = []
    for index, block in enumerate(blocks, start=1):
        if len(block) != 2 or min(block) <= 0:
            raise ValueError(
                f"the host-adjusted wall comparison needs each block as [variant minimum, reference minimum], "
                f"both positive: block {index} on the {side} side is {list(block)!r}"
            )
        pairs.append((math.log(block[1]), math.log(block[0])))
    return pairs


def centred(points: Sequence[tuple[float, float]]) -> tuple[float, float, list[tuple[float, float]]]:
    """The side's mean reference and variant logarithms, and each run's deviations from them."""
    mean_x = math.fsum(x for x, _ in points) / len(points)
    mean_y = math.fsum(y for _, y in points) / len(points)
    return mean_x, mean_y, [(x - mean_x, y - mean_y) for x, y in points]


def insufficient(base_runs: int, new_runs: int, why: str) -> RunComparison:
    return RunComparison(math.nan, math.nan, math.nan, math.nan, "host-adjusted", base_runs, new_runs, why)


def compare_host_adjusted(
    base: Sequence[Sequence[float]], new: Sequence[Sequence[float]], confidence: float = CONFIDENCE
) -> RunComparison:
    """New over base for the variant's wall time at equal reference speed; blocks as [own min, reference min].

    A block is a stretch of consecutive rounds (``measure.records.wall_blocks``), or a whole run where a
    results file holds no blocks.
    """
    base_points, new_points = log_pairs(base, "base"), log_pairs(new, "new")
    short = [
        f"{len(points)} block{'' if len(points) == 1 else 's'} on the {side} side"
        for side, points in (("base", base_points), ("new", new_points))
        if len(points) < 2
    ]
    if short:
        return insufficient(
            len(base_points),
            len(new_points),
            f"{' and '.join(short)}: at least 2 blocks of rounds a side are needed to estimate their noise",
        )
    base_x, base_y, base_dev = centred(base_points)
    new_x, new_y, new_dev = centred(new_points)
    deviations = base_dev + new_dev
    spread_x = math.fsum(dx * dx for dx, _ in deviations)
    count = len(deviations)
    # Below this spread of the references' logarithms (0.1 % between blocks) a slope is noise.
    if spread_x > 1e-6 * count and count > 3:
        slope = math.fsum(dx * dy for dx, dy in deviations) / spread_x
        freedom = count - 3
        slope_note = f"slope {slope:.2f} fitted"
        spread_term = (new_x - base_x) ** 2 / spread_x
    else:
        slope, freedom, spread_term = 1.0, count - 2, 0.0
        slope_note = "slope 1 (the references did not vary: plain ratio of minima)"
    difference = (new_y - base_y) - slope * (new_x - base_x)
    residual = math.fsum((dy - slope * dx) ** 2 for dx, dy in deviations)
    test = (
        f"host-adjusted: log variant min on log reference min, {slope_note}, "
        f"{len(base_points)} vs {len(new_points)} blocks"
    )
    variance = residual / freedom * (1 / len(base_points) + 1 / len(new_points) + spread_term)
    estimate = t_on_logarithms(difference, math.sqrt(variance), freedom, confidence)
    return RunComparison(
        ratio=estimate.ratio,
        low=estimate.low,
        high=estimate.high,
        p_value=estimate.p_value,
        test=test,
        base_runs=len(base_points),
        new_runs=len(new_points),
        insufficient="",
    )
