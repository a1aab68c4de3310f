"""Statistics of timing samples: summaries, intervals and the tests a comparison needs.

Distributions and tests come from ``scipy.stats``, imported on first use: importing it takes about
a second, which a pytest session that never reports should not pay.

- ``summarize``: count, mean, geometric mean, median, standard deviation, quartiles and IQR
  (linear interpolation, numpy's default), CV (standard deviation / mean) and a 95 % confidence
  interval of the **geometric mean** from Student's t distribution on the logarithms, so that no
  interval of a time ever reaches below zero.
- ``run_statistic`` and ``compare_runs``: timings come in runs whose samples share the run's
  machine state, so they are not independent; the run is the unit. Each run is reduced to one
  statistic (its minimum, a low quantile, median or mean), then Welch's t test and interval on the
  logarithms of those per-run statistics give the ratio new / base. (A rank test over every
  sample of every run would treat those samples as independent and raise far too many false
  alarms; the tests show it.)
- ``holm``: Holm-Bonferroni adjusted p-values for a report that tests many signals at once.
- ``ratio_interval``: the ratio of geometric means of two positive samples with a Welch t
  interval computed on the logarithms (timings are multiplicative and skewed to the right).
"""

from __future__ import annotations

import math
import statistics
import warnings
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

CONFIDENCE = 0.95
CI_METHOD = "Student t interval on the logarithms (geometric mean)"
# Per-run statistics a comparison may reduce each run to; host jitter only ever adds time, so the
# low quantiles of a run are steadier than its mean.
RUN_STATISTICS = ("min", "q10", "q25", "median", "mean")
RUN_QUANTILES = {"min": 0.0, "q10": 0.10, "q25": 0.25, "median": 0.5}


def scipy_stats() -> Any:
    """``scipy.stats``, imported when a figure is first computed (about a second's import)."""
    from scipy import stats

    return stats


@dataclass(frozen=True)
class Summary:
    """Summary statistics of one metric's samples (seconds or whatever unit they came in)."""

    count: int
    mean: float
    geometric_mean: float  # NaN when a sample is <= 0
    median: float
    stdev: float
    q1: float
    q3: float
    minimum: float
    maximum: float
    ci_low: float
    ci_high: float

    @property
    def iqr(self) -> float:
        return self.q3 - self.q1

    @property
    def cv(self) -> float:
        """Coefficient of variation (sample standard deviation / mean); NaN for a zero mean."""
        return self.stdev / self.mean if self.mean else math.nan

    def as_dict(self) -> dict[str, float]:
        return {**asdict(self), "iqr": self.iqr, "cv": self.cv}


def median_over_fastest(samples: Sequence[float]) -> float:
    """The median sample over the fastest, near 1 for timings a host left alone; NaN without samples.

    A host that interferes for seconds at a time slows many calls and spares some: the fastest calls, which
    the wall statistics take, stay, while this rises (the method page, "Minima, not medians").
    """
    return statistics.median(samples) / min(samples) if samples else math.nan


def quantile(ordered: Sequence[float], fraction: float) -> float:
    """Linear-interpolation quantile of sorted samples (numpy's default method)."""
    position = (len(ordered) - 1) * fraction
    below = math.floor(position)
    above = min(below + 1, len(ordered) - 1)
    return ordered[below] + (ordered[above] - ordered[below]) * (position - below)


def exp_or_inf(value: float) -> float:
    """``math.exp`` that answers infinity where the float range ends, rather than raising.

    A results file may hold any finite time, and the ratio of two absurd ones, or its interval,
    can lie past the largest float; infinity says "beyond measure" and the reports print it as such.
    """
    try:
        return math.exp(value)
    except OverflowError:
        return math.inf


def mean_and_stdev(values: Sequence[float]) -> tuple[float, float]:
    """Arithmetic mean and sample standard deviation (NaN for one value), for any finite floats.

    The values are scaled by the largest magnitude first, so squares of times near the top of the
    float range (a damaged file can hold 1e154 ms) neither overflow nor lose the small ones.
    """
    scale = max(abs(value) for value in values) or 1.0
    scaled = [value / scale for value in values]
    scaled_mean = math.fsum(scaled) / len(scaled)
    if len(scaled) < 2:
        return scaled_mean * scale, math.nan
    variance = math.fsum((value - scaled_mean) ** 2 for value in scaled) / (len(scaled) - 1)
    return scaled_mean * scale, math.sqrt(variance) * scale


