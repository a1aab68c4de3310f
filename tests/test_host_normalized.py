"""The host-normalized ratio: a host's speed divides out, a host-side slowdown does not, bad input is named."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pytest_sdxl.analysis.host_normalized import host_normalized_ratio

seconds = st.floats(min_value=1e-3, max_value=1.0)
host_speed = st.floats(min_value=0.5, max_value=2.0)


@given(seconds, seconds, seconds, seconds, host_speed)
def test_a_faster_or_slower_host_leaves_the_value_alone(
    own_kernel: float, own_idle: float, reference_kernel: float, reference_idle: float, speed: float
) -> None:
    # The host's speed scales the time both sides wait for it; the GPU's kernel time stays.
    before = host_normalized_ratio(
        own_kernel + own_idle, own_kernel, reference_kernel + reference_idle, reference_kernel
    )
    after = host_normalized_ratio(
        own_kernel + speed * own_idle, own_kernel, reference_kernel + speed * reference_idle, reference_kernel
    )
    assert after == pytest.approx(before, rel=1e-9)


@given(seconds, seconds, seconds, seconds)
def test_at_the_fixed_host_speed_it_is_the_plain_ratio(
    own_kernel: float, own_idle: float, reference_kernel: float, slowdown: float
) -> None:
    # The fixed speed is the one where the reference waits exactly its own kernel time.
    own, reference = own_kernel + own_idle, 2 * reference_kernel
    assert host_normalized_ratio(own, own_kernel, reference, reference_kernel) == pytest.approx(own / reference)
    # A host-side slowdown of the own side (its waiting grows) raises the value by exactly that time.
    slower = host_normalized_ratio(own + slowdown, own_kernel, reference, reference_kernel)
    assert slower == pytest.approx((own + slowdown) / reference)


def test_a_plain_ratio_that_moved_with_the_host_does_not_move_here() -> None:
    # Shaped like a batch path on a fast GPU: 7.4 of 10.9 ms in kernels, its one-by-one
    # reference 14.7 of 26.3 ms; then a host 20 % slower.
    quick = host_normalized_ratio(10.9e-3, 7.4e-3, 26.3e-3, 14.7e-3)
    slow_own, slow_reference = 7.4e-3 + 1.2 * 3.5e-3, 14.7e-3 + 1.2 * 11.6e-3
    assert (10.9 / 26.3) / (slow_own / slow_reference) > 1.02  # the plain ratio drops by more than 2 %
    assert host_normalized_ratio(slow_own, 7.4e-3, slow_reference, 14.7e-3) == pytest.approx(quick)
    # A 5 % host-side slowdown of the batch path reads as more than 5 %.
    assert host_normalized_ratio(10.9e-3 * 1.05, 7.4e-3, 26.3e-3, 14.7e-3) / quick > 1.05


def test_kernels_summing_past_the_wall_time_leave_no_idle_time() -> None:
    # Kernels on several streams overlap: the side's waiting is zero, not negative.
    assert host_normalized_ratio(5e-3, 6e-3, 20e-3, 10e-3) == pytest.approx(6e-3 / 20e-3)


def test_a_reference_that_never_waits_cannot_measure_the_host() -> None:
    with pytest.raises(ValueError, match=r"reference's kernel time \(12 ms\) is not below its wall time \(10 ms\)"):
        host_normalized_ratio(5e-3, 2e-3, 10e-3, 12e-3)


@pytest.mark.parametrize(
    ("arguments", "named"),
    [
        ((0.0, 1e-3, 2e-3, 1e-3), "own wall time"),
        ((1e-3, math.nan, 2e-3, 1e-3), "own kernel time"),
        ((1e-3, 1e-3, -2e-3, 1e-3), "reference wall time"),
        ((1e-3, 1e-3, 2e-3, math.inf), "reference kernel time"),
    ],
)
def test_a_number_that_is_not_a_time_is_named(arguments: tuple[float, float, float, float], named: str) -> None:
    with pytest.raises(ValueError, match=f"{named} must be a positive finite number of seconds"):
        host_normalized_ratio(*arguments)
