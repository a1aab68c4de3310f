"""``merge``: the lanes of a multi-GPU run as one results file, refused where they measured different things."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from pytest_sdxl.cli.main import main
from pytest_sdxl.results.merge import merge_files, merge_result_sets, pool_result_sets
from pytest_sdxl.results.records import RunRecord, VariantRecord
from pytest_sdxl.results.schema import ResultSet, ResultsFileError, load_results, save_results

SETTINGS = {
    "model": "random:tiny",
    "resolved_dtype": "torch.float32",
    "image_size": 64,
    "steps": 1,
    "prompts": ["a red cube"],
    "runs": 1,
    "seed": 0,
    "tiny_vae": "random",
    "fp16_vae": "random",
}
MACHINE = {
    "gpu": "NVIDIA H100 80GB HBM3",
    "gpu_driver": "570.1",
    "cuda": "12.8",
    "torch": "2.11.0",
    "diffusers": "0.42.1",
    "transformers": "4.57.0",
    "python": "3.12.3",
    "hostname": "lane",
}


def record(variant: str, avg_gen_s: float = 0.1) -> VariantRecord:
    run = RunRecord(1, 1.0, 0.2, [avg_gen_s] * 4, avg_gen_s, avg_gen_s, 1.6, {"unet_ms": 50.0}, None, math.inf)
    return VariantRecord(variant, "exact", "ok", "", [run])


def lane(*variants: str, **changes: object) -> ResultSet:
    settings = {**SETTINGS, **{key: value for key, value in changes.items() if key in SETTINGS}}
    machine = {**MACHINE, **{key: value for key, value in changes.items() if key in MACHINE}}
    return ResultSet(settings=settings, machine=machine, variants=[record(name) for name in variants])


def test_lanes_join_with_every_variant_once_and_the_baseline_first() -> None:
    merged = merge_result_sets(
        [("gpu0.json", lane("tiny_vae", "batch")), ("gpu1.json", lane("baseline", "cached_embeds"))]
    )
    assert [item.variant for item in merged.result_set.variants] == ["baseline", "tiny_vae", "batch", "cached_embeds"]
    assert merged.result_set.settings["variants"] == ["baseline", "tiny_vae", "batch", "cached_embeds"]
    assert merged.result_set.settings["merged_from"] == ["gpu0.json", "gpu1.json"]
    assert merged.notes == []


def test_host_names_may_differ_but_not_the_card_or_the_workload() -> None:
    merge_result_sets([("a", lane("baseline")), ("b", lane("tiny_vae", hostname="other"))])
    with pytest.raises(ResultsFileError) as refused:
        merge_result_sets([("a", lane("baseline")), ("b", lane("tiny_vae", gpu="NVIDIA L4", runs=3))])
    message = str(refused.value)
    assert message.startswith("a and b did not measure the same thing:")
    assert "- card: NVIDIA H100 80GB HBM3 vs NVIDIA L4" in message
    assert "- runs: 1 vs 3" in message


def test_a_refusal_of_three_files_names_the_file_of_each_value() -> None:
    lanes = [("a", lane("baseline")), ("b", lane("tiny_vae")), ("c", lane("batch", torch="2.12.0"))]
    with pytest.raises(ResultsFileError) as refused:
        merge_result_sets(lanes)
    assert "- torch: 2.11.0 (a) vs 2.12.0 (c)" in str(refused.value)


def test_what_an_older_file_does_not_record_is_said_not_refused() -> None:
    older = lane("tiny_vae")
    del older.machine["transformers"], older.settings["fp16_vae"]
    merged = merge_result_sets([("a", lane("baseline")), ("b", older)])
    assert merged.notes == ["b does not record fp16 VAE weights, transformers, so that could not be checked"]


def test_a_variant_measured_twice_is_refused_unless_the_first_is_kept() -> None:
    lanes = [("a", lane("baseline", "tiny_vae")), ("b", lane("baseline", "batch"))]
    with pytest.raises(ResultsFileError, match=r"baseline \(in a and b\).*--first"):
        merge_result_sets(lanes)
    merged = merge_result_sets(lanes, keep_first=True)
    assert [item.variant for item in merged.result_set.variants] == ["baseline", "tiny_vae", "batch"]
    assert merged.notes == ["baseline: measured in a and b; kept the first"]


def test_a_stopped_lane_leaves_the_joined_report_partial() -> None:
    stopped = lane("batch")
    stopped.partial, stopped.not_measured = "interrupted", ["cached_embeds", "tiny_vae"]
    merged = merge_result_sets([("a", lane("baseline", "tiny_vae")), ("b", stopped)])
    assert merged.result_set.partial == "interrupted"
    assert merged.result_set.not_measured == ["cached_embeds"]  # tiny_vae was measured in the other lane


def test_one_file_is_not_a_merge(tmp_path: Path) -> None:
    save_results(lane("baseline"), tmp_path / "only.json")
    with pytest.raises(ResultsFileError, match="two results files or more"):
        merge_files([tmp_path / "only.json"])


def test_the_command_writes_one_report_and_refuses_with_a_usage_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    save_results(lane("baseline", "tiny_vae"), tmp_path / "gpu0.json")
    save_results(lane("batch"), tmp_path / "gpu1.json")
    assert (
        main(["merge", str(tmp_path / "gpu0.json"), str(tmp_path / "gpu1.json"), "--output", str(tmp_path / "all")])
        == 0
    )
    joined = load_results(tmp_path / "all" / "results.json")
    assert [item.variant for item in joined.variants] == ["baseline", "tiny_vae", "batch"]
    assert "| batch" in (tmp_path / "all" / "results.md").read_text()
    assert (tmp_path / "all" / "results.png").stat().st_size > 0

    save_results(lane("cached_embeds", steps=4), tmp_path / "other.json")
    assert (
        main(["merge", str(tmp_path / "gpu0.json"), str(tmp_path / "other.json"), "--output", str(tmp_path / "x")]) == 2
    )
    assert "- steps: 1 vs 4" in capsys.readouterr().err
    assert not (tmp_path / "x").exists()
    assert json.loads((tmp_path / "gpu0.json").read_text())["settings"]["runs"] == 1  # inputs untouched


def session(*variants: str, avg_gen_s: float = 0.1, **changes: object) -> ResultSet:
    sessions = lane(*variants, **changes)
    for item in sessions.variants:
        item.runs[0].avg_gen_s = avg_gen_s
        item.measure_s = 30.0
    return sessions


def test_pooled_sessions_keep_every_run_in_session_order() -> None:
    sessions = [
        ("s1.json", session("baseline", "cpu_offload", avg_gen_s=0.1)),
        ("s2.json", session("baseline", "cpu_offload", avg_gen_s=0.2, hostname="other")),
        ("s3.json", session("baseline", "cpu_offload", avg_gen_s=0.3)),
    ]
    pooled = pool_result_sets(sessions)
    offload = pooled.result_set.variant("cpu_offload")
    assert offload is not None
    assert [run.run for run in offload.runs] == [1, 2, 3]
    assert [run.avg_gen_s for run in offload.runs] == [0.1, 0.2, 0.3]
    assert offload.measure_s == 90.0
    assert len(offload.run_samples("gen_s")) == 3
    # Each run keeps a process of its own session (these predate process ids: named after the session).
    assert len(set(offload.run_processes("gen_s"))) == 3
    assert pooled.result_set.settings["runs"] == 3
    assert pooled.result_set.settings["pooled_from"] == ["s1.json", "s2.json", "s3.json"]
    assert [run.run for run in sessions[0][1].variants[1].runs] == [1]  # the inputs are left as they were


def test_pooling_refuses_sessions_of_other_variants_or_another_workload() -> None:
    with pytest.raises(ResultsFileError, match=r"s1 has baseline \(measured\), cpu_offload \(measured\), s2 has"):
        pool_result_sets([("s1", session("baseline", "cpu_offload")), ("s2", session("baseline"))])
    skipped = session("baseline", "cpu_offload")
    skipped.variants[1] = VariantRecord("cpu_offload", "exact", "skipped", "needs a GPU")
    with pytest.raises(ResultsFileError, match=r"cpu_offload \(not measured\)"):
        pool_result_sets([("s1", session("baseline", "cpu_offload")), ("s2", skipped)])
    with pytest.raises(ResultsFileError, match="steps: 1 vs 4"):
        pool_result_sets([("s1", session("baseline")), ("s2", session("baseline", steps=4))])
    # Sessions of different lengths pool: the runs a session is what pooling adds up.
    assert (
        pool_result_sets([("s1", session("baseline")), ("s2", session("baseline", runs=2))]).result_set.settings["runs"]
        == 3
    )


def test_the_command_pools_runs_and_will_not_also_keep_first(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    save_results(session("baseline", "cpu_offload"), tmp_path / "s1.json")
    save_results(session("baseline", "cpu_offload"), tmp_path / "s2.json")
    files = [str(tmp_path / "s1.json"), str(tmp_path / "s2.json")]
    assert main(["merge", *files, "--pool-runs", "--output", str(tmp_path / "pooled")]) == 0
    assert "pooled the runs of 2 sessions" in capsys.readouterr().out
    pooled = load_results(tmp_path / "pooled" / "results.json")
    assert [len(item.runs) for item in pooled.variants] == [2, 2]
    with pytest.raises(SystemExit) as usage:
        main(["merge", *files, "--pool-runs", "--first", "--output", str(tmp_path / "both")])
    assert usage.value.code == 2
    assert "not allowed with argument" in capsys.readouterr().err
