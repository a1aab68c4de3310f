"""Any JSON that is not this tool's schema, at any nesting level, gets one clear line, never a traceback.

Every reader of a results.json (``report``, ``compare``, ``merge``, ``run --resume``) and of a tune.json
(``tune --resume``) raises the project's own error naming the file, the JSON path of the first bad value
and what was expected; the command line turns it into exit status 2 and one line. The property tests take
a valid document, damage it anywhere (a node replaced by another JSON value, a key deleted, the whole
wrapped in a list) and read it: it reads, or the project's error says why, and what reads is also
reported and compared without an exception.
"""

from __future__ import annotations

import contextlib
import json
import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from pytest_sdxl.cli.main import USAGE_ERROR, main
from pytest_sdxl.errors import SdxlError
from pytest_sdxl.results.records import DeviceSignals, RunRecord, VariantRecord
from pytest_sdxl.results.schema import ResultSet, ResultsFileError, load_results, save_results, to_dict

SETTINGS = {
    "model": "random:tiny",
    "device": "cpu",
    "dtype": "auto",
    "size": None,
    "steps": 1,
    "prompts": ["a red cube", "a blue sphere"],
    "runs": 2,
    "variants": ["baseline", "tiny_vae"],
    "report": None,
    "trace": None,
    "seed": 0,
    "tiny_vae": "random",
    "fp16_vae": "random",
    "compile_cache": None,
    "image_size": 64,
    "resolved_device": "cpu",
    "resolved_dtype": "torch.float32",
}
MACHINE = {"hostname": "h", "cpu": "test cpu", "cpu_count": 2, "python": "3.12.3", "torch": "2.11.0", "gpu": None}


def run_record(run: int, gen_s: float) -> RunRecord:
    device = DeviceSignals(
        kernel_ms=[4.0, 4.1],
        kernels=[300.0, 300.0],
        stage_kernel_ms={"unet_ms": 3.0},
        flops=1e9,
        kernel_table={"gemm": [10.0, 2000.0]},
        stage_flops={"unet": 8e8},
        matrix_peak_tflops=100.0,
    )
    return RunRecord(
        run=run,
        load_s=1.0,
        init_gen_s=0.3,
        gen_s=[gen_s, gen_s * 1.1, gen_s * 0.9],
        avg_gen_s=gen_s,
        median_gen_s=gen_s,
        total_s=1.6,
        stages={"text_encode_ms": 5.0, "unet_ms": 60.0, "vae_decode_ms": 30.0, "other_ms": 5.0},
        peak_gpu_mem_gb=1.5,
        psnr_db=math.inf,
        warmup_calls=2,
        device=device,
        reference="baseline",
        reference_gen_s=[gen_s, gen_s],
        wall_blocks=[[gen_s, gen_s]],
        energy_j_per_image=12.0,
        compile_cache="warm",
    )


def valid_result_set() -> ResultSet:
    """A result set with every field filled, so that every key of the schema is in its document."""
    return ResultSet(
        settings=dict(SETTINGS),
        machine=dict(MACHINE),
        variants=[
            VariantRecord("baseline", "exact", "ok", "", [run_record(1, 0.1), run_record(2, 0.11)], "", "", 3.0),
            VariantRecord("tiny_vae", "lossy", "ok", "", [run_record(1, 0.08), run_record(2, 0.09)], "n", "cold", 2.0),
            VariantRecord("cpu_offload", "exact", "skipped", "needs a CUDA GPU"),
        ],
        partial="interrupted",
        not_measured=["fp16_vae"],
    )


def valid_document() -> dict[str, Any]:
    from pytest_sdxl.analysis.serving import serving_block

    return json.loads(json.dumps(to_dict(valid_result_set(), derived=serving_block)))


def write(path: Path, document: Any) -> Path:
    path.write_text(json.dumps(document))
    return path


def one_error_line(captured: pytest.CaptureFixture[str]) -> str:
    err = captured.readouterr().err
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    return lines[0]


# --- each reader, each kind of damage: one line and exit status 2 --------------------------------


@pytest.fixture
def good(tmp_path: Path) -> Path:
    return save_results(valid_result_set(), tmp_path / "good.json")


def commands(bad: Path, good: Path, tmp_path: Path) -> Iterator[list[str]]:
    yield ["report", str(bad), "--output", str(tmp_path / "out")]
    yield ["compare", str(good), str(bad)]
    yield ["compare", str(bad), str(good)]
    yield ["merge", str(good), str(bad), "--output", str(tmp_path / "out")]
    yield ["merge", str(good), str(bad), "--pool-runs", "--output", str(tmp_path / "out")]


