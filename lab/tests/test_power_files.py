"""lab/power_files.py: power files of one experiment added up, and the two re-readings of their raw samples."""

from __future__ import annotations

import json
import random
import re
from pathlib import Path
from typing import Any

import pytest
from lab_scripts import load_script

from pytest_sdxl.measure.power import PowerResult

ROUNDS, RUNS, REFERENCE_CALLS = 12, 3, 4


def load_tool() -> Any:
    return load_script("power_files")


def measurement(trial: int, comparison: str, own_s: float, noise: random.Random) -> dict[str, Any]:
    """One measurement's raw samples as the core keeps them: per run, own rounds and the reference's calls."""
    runs = []
    for _ in range(RUNS):
        own = [own_s * (1 + noise.uniform(0, 0.004)) for _ in range(ROUNDS)]
        reference = [1.0 * (1 + noise.uniform(0, 0.004)) for _ in range(ROUNDS * REFERENCE_CALLS)]
        runs.append([own, reference])
    return {"trial": trial, "comparison": comparison, "runs": runs}


def power_file(path: Path, trials: int, variant: str = "batch", seed: int = 0, untouched: str = "") -> Path:
    """A ``power --json`` file: the calibration, then per trial an unchanged and a 10 % slower measurement.

    ``untouched``: across processes with that variant beside, flagged once in each comparison; "" writes the file
    as it was before an untouched variant was kept (none of its fields).
    """
    noise = random.Random(seed)
    samples = [measurement(0, "calibration", 0.4, noise)]
    for trial in range(1, trials + 1):
        samples += [measurement(trial, "none", 0.4, noise), measurement(trial, "host 5%", 0.44, noise)]
    result = PowerResult(
        variant, "random:sdxl-turbo", "NVIDIA H100", trials, RUNS,
        calibration={"wall_ms_per_call": 1600.0, "kernel_ms_per_call": 1200.0},
        detections={"host 5%": {"wall_ratio": trials}}, false_alarms={"wall_ratio": 1},
        unchanged_trials=trials, rounds=ROUNDS, samples=samples,
    )  # fmt: skip
    document = result.as_dict()
    if untouched:
        document.update(
            across="processes", processes=4, untouched=untouched,
            untouched_flags={"none": {"wall_ratio": 1}, "host 5%": {"wall_ratio": 1, "avg_gen_s": 1}},
            untouched_estimates=[{"none": {"wall_ratio": [1.01, 0.3]}, "host 5%": {"wall_ratio": ["nan", "nan"]}}]
            * trials,
        )  # fmt: skip
    else:
        for name in ("untouched", "untouched_flags", "untouched_estimates"):
            del document[name]
    path.write_text(json.dumps(document))
    return path


def test_trials_of_one_experiment_add_up(tmp_path: Path) -> None:
    files = [power_file(tmp_path / "a.json", 2), power_file(tmp_path / "b.json", 3, seed=1)]
    load_tool().merge(str(tmp_path / "merged"), files)
    merged = json.loads((tmp_path / "merged.json").read_text())
    assert merged["trials"] == 5 and merged["unchanged_trials"] == 5
    assert merged["detections"] == {"host 5%": {"wall_ratio": 5}}
    assert merged["false_alarms"] == {"wall_ratio": 2}
    assert len(merged["samples"]) == (1 + 2 * 2) + (1 + 3 * 2)  # every measurement's raw samples kept
    assert (tmp_path / "merged.md").read_text().strip()


def test_the_untouched_variants_flags_add_up_apart(tmp_path: Path) -> None:
    files = [power_file(tmp_path / f"{seed}.json", 2, seed=seed, untouched="tiny_vae") for seed in (0, 1)]
    text = load_tool().merge(str(tmp_path / "merged"), files)
    merged = json.loads((tmp_path / "merged.json").read_text())
    assert merged["untouched"] == "tiny_vae"
    assert merged["untouched_flags"] == {"none": {"wall_ratio": 2}, "host 5%": {"wall_ratio": 2, "avg_gen_s": 2}}
    assert merged["false_alarms"] == {"wall_ratio": 2}  # the slowed variant's, as before
    assert len(merged["untouched_estimates"]) == 4
    untouched_table = text.split("untouched variant: tiny_vae")[1]
    # Columns avg_gen_s, wall_ratio, kernel_ms, kernels; a ratio where a finite one was kept, the count alone elsewhere.
    assert "| none | 0/4 | 2/4 (1.010) | 0/4 | 0/4 |" in untouched_table
    assert "| host 5% | 2/4 | 2/4 | 0/4 | 0/4 |" in untouched_table


