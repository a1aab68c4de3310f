"""Statistics of timing samples: summaries, intervals and the tests a comparison needs.

Pure Python (no scipy at run time: the GPU machines may not have it); the tests check every
function against scipy where it is installed.

- ``summarize``: count, mean, geometric mean, median, standard deviation, quartiles and IQR
  (linear interpolation, numpy's default), CV (standard deviation / mean) and a 95 % confidence
  interval of the **geometric mean** from Student's t distribution on the logarithms, so that no
  interval of a time ever reaches below zero.
- ``run_statistic`` and ``compare_runs``: timings come in runs whose samples share the run's
  machine state, so they are not independent; the run is the unit. Each run is reduced to one
  statistic (its minimum, a low quantile, median or mean), then Welch's t test and interval on the
  logarithms of those per-run statistics give the ratio new / base.
- ``holm``: Holm-Bonferroni adjusted p-values for a report that tests many signals at once.
- ``mann_whitney_u``: two-sided Mann-Whitney U test; exact distribution for small samples
  without ties, else the normal approximation with tie and continuity corrections (as scipy's
  ``method="auto"`` does). Valid only for independent samples: pooling every sample of every run
  into it gives far too many false alarms (the tests show it).
- ``ratio_interval``: the ratio of geometric means of two positive samples with a Welch t
  interval computed on the logarithms (timings are multiplicative and skewed to the right).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from functools import lru_cache
from statistics import NormalDist

from pytest_sdxl.analysis.distributions import t_cdf, t_quantile

CONFIDENCE = 0.95
CI_METHOD = "Student t interval on the logarithms (geometric mean)"
# Exact Mann-Whitney distributions are counted by dynamic programming up to this many pairs.
EXACT_PAIRS_LIMIT = 400
# Per-run statistics a comparison may reduce each run to; host jitter only ever adds time, so the
# low quantiles of a run are steadier than its mean.
RUN_STATISTICS = ("min", "q10", "q25", "median", "mean")
RUN_QUANTILES = {"min": 0.0, "q10": 0.10, "q25": 0.25, "median": 0.5}


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


def quantile(ordered: Sequence[float], fraction: float) -> float:
    """Linear-interpolation quantile of sorted samples (numpy's default method)."""
    position = (len(ordered) - 1) * fraction
    below = math.floor(position)
    above = min(below + 1, len(ordered) - 1)
    return ordered[below] + (ordered[above] - ordered[below]) * (position - below)


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
    mean = math.fsum(values) / count
    positive = values[0] > 0
    log_mean, log_variance = log_moments(values) if positive else (math.nan, math.nan)
    ci_low = ci_high = stdev = math.nan
    if count > 1:
        stdev = math.sqrt(math.fsum((value - mean) ** 2 for value in values) / (count - 1))
        critical = t_quantile(0.5 + confidence / 2, count - 1)
        if positive:
            half_width = critical * math.sqrt(log_variance / count)
            ci_low, ci_high = math.exp(log_mean - half_width), math.exp(log_mean + half_width)
        else:
            half_width = critical * stdev / math.sqrt(count)
            ci_low, ci_high = mean - half_width, mean + half_width
    return Summary(
        count=count,
        mean=mean,
        geometric_mean=math.exp(log_mean) if positive else math.nan,
        median=quantile(values, 0.5),
        stdev=stdev,
        q1=quantile(values, 0.25),
        q3=quantile(values, 0.75),
        minimum=values[0],
        maximum=values[-1],
        ci_low=ci_low,
        ci_high=ci_high,
    )


def ranks(values: Sequence[float]) -> list[float]:
    """Ranks from 1, ties sharing the mean of their ranks."""
    order = sorted(range(len(values)), key=values.__getitem__)
    result = [0.0] * len(values)
    start = 0
    while start < len(order):
        end = start
        while end + 1 < len(order) and values[order[end + 1]] == values[order[start]]:
            end += 1
        for position in range(start, end + 1):
            result[order[position]] = (start + end) / 2 + 1
        start = end + 1
    return result


@lru_cache(maxsize=64)
def u_distribution(first: int, second: int) -> tuple[int, ...]:
    """How many orderings of ``first`` + ``second`` distinct values give each U (0..first*second)."""
    # counts[n][u]: orderings of m first-sample values among n second-sample values, grown one m at a time.
    counts = [[1] for _ in range(second + 1)]
    for _ in range(first):
        grown = [[1]]
        for n in range(1, second + 1):
            # The largest value belongs to the first sample (it beats all n others) or to the second.
            with_first = [0] * n + counts[n]
            without = grown[n - 1]
            size = max(len(with_first), len(without))
            grown.append(
                [
                    (with_first[u] if u < len(with_first) else 0) + (without[u] if u < len(without) else 0)
                    for u in range(size)
                ]
            )
        counts = grown
    return tuple(counts[second])


def mann_whitney_u(first: Sequence[float], second: Sequence[float]) -> tuple[float, float]:
    """Two-sided Mann-Whitney U test; returns (U of the first sample, p-value)."""
    count_first, count_second = len(first), len(second)
    if not count_first or not count_second:
        raise ValueError("the Mann-Whitney U test needs at least one sample on each side")
    pooled = [*first, *second]
    all_ranks = ranks(pooled)
    u_first = math.fsum(all_ranks[:count_first]) - count_first * (count_first + 1) / 2
    pairs = count_first * count_second
    has_ties = len(set(pooled)) < len(pooled)
    if not has_ties and pairs <= EXACT_PAIRS_LIMIT:
        distribution = u_distribution(count_first, count_second)
        total = math.comb(count_first + count_second, count_first)
        extreme = max(u_first, pairs - u_first)
        upper = sum(distribution[round(extreme) :]) / total
        return u_first, min(1.0, 2 * upper)
    tie_sizes: dict[float, int] = {}
    for value in pooled:
        tie_sizes[value] = tie_sizes.get(value, 0) + 1
    total_count = count_first + count_second
    tie_term = math.fsum(size**3 - size for size in tie_sizes.values()) / (total_count * (total_count - 1))
    variance = pairs / 12 * ((total_count + 1) - tie_term)
    if variance <= 0:
        return u_first, 1.0
    distance = abs(u_first - pairs / 2) - 0.5
    z_score = max(distance, 0.0) / math.sqrt(variance)
    return u_first, min(1.0, 2 * (1 - NormalDist().cdf(z_score)))


def smallest_mann_whitney_p(count_first: int, count_second: int) -> float:
    """The smallest two-sided p-value the test can give for these sample sizes (no ties)."""
    return min(1.0, 2 / math.comb(count_first + count_second, count_first))


@dataclass(frozen=True)
class RatioEstimate:
    """new / base as a ratio of geometric means, its confidence interval and the Welch p-value."""

    ratio: float
    low: float
    high: float
    p_value: float


def welch_on_logarithms(base: Sequence[float], new: Sequence[float], confidence: float) -> RatioEstimate:
    """Welch's t test and interval on the logarithms of two positive samples, as a ratio new / base."""
    mean_base, variance_base = log_moments(base)
    mean_new, variance_new = log_moments(new)
    difference = mean_new - mean_base
    if len(base) < 2 or len(new) < 2:
        return RatioEstimate(math.exp(difference), math.nan, math.nan, math.nan)
    share_base, share_new = variance_base / len(base), variance_new / len(new)
    standard_error = math.sqrt(share_base + share_new)
    if standard_error == 0.0:
        return t_on_logarithms(difference, 0.0, math.inf, confidence)
    freedom = (share_base + share_new) ** 2 / (share_base**2 / (len(base) - 1) + share_new**2 / (len(new) - 1))
    return t_on_logarithms(difference, standard_error, freedom, confidence)


def t_on_logarithms(difference: float, standard_error: float, freedom: float, confidence: float) -> RatioEstimate:
    """A difference of logarithms with its standard error as a ratio, its Student t interval and p-value.

    With no error at all the interval is the ratio itself, and p is 1 for no difference, else 0.
    """
    ratio = math.exp(difference)
    if standard_error == 0.0:
        return RatioEstimate(ratio, ratio, ratio, 1.0 if difference == 0.0 else 0.0)
    critical = t_quantile(0.5 + confidence / 2, freedom)
    p_value = 2 * (1 - t_cdf(abs(difference) / standard_error, freedom))
    return RatioEstimate(
        ratio=ratio,
        low=math.exp(difference - critical * standard_error),
        high=math.exp(difference + critical * standard_error),
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
        return math.fsum(values) / len(values)
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
