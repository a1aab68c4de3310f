"""The host-adjusted wall comparison: against a least-squares fit, on simulated host drift, and its edges."""

from __future__ import annotations

import math
import random
import re

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pytest_sdxl.analysis.comparison import SIGNALS_BY_NAME, Rules, compare_signal, verdict_of
from pytest_sdxl.analysis.host_adjusted import compare_host_adjusted
from pytest_sdxl.analysis.stats import compare_runs

scipy_stats = pytest.importorskip("scipy.stats")

run_pair = st.tuples(st.floats(min_value=5e-3, max_value=5e-2), st.floats(min_value=1e-2, max_value=1e-1))


@settings(max_examples=60, deadline=None)
@given(st.lists(run_pair, min_size=2, max_size=8), st.lists(run_pair, min_size=2, max_size=8))
def test_the_estimate_and_p_value_match_an_ordinary_least_squares_fit(
    base: list[tuple[float, float]], new: list[tuple[float, float]]
) -> None:
    result = compare_host_adjusted([list(pair) for pair in base], [list(pair) for pair in new])
    own = np.log([pair[0] for pair in base + new])
    reference = np.log([pair[1] for pair in base + new])
    is_new = np.array([0.0] * len(base) + [1.0] * len(new))
    spread = sum(float(np.sum((reference[mask] - reference[mask].mean()) ** 2)) for mask in (is_new == 0, is_new == 1))
    if spread <= 1e-6 * len(own) or len(own) <= 3:
        assert "slope 1" in result.test  # no slope to fit: the plain ratio of minima
        return
    design = np.column_stack([np.ones_like(own), reference, is_new])
    fitted, *_ = np.linalg.lstsq(design, own, rcond=None)
    residual = own - design @ fitted
    freedom = len(own) - 3
    covariance = float(residual @ residual) / freedom * np.linalg.pinv(design.T @ design)
    error = math.sqrt(covariance[2, 2])
    assert result.ratio == pytest.approx(math.exp(fitted[2]), rel=1e-6)
    shown = re.search(r"slope (-?[0-9.]+) fitted", result.test)
    assert shown is not None and float(shown.group(1)) == pytest.approx(fitted[1], abs=0.006)
    if error > 1e-9:
        expected_p = 2 * scipy_stats.t.sf(abs(fitted[2]) / error, freedom)
        assert result.p_value == pytest.approx(expected_p, rel=1e-4, abs=1e-9)
        assert result.low < result.ratio < result.high


def simulated_measurement(
    rng: random.Random, runs: int, slowdown: float = 1.0, elasticity: float = 0.75
) -> list[list[float]]:
    """Runs of (variant min, reference min) on a host whose speed drifts from run to run.

    Shaped like a batch path on a fast GPU (the user guide's method page, "Blocks of rounds and the
    host-adjusted wall test"): the reference is 27 ms per image on a fast host and up to 30 % slower on
    a slow one, and the variant (11 ms) rises by ``elasticity`` of the reference's share.
    """
    level = rng.choice([1.0, 1.0, 1.05, 1.15])  # the host's state over this whole measurement
    pairs = []
    for _ in range(runs):
        host = level * (1.0 + abs(rng.gauss(0.0, 0.05)))
        reference = 0.027 * host * (1 + abs(rng.gauss(0, 0.004)))
        own = 0.011 * host**elasticity * slowdown * (1 + abs(rng.gauss(0, 0.004)))
        pairs.append([own, reference])
    return pairs


def flagged(result_p: float, ratio: float, threshold: float = 0.05) -> bool:
    return result_p < 0.05 and abs(ratio - 1) > threshold / 2


def test_on_a_drifting_host_the_adjusted_test_keeps_false_alarms_at_alpha_where_the_plain_ratio_does_not() -> None:
    rng = random.Random(20261127)
    adjusted_alarms = plain_alarms = 0
    trials = 300
    for _ in range(trials):
        base, new = simulated_measurement(rng, 10), simulated_measurement(rng, 10)
        adjusted = compare_host_adjusted(base, new)
        plain = compare_runs(
            [[own / reference] for own, reference in base], [[own / reference] for own, reference in new]
        )
        adjusted_alarms += flagged(adjusted.p_value, adjusted.ratio)
        plain_alarms += flagged(plain.p_value, plain.ratio)
    assert adjusted_alarms / trials <= 0.05
    assert plain_alarms / trials > 0.15  # the ratio of minima moves with the host: what the fit removes


def test_on_a_drifting_host_a_five_percent_slower_variant_is_caught_nine_times_in_ten() -> None:
    rng = random.Random(7)
    trials = 200
    caught = 0
    for _ in range(trials):
        base, new = simulated_measurement(rng, 10), simulated_measurement(rng, 10, slowdown=1.05)
        result = compare_host_adjusted(base, new)
        caught += flagged(result.p_value, result.ratio) and result.ratio > 1
        assert 0 < result.low <= result.high  # an interval of a ratio never reaches zero
    assert caught / trials >= 0.9


def test_a_slope_of_one_gives_back_the_ratio_of_minima() -> None:
    base = [[0.011 * host, 0.027 * host] for host in (1.0, 1.1, 1.2)]
    new = [[0.0121 * host, 0.027 * host] for host in (1.05, 1.15, 1.3)]
    result = compare_host_adjusted(base, new)
    assert result.ratio == pytest.approx(1.1) and "slope 1.00 fitted" in result.test and result.p_value < 1e-6


def test_references_that_never_moved_fall_back_to_the_plain_ratio_and_say_so() -> None:
    base = [[0.0110, 0.027], [0.0112, 0.027], [0.0111, 0.027]]
    new = [[0.0116, 0.027], [0.0118, 0.027], [0.0117, 0.027]]
    result = compare_host_adjusted(base, new)
    assert "slope 1 (the references did not vary" in result.test
    assert result.ratio == pytest.approx(0.0117 / 0.0111, rel=1e-3) and result.p_value < 0.01


def test_one_run_a_side_is_insufficient_and_a_malformed_run_is_named() -> None:
    result = compare_host_adjusted([[0.011, 0.027]], [[0.012, 0.027], [0.012, 0.028]])
    assert math.isnan(result.p_value) and "1 block on the base side" in result.insufficient
    with pytest.raises(ValueError, match=r"block 2 on the new side is \[0\.012\]"):
        compare_host_adjusted([[0.011, 0.027], [0.011, 0.028]], [[0.012, 0.027], [0.012]])


def test_compare_judges_the_wall_ratio_signal_with_the_adjusted_test() -> None:
    signal = SIGNALS_BY_NAME["wall_ratio"]
    base = [[0.011 * host**0.75, 0.027 * host] for host in (1.0, 1.02, 1.1, 1.3, 1.0, 1.05)]
    # The host was slower for the whole new measurement: the ratio of minima fell 4 %, the variant did not change.
    new = [
        [0.011 * host**0.75 * (1 + 0.001 * index), 0.027 * host] for index, host in enumerate((1.2, 1.25, 1.3, 1.22))
    ]
    pending = compare_signal("batch", signal, base, new, Rules())
    decided = verdict_of(pending, pending.p_value, Rules())
    assert decided.verdict == "unchanged" and "host-adjusted" in decided.test
    slower = [[own * 1.05, reference] for own, reference in new]
    pending = compare_signal("batch", signal, base, slower, Rules())
    assert verdict_of(pending, pending.p_value, Rules()).verdict == "regressed"
