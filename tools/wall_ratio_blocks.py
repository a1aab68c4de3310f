"""How the wall-ratio gate would have judged a ``power --json`` file's raw samples with shorter runs.

Usage: python tools/wall_ratio_blocks.py POWER.json [--blocks 30,15,10,6,5]

A run of the measurement core is a block of consecutive alternating rounds (``measurement.split_into_runs``),
so the same rounds cut into blocks of k are what ``--runs R*30/k --rounds k`` would have measured. For
each k this re-judges every trial (unchanged against the one before, injected against unchanged) with
compare's rule: each block's variant and reference minima, the host-adjusted test on them
(``host_adjusted.compare_host_adjusted``), the p-value doubled for the Holm family it shares with
kernel time, flagged past half the threshold.
It is a reading of measurements already made, not a new measurement: block sizes are chosen after the
fact, so confirm one with ``power --runs --rounds`` before relying on it.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pytest_sdxl.analysis.comparison import SIGNALS_BY_NAME, Rules, compare_signal, verdict_of

GATED_P_VALUES = 2  # wall_ratio and kernel_ms (kernel launches are exact and carry no p-value)


def block_pairs(measurement: dict[str, Any], size: int) -> list[list[float]]:
    """Each block of ``size`` rounds as one run: [min(own samples), min(reference samples)], as the core keeps."""
    blocks = []
    for own, reference in measurement["runs"]:
        calls = len(reference) // len(own)  # the reference's calls in each round
        for start in range(0, len(own) - size + 1, size):
            own_block = own[start : start + size]
            reference_block = reference[start * calls : (start + size) * calls]
            blocks.append([min(own_block), min(reference_block)])
    return blocks


def flagged(base: dict[str, Any], new: dict[str, Any], size: int) -> bool:
    """compare's verdict on the blocks' wall ratios, the p-value doubled for the Holm family it shares."""
    rules = Rules()
    pending = compare_signal("", SIGNALS_BY_NAME["wall_ratio"], block_pairs(base, size), block_pairs(new, size), rules)
    return verdict_of(pending, min(1.0, pending.p_value * GATED_P_VALUES), rules).regressed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("power_json")
    parser.add_argument("--blocks", default="30,15,10,6,5")
    arguments = parser.parse_args()
    samples = json.loads(Path(arguments.power_json).read_text())["samples"]
    trials = sorted({item["trial"] for item in samples if item["trial"] > 0})
    print("| rounds a run | runs a measurement | injected flagged | false alarms |")
    print("|---|---|---|---|")
    longest = min(len(own) for item in samples for own, _ in item["runs"])
    for size in (int(text) for text in arguments.blocks.split(",")):
        if size > longest:
            print(f"| {size} | - | blocks longer than the stored runs ({longest} rounds) | - |")
            continue
        previous = next(item for item in samples if item["comparison"] == "calibration")
        detections = false_alarms = 0
        for trial in trials:
            unchanged = next(item for item in samples if item["trial"] == trial and item["comparison"] == "none")
            slowed = next(item for item in samples if item["trial"] == trial and item["comparison"] != "none")
            false_alarms += flagged(previous, unchanged, size)
            detections += flagged(unchanged, slowed, size)
            previous = unchanged
        runs = len(block_pairs(previous, size))
        print(f"| {size} | {runs} | {detections}/{len(trials)} | {false_alarms}/{len(trials)} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
