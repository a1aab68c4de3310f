"""Statistics of timing samples: summaries, intervals and the two tests a comparison needs.

Pure Python (no scipy at run time: the GPU machines may not have it); the tests check every
function against scipy where it is installed.

- ``summarize``: count, mean, median, standard deviation, quartiles and IQR (linear
  interpolation, numpy's default), CV (standard deviation / mean) and a 95 % confidence interval
  of the **mean** from Student's t distribution.
- ``mann_whitney_u``: two-sided Mann-Whitney U test; exact distribution for small samples
  without ties, else the normal approximation with tie and continuity corrections (as scipy's
  ``method="auto"`` does).
- ``ratio_interval``: the ratio of geometric means of two positive samples with a Welch t
  interval computed on the logarithms (timings are multiplicative and skewed to the right).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from functools import lru_cache
from statistics import NormalDist

CONFIDENCE = 0.95
CI_METHOD = "Student t interval of the mean"
# Exact Mann-Whitney distributions are counted by dynamic programming up to this many pairs.
EXACT_PAIRS_LIMIT = 400


@dataclass(frozen=True)
class Summary:
    """Summary statistics of one metric's samples (seconds or whatever unit they came in)."""

    count: int
    mean: float
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


def summarize(samples: Sequence[float], confidence: float = CONFIDENCE) -> Summary:
    """Summary of the samples; with one sample the spread and interval are NaN."""
    values = sorted(float(value) for value in samples)
    if not values:
        raise ValueError("cannot summarize an empty list of samples")
    count = len(values)
    mean = math.fsum(values) / count
    if count > 1:
        stdev = math.sqrt(math.fsum((value - mean) ** 2 for value in values) / (count - 1))
        half_width = t_quantile(0.5 + confidence / 2, count - 1) * stdev / math.sqrt(count)
    else:
        stdev = half_width = math.nan
    return Summary(
        count=count,
        mean=mean,
        median=quantile(values, 0.5),
        stdev=stdev,
        q1=quantile(values, 0.25),
        q3=quantile(values, 0.75),
        minimum=values[0],
        maximum=values[-1],
        ci_low=mean - half_width,
        ci_high=mean + half_width,
    )


def incomplete_beta(a: float, b: float, x: float) -> float:
    """Regularized incomplete beta I_x(a, b), by its continued fraction (modified Lentz)."""
    if x <= 0.0:
        return 0.0
    if x >= 1.0:
        return 1.0
    if x > (a + 1.0) / (a + b + 2.0):
        # The continued fraction converges fast only below the mean: use the symmetry there.
        return 1.0 - incomplete_beta(b, a, 1.0 - x)
    log_front = math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log1p(-x)
    tiny = 1e-300
    numerator_term, denominator = 1.0, 1.0 - (a + b) * x / (a + 1.0)
    denominator = 1.0 / (denominator if abs(denominator) > tiny else tiny)
    fraction = denominator
    for index in range(1, 300):
        for coefficient in (
            index * (b - index) * x / ((a + 2 * index - 1) * (a + 2 * index)),
            -(a + index) * (a + b + index) * x / ((a + 2 * index) * (a + 2 * index + 1)),
        ):
            denominator = 1.0 + coefficient * denominator
            denominator = 1.0 / (denominator if abs(denominator) > tiny else tiny)
            numerator_term = 1.0 + coefficient / numerator_term
            numerator_term = numerator_term if abs(numerator_term) > tiny else tiny
            step = denominator * numerator_term
            fraction *= step
        if abs(step - 1.0) < 1e-15:
            break
    return math.exp(log_front) * fraction / a


def t_cdf(value: float, degrees_of_freedom: float) -> float:
    """Student's t cumulative distribution function."""
    if math.isinf(degrees_of_freedom):
        return NormalDist().cdf(value)
    tail = 0.5 * incomplete_beta(degrees_of_freedom / 2, 0.5, degrees_of_freedom / (degrees_of_freedom + value**2))
    return 1.0 - tail if value > 0 else tail


def t_quantile(probability: float, degrees_of_freedom: float) -> float:
    """Student's t quantile (inverse CDF), by bisection on ``t_cdf``."""
    if not 0.0 < probability < 1.0:
        raise ValueError(f"probability {probability} must lie strictly between 0 and 1")
    if probability == 0.5:
        return 0.0
    low, high = -1.0, 1.0
    while t_cdf(low, degrees_of_freedom) > probability:
        low *= 2.0
    while t_cdf(high, degrees_of_freedom) < probability:
        high *= 2.0
    for _ in range(200):
        middle = (low + high) / 2
        if t_cdf(middle, degrees_of_freedom) < probability:
            low = middle
        else:
            high = middle
        if high - low < 1e-12 * max(1.0, abs(middle)):
            break
    return (low + high) / 2


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


def ratio_interval(base: Sequence[float], new: Sequence[float], confidence: float = CONFIDENCE) -> RatioEstimate:
    """Ratio of geometric means (new / base) with a Welch t interval and test on the logarithms."""
    if min(list(base) + list(new), default=0.0) <= 0:
        raise ValueError("ratio_interval needs positive samples on both sides")
    log_base, log_new = [math.log(value) for value in base], [math.log(value) for value in new]
    mean_base, mean_new = math.fsum(log_base) / len(log_base), math.fsum(log_new) / len(log_new)
    difference = mean_new - mean_base
    if len(log_base) < 2 or len(log_new) < 2:
        return RatioEstimate(math.exp(difference), math.nan, math.nan, math.nan)
    variance_base = math.fsum((value - mean_base) ** 2 for value in log_base) / (len(log_base) - 1)
    variance_new = math.fsum((value - mean_new) ** 2 for value in log_new) / (len(log_new) - 1)
    share_base, share_new = variance_base / len(log_base), variance_new / len(log_new)
    standard_error = math.sqrt(share_base + share_new)
    if standard_error == 0.0:
        p_value = 1.0 if difference == 0.0 else 0.0
        return RatioEstimate(math.exp(difference), math.exp(difference), math.exp(difference), p_value)
    freedom = (share_base + share_new) ** 2 / (share_base**2 / (len(log_base) - 1) + share_new**2 / (len(log_new) - 1))
    critical = t_quantile(0.5 + confidence / 2, freedom)
    p_value = 2 * (1 - t_cdf(abs(difference) / standard_error, freedom))
    return RatioEstimate(
        ratio=math.exp(difference),
        low=math.exp(difference - critical * standard_error),
        high=math.exp(difference + critical * standard_error),
        p_value=min(1.0, max(0.0, p_value)),
    )
