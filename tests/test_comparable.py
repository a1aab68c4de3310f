"""Comparable or refused: compare, merge and run --resume check one list of what must match; sessions have ids.

A verdict between results of another model, image size, card or software stack says nothing about the code
under test, so ``compare`` refuses it with each difference named (``--allow-mismatch`` prints them as
warnings instead). Every results document carries the ids of the sessions it holds, so that pooling one
session twice, which would count its runs twice and fake a significant difference, is refused.
"""

from __future__ import annotations

import json
import shutil
import uuid
from pathlib import Path

import pytest

from pytest_sdxl.cli.main import main
from pytest_sdxl.results.compatibility import COMPARE, MERGE, differences
from pytest_sdxl.results.merge import merge_result_sets, pool_result_sets
from pytest_sdxl.results.records import RunRecord, VariantRecord
from pytest_sdxl.results.schema import ResultSet, ResultsFileError, load_results, save_results

SETTINGS = {
    "model": "random:tiny",
    "resolved_device": "cuda:0",
    "resolved_dtype": "torch.float16",
    "image_size": 64,
    "steps": 1,
    "prompts": ["a red cube", "a blue sphere"],
    "runs": 2,
    "seed": 0,
}
MACHINE = {
    "gpu": "NVIDIA H100 80GB HBM3",
    "gpu_driver": "570.1",
    "cuda": "12.8",
    "cpu": "AMD EPYC 7763",
    "torch": "2.11.0",
    "diffusers": "0.37.0",
    "transformers": "4.57.0",
    "python": "3.12.3",
    "hostname": "runner-1",
}


def results(gen_s: float = 0.1, **changes: object) -> ResultSet:
    """A baseline of two runs; ``changes`` replace settings or machine keys by name."""
    settings = {**SETTINGS, **{key: value for key, value in changes.items() if key in SETTINGS}}
    machine = {**MACHINE, **{key: value for key, value in changes.items() if key not in SETTINGS}}
    runs = [RunRecord(run, 1.0, 0.2, [gen_s] * 4, gen_s, gen_s, 1.6, {"unet_ms": 50.0}) for run in (1, 2)]
    return ResultSet(settings=settings, machine=machine, variants=[VariantRecord("baseline", "exact", "ok", "", runs)])


def compare(tmp_path: Path, base: ResultSet, new: ResultSet, *extra: str) -> int:
    save_results(base, tmp_path / "base.json")
    save_results(new, tmp_path / "new.json")
    return main(["compare", str(tmp_path / "base.json"), str(tmp_path / "new.json"), *extra])


def test_compare_refuses_another_model_size_and_card_naming_each_difference(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    new = results(model="random:sdxl-turbo", image_size=512, gpu="NVIDIA L4")
    assert compare(tmp_path, results(), new) == 2
    captured = capsys.readouterr()
    assert "no regression" not in captured.out
    assert "model: random:tiny vs random:sdxl-turbo" in captured.err
    assert "image size: 64 vs 512" in captured.err
    assert "card: NVIDIA H100 80GB HBM3 vs NVIDIA L4" in captured.err
    assert "--allow-mismatch" in captured.err


@pytest.mark.parametrize(
    ("change", "named"),
    [
        ({"steps": 4}, "steps: 1 vs 4"),
        ({"resolved_dtype": "torch.float32"}, "dtype: float16 vs float32"),
        ({"prompts": ["a red cube"]}, "prompts: ['a red cube', 'a blue sphere'] vs ['a red cube']"),
        ({"torch": "2.12.0"}, "torch: 2.11.0 vs 2.12.0"),
        ({"diffusers": "0.38.0"}, "diffusers: 0.37.0 vs 0.38.0"),
        ({"transformers": "5.0.0"}, "transformers: 4.57.0 vs 5.0.0"),
        ({"cuda": "13.0"}, "CUDA: 12.8 vs 13.0"),
        ({"python": "3.13.1"}, "Python: 3.12.3 vs 3.13.1"),
        ({"torch": None}, "torch: 2.11.0 vs none"),
    ],
)
def test_compare_refuses_each_workload_and_software_difference(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], change: dict[str, object], named: str
) -> None:
    assert compare(tmp_path, results(), results(**change)) == 2
    assert named in capsys.readouterr().err


