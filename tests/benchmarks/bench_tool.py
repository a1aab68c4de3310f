"""Benchmarks of pytest-sdxl's own cost, so that a change making measurement slower is seen.

What a user pays for besides the model's own work: a variant measured end to end on random:tiny
(load, warm-up, timed rounds, report), each signal's extra pass (a profiled pass, FLOPs, the stage
split), ``compare``'s statistics over a 29-variant result set, the plugin's import where it is
unused, and a fresh process from its start to its first timed round. On the CUDA GPU where there
is one, else the CPU with one torch thread; seconds in all. On the CPU a profiled pass sees no
kernels and costs microseconds: its figure means something on a GPU runner.

Not part of the default test command (the file is not named ``test_*.py``); run it on its own and
keep the figures to compare against::

    python -m pytest -p no:cacheprovider tests/benchmarks/bench_tool.py --benchmark-only --benchmark-autosave
    python -m pytest -p no:cacheprovider tests/benchmarks/bench_tool.py --benchmark-only \\
        --benchmark-compare --benchmark-compare-fail=median:25%

Figures move with the host: compare them on one machine, as for any pytest-benchmark result.
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
# Two prompts: one first generation, one timed prompt; the core still makes its minimum of timed calls.
PROMPTS = ("a red cube on a table", "a lighthouse at dusk")
VARIANTS_IN_A_MATRIX = 29
DEVICE = "auto"  # the CUDA GPU where there is one, else the CPU
# Rounds of each benchmark: a few, for figures to compare; 1 where a test only checks that they run.
ROUNDS = int(os.environ.get("PYTEST_SDXL_TOOL_BENCHMARK_ROUNDS", "3"))


@pytest.fixture(scope="module")
def tiny_pipeline(one_torch_thread: None) -> Iterator[Any]:
    """A warmed random:tiny baseline pipeline on the CPU."""
    from pytest_sdxl.machine.devices import resolve_device, resolve_dtype
    from pytest_sdxl.pipelines.sources import load_components
    from pytest_sdxl.variants.assembly import VariantPipeline
    from pytest_sdxl.variants.registry import compose

    device = resolve_device(DEVICE)
    components = load_components("random:tiny", device, resolve_dtype("auto", device))
    pipeline = VariantPipeline(components, compose([]), 64)
    pipeline.generate(list(PROMPTS), [0, 1])
    yield pipeline
    pipeline.close()


def calls_of(pipeline: Any) -> list[Any]:
    from pytest_sdxl.measure.calls import call_functions, call_groups

    return call_functions(pipeline, call_groups(pipeline.composition, PROMPTS, [0, 1]))


def test_seconds_per_variant(benchmark: Any, tmp_path: Path, one_torch_thread: None) -> None:
    """``run`` on one variant of random:tiny, in process: load, first generation, warm-up, rounds, signals, report."""
    from pytest_sdxl.cli.main import main

    prompts = tmp_path / "prompts.txt"
    prompts.write_text("\n".join(PROMPTS) + "\n", encoding="utf-8")
    arguments = ["run", "--model", "random:tiny", "--device", DEVICE, "--variants", "baseline", "--runs", "1"]
    arguments += ["--prompts", str(prompts), "--quiet", "--report", str(tmp_path / "report")]

    def one_variant() -> int:
        return main(arguments)

    assert benchmark.pedantic(one_variant, rounds=ROUNDS, iterations=1, warmup_rounds=min(ROUNDS - 1, 1)) == 0
    assert (tmp_path / "report" / "results.json").is_file()


def test_seconds_per_profiled_pass(benchmark: Any, tiny_pipeline: Any) -> None:
    """One profiled pass over a round's calls (kernel time and launches where a GPU runs them)."""
    from pytest_sdxl.measure.device_signals import kernel_signals

    calls = calls_of(tiny_pipeline)
    arguments = (tiny_pipeline.pipe, calls, tiny_pipeline.device)
    benchmark.pedantic(kernel_signals, args=arguments, rounds=ROUNDS, iterations=1)


def test_seconds_per_flop_count(benchmark: Any, tiny_pipeline: Any) -> None:
    """The FLOPs of one call, in all and by stage."""
    from pytest_sdxl.measure.device_signals import flops_by_stage

    calls = calls_of(tiny_pipeline)
    flops, _ = benchmark.pedantic(flops_by_stage, args=(tiny_pipeline.pipe, calls[0]), rounds=ROUNDS, iterations=1)
    assert flops is None or flops > 0