def log_moments(values: Sequence[float]) -> tuple[float, float]:
    """Mean and sample variance (NaN for one value) of the logarithms of positive values."""
    logs = [math.log(value) for value in values]
    # Shifting by the first logarithm keeps identical values at exactly zero variance and keeps
    # equal constant sides at exactly zero difference, whatever the rounding of a sum would do.
    shifted = [value - logs[0] for value in logs]
    shifted_mean = math.fsum(shifted) / len(shifted)
    if len(shifted) < 2:
        return logs[0] + shifted_mean, math.nan
    variance = math.fsum((value - shifted_mean) ** 2 for value in shifted) / (len(shifted) - 1)
    return logs[0] + shifted_mean, variance


def summarize(samples: Sequence[float], confidence: float = CONFIDENCE) -> Summary:
    """Summary of the samples; with one sample the spread and interval are NaN.

    The interval is that of the geometric mean: a Student t interval on the logarithms, turned
    back into times, so it is never below zero and is skewed to the right as timings are. Only
    when a sample is <= 0 (no logarithm) does it fall back to the t interval of the arithmetic
    mean, and the geometric mean is NaN.
    """
    values = sorted(float(value) for value in samples)
    if not values:
        raise ValueError("cannot summarize an empty list of samples")
    count = len(values)
    mean, spread = mean_and_stdev(values)
    positive = values[0] > 0
    log_mean, log_variance = log_moments(values) if positive else (math.nan, math.nan)
    ci_low = ci_high = stdev = math.nan
    if count > 1:
        stdev = spread
        critical = float(scipy_stats().t.ppf(0.5 + confidence / 2, count - 1))
        if positive:
            half_width = critical * math.sqrt(log_variance / count)
            ci_low, ci_high = exp_or_inf(log_mean - half_width), exp_or_inf(log_mean + half_width)
        else:
            half_width = critical * stdev / math.sqrt(count)
            ci_low, ci_high = mean - half_width, mean + half_width
    return Summary(
        count=count,
        mean=mean,
        geometric_mean=exp_or_inf(log_mean) if positive else math.nan,
        median=quantile(values, 0.5),
        stdev=stdev,
        q1=quantile(values, 0.25),
        q3=quantile(values, 0.75),
        minimum=values[0],
        maximum=values[-1],
        ci_low=ci_low,
        ci_high=ci_high,
    )


@dataclass(frozen=True)
class RatioEstimate:
    """new / base as a ratio of geometric means, its confidence interval and the Welch p-value."""

    ratio: float
    low: float
    high: float
    p_value: float


def welch_on_logarithms(base: Sequence[float], new: Sequence[float], confidence: float) -> RatioEstimate:
    """Welch's t test and interval on the logarithms of two positive samples, as a ratio new / base.

    scipy's ``ttest_ind`` does the test; the two cases it cannot answer are settled here: fewer
    than two values on a side (no noise estimate: NaN interval and p) and no spread on either side
    (the interval is the ratio itself, p is 1 for equal sides, else 0).
    """
    mean_base, variance_base = log_moments(base)
    mean_new, variance_new = log_moments(new)
    difference = mean_new - mean_base
    if len(base) < 2 or len(new) < 2:
        return RatioEstimate(exp_or_inf(difference), math.nan, math.nan, math.nan)
    if variance_base == 0.0 and variance_new == 0.0:
        return t_on_logarithms(difference, 0.0, math.inf, confidence)
    with warnings.catch_warnings():
        # A side whose runs agree to the last bits (a constant kernel count, say) is a fair input: the
        # answer is right to every digit that matters, and scipy's precision warning would only alarm.
        warnings.filterwarnings("ignore", "Precision loss occurred", RuntimeWarning)
        test = scipy_stats().ttest_ind(
            [math.log(value) for value in new], [math.log(value) for value in base], equal_var=False
        )
    low, high = test.confidence_interval(confidence)
    return RatioEstimate(
        ratio=exp_or_inf(difference),
        low=exp_or_inf(float(low)),
        high=exp_or_inf(float(high)),
        p_value=min(1.0, max(0.0, float(test.pvalue))),
    )


def t_on_logarithms(difference: float, standard_error: float, freedom: float, confidence: float) -> RatioEstimate:
    """A difference of logarithms with its standard error as a ratio, its Student t interval and p-value.

    With no error at all the interval is the ratio itself, and p is 1 for no difference, else 0.
    """
    ratio = exp_or_inf(difference)
    if standard_error == 0.0:
        return RatioEstimate(ratio, ratio, ratio, 1.0 if difference == 0.0 else 0.0)
    distribution = scipy_stats().t(freedom)
    critical = float(distribution.ppf(0.5 + confidence / 2))
    p_value = 2 * float(distribution.sf(abs(difference) / standard_error))
    return RatioEstimate(
        ratio=ratio,
        low=exp_or_inf(difference - critical * standard_error),
        high=exp_or_inf(difference + critical * standard_error),
        p_value=min(1.0, max(0.0, p_value)),
    )


