"""tools/gpu_asv_power.py selects the one ratio benchmark it judges, by asv's own discovery and matching.

Its pattern once began with ``benchmarks.``; asv names benchmarks from inside the benchmark folder, so
nothing was selected and every trial on a GPU read as clean (2026-11-27).
"""

from __future__ import annotations

import importlib.util
import itertools
import sys
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]


def load_tool() -> Any:
    spec = importlib.util.spec_from_file_location("gpu_asv_power", ROOT / "tools" / "gpu_asv_power.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def discovered(monkeypatch: pytest.MonkeyPatch, variants: str) -> list[dict[str, Any]]:
    """The suite's ratio benchmarks as asv's discovery lists them, in asv's own dictionary form."""
    from asv_runner.discovery import disc_benchmarks

    monkeypatch.setenv("PYTEST_SDXL_VARIANTS", variants)
    monkeypatch.setenv("PYTEST_SDXL_MODEL", "random:tiny")
    monkeypatch.syspath_prepend(str(ROOT))

    def suite_modules() -> list[str]:
        return [module for module in sys.modules if module == "benchmarks" or module.startswith("benchmarks.")]

    for name in suite_modules():
        monkeypatch.delitem(sys.modules, name)  # the suite reads the variables when it is imported
    try:
        return [
            {"name": found.name, "params": found.params, "param_names": found.param_names, "version": "1"}
            for found in disc_benchmarks(str(ROOT / "benchmarks"))
            if found.name.startswith("bench_ratios.")
        ]
    finally:
        for name in suite_modules():  # imported under these variables: gone before any other test imports it
            del sys.modules[name]


def selected(benchmarks: list[dict[str, Any]], pattern: str) -> list[str]:
    """The parametrized entries asv runs for --bench pattern."""
    from asv.benchmarks import Benchmarks

    chosen = Benchmarks(SimpleNamespace(benchmark_dir=str(ROOT / "benchmarks")), benchmarks, regex=pattern)
    return [
        f"{name}({', '.join(combination)})"
        for name, benchmark in chosen.items()
        for index, combination in enumerate(itertools.product(*benchmark["params"]))
        if index in chosen.benchmark_selection[name]
    ]


@pytest.mark.parametrize(
    ("ratio", "method"),
    [
        ("plain", "BatchOverOneByOne.track_batch_over_one_by_one"),
        ("host-normalized", "HostNormalizedBatchOverOneByOne.track_host_normalized_batch_over_one_by_one"),
    ],
)
def test_the_pattern_selects_exactly_the_batch_of_four(
    monkeypatch: pytest.MonkeyPatch, ratio: str, method: str
) -> None:
    tool = load_tool()
    variant = "tiny_vae+cuda_graph+cached_embeds"
    benchmarks = discovered(monkeypatch, f"{variant}+batch,tiny_vae+batch")
    assert selected(benchmarks, tool.benchmark_pattern(ratio, variant)) == [f"bench_ratios.{method}('{variant}', 4)"]
