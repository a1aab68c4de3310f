"""How far apart one side's processes measured a variant's wall ratio, and what that spread lets a job see.

`ab` names a wall ratio undecided where its interval still reaches the flag line when the job ends. Whether
more processes a side would decide it, or only a quieter host, turns on how far the processes of one side
landed from each other: on H100s, at three processes a side, a 5 % host-side slowdown was caught in every
trial where they spread 1.4 % or less and in none where they spread 3 % or more (the user guide's results,
2026-12-07). So the undecided line says the spread it measured and the processes a side a slowdown of the
threshold would need at it: the two-sample sizing of Student's t, a lower bound for a gate whose
alpha is split over looks and a Holm family.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence

from pytest_sdxl.results.schema import ResultSet

# Sized for a catch nine times in ten: the rate the gate's detection bars ask for.
SIZING_POWER = 0.9


def wall_ratio_spread(sides: Sequence[ResultSet], variant: str) -> tuple[float, int]:
    """The standard deviation of the logarithms of the processes' wall ratios, pooled within the sides, and how
    many processes it rests on; NaN where no side holds two processes with a wall ratio.

    A process's wall ratio is the median of its runs' (``RunRecord.wall_ratio``); each side's processes are
    taken around their own mean, so a slowdown between the sides is not counted as spread.
    """
    squares, freedom, processes = 0.0, 0, 0
    for side in sides:
        record = side.variant(variant)
        if record is None:
            continue
        by_process: dict[str, list[float]] = {}
        for run in record.runs:
            ratio = run.wall_ratio  # computed from the run's samples on each reading
            if math.isfinite(ratio) and ratio > 0:
                by_process.setdefault(run.process, []).append(ratio)
        logs = [math.log(statistics.median(ratios)) for ratios in by_process.values()]
        if len(logs) < 2:
            continue
        mean = statistics.fmean(logs)
        squares += sum((value - mean) ** 2 for value in logs)
        freedom += len(logs) - 1
        processes += len(logs)
    if freedom == 0:
        return math.nan, processes
    return math.sqrt(squares / freedom), processes


def processes_to_see(spread: float, threshold: float, alpha: float, power: float = SIZING_POWER) -> int:
    """Processes a side for a two-sided two-sample t test at ``alpha`` to flag a slowdown of ``threshold`` (0.05:
    5 %) with probability ``power``, at a spread between processes of ``spread`` (standard deviation of the
    logarithms); at least 2. Student's t through its noncentral distribution, so the few processes a job runs are
    sized as they are tested; a lower bound still for a gate that splits its alpha over looks and a Holm family."""
    from pytest_sdxl.analysis.stats import scipy_stats

    stats = scipy_stats()
    effect = math.log1p(threshold) / spread  # Cohen's d on the logarithms

    def catches(processes: int) -> bool:
        # Only the slower tail: the other adds under 1e-15 here, and scipy's noncentral t (1.17) returns NaN for
        # it once the noncentrality passes about 9, which statsmodels' TTestIndPower sums in.
        freedom = 2 * processes - 2
        line = stats.t.ppf(1 - alpha / 2, freedom)
        return bool(stats.nct.sf(line, freedom, effect * math.sqrt(processes / 2)) >= power)

    # The smallest count that reaches the power: doubling, then bisection.
    low, high = 1, 2
    while not catches(high):
        low, high = high, high * 2
    while high - low > 1:
        middle = (low + high) // 2
        low, high = (low, middle) if catches(middle) else (middle, high)
    return high
