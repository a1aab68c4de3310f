"""Simulated CI jobs: processes whose levels differ, the run as the unit against the process as the unit.

Each trial makes a base and a new side of ``processes`` processes with ``runs`` runs each: a process's level
is drawn with a 4 % standard deviation (what separates two processes of the same code on one GPU), and
each run's statistic scatters 1 % around it. A trial is flagged as ``compare`` flags a gated signal: p below
alpha and the ratio past half the 5 % threshold. The rates are those the user guide's method page quotes
("The process as the sampling unit"); the seeds are fixed, so the figures are the same on every machine.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass

import pytest

from pytest_sdxl.analysis.comparison import DEFAULT_ALPHA, DEFAULT_THRESHOLD, FLAG_SHARE
from pytest_sdxl.analysis.processes import compare_processes
from pytest_sdxl.analysis.stats import RunComparison, compare_runs

PROCESS_SPREAD = 0.04
RUN_SPREAD = 0.01


@dataclass(frozen=True)
class Rates:
    run_unit: float  # share of trials flagged when each run counts as a sample
    process_unit: float  # share flagged when each process does (the mixed model)
    process_p_below_alpha: float  # share with p below alpha alone, whatever the ratio: the test's size


def side(noise: random.Random, processes: int, runs: int, change: float, tag: str) -> tuple[list[float], list[str]]:
    """Each run's statistic (seconds per image) and its process, ``processes`` processes of ``runs`` runs."""
    values, ids = [], []
    for process in range(processes):
        level = 0.065 * change * math.exp(noise.gauss(0, PROCESS_SPREAD))
        for _ in range(runs):
            values.append(level * math.exp(noise.gauss(0, RUN_SPREAD)))
            ids.append(f"{tag}{process}")
    return values, ids


def flagged(result: RunComparison) -> bool:
    bound = FLAG_SHARE * DEFAULT_THRESHOLD
    return result.p_value < DEFAULT_ALPHA and abs(result.ratio - 1) > bound


def rates(processes: int, runs: int, change: float, trials: int, seed: int) -> Rates:
    noise = random.Random(seed)
    run_unit = process_unit = significant = 0
    for _ in range(trials):
        base, base_ids = side(noise, processes, runs, 1.0, "base")
        new, new_ids = side(noise, processes, runs, change, "new")
        by_run = compare_runs([[value] for value in base], [[value] for value in new], statistic="min")
        by_process = compare_processes(base, base_ids, new, new_ids, what="per-run min")
        run_unit += flagged(by_run)
        process_unit += flagged(by_process)
        significant += by_process.p_value < DEFAULT_ALPHA
    return Rates(run_unit / trials, process_unit / trials, significant / trials)


@pytest.mark.slow
def test_no_change_the_run_as_unit_flags_far_more_than_alpha_the_process_as_unit_about_alpha() -> None:
    found = rates(processes=4, runs=3, change=1.0, trials=400, seed=2026)
    assert found.run_unit >= 4 * DEFAULT_ALPHA
    assert found.process_unit <= 2 * DEFAULT_ALPHA
    assert found.process_p_below_alpha <= 2 * DEFAULT_ALPHA


@pytest.mark.slow
def test_a_true_8_percent_slowdown_is_still_flagged_most_of_the_time() -> None:
    four = rates(processes=4, runs=3, change=1.08, trials=150, seed=2027)
    six = rates(processes=6, runs=3, change=1.08, trials=150, seed=2028)
    assert four.process_unit >= 0.4
    assert six.process_unit >= 0.7
    # The run as the unit flags nearly every one too: it flags nearly anything (the test above).
    assert six.run_unit >= six.process_unit
