"""The process as compare's sampling unit: the id each run records, pooling, the mixed model and its fallbacks."""

from __future__ import annotations

import json
import math
import os
import random
from pathlib import Path

import pytest

from pytest_sdxl.analysis.comparison import ONE_PROCESS_NOTE, Rules, compare_results, drift_note
from pytest_sdxl.analysis.processes import compare_processes
from pytest_sdxl.analysis.stats import scipy_stats
from pytest_sdxl.cli.main import main
from pytest_sdxl.machine.process_identity import process_id
from pytest_sdxl.reports.comparison import comparison_table
from pytest_sdxl.results.merge import SESSION_PROCESS_PREFIX, pool_result_sets
from pytest_sdxl.results.records import DeviceSignals, RunRecord, VariantRecord
from pytest_sdxl.results.schema import ResultSet, ResultsFileError, from_dict, save_results

# The figures a comparison of wall time per image takes, run by run: the per-run minimum (the default).
WALL_ONLY = Rules(metrics=("avg_gen_s", "kernels", "peak_gpu_mem_gb"), gate=("avg_gen_s", "kernels", "peak_gpu_mem_gb"))


def run_of(number: int, level: float, process: str, noise: random.Random, peak: float = 2.5) -> RunRecord:
    """A run at a process's level: ten timed calls about ``level`` seconds, 1 % apart, 100 launches."""
    gen_s = [level * math.exp(noise.gauss(0, 0.01)) for _ in range(10)]
    record = RunRecord(number, 4.0, 0.3, gen_s, sum(gen_s) / 10, sorted(gen_s)[5], 5.0, peak_gpu_mem_gb=peak)
    record.device = DeviceSignals(kernel_ms=[10.0], kernels=[100.0])
    record.process = process
    return record


def variant_of(levels: list[float], tag: str, seed: int, runs: int = 3) -> VariantRecord:
    """A variant whose runs come from one process per level, ``runs`` runs each."""
    noise = random.Random(seed)
    records = [run_of(0, level, f"{tag}{index}", noise) for index, level in enumerate(levels) for _ in range(runs)]
    for number, record in enumerate(records, start=1):
        record.run = number
    return VariantRecord("batch", "exact", "ok", "", records)


def by_metric(base: VariantRecord, new: VariantRecord, rules: Rules = WALL_ONLY) -> dict[str, object]:
    comparisons = compare_results(ResultSet(variants=[base]), ResultSet(variants=[new]), rules)
    return {item.metric: item for item in comparisons}


def test_the_process_id_is_one_per_process_and_new_in_a_forked_child() -> None:
    own = process_id()
    assert own == process_id()
    assert len(own) == 32 and int(own, 16) >= 0
    if not hasattr(os, "fork"):
        pytest.skip("no os.fork on this platform")
    reading, writing = os.pipe()
    child = os.fork()
    if child == 0:
        os.write(writing, process_id().encode())
        os._exit(0)
    os.close(writing)
    os.waitpid(child, 0)
    with os.fdopen(reading) as pipe:
        child_id = pipe.read()
    assert len(child_id) == 32 and child_id != own


def test_a_run_keeps_its_process_through_a_file_and_an_older_file_reads_as_no_process() -> None:
    record = variant_of([0.1], "p", seed=1, runs=2)
    document = ResultSet(variants=[record]).to_dict()
    assert [run["process"] for run in document["variants"][0]["runs"]] == ["p0", "p0"]
    assert [run.process for run in from_dict(json.loads(json.dumps(document))).variants[0].runs] == ["p0", "p0"]
    for run in document["variants"][0]["runs"]:
        del run["process"]
    assert [run.process for run in from_dict(document).variants[0].runs] == ["", ""]
    document["variants"][0]["runs"][1]["process"] = 7
    with pytest.raises(ResultsFileError, match=r"variants\[0\]\.runs\[1\]\.process"):
        from_dict(document)


