"""The tool's own benchmarks (tests/benchmarks/bench_tool.py) run and report every figure.

Checked once, untimed beyond pytest-benchmark's own records: no figure is asserted against a
speed goal. Their file is not named ``test_*.py``, so the default test command does not time them.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BENCHMARKS = ROOT / "tests" / "benchmarks" / "bench_tool.py"
EXPECTED = {
    "test_seconds_per_variant",
    "test_seconds_per_profiled_pass",
    "test_seconds_per_flop_count",
    "test_seconds_per_stage_split",
    "test_compare_statistics_of_a_matrix",
    "test_plugin_import_where_unused",
    "test_process_start_to_first_timed_round",
}


def test_the_default_test_command_does_not_collect_the_tool_benchmarks() -> None:
    completed = subprocess.run(
        [sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider", "tests/benchmarks"],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert "bench_tool.py" not in completed.stdout, completed.stdout


@pytest.mark.slow
def test_tool_benchmarks_run_and_report_each_figure(tmp_path: Path) -> None:
    """One round of each (about 30 s on a busy two-core CPU, most of it two fresh processes' imports)."""
    report = tmp_path / "bench.json"
    command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(BENCHMARKS), "--benchmark-only"]
    completed = subprocess.run(
        [*command, f"--benchmark-json={report}"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env={**os.environ, "PYTEST_SDXL_TOOL_BENCHMARK_ROUNDS": "1"},
    )
    assert completed.returncode == 0, completed.stdout[-3000:] + completed.stderr[-2000:]
    benchmarks = {item["name"]: item for item in json.loads(report.read_text(encoding="utf-8"))["benchmarks"]}
    assert set(benchmarks) == EXPECTED
    assert all(item["stats"]["min"] > 0 for item in benchmarks.values())
    ages = benchmarks["test_process_start_to_first_timed_round"]["extra_info"]["first_timed_round_s"]
    if sys.platform.startswith("linux"):
        wall = benchmarks["test_process_start_to_first_timed_round"]["stats"]["max"]
        assert len(ages) == 1 and 0 < ages[0] < wall, "the first timed round comes after the start, before the end"
