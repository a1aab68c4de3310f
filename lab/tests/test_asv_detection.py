"""lab/asv_detection.py: the one ratio benchmark it judges, the scratch commits it judges, and how it counts.

The pattern must match as asv names benchmarks, from inside the benchmark folder: a pattern that began
with ``benchmarks.`` selected nothing, and every trial on a GPU read as clean.
"""

from __future__ import annotations

import itertools
import json
import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from lab_scripts import load_script

ROOT = Path(__file__).resolve().parents[2]


def load_tool() -> Any:
    return load_script("asv_detection")


def discovered(monkeypatch: pytest.MonkeyPatch, variants: str) -> list[dict[str, Any]]:
    """The suite's ratio benchmarks as asv's discovery lists them, in asv's own dictionary form."""
    from asv_runner.discovery import disc_benchmarks

    monkeypatch.setenv("PYTEST_SDXL_VARIANTS", variants)
    monkeypatch.setenv("PYTEST_SDXL_MODEL", "random:tiny")
    monkeypatch.syspath_prepend(str(ROOT))

    def suite_modules() -> list[str]:
        # The repository's thin benchmarks/ and the package's suite they re-export, which reads the
        # variables when it is imported (an earlier test may have imported it under others).
        prefixes = ("benchmarks", "pytest_sdxl.suite.asv")
        return [module for module in sys.modules if any(module == p or module.startswith(p + ".") for p in prefixes)]

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


def test_the_scratch_commits_differ_only_where_they_should(tmp_path: Path) -> None:
    repository = load_tool().scratch_repository(tmp_path, slowdown=0.05)

    def changed(commit: str) -> list[str]:
        done = subprocess.run(
            ["git", "diff", "--name-only", "main", commit], cwd=repository, capture_output=True, text=True, check=True
        )
        return done.stdout.split()

    assert changed("unchanged") == ["README.md"]
    assert changed("slower-batch") == ["pytest_sdxl/variants/assembly.py"]
    for path in ("pyproject.toml", "asv.conf.json", "benchmarks/bench_ratios.py", "pytest_sdxl/__init__.py"):
        assert (repository / path).is_file(), f"asv cannot build or run the suite without {path}"
    # The slower commit's own code, imported as asv's benchmark processes import it: the batch path replaced.
    subprocess.run(["git", "checkout", "--quiet", "slower-batch"], cwd=repository, check=True)
    probe = "from pytest_sdxl.variants.assembly import VariantPipeline; print(VariantPipeline.generate.__name__)"
    done = subprocess.run(
        [sys.executable, "-c", probe], cwd=tmp_path, env={**os.environ, "PYTHONPATH": str(repository)},
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "_lab_slower_batch"


def test_only_rows_asv_marks_slower_count_as_flagged() -> None:
    rows = [
        ("+", "1.07", "bench_ratios.BatchOverOneByOne.track_batch_over_one_by_one('baseline', 4)"),
        ("-", "0.90", "bench_ratios.VariantOverBaseline.track_variant_over_baseline('batch')"),
        ("", "1.00", "bench_ratios.VariantOverBaseline.track_variant_over_baseline('tiny_vae')"),
    ]
    table = "\n".join(
        ["| Change | Before [abc] | After [def] | Ratio | Benchmark (Parameter) |", "|---|---|---|---|---|"]
        + [f"| {mark} | 0.400 | 0.430 | {ratio} | {name} |" for mark, ratio, name in rows]
    )
    assert load_tool().slower_rows(table) == {
        "bench_ratios.BatchOverOneByOne.track_batch_over_one_by_one('baseline', 4)"
    }


def trial_file(path: Path, flagged: dict[str, int], trials: int, factor: str = "1.03") -> str:
    values = {"main": [0.4] * trials, "unchanged": [0.401] * trials, "slower-batch": [0.42] * trials}
    document = {
        "benchmark": "BatchOverOneByOne('baseline', 4)",
        "flagged": flagged,
        "values": values,
        "trials": trials,
        "slowdown": 0.05,
        "factor": factor,
    }
    path.write_text(json.dumps(document))
    return str(path)


def test_trials_of_several_lanes_add_up_and_different_experiments_are_refused(tmp_path: Path) -> None:
    tool = load_tool()
    first = trial_file(tmp_path / "a.json", {"unchanged": 0, "slower-batch": 3}, 3)
    second = trial_file(tmp_path / "b.json", {"unchanged": 1, "slower-batch": 1}, 2)
    assert tool.merge([first, second], str(tmp_path / "merged")) == 0
    merged = json.loads((tmp_path / "merged.json").read_text())
    assert merged["trials"] == 5
    assert merged["flagged"] == {"unchanged": 1, "slower-batch": 4}
    assert len(merged["values"]["main"]) == 5
    assert "| slower-batch | 4/5 |" in (tmp_path / "merged.md").read_text()
    other = trial_file(tmp_path / "c.json", {"unchanged": 0, "slower-batch": 1}, 1, factor="1.05")
    with pytest.raises(SystemExit, match="different experiments"):
        tool.merge([first, other], str(tmp_path / "mixed"))