def test_files_without_an_untouched_variant_still_merge_and_differ_from_those_with_one(tmp_path: Path) -> None:
    old = [power_file(tmp_path / "a.json", 2), power_file(tmp_path / "b.json", 2, seed=1)]
    assert "untouched" not in json.loads(old[0].read_text())
    text = load_tool().merge(str(tmp_path / "merged"), old)
    merged = json.loads((tmp_path / "merged.json").read_text())
    assert (merged["untouched"], merged["untouched_flags"], merged["untouched_estimates"]) == ("", {}, [])
    assert "untouched variant" not in text
    with pytest.raises(SystemExit, match="different experiments"):
        load_tool().merge(str(tmp_path / "mixed"), [old[0], power_file(tmp_path / "c.json", 2, untouched="tiny_vae")])


def test_power_files_of_different_experiments_are_refused(tmp_path: Path) -> None:
    files = [power_file(tmp_path / "a.json", 2), power_file(tmp_path / "b.json", 2, variant="tiny_vae+batch")]
    with pytest.raises(SystemExit, match="different experiments"):
        load_tool().merge(str(tmp_path / "merged"), files)
    assert not (tmp_path / "merged.json").exists()


def test_blocks_flag_every_slower_trial_and_no_unchanged_one(tmp_path: Path) -> None:
    lines = load_tool().blocks(power_file(tmp_path / "power.json", 3), [6, 30])
    assert lines[2] == f"| 6 | {RUNS * ROUNDS // 6} | 3/3 | 0/3 |"
    assert lines[3] == f"| 30 | - | blocks longer than the stored runs ({ROUNDS} rounds) | - |"


def test_pairs_are_judged_at_the_factor_both_ways() -> None:
    # 1.05 over 1.0 is the one unchanged pair past 1.03; 1.1 is past it over every unchanged value.
    assert load_tool().judged_pairs([1.0, 1.02, 1.05], [1.1], 1.03) == (1, 6, 3, 3)


def test_the_host_normalized_reading_counts_every_measurement(tmp_path: Path) -> None:
    files = [power_file(tmp_path / "a.json", 2), power_file(tmp_path / "b.json", 2, seed=1)]
    lines = load_tool().host_normalized(files, 700.0, 4, 1.03, "host 5%")
    # Calibrations count as unchanged measurements: 2 files x (1 + 2 trials).
    assert lines[0] == "6 unchanged and 4 slowed measurements, pairs judged at factor 1.03"
    assert lines[3].startswith("| plain ratio of minima |") and lines[3].endswith("| 0/30 | 24/24 |")
    assert lines[4].startswith("| host-normalized |")
    with pytest.raises(SystemExit, match="need two unchanged measurements"):
        load_tool().host_normalized(files, 700.0, 4, 1.03, "device 2%")


def test_processes_lists_each_side_and_marks_the_process_far_from_its_side(tmp_path: Path) -> None:
    tool = load_tool()
    result = PowerResult("batch", "random:sdxl-turbo", "cuda", 1, 1, across="processes", processes=3)
    ratios = {"base": [0.4227, 0.4151, 0.4252], "none": [0.4188, 0.4231, 0.4195], "host-5pct": [0.4475, 0.5390, 0.4451]}
    for side, values in ratios.items():
        for index, value in enumerate(values, 1):
            row = {"trial": 2, "process": f"{side}/process-{index:02d}", "variant": "batch", "wall_ratio": value,
                   "fastest_ms": 45.0, "kernel_ms": 30.1, "start_s": 11.0}  # fmt: skip
            result.process_figures.append(row)
    result.process_figures[-1]["steadiness"] = [1.02, 1.31]  # a busy host's reference calls
    path = tmp_path / "power.json"
    path.write_text(json.dumps(result.as_dict()))
    lines = tool.processes(path)
    assert "0.4451 (30.10 ms) [median/fastest 1.02, reference 1.31]" in lines[1]
    assert lines[0] == "trial 2 batch base: 0.4227 (30.10 ms), 0.4151 (30.10 ms), 0.4252 (30.10 ms)"
    (slowed,) = [line for line in lines if "host-5pct" in line]
    # 0.5390 is 20 % from its side's median: marked; its two neighbours and every other side are not.
    assert slowed.count("FAR") == 1 and "0.5390 (30.10 ms) FAR" in slowed
    assert sum(line.count("FAR") for line in lines) == 1


