"""pytest-xdist workers: device pinning, the refusal of workers sharing a GPU, and the merge of every worker's results.

The end-to-end test starts real xdist workers (``-p xdist -n 2``) on the CPU with random:tiny:
each worker is its own process, so it finds pytest_sdxl through PYTHONPATH.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pytest_sdxl.plugin import workers
from pytest_sdxl.plugin.state import SessionState
from pytest_sdxl.results.records import RunRecord, VariantRecord
from pytest_sdxl.results.schema import ResultSet, to_dict
from pytest_sdxl.settings import Settings

ROOT = Path(__file__).resolve().parents[1]
SMALL = ("-p", "no:cacheprovider", "-p", "no:hypothesispytest", "-p", "no:anyio", "-W", "ignore::DeprecationWarning")
VARIANTS = ("baseline", "vae_slicing", "tiny_vae")
BENCHMARK_TESTS = """
def test_generation(sdxl_benchmark):
    sdxl_benchmark()


def test_images(sdxl_generate):
    assert sdxl_generate().shape[0] == len(sdxl_generate.prompts)
"""


# In a worker: before tiny_vae (the last variant), wait until the controller's results.json holds the
# variants that ended on both workers (it is rewritten as their reports arrive, long before the session
# ends), then stop the session as `timeout --signal=INT` does: SIGINT to the controller (the worker's
# parent) and to the workers.
INTERRUPTING_CONFTEST = """
import json
import os
import signal
import time
from pathlib import Path


def pytest_runtest_setup(item):
    if getattr(item.callspec.params.get("sdxl_variant"), "id", None) != "tiny_vae":
        return
    results = Path(item.config.getoption("sdxl_report")) / "results.json"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            ended = sorted(variant["variant"] for variant in json.loads(results.read_text())["variants"])
        except (OSError, ValueError):
            ended = []
        if ended == ["baseline", "vae_slicing"]:
            break
        time.sleep(0.1)
    os.kill(os.getppid(), signal.SIGINT)
    raise KeyboardInterrupt
"""


def prompt_file(pytester: pytest.Pytester, count: int) -> str:
    path = pytester.path / "prompts.txt"
    path.write_text("".join(f"prompt number {index}\n" for index in range(count)))
    return str(path)


def run(variant: str, gen_s: float = 0.01) -> RunRecord:
    return RunRecord(
        run=1, load_s=1.0, init_gen_s=0.5, gen_s=[gen_s] * 3, avg_gen_s=gen_s, median_gen_s=gen_s, total_s=2
    )


def worker_text(records: list[VariantRecord], worker: str, device: str = "cpu", passed: bool = True) -> str:
    state = SessionState(settings=Settings(device=device))
    state.records = {record.variant: record for record in records}
    state.benchmark_passed = passed
    state.resolved = {"resolved_device": device, "resolved_dtype": "float32"}
    return workers.payload(state, worker)


def two_workers(pytester: pytest.Pytester, report: Path, *options: str) -> pytest.RunResult:
    """The benchmark suite over VARIANTS with pytest-xdist's two workers, one run each, reporting to report."""
    return pytester.runpytest_subprocess(
        *SMALL,
        "-p",
        "xdist",
        "-n",
        "2",
        f"--sdxl-variants={','.join(VARIANTS)}",
        "--sdxl-runs=1",
        *options,
        f"--sdxl-report={report}",
        "--sdxl-compile-cache=off",
        timeout=600,
    )


