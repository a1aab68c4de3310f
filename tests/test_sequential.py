"""Sequential sampling (measure.sequential): the stopping rule, its drivers, and its effect on false alarms.

The false-alarm test simulates the timed rounds of a batch variant beside its one-by-one reference on a
drifting host (a stub source of timings, no pipeline), stops them either at the fixed protocol's count
or by the sequential rule, turns them into run records as the core does, and judges pairs of unchanged
measurements with compare's own rule. The rates it prints are the user guide's method page,
"Sequential sampling" (``python -m pytest tests/test_sequential.py -s -k rates``).
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import pytest

from pytest_sdxl.analysis.comparison import Rules, compare_results
from pytest_sdxl.measure.calls import Group
from pytest_sdxl.measure.core import plain_driver, rounds_per_run, stopping_rule
from pytest_sdxl.measure.records import SharedFigures, TimedRounds, run_records
from pytest_sdxl.measure.sequential import PRECISION_SHARE, Sampler, StoppingRule, StopSampling, half_width
from pytest_sdxl.results.records import VariantRecord
from pytest_sdxl.results.schema import ResultSet

# A batch call of four prompts beside its reference's four one-prompt calls: one call a round.
BATCH: list[Group] = [(["a", "b", "c", "d"], [1, 2, 3, 4])]
ONE_BY_ONE: list[Group] = [([prompt], [seed]) for prompt, seed in zip("abcd", [1, 2, 3, 4], strict=True)]
RUNS = 3
WALL_ONLY = Rules(metrics=("wall_ratio",), gate=("wall_ratio",))


def test_half_width_is_the_t_interval_of_the_mean() -> None:
    values = [1.0, 2.0, 3.0, 4.0]
    # t(0.975, 3) = 3.182; sd = 1.291; sqrt(4) = 2
    assert half_width(values) == pytest.approx(3.1824 * 1.2910 / 2, rel=1e-3)
    assert half_width([1.0]) == math.inf


def test_rule_keeps_the_minimum_then_stops_on_width_cap_or_budget() -> None:
    rule = StoppingRule(threshold=0.05, min_rounds=4, max_rounds=10, budget_s=5.0)
    steady = [0.0, 0.001, -0.001, 0.0]
    assert not rule.enough(3, steady, elapsed_s=0.0)  # under the minimum, however narrow
    assert rule.enough(4, steady, elapsed_s=0.0)  # narrow: half-width far under 0.4 * log(1.05)
    noisy = [0.0, 0.3, -0.3, 0.2]
    assert not rule.enough(4, noisy, elapsed_s=1.0)
    assert rule.enough(4, noisy, elapsed_s=5.0)  # the budget is spent
    assert rule.enough(10, noisy, elapsed_s=0.0)  # the cap
    assert rule.target == pytest.approx(PRECISION_SHARE * math.log(1.05))


def test_sampler_stops_the_plain_driver_before_a_round_it_does_not_need() -> None:
    own: list[list[float]] = []
    reference: list[list[float]] = []
    sampler = Sampler(
        StoppingRule(0.05, min_rounds=3, max_rounds=50, block_rounds=1),
        own,
        reference,
        reference_round=lambda: reference.append([0.5]),
    )

    def one_round() -> list[float]:
        own.append([1.0])
        return own[-1]

    with pytest.raises(StopSampling):
        plain_driver(one_round, 50, sampler.before_round)
    # Identical rounds: the interval is zero wide once there are three.
    assert len(own) == len(reference) == 3
    assert "interval" in sampler.stopped_by


def test_stopping_rule_of_a_batch_variant_spans_the_minimum_blocks_to_twice_the_fixed_rounds() -> None:
    rule = stopping_rule(BATCH, ONE_BY_ONE, RUNS, budget_s=30.0)
    assert rule.min_rounds == RUNS * 12  # a wall block of twelve batch calls a run
    assert rule.max_rounds == 2 * RUNS * rounds_per_run(BATCH, ONE_BY_ONE)
    assert rule.budget_s == 30.0 and rule.threshold == 0.05
    assert rule.block_rounds == 12  # a wall block: twelve batch calls


@dataclass
class DriftingHost:
    """Seconds per image of a batch call and of its reference, on a host whose speed drifts (AR(1) in logs).

    The variant feels three quarters of the host's drift that the reference feels (the method page,
    "Blocks of rounds and the host-adjusted wall test"); each call adds its own noise.
    """

    rng: np.random.Generator
    slowdown: float = 1.0
    drift: float = 0.0
    seconds: float = 0.0
    # Normal draws taken a block at a time (one draw each is most of the simulation's cost otherwise).
    draws: list[float] = field(default_factory=list)

    def normal(self) -> float:
        if not self.draws:
            self.draws = self.rng.standard_normal(1024).tolist()
        return self.draws.pop()

    def reference_round(self, reference: list[list[float]]) -> None:
        self.drift = 0.9 * self.drift + 0.01 * self.normal()
        sample = 0.050 * math.exp(self.drift + 0.04 * self.normal())
        reference.append([sample])
        self.seconds += 4 * sample

    def own_round(self, own: list[list[float]]) -> list[float]:
        sample = 0.045 * self.slowdown * math.exp(0.75 * self.drift + 0.04 * self.normal())
        own.append([sample])
        self.seconds += 4 * sample
        return own[-1]


def measured(host: DriftingHost, rule: StoppingRule | None, fixed_rounds: int) -> VariantRecord:
    """One measurement of the batch variant: fixed rounds, or rounds until the rule has enough."""
    own: list[list[float]] = []
    reference: list[list[float]] = []
    before: Callable[[], object] = lambda: host.reference_round(reference)  # noqa: E731
    count = fixed_rounds
    if rule is not None:
        sampler = Sampler(rule, own, reference, reference_round=before, clock=lambda: host.seconds)
        before, count = sampler.before_round, rule.max_rounds
    with contextlib.suppress(StopSampling):
        plain_driver(lambda: host.own_round(own), count, before)
    timed = TimedRounds(own=own, reference=reference, reference_id="baseline")
    runs = run_records(timed, RUNS, [4], [], SharedFigures({}, None, None, 1))
    return VariantRecord("batch", "exact", runs=runs)


@dataclass
class Rates:
    significant: int = 0
    flagged: int = 0
    rounds: list[int] = field(default_factory=list)


def rates(sequential: bool, slowdown: float, trials: int, seed: int) -> Rates:
    """Pairs of measurements (base unchanged, new slowed by ``slowdown``) judged by compare's wall rule."""
    rng = np.random.default_rng(seed)
    rule = stopping_rule(BATCH, ONE_BY_ONE, RUNS, budget_s=math.inf) if sequential else None
    fixed = RUNS * rounds_per_run(BATCH, ONE_BY_ONE)
    found = Rates()
    for _ in range(trials):
        base = measured(DriftingHost(rng), rule, fixed)
        new = measured(DriftingHost(rng, slowdown), rule, fixed)
        found.rounds += [sum(len(run.gen_s) for run in record.runs) for record in (base, new)]
        (wall,) = [item for item in compare_results(ResultSet(variants=[base]), ResultSet(variants=[new]), WALL_ONLY)]
        found.significant += wall.p_value < WALL_ONLY.alpha
        found.flagged += wall.regressed
    return found


