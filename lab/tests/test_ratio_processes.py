"""lab/ratio_processes.py: the suite's batch ratio in fresh processes, and the spread between them."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from lab_scripts import load_script

ROOT = Path(__file__).resolve().parents[2]
TOOL = ROOT / "lab" / "ratio_processes.py"


def load_tool() -> Any:
    return load_script("ratio_processes")


def test_log_spread_is_the_standard_deviation_of_logarithms_and_the_span() -> None:
    spread = load_tool().log_spread([0.9, 1.0, 1.1])
    logs = [math.log(0.9), 0.0, math.log(1.1)]
    mean = sum(logs) / 3
    expected_sd = math.sqrt(sum((value - mean) ** 2 for value in logs) / 2)
    assert spread["log_sd"] == pytest.approx(expected_sd)
    assert spread["span"] == pytest.approx(1.1 / 0.9 - 1)


def test_one_value_has_no_spread() -> None:
    assert load_tool().log_spread([0.5]) == {"log_sd": None, "span": None}


@pytest.mark.parametrize(("text", "cpus"), [("3", {3}), ("2,3", {2, 3}), ("0-2,5", {0, 1, 2, 5})])
def test_cpu_lists_read_as_asv_writes_them(text: str, cpus: set[int]) -> None:
    assert load_tool().cpu_list(text) == cpus


def test_a_bad_cpu_list_says_what_is_accepted() -> None:
    import argparse

    with pytest.raises(argparse.ArgumentTypeError, match="use 3, 2,3 or 0-3"):
        load_tool().cpu_list("first")


@pytest.mark.slow
def test_two_fresh_processes_pinned_to_one_cpu_on_the_tiny_cpu_model(tmp_path: Path) -> None:
    environment = {
        **os.environ,
        "PYTEST_SDXL_MODEL": "random:tiny",
        "PYTEST_SDXL_DEVICE": "cpu",
        "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH", "")])),
    }
    stem = tmp_path / "spread"
    cpu = min(os.sched_getaffinity(0))
    done = subprocess.run(
        [sys.executable, str(TOOL), "--variant", "tiny_vae", "--processes", "2", "--pin", str(cpu), "--out", str(stem)],
        env=environment, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    report = json.loads(stem.with_suffix(".json").read_text())
    assert len(report["processes"]) == 2
    assert all(record["cpus"] == [cpu] for record in report["processes"])
    plain = report["summary"]["plain"]
    assert len(plain["values"]) == 2 and all(value > 0 for value in plain["values"])
    assert plain["log_sd"] is not None and plain["log_sd"] >= 0
    for record in report["processes"]:
        # The raw calls are kept, and the per-call reading is their minima's ratio: at most the plain one's
        # numerator floor over its denominator floor, read call by call.
        assert len(record["batch_calls_s"]) == record["rounds"]
        assert len(record["one_by_one_calls_s"]) == 4 * record["rounds"]
        expected = min(record["batch_calls_s"]) / min(record["one_by_one_calls_s"])
        assert record["per_call"] == pytest.approx(expected)
        assert min(record["batch_calls_s"]) == pytest.approx(record["batch_min_s"])
    # On a CPU the host-normalized ratio does not apply, and says why instead of reporting a number.
    assert "host_normalized" not in report["summary"]
    assert all("CUDA" in record["host_normalized_reason"] for record in report["processes"])
    assert "| plain |" in stem.with_suffix(".md").read_text()