def test_processes_of_a_file_without_them_says_so(tmp_path: Path) -> None:
    path = tmp_path / "power.json"
    path.write_text(json.dumps(PowerResult("batch", "random:tiny", "cpu", 1, 1).as_dict()))
    with pytest.raises(SystemExit, match="holds no process figures"):
        load_tool().processes(path)


def test_rejudge_judges_each_finished_trial_with_the_stretches_left_out_and_kept(tmp_path: Path) -> None:
    from pytest_sdxl.results.records import RunRecord, VariantRecord
    from pytest_sdxl.results.schema import ResultSet, save_results

    def process(folder: Path, own_ms: float, name: str, stretch: bool = False) -> None:
        blocks = [[own_ms / 1000, 0.130], [own_ms * (1.6 if stretch else 1.001) / 1000, 0.1301]]
        gen_s = [own for own, _ in blocks]
        run = RunRecord(1, 1.0, 0.2, gen_s, sum(gen_s) / 2, min(gen_s), 3.0, reference="baseline", process=name)
        run.reference_gen_s, run.wall_blocks = [reference for _, reference in blocks], blocks
        folder.mkdir(parents=True)
        measured = ResultSet({"model": "random:tiny"}, {}, [VariantRecord("tiny_vae", "speed", runs=[run])])
        save_results(measured, folder / "results.json")

    for index, (base_ms, head_ms) in enumerate([(94.0, 93.8), (95.5, 95.1), (94.6, 94.9)], start=1):
        process(tmp_path / "trial-01" / "base" / f"process-{index:02d}", base_ms, f"b{index}")
        process(tmp_path / "trial-01" / "none" / f"process-{index:02d}", head_ms, f"n{index}", stretch=index == 3)
    process(tmp_path / "trial-02" / "base" / "process-01", 94.0, "b4")
    lines = load_tool().rejudge(tmp_path, pairs=3)
    assert lines[0].startswith("trial-01 none tiny_vae: unchanged ") and "every block kept: " in lines[0]
    # The stretch (the head's variant 60 % above its fastest block, its reference unmoved) moved only the second.
    left_out, kept = (float(ratio) for ratio in re.findall(r"(?:unchanged|regressed) (\d\.\d+) \(", lines[0]))
    assert abs(left_out - 1.0) < 0.01 and kept > 1.02
    # What ab would have answered: with the stretch left out, six steady processes rule the flag line out.
    assert lines[1] == "trial-01 none: undecided: none"
    assert lines[2] == "trial-02: not finished ()"


def test_estimators_read_the_planted_shift_and_tell_a_median_thrown_by_slow_calls(tmp_path: Path) -> None:
    from pytest_sdxl.results.records import RunRecord, VariantRecord
    from pytest_sdxl.results.schema import ResultSet, save_results

    def process(folder: Path, own_ms: float, slow_calls: int) -> None:
        # Four rounds, two reference calls each; the host slows the first slow_calls rounds' own calls by half.
        gen_s = [own_ms * (1.5 if index < slow_calls else 1.0) / 1000 for index in range(4)]
        run = RunRecord(1, 1.0, 0.2, gen_s, sum(gen_s) / 4, min(gen_s), 3.0, reference="baseline")
        run.reference_gen_s, run.wall_blocks = [0.1] * 8, [[min(gen_s[:2]), 0.1], [min(gen_s[2:]), 0.1]]
        folder.mkdir(parents=True)
        measured = ResultSet({"model": "random:tiny"}, {}, [VariantRecord("batch", "speed", runs=[run])])
        save_results(measured, folder / "results.json")

    for index, slow_calls in enumerate([0, 3], start=1):
        process(tmp_path / "trial-01" / "base" / f"process-{index:02d}", 50.0, slow_calls)
        process(tmp_path / "trial-01" / "none" / f"process-{index:02d}", 50.0, 0)
        process(tmp_path / "trial-01" / "host-5pct" / f"process-{index:02d}", 52.5, 0)
    lines = load_tool().estimators(tmp_path, "batch", "host-5pct")
    assert lines[1].startswith("trial-01: 0.00%, +4.88%; ")  # the fastest calls: no spread, log(1.05)
    summary = {line.split(":")[0]: line for line in lines[2:]}
    assert summary["fastest/fastest"].startswith("fastest/fastest: spread 0.00% (root mean square over 1 trials)")
    # Three slow calls of four move one process's median: the unchanged processes spread.
    spread = float(re.search(r"spread (\d+\.\d+)%", summary["median/median"]).group(1))
    assert spread > 10
