"""Statistics on known samples, and against numpy and scipy on generated ones (hypothesis)."""

from __future__ import annotations

import math
import random

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pytest_sdxl.comparison import compare_samples, parse_threshold
from pytest_sdxl.statistics import (
    mann_whitney_u,
    ranks,
    ratio_interval,
    smallest_mann_whitney_p,
    summarize,
    t_cdf,
    t_quantile,
)

scipy_stats = pytest.importorskip("scipy.stats")

timings = st.lists(st.floats(min_value=1e-3, max_value=1e3, allow_nan=False), min_size=2, max_size=40)


def test_summary_of_known_samples() -> None:
    summary = summarize([4.0, 1.0, 3.0, 2.0])
    assert (summary.count, summary.mean, summary.median) == (4, 2.5, 2.5)
    assert (summary.q1, summary.q3, summary.iqr) == (1.75, 3.25, 1.5)
    assert summary.stdev == pytest.approx(math.sqrt(5 / 3))
    assert summary.cv == pytest.approx(math.sqrt(5 / 3) / 2.5)
    # t(0.975, 3) = 3.182446305...: the 95 % interval of the mean is 2.5 +- 3.1824 * sd / 2.
    half_width = 3.182446305284263 * math.sqrt(5 / 3) / 2
    assert (summary.ci_low, summary.ci_high) == pytest.approx((2.5 - half_width, 2.5 + half_width))


def test_summary_of_one_sample_has_no_spread() -> None:
    summary = summarize([0.25])
    assert summary.median == summary.mean == 0.25
    assert math.isnan(summary.stdev) and math.isnan(summary.ci_low) and math.isnan(summary.cv)


def test_summary_of_nothing_is_an_error() -> None:
    with pytest.raises(ValueError, match="empty"):
        summarize([])


@given(timings)
def test_summary_matches_numpy_and_scipy(samples: list[float]) -> None:
    summary = summarize(samples)
    array = np.array(samples)
    assert summary.mean == pytest.approx(array.mean(), rel=1e-9)
    assert summary.median == pytest.approx(np.median(array), rel=1e-9)
    assert (summary.q1, summary.q3) == pytest.approx(tuple(np.percentile(array, [25, 75])), rel=1e-9, abs=1e-12)
    assert summary.stdev == pytest.approx(array.std(ddof=1), rel=1e-6, abs=1e-12)
    assert summary.minimum <= summary.q1 <= summary.median <= summary.q3 <= summary.maximum
    if summary.stdev > 1e-9 * summary.mean:
        low, high = scipy_stats.t.interval(0.95, len(samples) - 1, loc=array.mean(), scale=scipy_stats.sem(array))
        assert (summary.ci_low, summary.ci_high) == pytest.approx((low, high), rel=1e-6)


@given(st.floats(min_value=0.001, max_value=0.999), st.floats(min_value=0.5, max_value=500))
def test_t_quantile_matches_scipy(probability: float, freedom: float) -> None:
    expected = scipy_stats.t.ppf(probability, freedom)
    assert t_quantile(probability, freedom) == pytest.approx(expected, rel=1e-6, abs=1e-8)


@given(st.floats(min_value=-50, max_value=50), st.floats(min_value=0.5, max_value=500))
def test_t_cdf_matches_scipy(value: float, freedom: float) -> None:
    assert t_cdf(value, freedom) == pytest.approx(scipy_stats.t.cdf(value, freedom), rel=1e-7, abs=1e-12)


def test_ranks_share_ties() -> None:
    assert ranks([3.0, 1.0, 3.0, 2.0]) == [3.5, 1.0, 3.5, 2.0]


distinct_pairs = st.lists(st.integers(0, 10_000), min_size=2, max_size=30, unique=True).flatmap(
    lambda values: st.tuples(st.just(values), st.integers(1, len(values) - 1))
)


@settings(max_examples=60)
@given(distinct_pairs)
def test_mann_whitney_exact_matches_scipy(case: tuple[list[int], int]) -> None:
    values, split = case
    first, second = [float(v) for v in values[:split]], [float(v) for v in values[split:]]
    u_first, p_value = mann_whitney_u(first, second)
    expected = scipy_stats.mannwhitneyu(first, second, alternative="two-sided", method="exact")
    if len(first) * len(second) <= 400:
        assert p_value == pytest.approx(expected.pvalue, rel=1e-9)
    assert u_first == expected.statistic


