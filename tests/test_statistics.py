"""Statistics on known samples, against numpy and scipy on generated ones (hypothesis), and the
false-alarm rates of the run-aware comparison on simulated clustered timings."""

from __future__ import annotations

import itertools
import math
import random

import numpy as np
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from scipy import stats as scipy_stats

from pytest_sdxl.analysis.comparison import parse_threshold
from pytest_sdxl.analysis.stats import (
    CI_METHOD,
    RUN_STATISTICS,
    compare_runs,
    holm,
    median_over_fastest,
    ratio_interval,
    run_statistic,
    summarize,
)

timings = st.lists(st.floats(min_value=1e-3, max_value=1e3, allow_nan=False), min_size=2, max_size=40)


def test_median_over_fastest_is_near_one_for_steady_calls_and_rises_where_most_strayed() -> None:
    assert median_over_fastest([0.100, 0.101, 0.102]) == pytest.approx(1.01)
    # The fastest call kept, most of the others slowed: the wall statistics' minimum stays, this rises.
    assert median_over_fastest([0.100, 0.150, 0.160, 0.101, 0.170]) == pytest.approx(1.5)
    assert math.isnan(median_over_fastest([]))


def test_summary_of_known_samples() -> None:
    summary = summarize([4.0, 1.0, 3.0, 2.0])
    assert (summary.count, summary.mean, summary.median) == (4, 2.5, 2.5)
    assert (summary.q1, summary.q3, summary.iqr) == (1.75, 3.25, 1.5)
    assert summary.stdev == pytest.approx(math.sqrt(5 / 3))
    assert summary.cv == pytest.approx(math.sqrt(5 / 3) / 2.5)
    assert summary.geometric_mean == pytest.approx(24 ** (1 / 4))
    # t(0.975, 3) = 3.182446305...: the 95 % interval of the mean log is its mean +- 3.1824 * sd / 2.
    logs = [math.log(value) for value in (1, 2, 3, 4)]
    log_mean = sum(logs) / 4
    log_sd = math.sqrt(sum((value - log_mean) ** 2 for value in logs) / 3)
    half_width = 3.182446305284263 * log_sd / 2
    assert (summary.ci_low, summary.ci_high) == pytest.approx(
        (math.exp(log_mean - half_width), math.exp(log_mean + half_width))
    )
    assert "logarithms" in CI_METHOD


def test_summary_with_a_zero_sample_falls_back_to_the_interval_of_the_mean() -> None:
    summary = summarize([0.0, 1.0, 2.0, 3.0])
    assert math.isnan(summary.geometric_mean)
    half_width = 3.182446305284263 * math.sqrt(5 / 3) / 2
    assert (summary.ci_low, summary.ci_high) == pytest.approx((1.5 - half_width, 1.5 + half_width))


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
    assert summary.geometric_mean == pytest.approx(scipy_stats.gmean(array), rel=1e-9)


spread_timings = st.lists(st.floats(min_value=1e-4, max_value=1e4), min_size=2, max_size=40)


@given(spread_timings)
@example([0.001, 5.0, 0.002])
@example([1e-4, 1e4])
def test_log_interval_is_positive_contains_the_geometric_mean_and_matches_scipy(samples: list[float]) -> None:
    summary = summarize(samples)
    assert 0 < summary.ci_low <= summary.geometric_mean * (1 + 1e-12)
    assert summary.geometric_mean <= summary.ci_high * (1 + 1e-12)
    logs = np.log(samples)
    if logs.std() > 1e-9:
        low, high = scipy_stats.t.interval(0.95, len(samples) - 1, loc=logs.mean(), scale=scipy_stats.sem(logs))
        assert (summary.ci_low, summary.ci_high) == pytest.approx((math.exp(low), math.exp(high)), rel=1e-6)


def test_a_spread_sample_keeps_its_interval_above_zero_where_the_mean_interval_would_not() -> None:
    samples = [0.001, 5.0, 0.002]
    summary = summarize(samples)
    mean_low, _ = scipy_stats.t.interval(0.95, 2, loc=np.mean(samples), scale=scipy_stats.sem(samples))
    assert mean_low < 0 < summary.ci_low < summary.geometric_mean < summary.ci_high


