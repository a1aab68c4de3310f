"""``merge``: the lanes of a multi-GPU run as one results file, refused where they measured different things."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from pytest_sdxl.cli import main
from pytest_sdxl.results import ResultSet, ResultsFileError, RunRecord, VariantRecord, load_results, save_results
from pytest_sdxl.results_merge import merge_files, merge_result_sets

SETTINGS = {"model": "random:tiny", "resolved_dtype": "torch.float32", "image_size": 64, "steps": 1, "runs": 1}
MACHINE = {"gpu": "NVIDIA H100 80GB HBM3", "torch": "2.11.0", "diffusers": "0.42.1", "hostname": "lane"}


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
    assert "machine 'gpu': a has 'NVIDIA H100 80GB HBM3', b has 'NVIDIA L4'" in message
    assert "settings 'runs': a has 1, b has 3" in message


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
    assert "settings 'steps'" in capsys.readouterr().err
    assert not (tmp_path / "x").exists()
    assert json.loads((tmp_path / "gpu0.json").read_text())["settings"]["runs"] == 1  # inputs untouched