def ratio_interval(base: Sequence[float], new: Sequence[float], confidence: float = CONFIDENCE) -> RatioEstimate:
    """Ratio of geometric means (new / base) with a Welch t interval and test on the logarithms."""
    if not base or not new:
        raise ValueError("ratio_interval needs at least one sample on each side")
    if min(list(base) + list(new)) <= 0:
        raise ValueError("ratio_interval needs positive samples on both sides")
    return welch_on_logarithms(base, new, confidence)


def check_run_statistic(name: str) -> None:
    if name not in RUN_STATISTICS:
        raise ValueError(f"run statistic {name!r} not known; choose one of {', '.join(RUN_STATISTICS)}")


def run_statistic(samples: Sequence[float], name: str) -> float:
    """One run reduced to one number: its minimum, 10 % or 25 % quantile, median or mean."""
    check_run_statistic(name)
    values = sorted(float(value) for value in samples)
    if not values:
        raise ValueError("cannot reduce an empty run to a statistic")
    if name == "mean":
        return mean_and_stdev(values)[0]
    return quantile(values, RUN_QUANTILES[name])


@dataclass(frozen=True)
class RunComparison:
    """new / base compared run by run: the ratio, its interval, the p-value and what they rest on."""

    ratio: float  # ratio of geometric means of the per-run statistics
    low: float  # interval of the ratio; NaN when insufficient
    high: float
    p_value: float  # two-sided; NaN when insufficient
    test: str
    base_runs: int
    new_runs: int
    insufficient: str  # "" or why the data cannot reach a verdict
    # How many processes measured each side's runs where the comparison took them as its samples
    # (``analysis.processes``); 0 where it did not count them (the runs were its unit).
    base_processes: int = 0
    new_processes: int = 0


def count_runs(count: int) -> str:
    return f"{count} run" if count == 1 else f"{count} runs"


def compare_runs(
    base: Sequence[Sequence[float]],
    new: Sequence[Sequence[float]],
    statistic: str = "median",
    confidence: float = CONFIDENCE,
) -> RunComparison:
    """Each non-empty run reduced to ``statistic``, then Welch's t on the logarithms of those values.

    Runs, not samples, are the independent unit: samples of one run share its machine state. A
    side with one sample per run (a load time) is fine. With fewer than two runs on a side the
    run-to-run noise cannot be estimated, so the interval and p-value are NaN and ``insufficient``
    says why. Every sample must be positive.
    """
    check_run_statistic(statistic)
    for side, runs in (("base", base), ("new", new)):
        for index, run in enumerate(runs, start=1):
            if any(value <= 0 for value in run):
                raise ValueError(
                    f"compare_runs needs positive samples: run {index} on the {side} side has {min(run)!r} "
                    "(timings are compared as ratios, on their logarithms)"
                )
    base_values = [run_statistic(run, statistic) for run in base if len(run)]
    new_values = [run_statistic(run, statistic) for run in new if len(run)]
    if base_values and new_values:
        estimate = welch_on_logarithms(base_values, new_values, confidence)
    else:
        estimate = RatioEstimate(math.nan, math.nan, math.nan, math.nan)
    short = [
        f"{count_runs(len(values))} on the {side} side"
        for side, values in (("base", base_values), ("new", new_values))
        if len(values) < 2
    ]
    insufficient = ""
    if short:
        insufficient = f"{' and '.join(short)}: at least 2 runs a side are needed to estimate run-to-run noise"
    return RunComparison(
        ratio=estimate.ratio,
        low=estimate.low,
        high=estimate.high,
        p_value=estimate.p_value,
        test=f"Welch t on log per-run {statistic}, {len(base_values)} vs {len(new_values)} runs",
        base_runs=len(base_values),
        new_runs=len(new_values),
        insufficient=insufficient,
    )


def holm(p_values: Sequence[float]) -> list[float]:
    """Holm-Bonferroni step-down adjusted p-values, in the input order.

    The k-th smallest of m p-values is multiplied by m - k + 1, made monotone and capped at 1;
    comparing the adjusted values with alpha keeps the chance of any false alarm in the family at
    or below alpha. NaN entries (comparisons that could not be made) stay NaN and do not count in m.
    """
    if any(not 0.0 <= value <= 1.0 for value in p_values if not math.isnan(value)):
        raise ValueError(f"p-values must lie between 0 and 1: {list(p_values)}")
    present = sorted((value, index) for index, value in enumerate(p_values) if not math.isnan(value))
    adjusted = [math.nan] * len(p_values)
    running = 0.0
    for rank, (value, index) in enumerate(present):
        running = max(running, min(1.0, (len(present) - rank) * value))
        adjusted[index] = running
    return adjusted