@given(timings, st.floats(min_value=0.2, max_value=5))
def test_ratio_of_scaled_samples_is_the_scale(samples: list[float], scale: float) -> None:
    estimate = ratio_interval(samples, [value * scale for value in samples])
    assert estimate.ratio == pytest.approx(scale, rel=1e-9)
    if not math.isnan(estimate.low):
        assert estimate.low <= estimate.ratio * (1 + 1e-9) and estimate.ratio <= estimate.high * (1 + 1e-9)


def test_identical_samples_give_ratio_one_and_p_one() -> None:
    estimate = ratio_interval([0.1, 0.1, 0.1], [0.1, 0.1, 0.1])
    assert (estimate.ratio, estimate.low, estimate.high, estimate.p_value) == (1.0, 1.0, 1.0, 1.0)


@pytest.mark.parametrize(("text", "value"), [("5%", 0.05), ("0.05", 0.05), ("12.5%", 0.125), ("0", 0.0)])
def test_threshold_accepts_percentages_and_fractions(text: str, value: float) -> None:
    assert parse_threshold(text) == pytest.approx(value)


@pytest.mark.parametrize("text", ["five", "5", "150%", "-1%"])
def test_threshold_rejects_the_rest_with_a_clear_message(text: str) -> None:
    with pytest.raises(ValueError, match="percentage like 5%"):
        parse_threshold(text)


# Run-aware comparison --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "expected"), [("min", 1.0), ("q10", 1.9), ("q25", 3.25), ("median", 5.5), ("mean", 5.5)]
)
def test_run_statistics_of_known_samples(name: str, expected: float) -> None:
    assert run_statistic([float(value) for value in range(10, 0, -1)], name) == pytest.approx(expected)
    assert name in RUN_STATISTICS


def test_an_unknown_run_statistic_lists_the_accepted_names() -> None:
    with pytest.raises(ValueError, match="min, q10, q25, median, mean"):
        run_statistic([1.0], "p99")
    with pytest.raises(ValueError, match="choose one of"):
        compare_runs([[1.0]], [[1.0]], statistic="max")


one_run = st.lists(st.floats(min_value=1e-3, max_value=1e3), min_size=1, max_size=8)
run_blocks = st.lists(one_run, min_size=2, max_size=7)


@given(run_blocks, run_blocks, st.sampled_from(RUN_STATISTICS))
def test_compare_runs_matches_scipys_welch_on_the_logarithms(
    base: list[list[float]], new: list[list[float]], statistic: str
) -> None:
    result = compare_runs(base, new, statistic=statistic)
    log_base = np.log([run_statistic(run, statistic) for run in base])
    log_new = np.log([run_statistic(run, statistic) for run in new])
    assert (result.base_runs, result.new_runs, result.insufficient) == (len(base), len(new), "")
    assert result.test == f"Welch t on log per-run {statistic}, {len(base)} vs {len(new)} runs"
    assert result.ratio == pytest.approx(math.exp(log_new.mean() - log_base.mean()), rel=1e-9)
    if log_base.std() < 1e-6 or log_new.std() < 1e-6:
        return  # scipy's degrees of freedom are unstable there; the degenerate cases are tested below
    expected = scipy_stats.ttest_ind(log_new, log_base, equal_var=False)
    assert result.p_value == pytest.approx(expected.pvalue, rel=1e-6, abs=1e-12)
    low, high = expected.confidence_interval(0.95)
    assert (result.low, result.high) == pytest.approx((math.exp(low), math.exp(high)), rel=1e-6)
    assert 0 < result.low <= result.ratio * (1 + 1e-12) and result.ratio <= result.high * (1 + 1e-12)


def test_compare_runs_flags_a_twenty_percent_slowdown_on_each_runs_minimum() -> None:
    generator = random.Random(1)
    base = [[0.100 * math.exp(generator.gauss(0, 0.05)) for _ in range(10)] for _ in range(3)]
    new = [[0.120 * math.exp(generator.gauss(0, 0.05)) for _ in range(10)] for _ in range(3)]
    result = compare_runs(base, new, statistic="min")
    assert result.p_value < 0.05 and result.low < 1.2 < result.high
    assert result.test == "Welch t on log per-run min, 3 vs 3 runs"