@pytest.mark.parametrize(
    ("damage", "named"),
    [
        (lambda document: [document], "at the top: expected an object, found a list"),
        (lambda document: {"schema": "pytest-sdxl-results"}, "missing required key 'schema_version'"),
        (
            lambda document: document["variants"][1]["runs"][0]["gen_s"].__setitem__(2, "fast"),
            "variants[1].runs[0].gen_s[2]: expected a number, found a string",
        ),
        (
            lambda document: document["variants"][0]["runs"][1].pop("load_s"),
            "variants[0].runs[1]: missing required key 'load_s'",
        ),
        (
            lambda document: document["settings"].__setitem__("prompts", 5),
            "settings.prompts: expected a list of strings, found a number 5",
        ),
        (
            lambda document: document["variants"][0].__setitem__("runs", {}),
            "variants[0].runs: expected a list, found an object",
        ),
        (
            lambda document: document["variants"][0]["runs"][0]["device"]["kernel_table"].__setitem__("gemm", [1]),
            "variants[0].runs[0].device.kernel_table.gemm: expected a pair [launches, microseconds]",
        ),
        (lambda document: document.__setitem__("partial", "exploded"), "partial: expected one of"),
    ],
    ids=["list", "missing-version", "gen_s", "missing-load_s", "prompts", "runs", "kernel-pair", "partial"],
)
def test_every_results_reader_names_the_file_the_path_and_what_was_expected(
    tmp_path: Path, good: Path, capsys: pytest.CaptureFixture[str], damage: Any, named: str
) -> None:
    document = valid_document()
    replaced = damage(document)
    bad = write(tmp_path / "bad.json", replaced if isinstance(replaced, (list, dict)) else document)
    for command in commands(bad, good, tmp_path):
        assert main(command) == USAGE_ERROR, command
        line = one_error_line(capsys)
        assert str(bad) in line and named in line, (command, line)
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    ("content", "named"),
    [
        (b"{not json", "is not JSON"),
        (b"", "is not JSON"),
        (b"\xff\xfe\x00garbage", "is not UTF-8"),
        (b"[" * 100_000, "is not JSON"),  # nested past the parser's recursion limit
        (b'{"schema": "pytest-sdxl-tune", "schema_version": 2, "variants": []}', "not a pytest-sdxl-results document"),
    ],
    ids=["syntax", "empty", "binary", "deep", "other-schema"],
)
def test_files_that_are_not_results_json_get_one_line(
    tmp_path: Path, good: Path, capsys: pytest.CaptureFixture[str], content: bytes, named: str
) -> None:
    bad = tmp_path / "bad.json"
    bad.write_bytes(content)
    for command in commands(bad, good, tmp_path):
        assert main(command) == USAGE_ERROR, command
        line = one_error_line(capsys)
        assert str(bad) in line and named in line, (command, line)


def test_a_folder_or_an_unreadable_file_is_named(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ResultsFileError, match=r"is a folder without a results\.json"):
        load_results(tmp_path)
    unreadable = write(tmp_path / "locked.json", valid_document())

    def refused(self: Path) -> bytes:
        raise PermissionError(13, "Permission denied", str(self))

    monkeypatch.setattr(Path, "read_bytes", refused)  # what a file without read permission gives a non-root user
    with pytest.raises(ResultsFileError, match=r"locked\.json' cannot be read: Permission denied"):
        load_results(unreadable)


@pytest.mark.usefixtures("one_torch_thread")
def test_run_resume_refuses_a_malformed_results_json_before_measuring(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from pytest_sdxl.measure import protocol

    def never(*arguments: Any) -> Any:
        raise AssertionError("a refused resume measured a variant")

    monkeypatch.setattr(protocol, "measure_variant", never)
    report = tmp_path / "report"
    report.mkdir()
    write(report / "results.json", [valid_document()])
    arguments = ["run", "--quiet", "--runs", "1", "--compile-cache", "off", "--variants", "baseline"]
    assert main([*arguments, "--report", str(report), "--resume"]) == USAGE_ERROR
    line = one_error_line(capsys)
    assert str(report / "results.json") in line and "expected an object, found a list" in line


# --- tune.json -----------------------------------------------------------------------------------


def valid_tune_document() -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    """A tune.json of a short search (every kind of row), with the conditions and machine it was made under."""
    from pytest_sdxl.tune.candidates import Candidate, Measurement, TuneResult
    from pytest_sdxl.tune.options import TuneOptions
    from pytest_sdxl.tune.report import tune_json
    from pytest_sdxl.tune.resume import conditions

    measured = Measurement((10.0, 9.0, 11.0), kernel_ms=4.5, psnr_db=math.inf, peak_gpu_mem_gb=7.1)
    result = TuneResult(
        TuneOptions(),
        candidates=[
            Candidate("baseline", "exact", measurement=measured),
            Candidate("tiny_vae", "lossy", step=1, parent="baseline", measurement=measured),
            Candidate("fp16_vae", "lossy", step=1, status="rejected", measurement=measured),
            Candidate("cpu_offload", "exact", step=1, status="skipped", reason="needs a GPU"),
            Candidate("batch", "exact", batch_size=4, phase="throughput", measurement=measured),
        ],
    )
    context = {"conditions": conditions(SETTINGS, 3, None), "machine": {**MACHINE, "resolved_device": "cpu"}}
    document = json.loads(tune_json(result, SETTINGS, context))
    return document, context["conditions"], context["machine"]


@pytest.mark.parametrize(
    ("damage", "named"),
    [
        (lambda rows: rows[1].__setitem__("batch_size", "one"), "candidates[1].batch_size: expected an integer"),
        (
            lambda rows: rows[1].__setitem__("run_minima_ms", [1.0, None]),
            "candidates[1].run_minima_ms[1]: expected a number, found null",
        ),
        (lambda rows: rows[2].pop("composition"), "candidates[2]: missing required key 'composition'"),
        (lambda rows: rows.__setitem__(0, "baseline"), "candidates[0]: expected an object, found a string"),
    ],
    ids=["batch_size", "minima", "composition", "row"],
)
def test_tune_resume_names_a_bad_candidate_row(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], damage: Any, named: str
) -> None:
    from pytest_sdxl.tune.resume import read_known

    document, now_conditions, now_machine = valid_tune_document()
    assert read_known(write(tmp_path / "good.json", document), now_conditions, now_machine)
    damage(document["candidates"])
    bad = write(tmp_path / "tune.json", document)
    with pytest.raises(SdxlError) as refused:
        read_known(bad, now_conditions, now_machine)
    assert str(bad) in str(refused.value) and named in str(refused.value)
    # The command line: one line, exit status 2, before anything is loaded or measured.
    command = ["tune", "--quiet", "--compile-cache", "off", "--resume", str(bad), "--variants", "tiny_vae"]
    assert main(command) == USAGE_ERROR
    line = one_error_line(capsys)
    assert str(bad) in line