@given(st.lists(st.integers(0, 6), min_size=3, max_size=30), st.lists(st.integers(0, 6), min_size=3, max_size=30))
def test_mann_whitney_with_ties_matches_scipys_normal_approximation(first: list[int], second: list[int]) -> None:
    if len(set(first + second)) == len(first + second):
        return  # no tie: the exact branch, checked above
    _, p_value = mann_whitney_u([float(v) for v in first], [float(v) for v in second])
    if len(set(first + second)) == 1:
        assert p_value == 1.0
        return
    expected = scipy_stats.mannwhitneyu(first, second, alternative="two-sided", method="asymptotic")
    assert p_value == pytest.approx(expected.pvalue, rel=1e-9, abs=1e-12)


def test_three_against_three_cannot_reach_five_percent() -> None:
    assert smallest_mann_whitney_p(3, 3) == pytest.approx(0.1)
    assert smallest_mann_whitney_p(12, 12) < 1e-5


@given(timings, st.floats(min_value=0.2, max_value=5))
def test_ratio_of_scaled_samples_is_the_scale(samples: list[float], scale: float) -> None:
    estimate = ratio_interval(samples, [value * scale for value in samples])
    assert estimate.ratio == pytest.approx(scale, rel=1e-9)
    if not math.isnan(estimate.low):
        assert estimate.low <= estimate.ratio * (1 + 1e-9) and estimate.ratio <= estimate.high * (1 + 1e-9)


def test_identical_samples_give_ratio_one_and_p_one() -> None:
    estimate = ratio_interval([0.1, 0.1, 0.1], [0.1, 0.1, 0.1])
    assert (estimate.ratio, estimate.low, estimate.high, estimate.p_value) == (1.0, 1.0, 1.0, 1.0)


def synthetic(count: int, centre: float, seed: int, spread: float = 0.02) -> list[float]:
    generator = random.Random(seed)
    return [centre * (1 + generator.gauss(0, spread)) for _ in range(count)]


def test_compare_flags_a_twenty_percent_slowdown() -> None:
    base, new = synthetic(12, 0.100, seed=1), synthetic(12, 0.120, seed=2)
    comparison = compare_samples("baseline", "avg_gen_s", base, new)
    assert comparison.verdict == "regressed" and comparison.regressed
    assert comparison.test == "Mann-Whitney U"
    assert comparison.low < 1.2 < comparison.high


def test_compare_passes_an_identical_rerun() -> None:
    base = synthetic(12, 0.100, seed=1)
    comparison = compare_samples("baseline", "avg_gen_s", base, list(base))
    assert comparison.verdict == "unchanged" and comparison.ratio == pytest.approx(1.0)


def test_compare_passes_a_rerun_with_fresh_noise() -> None:
    comparison = compare_samples("baseline", "avg_gen_s", synthetic(12, 0.1, seed=1), synthetic(12, 0.1, seed=3))
    assert comparison.verdict == "unchanged"


def test_a_significant_change_below_the_threshold_is_not_a_regression() -> None:
    base, new = synthetic(40, 0.100, 1, spread=0.002), synthetic(40, 0.103, 2, spread=0.002)
    comparison = compare_samples("baseline", "avg_gen_s", base, new, threshold=0.05)
    assert comparison.p_value < 0.05 and comparison.verdict == "unchanged"


def test_three_runs_fall_back_to_welch_on_logarithms() -> None:
    comparison = compare_samples("baseline", "load_s", synthetic(3, 4.0, 1, 0.01), synthetic(3, 5.0, 2, 0.01))
    assert comparison.test == "Welch t (log)" and comparison.verdict == "regressed"


def test_a_faster_run_is_an_improvement() -> None:
    comparison = compare_samples("baseline", "avg_gen_s", synthetic(12, 0.1, 1), synthetic(12, 0.08, 2))
    assert comparison.verdict == "improved" and not comparison.regressed


@pytest.mark.parametrize(("text", "value"), [("5%", 0.05), ("0.05", 0.05), ("12.5%", 0.125), ("0", 0.0)])
def test_threshold_accepts_percentages_and_fractions(text: str, value: float) -> None:
    assert parse_threshold(text) == pytest.approx(value)


@pytest.mark.parametrize("text", ["five", "5", "150%", "-1%"])
def test_threshold_rejects_the_rest_with_a_clear_message(text: str) -> None:
    with pytest.raises(ValueError, match="percentage like 5%"):
        parse_threshold(text)