def test_run_processes_line_up_with_run_samples_blocks_included() -> None:
    record = variant_of([0.1, 0.1], "p", seed=2, runs=2)
    record.runs[1].device = None  # a run without kernel signals gives no kernel sample and no process for them
    for run in record.runs:
        run.reference_gen_s = [0.2] * 10
        run.wall_blocks = [[0.1, 0.2], [0.1, 0.2], [0.1, 0.2]]
    assert record.run_processes("kernel_ms") == ["p0", "p1", "p1"]
    assert len(record.run_samples("kernel_ms")) == 3
    assert record.run_processes("wall_pair") == ["p0"] * 6 + ["p1"] * 6
    assert len(record.run_samples("wall_pair")) == 12
    assert record.run_processes("gen_s") == ["p0", "p0", "p1", "p1"]


def test_pooled_sessions_keep_their_processes_and_name_those_without_after_the_session() -> None:
    first, second = variant_of([0.1], "a", seed=3, runs=2), variant_of([0.1], "b", seed=4, runs=2)
    for run in second.runs:
        run.process = ""  # a session written before process ids
    sets = [ResultSet(variants=[first], session_ids=["s-one"]), ResultSet(variants=[second], session_ids=["s-two"])]
    pooled = pool_result_sets([("one.json", sets[0]), ("two.json", sets[1])]).result_set.variants[0]
    assert [run.process for run in pooled.runs] == ["a0", "a0", *[f"{SESSION_PROCESS_PREFIX}s-two"] * 2]
    assert [run.run for run in pooled.runs] == [1, 2, 3, 4]
    assert second.runs[0].process == ""  # the input is left as it was