@pytest.mark.slow
def test_two_workers_results_are_merged_once_each(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PYTHONPATH", str(ROOT))
    monkeypatch.setenv("OMP_NUM_THREADS", "1")  # two workers on two cores
    pytester.makepyfile(test_suite=BENCHMARK_TESTS)
    report = pytester.path / "report"
    result = two_workers(pytester, report)
    assert result.ret == 0, result.stdout.str()
    result.assert_outcomes(passed=2 * len(VARIANTS))
    output = result.stdout.str()
    for variant in VARIANTS:
        kind = "lossy" if variant == "tiny_vae" else "exact"
        assert output.count(f"\n{variant} ({kind})\n") == 1, f"{variant}'s table should appear once:\n{output}"
    merged = next(line for line in output.splitlines() if line.startswith("sdxl: results merged from 2 xdist workers"))
    assert "gw0 on cpu" in merged and "gw1 on cpu" in merged and "shared the CPU" in merged
    measured = json.loads((report / "results.json").read_text(encoding="utf-8"))
    names = [variant["variant"] for variant in measured["variants"]]
    assert sorted(names) == sorted(VARIANTS), "every worker's variants, none twice"
    assert names[0] == "baseline"
    assert (measured["partial"], measured["not_measured"]) == ("", []), "a complete session"
    assert all(variant["runs"] and variant["status"] == "ok" for variant in measured["variants"])
    # Each variant's share of the wall clock travels from its worker: what splits a matrix into parts.
    assert all(variant["measure_s"] > 0 for variant in measured["variants"])
    assert "measuring time: " in (report / "results.md").read_text(encoding="utf-8")
    by_worker = measured["settings"]["xdist_workers"]
    assert all(by_worker.count(variant) == 1 for variant in ("vae_slicing", "tiny_vae")), by_worker
    # Each variant's tests ran on one worker: its pipeline was built once.
    assert "measured on more than one worker" not in output


@pytest.mark.slow
def test_an_interrupted_controller_reports_every_variant_its_workers_ended(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The bug: SIGINT to a -n 4 session lost the 14 variants it had measured (no results.json at all)."""
    monkeypatch.setenv("PYTHONPATH", str(ROOT))
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    pytester.makeconftest(INTERRUPTING_CONFTEST)
    pytester.makepyfile(test_suite="def test_generation(sdxl_benchmark):\n    sdxl_benchmark()\n")
    report = pytester.path / "report"
    result = two_workers(pytester, report, f"--sdxl-prompts={prompt_file(pytester, 2)}")
    output = result.stdout.str()
    assert result.ret == pytest.ExitCode.INTERRUPTED, output
    measured = json.loads((report / "results.json").read_text(encoding="utf-8"))
    names = [variant["variant"] for variant in measured["variants"]]
    assert names == ["baseline", "vae_slicing"], "every variant that ended, each once"
    assert all(variant["runs"] and variant["status"] == "ok" for variant in measured["variants"])
    assert (measured["partial"], measured["not_measured"]) == ("interrupted", ["tiny_vae"])
    assert "- partial: interrupted before: tiny_vae" in (report / "results.md").read_text(encoding="utf-8")
    assert "sdxl: partial results: interrupted before: tiny_vae" in output


def test_merge_keeps_a_variant_once_and_puts_the_baseline_first() -> None:
    state = SessionState(settings=Settings())
    merged = workers.Merged()
    first = [
        VariantRecord("tiny_vae", "lossy", runs=[run("tiny_vae")]),
        VariantRecord("batch", "exact", runs=[run("b")]),
    ]
    second = [VariantRecord("baseline", "exact", runs=[run("baseline")]), VariantRecord("batch", "exact", runs=[])]
    workers.merge(state, merged, worker_text(first, "gw0"))
    workers.merge(state, merged, worker_text(second, "gw1", passed=False))
    assert list(state.records) == ["baseline", "tiny_vae", "batch"]
    assert state.records["batch"].runs, "the record with runs is kept"
    assert merged.duplicates == ["batch (gw1)"]
    assert state.benchmark_passed
    assert state.resolved["xdist_workers"].startswith("gw0 on cpu: tiny_vae, batch; gw1 on cpu: baseline, batch")


def test_merge_replaces_a_skipped_record_with_a_measured_one() -> None:
    state = SessionState(settings=Settings())
    merged = workers.Merged()
    workers.merge(state, merged, worker_text([VariantRecord("batch", "exact", status="skipped", reason="x")], "gw0"))
    workers.merge(state, merged, worker_text([VariantRecord("batch", "exact", runs=[run("batch")])], "gw1"))
    assert state.records["batch"].runs and not merged.duplicates


def test_a_workers_later_record_of_its_variant_replaces_the_earlier() -> None:
    """Each test's report carries its variant's record as it stands: a later one supersedes, no duplicate."""
    state = SessionState(settings=Settings())
    merged = workers.Merged()
    workers.merge(state, merged, worker_text([VariantRecord("batch", "exact", runs=[run("batch")])], "gw0"))
    failed = VariantRecord("batch", "exact", status="failed", reason="second test", runs=[run("batch")])
    workers.merge(state, merged, worker_text([failed], "gw0"))
    workers.merge(state, merged, worker_text([failed], "gw0"))
    assert state.records["batch"].status == "failed" and not merged.duplicates
    assert merged.variants == {"gw0": ["batch"]}
    workers.merge(state, merged, worker_text([VariantRecord("batch", "exact", runs=[run("batch")])], "gw1"))
    workers.merge(state, merged, worker_text([VariantRecord("batch", "exact", runs=[run("batch")])], "gw1"))
    assert merged.duplicates == ["batch (gw1)"], "named once however many of its reports arrive"
    assert state.records["batch"].status == "failed", "the first worker's record is kept"


def test_a_payload_carries_only_the_tests_variant_and_the_planned_ones() -> None:
    state = SessionState(settings=Settings(), planned=["baseline", "tiny_vae"])
    state.records = {name: VariantRecord(name, "exact", runs=[run(name)]) for name in ("baseline", "tiny_vae")}
    data = json.loads(workers.payload(state, "gw1", ["tiny_vae"]))
    assert [item["variant"] for item in data["variants"]] == ["tiny_vae"]
    assert data["planned"] == ["baseline", "tiny_vae"] and data["worker"] == "gw1"
    merged_state = SessionState(settings=Settings())
    workers.merge(merged_state, workers.Merged(), json.dumps(data))
    assert merged_state.unreached_variants() == ["baseline"]


def test_payload_is_strict_json_with_infinite_psnr() -> None:
    record = VariantRecord("baseline", "exact", runs=[run("baseline")])
    record.runs[0].psnr_db = float("inf")
    text = worker_text([record], "gw0")
    assert json.loads(text)["variants"][0]["runs"][0]["psnr_db"] == "inf"
    state = SessionState(settings=Settings())
    workers.merge(state, workers.Merged(), text)
    assert state.records["baseline"].runs[0].psnr_db == float("inf")
    assert to_dict(ResultSet(variants=list(state.records.values())))["variants"][0]["variant"] == "baseline"


def test_workers_take_the_listed_devices_in_turn() -> None:
    state = SessionState(settings=Settings(device="cuda:0,cuda:1"))
    assert workers.pin_worker(state, "gw1", 1, 2) == ""
    assert state.settings.device == "cuda:1"


def test_more_workers_than_gpus_is_refused() -> None:
    state = SessionState(settings=Settings(device="cuda:0"))
    refusal = workers.pin_worker(state, "gw0", 0, 2)
    assert "2 xdist workers but 1 GPU for them (cuda:0)" in refusal and "Use -n 1 or fewer" in refusal
    assert state.settings.device == "cuda:0"


def test_cpu_workers_are_not_pinned() -> None:
    state = SessionState(settings=Settings(device="cpu"))
    assert workers.pin_worker(state, "gw1", 1, 4) == ""
    assert state.settings.device == "cpu"


def test_two_workers_on_one_gpu_end_with_a_usage_error(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PYTHONPATH", str(ROOT))
    pytester.makepyfile(test_suite=BENCHMARK_TESTS)
    result = pytester.runpytest_subprocess(
        *SMALL, "-p", "xdist", "-n", "2", "--sdxl-device=cuda:0", "--sdxl-variants=baseline,tiny_vae", timeout=300
    )
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stdout.fnmatch_lines(["pytest-sdxl: 2 xdist workers but 1 GPU for them (cuda:0): two workers on one GPU*"])
    assert "INTERNALERROR" not in result.stdout.str()


def test_a_device_list_without_workers_is_a_usage_error(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_suite="def test_plain():\n    pass\n")
    result = pytester.runpytest(*SMALL, "--sdxl-device=cuda:0,cuda:1")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--sdxl-device cuda:0,cuda:1 lists one device per pytest-xdist worker*-n 2*"])


def test_a_bad_device_list_names_what_is_accepted(pytester: pytest.Pytester) -> None:
    result = pytester.runpytest(*SMALL, "--sdxl-device=cuda:0,gpu1")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*'cuda:0,gpu1' is not a device; accepted:*cuda:0,cuda:1 for pytest-xdist workers"])


def test_a_missing_gpu_index_names_how_many_there_are(monkeypatch: pytest.MonkeyPatch) -> None:
    torch = pytest.importorskip("torch")
    from pytest_sdxl.errors import VariantUnavailable
    from pytest_sdxl.machine.devices import resolve_device

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    current: list[str] = []
    monkeypatch.setattr(torch.cuda, "set_device", lambda device: current.append(str(device)))
    with pytest.raises(VariantUnavailable, match=r"'cuda:7' was asked for but this machine has 2 CUDA devices"):
        resolve_device("cuda:7")
    assert str(resolve_device("cuda:1")) == "cuda:1"
    # A worker pinned to cuda:1 makes it the current GPU: events and graph captures follow the current one.
    assert current == ["cuda:1"]


def test_timing_events_are_recorded_on_the_measured_gpus_stream(monkeypatch: pytest.MonkeyPatch) -> None:
    torch = pytest.importorskip("torch")
    from pytest_sdxl.measure.timing import Mark

    recorded: list[object] = []

    class FakeEvent:
        def __init__(self, enable_timing: bool) -> None:
            assert enable_timing

        def record(self, stream: object = None) -> None:
            recorded.append(stream)

    monkeypatch.setattr(torch.cuda, "Event", FakeEvent)
    monkeypatch.setattr(torch.cuda, "current_stream", lambda device: f"stream of {device}")
    Mark(torch.device("cuda:1"))
    assert recorded == ["stream of cuda:1"]