def test_seconds_per_stage_split(benchmark: Any, tiny_pipeline: Any) -> None:
    """The stage-split pass (text encoders, UNet, VAE decode timed apart)."""
    from pytest_sdxl.measure.core import stages_and_peak_memory

    calls = calls_of(tiny_pipeline)
    arguments = (tiny_pipeline, calls, True)
    stages, _ = benchmark.pedantic(stages_and_peak_memory, args=arguments, rounds=ROUNDS, iterations=1)
    assert stages


def matrix_results(seed: int) -> Any:
    """A 29-variant result set of three runs a variant, twelve timed calls a run, with kernel signals."""
    from pytest_sdxl.results.records import DeviceSignals, RunRecord, VariantRecord
    from pytest_sdxl.results.schema import ResultSet

    draw = random.Random(seed)
    variants = []
    for index in range(VARIANTS_IN_A_MATRIX):
        typical = 0.05 + 0.002 * index
        runs = []
        for run in range(1, 4):
            samples = [typical * draw.uniform(0.97, 1.06) for _ in range(12)]
            kernels = [typical * 1000 * draw.uniform(0.999, 1.001) for _ in range(4)]
            middle = sorted(samples)[len(samples) // 2]
            runs.append(
                RunRecord(
                    run=run,
                    load_s=1.0,
                    init_gen_s=0.2,
                    gen_s=samples,
                    avg_gen_s=sum(samples) / len(samples),
                    median_gen_s=middle,
                    total_s=1.2 + sum(samples),
                    device=DeviceSignals(kernel_ms=kernels, kernels=[900.0] * 4),
                )
            )
        variants.append(VariantRecord(variant=f"variant_{index}", kind="exact", runs=runs))
    return ResultSet(variants=variants)


def test_compare_statistics_of_a_matrix(benchmark: Any) -> None:
    """``compare``'s statistics (every signal of every variant, intervals and tests) on a 29-variant matrix."""
    from pytest_sdxl.analysis.comparison import compare_results

    base, new = matrix_results(1), matrix_results(2)
    comparisons = benchmark.pedantic(compare_results, args=(base, new), rounds=ROUNDS, iterations=1)
    assert {item.variant for item in comparisons} >= {f"variant_{index}" for index in range(VARIANTS_IN_A_MATRIX)}


def test_plugin_import_where_unused(benchmark: Any) -> None:
    """A fresh interpreter importing the plugin, as every pytest session with it installed does (no torch)."""
    code = "import sys, pytest_sdxl.plugin; print('torch' in sys.modules)"

    def import_plugin() -> str:
        return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout

    assert benchmark.pedantic(import_plugin, rounds=ROUNDS, iterations=1).strip() == "False"


# Runs ``run`` and prints the process's age at its first timed round, marking it where the timed
# loop starts its first round (the measurement core marks it too where it does: only the first is kept).
FIRST_ROUND_DRIVER = """
import sys
from pytest_sdxl.measure import core
from pytest_sdxl.pipelines import process_age

timed_round = core.TimedLoop.round

def marked_round(self):
    process_age.mark_first_timed_round()
    return timed_round(self)

core.TimedLoop.round = marked_round
from pytest_sdxl.cli.main import main
status = main(sys.argv[1:])
print("first timed round:", process_age.first_timed_round_s(), file=sys.stderr)
sys.exit(status)
"""


def test_process_start_to_first_timed_round(benchmark: Any, tmp_path: Path) -> None:
    """A fresh ``run`` process on random:tiny: its wall time, and its age at the first timed round (extra_info)."""
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("\n".join(PROMPTS) + "\n", encoding="utf-8")
    command = [sys.executable, "-c", FIRST_ROUND_DRIVER, "run", "--model", "random:tiny", "--device", DEVICE]
    command += ["--variants", "baseline", "--runs", "1", "--prompts", str(prompts), "--quiet"]
    ages: list[float] = []

    def fresh_process() -> None:
        completed = subprocess.run(command, capture_output=True, text=True, check=True, cwd=ROOT)
        line = next(text for text in completed.stderr.splitlines() if text.startswith("first timed round:"))
        value = line.split(":", 1)[1].strip()
        if value != "None":  # None off Linux, where the kernel gives no start time
            ages.append(float(value))

    benchmark.pedantic(fresh_process, rounds=1, iterations=1)
    benchmark.extra_info["first_timed_round_s"] = json.loads(json.dumps(ages))
