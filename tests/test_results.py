"""The results schema: lossless round trips, atomic writes and clear errors on bad files."""

from __future__ import annotations

import json
import math
import os
import stat
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pytest_sdxl.results.records import RunRecord, VariantRecord
from pytest_sdxl.results.schema import (
    SCHEMA_VERSION,
    ResultSet,
    ResultsFileError,
    from_dict,
    load_results,
    save_results,
    settings_as_dict,
    to_dict,
)
from pytest_sdxl.settings import resolve

seconds = st.floats(min_value=0.0, max_value=1e4, allow_nan=False, allow_infinity=False)

run_records = st.builds(
    RunRecord,
    run=st.integers(1, 10),
    load_s=seconds,
    init_gen_s=seconds,
    gen_s=st.lists(seconds, min_size=1, max_size=6),
    avg_gen_s=seconds,
    median_gen_s=seconds,
    total_s=seconds,
    stages=st.dictionaries(st.sampled_from(["text_encode_ms", "unet_ms", "vae_decode_ms", "other_ms"]), seconds),
    peak_gpu_mem_gb=st.none() | seconds,
    psnr_db=st.none() | st.just(math.inf) | seconds,
)
variant_records = st.builds(
    VariantRecord,
    variant=st.sampled_from(["baseline", "tiny_vae", "tiny_vae+batch"]),
    kind=st.sampled_from(["exact", "lossy"]),
    status=st.sampled_from(["ok", "skipped", "failed"]),
    reason=st.text(max_size=30),
    runs=st.lists(run_records, max_size=3),
    measure_s=st.none() | seconds,
)


@given(st.lists(variant_records, max_size=3, unique_by=lambda record: record.variant))  # one record a variant
def test_round_trip_through_json_is_lossless(variants: list[VariantRecord]) -> None:
    original = ResultSet(settings={"model": "random:tiny", "runs": 3}, machine={"gpu": None}, variants=variants)
    text = json.dumps(to_dict(original), allow_nan=False)  # strict JSON: infinities are strings
    assert from_dict(json.loads(text)) == original


def example() -> ResultSet:
    run = RunRecord(1, 1.5, 0.3, [0.1, 0.12], 0.11, 0.11, 2.02, {"unet_ms": 60.0}, None, math.inf)
    return ResultSet(
        settings=settings_as_dict(resolve({}, {}, {}, flag_style="cli")),
        machine={"cpu": "test"},
        variants=[
            VariantRecord("baseline", "exact", "ok", "", [run]),
            VariantRecord("cpu_offload", "exact", "skipped", "needs a CUDA GPU"),
        ],
    )


def test_saved_file_is_strict_json_with_schema_and_version(tmp_path: Path) -> None:
    path = save_results(example(), tmp_path / "results.json")
    document = json.loads(path.read_text(), parse_constant=lambda name: pytest.fail(f"non-JSON constant {name}"))
    assert document["schema"] == "pytest-sdxl-results" and document["schema_version"] == SCHEMA_VERSION
    assert document["variants"][0]["runs"][0]["psnr_db"] == "inf"
    assert document["settings"]["prompts"][0].startswith("A cinematic shot")
    expected = example()
    expected.created, expected.session_ids = document["created"], document["session_ids"]
    assert load_results(path) == expected


def test_save_is_atomic_and_leaves_no_temporary_file(tmp_path: Path) -> None:
    target = tmp_path / "deeper" / "results.json"
    save_results(example(), target)
    save_results(example(), target)  # replacing an existing file
    assert [path.name for path in target.parent.iterdir()] == ["results.json"]
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE(target.stat().st_mode) == 0o666 & ~umask


def test_a_failed_write_keeps_the_previous_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target = save_results(example(), tmp_path / "results.json")
    before = target.read_text()

    def crash(*arguments: object) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(OSError, match="disk full"):
        save_results(ResultSet(), target)
    assert target.read_text() == before
    assert [path.name for path in tmp_path.iterdir()] == ["results.json"]


def test_missing_file_says_what_to_give(tmp_path: Path) -> None:
    with pytest.raises(ResultsFileError, match=r"does not exist; give a results\.json"):
        load_results(tmp_path / "nothing.json")


def test_not_json_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "results.json"
    path.write_text("{not json")
    with pytest.raises(ResultsFileError, match="is not JSON"):
        load_results(path)


def test_another_schema_version_is_refused(tmp_path: Path) -> None:
    document = to_dict(example())
    document["schema_version"] = SCHEMA_VERSION + 1
    path = tmp_path / "results.json"
    path.write_text(json.dumps(document))
    with pytest.raises(ResultsFileError, match=f"reads versions 1, {SCHEMA_VERSION}"):
        load_results(path)


def test_samples_of_a_variant() -> None:
    record = VariantRecord(
        "baseline",
        "exact",
        runs=[
            RunRecord(1, 2.0, 0.5, [0.1, 0.2], 0.15, 0.15, 3.0, {"unet_ms": 50.0}),
            RunRecord(2, 1.0, 0.4, [0.3], 0.3, 0.3, 2.0, {"unet_ms": 70.0}),
        ],
    )
    assert record.samples("gen_s") == [0.1, 0.2, 0.3]
    assert record.samples("load_s") == [2.0, 1.0]
    assert record.samples("unet_ms") == [50.0, 70.0]
    assert record.samples("peak_gpu_mem_gb") == []  # None on a CPU: no sample