def test_one_sample_per_run_is_enough_with_two_runs_a_side() -> None:
    result = compare_runs([[4.0], [4.1], [3.9]], [[5.0], [5.1]])
    assert result.insufficient == "" and result.p_value < 0.05 and result.low > 1


@pytest.mark.parametrize(
    ("base", "new", "reason"),
    [
        ([[1.0, 1.1]], [[1.0], [1.2]], "1 run on the base side: at least 2 runs a side are needed"),
        ([[1.0], [1.1], []], [[], [1.2]], "1 run on the new side: at least 2 runs"),
        ([[1.0]], [[1.2]], "1 run on the base side and 1 run on the new side"),
        ([], [[1.2], [1.3]], "0 runs on the base side"),
    ],
)
def test_too_few_runs_give_a_ratio_but_no_verdict(base: list[list[float]], new: list[list[float]], reason: str) -> None:
    result = compare_runs(base, new)
    assert result.insufficient.startswith(reason)
    assert math.isnan(result.p_value) and math.isnan(result.low) and math.isnan(result.high)
    if result.base_runs and result.new_runs:
        assert result.ratio == pytest.approx(
            math.exp(
                np.mean(np.log([np.median(run) for run in new if run]))
                - np.mean(np.log([np.median(run) for run in base if run]))
            )
        )
    else:
        assert math.isnan(result.ratio)


def test_empty_runs_are_ignored() -> None:
    assert compare_runs([[1.0], [], [1.1]], [[1.2], [1.3], []]) == compare_runs([[1.0], [1.1]], [[1.2], [1.3]])


def test_zero_run_to_run_variance_gives_a_degenerate_interval() -> None:
    same = compare_runs([[0.1, 0.2], [0.1, 0.2], [0.1, 0.2]], [[0.1, 0.2]] * 4)
    assert (same.ratio, same.low, same.high, same.p_value) == (1.0, 1.0, 1.0, 1.0)
    moved = compare_runs([[0.1]] * 3, [[0.2]] * 3)
    assert moved.p_value == 0.0 and moved.low == moved.ratio == moved.high == pytest.approx(2.0)


@pytest.mark.parametrize("bad", [0.0, -0.1])
def test_non_positive_samples_are_refused_clearly(bad: float) -> None:
    with pytest.raises(ValueError, match="positive samples: run 2 on the new side"):
        compare_runs([[1.0], [1.1]], [[1.0], [1.0, bad]])


# Holm-Bonferroni ---------------------------------------------------------------------------------


def test_holm_of_known_values() -> None:
    # Sorted: 0.005 * 4, 0.01 * 3, 0.03 * 2, then 0.04 * 1 raised to 0.06 to stay monotone.
    assert holm([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.03, 0.06, 0.06, 0.02])
    assert holm([0.5, 0.9]) == [1.0, 1.0]
    assert holm([]) == []


def test_holm_leaves_nan_out_of_the_family() -> None:
    adjusted = holm([0.01, math.nan, 0.04])
    assert adjusted[0] == pytest.approx(0.02) and math.isnan(adjusted[1]) and adjusted[2] == pytest.approx(0.04)


def test_holm_refuses_values_that_are_not_p_values() -> None:
    with pytest.raises(ValueError, match="between 0 and 1"):
        holm([0.5, 1.5])


def holm_rejections(p_values: list[float], alpha: float) -> set[int]:
    """Holm's procedure as first stated: reject the smallest p-values while p_(k) <= alpha / (m - k + 1)."""
    order = sorted(range(len(p_values)), key=p_values.__getitem__)
    rejected: set[int] = set()
    for rank, index in enumerate(order):
        if p_values[index] > alpha / (len(p_values) - rank):
            break
        rejected.add(index)
    return rejected


unit_p_values = st.lists(st.floats(min_value=0, max_value=1), max_size=20)


