"""Sequential sampling: timed rounds stop once a signal's interval is narrow enough for its threshold.

A fixed number of rounds spends time where the interval is narrow already and stops short where it is
not. Here each block of rounds (the wall test's unit, ``measure.records.wall_blocks``) adds a value,
the logarithm of the block's minimum wall time per image or, beside a side-by-side reference, of the
variant's minimum over the reference's; once ``min_rounds`` are
done, the rounds stop when the 95 % interval of those values' mean is narrower, on either side, than
``PRECISION_SHARE`` of the gate's threshold for the signal (5 % for wall time, 2 % for kernel time,
``analysis.comparison``), or when ``max_rounds`` are done, or when the budget's seconds are spent.

The rule stops on the interval's **width**, never on the estimate's value or its significance, so it
cannot chase a difference: the false-alarm rate of the comparison stays at its level. That is measured,
not assumed: the user guide's method page, "Sequential sampling", and tests/test_sequential.py.

Why 0.4 of the threshold: the gate flags a significant change past half its threshold
(``comparison.FLAG_SHARE``). Two sides each known to a half-width h give their ratio to about
sqrt(2) h; a true change of the threshold T is then caught nine times in ten when
sqrt(2) h / 1.96 * (1.96 + 1.28) <= T, that is h <= 0.43 T. Variance between runs or processes comes on
top, which no number of rounds within one run can remove.
"""

from __future__ import annotations

import functools
import math
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from scipy import stats as scipy_stats

if TYPE_CHECKING:
    from pytest_sdxl.results.records import DeviceSignals
    from pytest_sdxl.variants.assembly import VariantPipeline

# The interval's half-width a signal's rounds stop at, as a share of the gate's threshold for it.
PRECISION_SHARE = 0.4
CONFIDENCE = 0.95


class StopSampling(Exception):
    """Raised before a round that the stopping rule says is not needed; the driver ends its rounds there."""


@functools.cache
def t_quantile(confidence: float, degrees_of_freedom: int) -> float:
    return float(scipy_stats.t.ppf(0.5 + confidence / 2, degrees_of_freedom))


def half_width(values: Sequence[float], confidence: float = CONFIDENCE) -> float:
    """Half-width of the t interval of the mean of ``values``; infinite with fewer than two.

    Checked before every round, so plain floats (statistics.stdev's exact fractions cost milliseconds here).
    """
    count = len(values)
    if count < 2:
        return math.inf
    mean = math.fsum(values) / count
    variance = math.fsum((value - mean) ** 2 for value in values) / (count - 1)
    return t_quantile(confidence, count - 1) * math.sqrt(variance / count)


@dataclass(frozen=True)
class StoppingRule:
    """When rounds are enough: ``min_rounds`` always, then a narrow interval, ``max_rounds`` or the budget.

    ``threshold`` is the gate's relative threshold for the signal (0.05 for 5 %); the interval is of the
    mean of logarithms, so ``target`` is ``share`` of ``log(1 + threshold)``. The values are one a block
    of ``block_rounds`` rounds (the wall test's units, ``measure.records.wall_blocks``).
    """

    threshold: float
    min_rounds: int
    max_rounds: int
    budget_s: float = math.inf
    share: float = PRECISION_SHARE
    block_rounds: int = 1

    @property
    def target(self) -> float:
        return self.share * math.log1p(self.threshold)

    def enough(self, rounds: int, values: Sequence[float], elapsed_s: float) -> bool:
        """Whether ``rounds`` rounds, whose blocks gave ``values``, suffice ``elapsed_s`` seconds in."""
        if rounds < self.min_rounds:
            return False
        if rounds >= self.max_rounds or elapsed_s >= self.budget_s:
            return True
        return half_width(values) <= self.target


def block_value(own: Sequence[Sequence[float]], reference: Sequence[Sequence[float]] = ()) -> float:
    """A block's value: log of the variant's minimum seconds per image, less the reference's beside one.

    Minima, as the wall test takes them: host jitter only adds time (``core.ratio_of_minima``).
    """
    value = math.log(min(sample for one_round in own for sample in one_round))
    if reference:
        value -= math.log(min(sample for one_round in reference for sample in one_round))
    return value


@dataclass
class Sampler:
    """Watches the rounds as they are timed and stops them when the rule says so.

    ``before_round`` runs before every round (the driver's ``before``): it raises ``StopSampling`` once
    the rounds so far suffice, then runs the side-by-side reference's round (``reference_round``).
    ``own`` and ``reference`` are the timed loops' rounds, read as they grow.
    """

    rule: StoppingRule
    own: list[list[float]]
    reference: list[list[float]] | None = None
    reference_round: Callable[[], object] | None = None
    clock: Callable[[], float] = time.perf_counter
    started: float | None = None
    stopped_by: str = ""
    # One value a complete block of rounds (``block_value``).
    values: list[float] = field(default_factory=list)

    def before_round(self) -> None:
        if self.started is None:
            self.started = self.clock()
        else:
            size = self.rule.block_rounds
            while (len(self.values) + 1) * size <= len(self.own):  # blocks completed since the last check
                start = len(self.values) * size
                beside = self.reference[start : start + size] if self.reference else ()
                self.values.append(block_value(self.own[start : start + size], beside))
            elapsed = self.clock() - self.started
            if self.rule.enough(len(self.own), self.values, elapsed):
                self.stopped_by = self.reason(elapsed)
                raise StopSampling(self.stopped_by)
        if self.reference_round is not None:
            self.reference_round()

    def reason(self, elapsed: float) -> str:
        """Why the rounds stopped, in a few words."""
        if len(self.own) >= self.rule.max_rounds:
            return f"stopped at the cap of {self.rule.max_rounds}"
        if half_width(self.values) <= self.rule.target:
            return f"interval within {self.rule.share:g} of the {self.rule.threshold:.0%} threshold"
        return f"stopped by the budget of {self.rule.budget_s:g} s"


def kernel_passes(
    pipeline: VariantPipeline, calls: list[Callable[[], int]], passes: int, count_flops: bool, trace_path: Path | None
) -> tuple[list[DeviceSignals], float | None]:
    """Profiled passes (``device_signals.profiled_passes``), stopped once kernel time is known well enough.

    Two passes at least (a comparison needs two a side), then one more while the interval of the passes'
    median kernel time per image is wider than ``PRECISION_SHARE`` of the kernel-time threshold, up to
    ``passes``. Kernel time moves well under 1 % between passes, so two usually suffice. On a CPU
    (no kernel time) the first two passes are all.
    """
    from pytest_sdxl.analysis.comparison import DEFAULT_KERNEL_THRESHOLD
    from pytest_sdxl.measure.device_signals import profiled_passes

    first = min(passes, 2)
    signals, flops = profiled_passes(pipeline, calls, first, count_flops, trace_path)
    rule = StoppingRule(DEFAULT_KERNEL_THRESHOLD, first, passes)
    while True:
        values = [math.log(statistics.median(item.kernel_ms)) for item in signals if item.kernel_ms]
        if len(values) < len(signals) or rule.enough(len(values), values, 0.0):
            return signals, flops
        more, _ = profiled_passes(pipeline, calls, 1, False, None)
        for item in more:  # FLOPs are counted once; every pass carries them
            item.flops, item.stage_flops = signals[0].flops, dict(signals[0].stage_flops)
            item.matrix_peak_tflops = signals[0].matrix_peak_tflops
            item.matrix_peak_not_applicable = signals[0].matrix_peak_not_applicable
        signals.extend(more)