def test_rates_sequential_stopping_keeps_the_false_alarm_rate_of_fixed_rounds() -> None:
    """Over many unchanged pairs, stopping on the interval's width flags no more often than fixed rounds."""
    trials = 200
    fixed, sequential = rates(False, 1.0, trials, seed=1), rates(True, 1.0, trials, seed=1)
    fixed_hit, sequential_hit = rates(False, 1.05, trials // 4, seed=2), rates(True, 1.05, trials // 4, seed=2)
    print(
        f"\nunchanged pairs ({trials}): p < 0.05 fixed {fixed.significant}, sequential {sequential.significant}; "
        f"flagged fixed {fixed.flagged}, sequential {sequential.flagged}"
        f"\n5 % slower ({trials // 4}): flagged fixed {fixed_hit.flagged}, sequential {sequential_hit.flagged}"
        f"\nrounds a measurement: fixed {fixed.rounds[0]}, sequential median {int(np.median(sequential.rounds))} "
        f"(from {min(sequential.rounds)} to {max(sequential.rounds)})"
    )
    # The rule engaged: some measurements stopped past the minimum and some before the cap.
    rule = stopping_rule(BATCH, ONE_BY_ONE, RUNS, budget_s=math.inf)
    assert min(sequential.rounds) < rule.max_rounds and max(sequential.rounds) > rule.min_rounds
    # The test's size: within three binomial standard errors of fixed rounds' (both near alpha).
    margin = 3 * math.sqrt(2 * 0.05 * 0.95 / trials)
    assert sequential.significant / trials <= fixed.significant / trials + margin
    assert sequential.significant / trials <= WALL_ONLY.alpha + margin
    # compare's verdict (significant and past half the 5 % threshold): no more often than with fixed rounds.
    assert sequential.flagged / trials <= fixed.flagged / trials + margin
    # And the slowdown the gate is sized for is still caught as often as with fixed rounds, within the noise.
    assert sequential_hit.flagged >= fixed_hit.flagged - 3 * math.sqrt(trials // 4 * 0.25)