# --- property tests: damage anywhere --------------------------------------------------------------

JSON_SCALARS = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8)
JSON_VALUES = st.recursive(
    JSON_SCALARS,
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=8), children, max_size=3),
    max_leaves=6,
)
# One value of each JSON type: a node replaced by one of another type is the commonest damage.
OTHER_TYPES = (None, True, 0, -1, 2.5, "", "inf", "text", [], [1.0], {}, {"key": 1})


def paths(node: Any, prefix: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    """Every node's path in a JSON document (the root's is empty)."""
    yield prefix
    if isinstance(node, dict):
        for key, value in node.items():
            yield from paths(value, (*prefix, key))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from paths(value, (*prefix, index))


def damaged(document: Any, path: tuple[Any, ...], how: str, value: Any) -> Any:
    """The document with the node at ``path`` replaced, deleted (a key) or wrapped in a list."""
    if not path:
        return [document] if how == "wrap" else value
    parent = document
    for step in path[:-1]:
        parent = parent[step]
    if how == "delete" and isinstance(parent, dict):
        del parent[path[-1]]
    elif how == "wrap":
        parent[path[-1]] = [parent[path[-1]]]
    else:
        parent[path[-1]] = value
    return document


def damage_of(document: Any) -> st.SearchStrategy[tuple[tuple[Any, ...], str, Any]]:
    return st.tuples(
        st.sampled_from(list(paths(document))),
        st.sampled_from(["replace", "replace", "delete", "wrap"]),
        st.sampled_from(OTHER_TYPES) | JSON_VALUES,
    )


RESULTS_DOCUMENT = valid_document()
PROPERTY_SETTINGS = settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


@PROPERTY_SETTINGS
@given(damage_of(RESULTS_DOCUMENT))
@example(damage=(("variants", 1, "runs", 1, "device", "kernel_ms", 0), "replace", 1.5482003035190317e154))
@example(damage=(("variants", 1, "runs", 1, "device", "kernel_ms", 0), "replace", 7.741084640614789e45))
def test_a_damaged_results_json_reads_or_says_why_and_what_reads_is_usable(
    tmp_path: Path, damage: tuple[tuple[Any, ...], str, Any]
) -> None:
    from pytest_sdxl.analysis.comparison import compare_results
    from pytest_sdxl.reports.comparison import comparison_table, kernel_diffs
    from pytest_sdxl.reports.tables import markdown_report
    from pytest_sdxl.results.merge import merge_result_sets, pool_result_sets

    path = write(tmp_path / "damaged.json", damaged(valid_document(), *damage))
    try:
        result_set = load_results(path)
    except ResultsFileError as error:
        assert str(path) in str(error)
        return
    markdown_report(result_set)
    json.dumps(to_dict(result_set), allow_nan=False)
    base = valid_result_set()
    comparisons = compare_results(base, result_set)
    comparison_table(comparisons)
    kernel_diffs(base, result_set, comparisons)
    for join in (lambda named: merge_result_sets(named, keep_first=True), pool_result_sets):
        with contextlib.suppress(ResultsFileError):  # refused is fine: what it must not do is crash
            join([("good", base), ("damaged", result_set)])


@PROPERTY_SETTINGS
@given(damage_of(valid_tune_document()[0]))
def test_a_damaged_tune_json_reads_or_says_why(tmp_path: Path, damage: tuple[tuple[Any, ...], str, Any]) -> None:
    from pytest_sdxl.tune.resume import read_known

    document, now_conditions, now_machine = valid_tune_document()
    path = write(tmp_path / "tune.json", damaged(document, *damage))
    try:
        known = read_known(path, now_conditions, now_machine)
    except SdxlError as error:
        assert str(path) in str(error)
        return
    for measurement in known.values():
        assert measurement.run_minima_ms and isinstance(measurement.ms_per_image, float)