@given(unit_p_values, st.floats(min_value=0.001, max_value=0.5))
def test_holm_adjusted_values_reject_what_the_step_down_procedure_rejects(p_values: list[float], alpha: float) -> None:
    adjusted = holm(p_values)
    assert all(original <= value <= 1 for original, value in zip(p_values, adjusted, strict=True))
    by_original = sorted(zip(p_values, adjusted, strict=True))
    assert all(first[1] <= second[1] for first, second in itertools.pairwise(by_original))
    # Float products may land either side of alpha exactly; leave those boundary cases out.
    if all(abs(value * (len(p_values) - rank) - alpha) > 1e-12 for rank, value in enumerate(sorted(p_values))):
        assert {index for index, value in enumerate(adjusted) if value <= alpha} == holm_rejections(p_values, alpha)


# False alarms on clustered timings ---------------------------------------------------------------

ALPHA = 0.05


def simulated_runs(
    generator: random.Random, runs: int, per_run: int, run_sigma: float, sample_sigma: float
) -> list[list[float]]:
    """Timings whose runs each carry their own lognormal machine-state factor, then lognormal noise."""
    result = []
    for _ in range(runs):
        run_level = 0.1 * math.exp(generator.gauss(0, run_sigma))
        result.append([run_level * math.exp(generator.gauss(0, sample_sigma)) for _ in range(per_run)])
    return result


def rate_bound(trials: int) -> float:
    """alpha plus three binomial standard errors: what an honest level-alpha test stays below."""
    return ALPHA + 3 * math.sqrt(ALPHA * (1 - ALPHA) / trials)


@settings(max_examples=6, deadline=None, derandomize=True)
@given(
    st.integers(3, 6),
    st.integers(3, 6),
    st.integers(5, 30),
    st.floats(0.01, 0.2),
    st.floats(0.01, 0.3),
    st.sampled_from(RUN_STATISTICS),
    st.integers(0, 2**32),
)
def test_run_aware_comparison_keeps_false_alarms_at_alpha(
    base_runs: int, new_runs: int, per_run: int, run_sigma: float, sample_sigma: float, statistic: str, seed: int
) -> None:
    generator = random.Random(seed)
    trials = 400
    alarms = sum(
        compare_runs(
            simulated_runs(generator, base_runs, per_run, run_sigma, sample_sigma),
            simulated_runs(generator, new_runs, per_run, run_sigma, sample_sigma),
            statistic=statistic,
        ).p_value
        < ALPHA
        for _ in range(trials)
    )
    assert alarms / trials <= rate_bound(trials)


def test_pooling_every_sample_into_mann_whitney_raises_false_alarms_the_run_aware_test_does_not() -> None:
    generator = random.Random(7)
    trials = 200
    pooled_alarms = run_aware_alarms = 0
    for _ in range(trials):
        base = simulated_runs(generator, 4, 20, run_sigma=0.05, sample_sigma=0.02)
        new = simulated_runs(generator, 4, 20, run_sigma=0.05, sample_sigma=0.02)
        pooled = scipy_stats.mannwhitneyu([v for run in base for v in run], [v for run in new for v in run])
        pooled_alarms += pooled.pvalue < ALPHA
        run_aware_alarms += compare_runs(base, new, statistic="min").p_value < ALPHA
    assert pooled_alarms / trials > 0.4  # eight times alpha: samples of one run are not independent
    assert run_aware_alarms / trials <= rate_bound(trials)


def test_holm_keeps_the_family_wise_false_alarm_rate_of_ten_null_comparisons_at_alpha() -> None:
    generator = random.Random(11)
    families, size = 300, 10
    any_raw = any_adjusted = 0
    for _ in range(families):
        p_values = [
            compare_runs(
                simulated_runs(generator, 3, 5, run_sigma=0.05, sample_sigma=0.05),
                simulated_runs(generator, 3, 5, run_sigma=0.05, sample_sigma=0.05),
            ).p_value
            for _ in range(size)
        ]
        any_raw += min(p_values) < ALPHA
        any_adjusted += min(holm(p_values)) < ALPHA
    assert any_raw / families > 0.2  # unadjusted, up to 1 - 0.95**10 = 40 % of families raise an alarm
    assert any_adjusted / families <= rate_bound(families)
