"""Wall blocks held back by a stretch of interference on one side only are left out of the wall test.

The blocks below are one unchanged comparison of ``tiny_vae`` as measured on an H100 (trial 2 of the user
guide's 2026-12-07 H100 power results): three fresh processes a side, two blocks each, one block of each
side held back on one side only.
"""

from __future__ import annotations

import math
from dataclasses import replace

import pytest

from pytest_sdxl.analysis import stretches
from pytest_sdxl.analysis.comparison import Rules, compare_results
from pytest_sdxl.analysis.stretches import STRETCH_SPLIT, without_stretches
from pytest_sdxl.results.records import RunRecord, VariantRecord
from pytest_sdxl.results.schema import ResultSet

# [variant minimum, reference minimum] in milliseconds an image, per process.
BASE = {
    "b1": [[93.95, 127.80], [94.98, 127.82]],
    "b2": [[109.05, 138.93], [105.95, 139.53]],
    "b3": [[108.02, 139.45], [114.57, 194.46]],  # the reference held back for a whole block
}
NEW = {
    "n1": [[93.69, 123.80], [91.88, 124.07]],
    "n2": [[94.23, 133.70], [97.51, 127.05]],
    "n3": [[99.56, 130.37], [187.03, 129.93]],  # the variant held back for a whole block
}
WALL_ONLY = Rules(metrics=("wall_ratio",), gate=("wall_ratio",))


def side(processes: dict[str, list[list[float]]], factor: float = 1.0) -> ResultSet:
    runs = []
    for number, (process, blocks) in enumerate(processes.items(), start=1):
        scaled = [[own * factor / 1000, reference / 1000] for own, reference in blocks]
        gen_s = [own for own, _ in scaled]
        reference_gen_s = [reference for _, reference in scaled]
        record = RunRecord(number, 1.0, 0.2, gen_s, sum(gen_s) / len(gen_s), min(gen_s), 3.0, reference="baseline")
        runs.append(replace(record, reference_gen_s=reference_gen_s, wall_blocks=scaled, process=process))
    return ResultSet({"model": "random:sdxl-turbo"}, {}, [VariantRecord("tiny_vae", "speed", runs=runs)])


def wall(base: ResultSet, new: ResultSet) -> tuple[float, float, float, str]:
    (item,) = compare_results(base, new, WALL_ONLY)
    return item.ratio, item.low, item.high, item.test


def test_the_two_stretches_are_left_out_and_the_estimate_comes_back_to_the_processes_plain_ratios(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    ratio, low, high, test = wall(side(BASE), side(NEW))
    assert "left out as stretches of interference on one side" in test and "1 base and 1 new block" in test
    # The processes' plain ratios of minima say about 0.99; kept, the estimate is near it and its interval narrow.
    assert 0.96 < ratio < 1.04 and high / low < 1.2
    monkeypatch.setattr(stretches, "STRETCH_SPLIT", math.inf)
    ratio_kept, low_kept, high_kept, test_kept = wall(side(BASE), side(NEW))
    assert "left out" not in test_kept
    assert ratio_kept > 1.05 and high_kept / low_kept > 2  # what the two blocks did to the test


def test_a_slowdown_of_the_code_moves_no_block_apart_and_is_judged_on_every_block() -> None:
    clean_base = {name: blocks[:1] * 2 for name, blocks in BASE.items()}  # no stretch anywhere
    clean_new = {name: blocks[:1] * 2 for name, blocks in NEW.items()}
    ratio, _, _, test = wall(side(clean_base), side(clean_new, factor=1.30))
    assert "left out" not in test and ratio > 1.2


def test_a_host_that_slows_both_sides_together_keeps_its_block() -> None:
    blocks = [[100.0, 130.0], [140.0, 182.0], [101.0, 131.0]]  # the second block 40 % slower on both sides
    kept = without_stretches(blocks, ["p", "p", "p"])
    assert kept.left_out == 0 and kept.blocks == blocks


def test_the_most_split_block_goes_first_and_a_process_keeps_its_least_split_one() -> None:
    # Each block fastest on one side: both split by far; the process keeps the less split of the two.
    kept = without_stretches([[100.0, 200.0], [160.0, 130.0]], ["p", "p"])
    assert kept.left_out == 0  # a side keeps two blocks, whatever their split
    kept = without_stretches([[100.0, 200.0], [160.0, 130.0], [100.0, 130.0], [101.0, 131.0]], ["p", "p", "q", "q"])
    # Split by log(200/130) = 0.43 and log(160/100) = 0.47: the second goes.
    assert kept.left_out == 1 and kept.blocks == [[100.0, 200.0], [100.0, 130.0], [101.0, 131.0]]
    assert kept.processes == ["p", "q", "q"]


def test_blocks_without_processes_are_one_process_and_the_cut_is_fifteen_percent() -> None:
    assert math.isclose(math.exp(STRETCH_SPLIT), 1.15)
    inside = [[100.0, 100.0], [114.0, 100.0], [100.0, 100.0]]
    past = [[100.0, 100.0], [116.0, 100.0], [100.0, 100.0]]
    assert without_stretches(inside).left_out == 0
    assert without_stretches(past) == stretches.KeptBlocks([[100.0, 100.0], [100.0, 100.0]], [], 1)