def test_allow_mismatch_prints_each_difference_as_a_warning_before_the_verdict(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert compare(tmp_path, results(), results(torch="2.12.0"), "--allow-mismatch") == 0
    out = capsys.readouterr().out
    warning = out.index("new.json did not measure the same thing: torch: 2.11.0 vs 2.12.0")
    assert out[:warning].splitlines()[-1].startswith("warning: ")
    assert warning < out.index("no regression")


def test_what_may_differ_between_compared_results(tmp_path: Path) -> None:
    # Another host, core count, seed or run count measures the same thing; so does the dtype spelled as
    # the plugin records it ('float16') against the command line's ('torch.float16').
    same = results(hostname="runner-2", cpu_count=8, seed=3, runs=5, resolved_dtype="float16")
    assert compare(tmp_path, results(), same) == 0


def test_the_card_of_a_cpu_run_is_its_cpu() -> None:
    on_cpu = {"resolved_device": "cpu", "gpu_driver": None}
    one, other = results(**on_cpu), results(**on_cpu, cpu="Intel Xeon 8480", gpu="NVIDIA L4")
    found = [item.describe() for item in differences([("a", one), ("b", other)], COMPARE)]
    assert found == ["card: CPU AMD EPYC 7763 vs CPU Intel Xeon 8480"]  # the unused GPU and its driver do not count
    found = [item.describe() for item in differences([("a", results()), ("b", results(**on_cpu))], COMPARE)]
    assert found == ["card: NVIDIA H100 80GB HBM3 vs CPU AMD EPYC 7763"]  # a driver counts only where both used a GPU
    nameless = results(**on_cpu)
    del nameless.machine["cpu"]
    found = [item.describe() for item in differences([("a", results()), ("b", nameless)], COMPARE)]
    assert found == ["card: NVIDIA H100 80GB HBM3 vs CPU"]  # a CPU whatever its name


def test_merge_and_compare_share_one_check_and_merge_adds_the_run_count() -> None:
    named = [("a", results()), ("b", results(runs=3, transformers="5.0.0"))]
    assert [item.describe() for item in differences(named, COMPARE)] == ["transformers: 4.57.0 vs 5.0.0"]
    assert [item.describe() for item in differences(named, MERGE)] == ["runs: 2 vs 3", "transformers: 4.57.0 vs 5.0.0"]
    with pytest.raises(ResultsFileError, match=r"transformers: 4\.57\.0 vs 5\.0\.0"):
        merge_result_sets(named)


PLUGIN_HARNESS = "pytest plugin: each variant's pipeline is loaded and warmed once; each run is a block of rounds"


def test_results_of_the_plugin_and_of_run_are_never_joined_or_compared_unasked(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The plugin's runs are blocks of rounds on one warm pipeline, run's a fresh load each: a file from each
    is refused by merge, by pooling and (unless --allow-mismatch) by compare; only the harness's name counts."""
    plugin, command_line = results(), results()
    plugin.settings["harness"] = PLUGIN_HARNESS
    named = [("plugin", plugin), ("run", command_line)]
    for checks in (COMPARE, MERGE):
        assert [item.describe() for item in differences(named, checks)] == ["harness: pytest plugin vs command line"]
    reworded = results()
    reworded.settings["harness"] = "pytest plugin: described in other words"
    assert differences([("plugin", plugin), ("reworded", reworded)], MERGE) == []
    with pytest.raises(ResultsFileError, match="harness: pytest plugin vs command line"):
        merge_result_sets(named)
    with pytest.raises(ResultsFileError, match="harness: pytest plugin vs command line"):
        pool_result_sets(named)
    assert compare(tmp_path, plugin, command_line) == 2
    assert "- harness: pytest plugin vs command line" in capsys.readouterr().err


def test_run_resume_refuses_a_folder_the_plugin_wrote(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    earlier = results()
    earlier.settings["harness"] = PLUGIN_HARNESS
    save_results(earlier, tmp_path / "results.json")
    arguments = ["run", "--model", "random:tiny", "--variants", "baseline", "--runs", "1", "--report", str(tmp_path)]
    assert main([*arguments, "--resume"]) == 2
    assert "- harness: pytest plugin vs command line" in capsys.readouterr().err
    assert load_results(tmp_path / "results.json").settings["harness"] == PLUGIN_HARNESS  # left as it was


def test_compare_refuses_files_with_no_variant_in_common(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Every row would be 'missing' and the verdict 'no regression': a gate that compared nothing must not pass."""
    empty = results()
    empty.variants = []
    assert compare(tmp_path, results(), empty, "--allow-mismatch") == 2
    assert "have no variant in common, so nothing can be compared" in capsys.readouterr().err
    other = results()
    other.variants[0].variant = "tiny_vae"
    assert compare(tmp_path, results(), other) == 2
    assert "base.json holds baseline; " in capsys.readouterr().err


def test_a_file_with_two_records_of_one_variant_is_refused(tmp_path: Path) -> None:
    doubled = results()
    doubled.variants.append(doubled.variants[0])
    save_results(doubled, tmp_path / "results.json")
    with pytest.raises(ResultsFileError, match=r"variants\[1\]: a second record of 'baseline'; each variant has one"):
        load_results(tmp_path / "results.json")


def test_a_new_result_set_has_its_own_session_id_kept_through_saves(tmp_path: Path) -> None:
    first, second = results(), results()
    assert len(first.session_ids) == 1 and first.session_ids != second.session_ids
    assert uuid.UUID(first.session_ids[0]).version == 4
    save_results(first, tmp_path / "results.json")
    first.variants.append(VariantRecord("tiny_vae", "lossy", "skipped", "not installed"))
    save_results(first, tmp_path / "results.json")  # saved again as the session goes on
    assert load_results(tmp_path / "results.json").session_ids == first.session_ids
    assert json.loads((tmp_path / "results.json").read_text())["session_ids"] == first.session_ids


def old_file(tmp_path: Path, name: str, created: str = "2025-01-02T03:04:05+00:00") -> Path:
    """A results file written before session ids."""
    document = results().to_dict()
    del document["session_ids"]
    document["created"] = created
    path = tmp_path / name
    path.write_text(json.dumps(document))
    return path


def test_a_file_without_a_session_id_gets_one_derived_from_its_content(tmp_path: Path) -> None:
    old = load_results(old_file(tmp_path, "old.json"))
    (derived,) = old.session_ids
    assert derived.startswith("derived-")
    assert load_results(old_file(tmp_path, "copy.json")).session_ids == [derived]  # the same file, the same id
    assert load_results(old_file(tmp_path, "later.json", created="2025-01-02T03:04:06+00:00")).session_ids != [derived]
    save_results(old, tmp_path / "again.json")
    assert load_results(tmp_path / "again.json").session_ids == [derived]


def test_merged_documents_list_every_session_they_hold() -> None:
    a, b = results(), results()
    merged = merge_result_sets([("a", a), ("b", b)], keep_first=True).result_set
    assert merged.session_ids == a.session_ids + b.session_ids
    pooled = pool_result_sets([("a", a), ("b", b)]).result_set
    assert pooled.session_ids == a.session_ids + b.session_ids


def test_pooling_refuses_one_session_twice(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    save_results(results(), tmp_path / "s1.json")
    shutil.copy(tmp_path / "s1.json", tmp_path / "copy.json")
    files = [str(tmp_path / "s1.json"), str(tmp_path / "copy.json")]
    assert main(["merge", *files, "--pool-runs", "--output", str(tmp_path / "pooled")]) == 2
    error = capsys.readouterr().err
    assert "s1.json" in error and "copy.json" in error and "the same session" in error
    assert not (tmp_path / "pooled").exists()
    # Files written before session ids: the same file twice is caught by its derived id.
    old = str(old_file(tmp_path, "old.json"))
    assert main(["merge", old, old, "--pool-runs", "--output", str(tmp_path / "pooled")]) == 2
    assert "derived from the file's creation time, settings and machine" in capsys.readouterr().err


def test_a_session_inside_a_merged_file_is_not_pooled_again(tmp_path: Path) -> None:
    a, b, c = results(), results(), results()
    pooled = pool_result_sets([("a", a), ("b", b)]).result_set
    with pytest.raises(ResultsFileError, match="the same session"):
        pool_result_sets([("pooled", pooled), ("b", b)])
    assert pool_result_sets([("pooled", pooled), ("c", c)]).result_set.session_ids == [
        *a.session_ids,
        *b.session_ids,
        *c.session_ids,
    ]


def test_compare_warns_of_a_session_on_both_sides(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # A file compared with itself is a fair smoke test of the gate, so it is not refused; it is said.
    save_results(results(), tmp_path / "base.json")
    assert main(["compare", str(tmp_path / "base.json"), str(tmp_path / "base.json")]) == 0
    out = capsys.readouterr().out
    assert "part of the comparison is of a measurement with itself" in out
    assert out.index("measurement with itself") < out.index("no regression")


def test_what_an_older_file_does_not_record_is_said_not_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    older = results()
    del older.settings["model"], older.machine["transformers"]
    assert compare(tmp_path, older, results()) == 0
    out = capsys.readouterr().out
    assert "base.json does not record model, transformers, so that could not be checked" in out
