"""The spread between one side's processes and the processes a side a slowdown needs at it (``ab``'s undecided line)."""

from __future__ import annotations

import math
import statistics

import pytest

from pytest_sdxl.analysis.process_spread import processes_to_see, wall_ratio_spread
from pytest_sdxl.results.records import RunRecord, VariantRecord
from pytest_sdxl.results.schema import ResultSet


def side(ratios_by_process: dict[str, list[float]]) -> ResultSet:
    """``batch``'s runs, each a process's, at the wall ratios given (a run's fastest call over its reference's)."""
    runs = []
    for process, ratios in ratios_by_process.items():
        for ratio in ratios:
            run = RunRecord(len(runs) + 1, 1.0, 0.2, [ratio * 0.1, ratio * 0.12], ratio * 0.1, ratio * 0.1, 3.0)
            run.reference, run.reference_gen_s, run.process = "baseline", [0.1, 0.11], process
            runs.append(run)
    return ResultSet({"model": "random:tiny"}, {}, [VariantRecord("batch", "speed", runs=runs)])


def test_the_spread_is_taken_within_each_side_so_a_slowdown_between_them_is_not_counted() -> None:
    base = side({"b1": [0.40], "b2": [0.41], "b3": [0.42]})
    slowed = side({"h1": [0.42], "h2": [0.43], "h3": [0.44]})  # about 5 % slower, as far apart within
    spread, processes = wall_ratio_spread([base, slowed], "batch")
    within = [math.log(value) for value in (0.40, 0.41, 0.42)]
    within_slowed = [math.log(value) for value in (0.42, 0.43, 0.44)]
    pooled = (statistics.variance(within) + statistics.variance(within_slowed)) / 2
    assert spread == pytest.approx(math.sqrt(pooled)) and processes == 6
    assert spread < 0.03  # the 5 % between the sides is not in it


def test_a_process_counts_once_by_its_runs_median_and_one_process_a_side_has_no_spread() -> None:
    several_runs = side({"b1": [0.40, 0.40, 0.60], "b2": [0.42]})  # b1's median run: 0.40
    spread, processes = wall_ratio_spread([several_runs], "batch")
    assert processes == 2 and spread == pytest.approx(statistics.stdev([math.log(0.40), math.log(0.42)]))
    alone = wall_ratio_spread([side({"b1": [0.4]}), side({"h1": [0.5]})], "batch")
    assert math.isnan(alone[0]) and alone[1] == 0
    assert math.isnan(wall_ratio_spread([several_runs], "tiny_vae")[0])


def test_the_processes_a_side_grow_with_the_square_of_the_spread_over_the_threshold() -> None:
    # 5 % at alpha 0.05, power 0.9, a 3 % spread: Cohen's d 1.63 on the logarithms; Student's t needs 9.02 a
    # side (statsmodels' TTestIndPower.solve_power agrees), the normal approximation 7.9.
    assert processes_to_see(0.03, 0.05, 0.05) == 10
    assert processes_to_see(0.06, 0.05, 0.05) == 33  # twice the spread, about four times the processes (32.8)
    assert processes_to_see(0.0076, 0.05, 0.05) == 3  # a quiet host: two a side reach 0.87, three 0.9998
    assert processes_to_see(0.004, 0.05, 0.05) == 2  # the fewest a comparison takes
    assert processes_to_see(0.03, 0.05, 0.01) > 10 and processes_to_see(0.03, 0.10, 0.05) < 10


def test_the_sizing_matches_statsmodels_where_its_solver_converges() -> None:
    from statsmodels.stats.power import TTestIndPower

    for spread in (0.015, 0.025, 0.04, 0.08):
        effect = math.log1p(0.05) / spread
        exact = TTestIndPower().solve_power(effect_size=effect, alpha=0.05, power=0.9, ratio=1.0)
        assert processes_to_see(spread, 0.05, 0.05) == math.ceil(exact)