def test_with_equal_runs_a_process_the_mixed_model_is_the_t_test_on_process_means() -> None:
    noise = random.Random(5)
    levels = [math.exp(noise.gauss(0, 0.04)) for _ in range(7)]
    base = [levels[index // 3] * math.exp(noise.gauss(0, 0.01)) for index in range(9)]
    new = [1.03 * levels[3 + index // 3] * math.exp(noise.gauss(0, 0.01)) for index in range(12)]
    result = compare_processes(
        base, [str(index // 3) for index in range(9)], new, [str(index // 3) for index in range(12)]
    )
    assert result.test.startswith("mixed model (MixedLM, REML)")
    assert "3 vs 4 processes (9 vs 12 runs), t on 5 df" in result.test
    means = [
        [sum(math.log(value) for value in side[start : start + 3]) / 3 for start in range(0, len(side), 3)]
        for side in (base, new)
    ]
    expected = scipy_stats().ttest_ind(means[1], means[0], equal_var=True)
    low, high = expected.confidence_interval(0.95)
    assert result.p_value == pytest.approx(float(expected.pvalue), rel=1e-3)
    assert (math.log(result.low), math.log(result.high)) == pytest.approx((float(low), float(high)), rel=1e-3)
    assert (result.base_processes, result.new_processes) == (3, 4)


def test_a_boundary_fit_falls_back_to_the_process_means() -> None:
    # Every process at the same level, the runs spread 1 %: the process variance is estimated at zero.
    noise = random.Random(6)
    base = [math.exp(noise.gauss(0, 0.01)) for _ in range(12)]
    new = [math.exp(noise.gauss(0, 0.01)) for _ in range(12)]
    ids = [str(index % 4) for index in range(12)]
    result = compare_processes(base, ids, new, ids, what="per-run min")
    assert "t on the processes' mean log per-run min (the mixed model put the process variance at zero)" in result.test
    assert result.test.endswith("4 vs 4 processes (12 vs 12 runs), t on 6 df")
    assert 0 < result.p_value <= 1 and result.low < result.ratio < result.high


def test_a_boundary_fit_prints_no_warning_of_its_own() -> None:
    """A wall-ratio fit of two blocks a process, three processes a side (a busy H100's trial), whose process
    variance lands at zero: the fallback answers, and statsmodels' standard errors, taken at that boundary from
    a negative variance, print no RuntimeWarning into the user's terminal."""
    import warnings

    import numpy as np

    from pytest_sdxl.analysis.processes import mixed_model

    response = [0.0, 0.011039, -0.069073, -0.092272, -0.119227, -0.041393,
                0.429036, 0.027659, -0.080786, -0.072955, -0.077912, -0.079791]  # fmt: skip
    reference = [0.0, -0.001436, -0.046493, -0.085865, -0.080172, -0.036302,
                 0.360947, 0.011093, -0.059739, -0.049541, -0.047495, -0.068119]  # fmt: skip
    design = np.column_stack([np.ones(12), [0.0] * 6 + [1.0] * 6, reference])
    groups = np.array([f"{side}{index}" for side in ("base", "new") for index in (1, 1, 2, 2, 3, 3)])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        answer = mixed_model(np.array(response), design, groups)
    assert answer == "the mixed model put the process variance at zero"
    assert not [warning for warning in caught if issubclass(warning.category, RuntimeWarning)]


def test_sides_without_any_spread_compare_exactly() -> None:
    ids = ["a", "a", "b", "b"]
    same = compare_processes([2.5] * 4, ids, [2.5] * 4, ids)
    assert (same.ratio, same.low, same.high, same.p_value) == (1.0, 1.0, 1.0, 1.0)
    grown = compare_processes([2.5] * 4, ids, [2.75] * 4, ids)
    assert grown.ratio == pytest.approx(1.1) and grown.p_value == 0.0
    assert "every run of a side alike" in grown.test


def test_one_process_in_all_but_two_is_insufficient_and_bad_input_is_named() -> None:
    result = compare_processes([1.0, 1.1], ["a", "a"], [1.0, 1.2], ["b", "b"])
    assert math.isnan(result.p_value) and "at least 3 processes in all" in result.insufficient
    with pytest.raises(ValueError, match="the new side has 2 values but 1 process ids"):
        compare_processes([1.0], ["a"], [1.0, 1.2], ["b"])


def test_the_wall_blocks_covariate_takes_a_process_level_shared_with_the_reference_out() -> None:
    # Each process slows variant and reference alike (slope 1): the fitted slope cancels the drift, and a 4 % change
    # shows through 10 % process levels.
    noise = random.Random(7)

    def blocks(change: float, tag: str) -> tuple[list[float], list[float], list[str]]:
        variant, reference, ids = [], [], []
        for process in range(4):
            level = math.exp(noise.gauss(0, 0.10))
            for _ in range(6):
                host = math.exp(noise.gauss(0, 0.02))
                reference.append(0.2 * level * host * math.exp(noise.gauss(0, 0.002)))
                variant.append(0.1 * change * level * host * math.exp(noise.gauss(0, 0.002)))
                ids.append(f"{tag}{process}")
        return variant, reference, ids

    base_variant, base_reference, base_ids = blocks(1.0, "b")
    new_variant, new_reference, new_ids = blocks(1.04, "n")
    result = compare_processes(
        base_variant, base_ids, new_variant, new_ids, base_covariate=base_reference, new_covariate=new_reference
    )
    assert "reference slope fitted" in result.test and "t on 6 df" in result.test
    assert result.ratio == pytest.approx(1.04, abs=0.005) and result.p_value < 0.001
    plain = compare_processes(base_variant, base_ids, new_variant, new_ids)
    assert plain.p_value > 0.05  # without the reference the process levels drown the change


def test_several_processes_a_side_judge_every_signal_by_the_processes_but_launches_stay_exact() -> None:
    base = variant_of([0.100, 0.106, 0.096, 0.103], "b", seed=8)
    new = variant_of([0.108, 0.101, 0.097, 0.110], "n", seed=9)
    found = by_metric(base, new)
    wall, launches, peak = found["avg_gen_s"], found["kernels"], found["peak_gpu_mem_gb"]
    assert "a random level per process" in wall.test and "4 vs 4 processes (12 vs 12 runs), t on 6 df" in wall.test
    assert wall.processes == (4, 4) and not wall.drift_unjudged
    assert launches.test.startswith("exact") and launches.verdict == "unchanged"
    assert "every run of a side alike" in peak.test and peak.verdict == "unchanged"
    assert drift_note(list(found.values())) == ""  # type: ignore[arg-type]


def test_one_process_a_side_is_judged_as_before_and_says_what_it_cannot_see() -> None:
    base, new = variant_of([0.100], "b", seed=10), variant_of([0.110], "n", seed=11)
    found = by_metric(base, new)
    wall = found["avg_gen_s"]
    assert wall.test.startswith("Welch t on log per-run min, 3 vs 3 runs") and wall.verdict == "regressed"
    assert wall.processes == (1, 1) and wall.drift_unjudged
    assert not found["kernels"].drift_unjudged  # an exact count has no noise to model
    table = comparison_table(list(found.values()))  # type: ignore[arg-type]
    assert "REGRESSED *" in table and f"* {ONE_PROCESS_NOTE}" in table


def test_the_compare_command_says_one_process_a_side_in_the_terminal_and_markdown(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    paths = []
    for name, levels, seed in (("base", [0.100], 12), ("new", [0.100], 13)):
        record = variant_of(levels, name, seed)
        paths.append(
            str(
                save_results(ResultSet(settings={"model": "random:tiny"}, variants=[record]), tmp_path / f"{name}.json")
            )
        )
    assert main(["compare", *paths, "--metrics", "avg_gen_s,kernels", "--gate", "avg_gen_s"]) == 0
    out = capsys.readouterr().out
    assert f"* {ONE_PROCESS_NOTE}" in out
    assert out.rstrip().endswith(f"; {ONE_PROCESS_NOTE})")
    assert main(["compare", *paths, "--metrics", "avg_gen_s", "--format", "markdown"]) == 0
    assert f"- {ONE_PROCESS_NOTE}" in capsys.readouterr().out


def test_the_wall_ratio_of_several_processes_fits_the_processes_with_the_reference() -> None:
    noise = random.Random(14)

    def with_reference(record: VariantRecord, change: float) -> VariantRecord:
        # A process's level moves variant and reference alike, and the variant by 1 % of its own besides.
        levels: dict[str, tuple[float, float]] = {}
        for run in record.runs:
            shared, own = levels.setdefault(
                run.process, (math.exp(noise.gauss(0, 0.05)), math.exp(noise.gauss(0, 0.01)))
            )
            run.reference_gen_s = [0.2 * shared * math.exp(noise.gauss(0, 0.01)) for _ in range(10)]
            run.wall_blocks = []
            for _ in range(4):
                host = math.exp(noise.gauss(0, 0.02))  # the host's speed over one block moves both sides
                run.wall_blocks.append(
                    [
                        0.1 * change * shared * own * host * math.exp(noise.gauss(0, 0.003)),
                        0.2 * shared * host * math.exp(noise.gauss(0, 0.003)),
                    ]
                )
        return record

    base = with_reference(variant_of([0.1] * 3, "b", seed=15), 1.0)
    new = with_reference(variant_of([0.1] * 3, "n", seed=16), 1.06)
    wall = by_metric(base, new, Rules(metrics=("wall_ratio",), gate=("wall_ratio",)))["wall_ratio"]
    assert wall.test.startswith("mixed model (MixedLM, REML) on log variant minimum per block on log reference minimum")
    assert "reference slope fitted, 3 vs 3 processes (36 vs 36 blocks), t on 4 df" in wall.test
    assert wall.verdict == "regressed" and wall.ratio == pytest.approx(1.06, abs=0.02)
