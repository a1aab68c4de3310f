"""What serving teams read: percentiles, images/s, energy from a fake NVML, the roofline and the cached peak."""

from __future__ import annotations

import dataclasses
import json
import math
import sys
import types
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from pytest_sdxl.analysis.bottleneck import what_holds_back
from pytest_sdxl.analysis.serving import (
    ENERGY_NOT_RECORDED,
    StageRoofline,
    latency,
    percentile,
    roofline,
    samples_needed,
    serving_block,
    serving_summary,
)
from pytest_sdxl.machine.nvml import nvml_handle
from pytest_sdxl.measure import energy, matrix_peak
from pytest_sdxl.reports.serving import roofline_table
from pytest_sdxl.reports.tables import markdown_report, session_summary_lines, write_reports
from pytest_sdxl.results.records import DeviceSignals, RunRecord, VariantRecord
from pytest_sdxl.results.schema import ResultSet, from_dict, load_results, save_results

# --- percentiles and images/s ----------------------------------------------------------------------


def test_samples_needed_puts_one_sample_above_the_percentile_on_average() -> None:
    assert [samples_needed(percent) for percent in (50, 90, 99)] == [2, 10, 100]
    with pytest.raises(ValueError):
        samples_needed(100)


def test_percentiles_interpolate_linearly_between_order_statistics() -> None:
    samples = [float(value) for value in range(10, 0, -1)]  # 10 .. 1 seconds, unsorted on purpose
    found = latency(samples)
    assert found.at(50).seconds == pytest.approx(5.5)
    assert found.at(90).seconds == pytest.approx(9.1)
    hundred = [float(value) for value in range(1, 101)]
    assert percentile(hundred, 99).seconds == pytest.approx(np.percentile(hundred, 99))
    assert percentile(hundred, 99).seconds == pytest.approx(99.01)


def test_too_few_samples_give_no_percentile_and_say_how_many_it_needs() -> None:
    found = latency([0.1] * 99)
    assert found.at(99).seconds is None
    assert found.at(99).describe_ms() == "n/a (needs 100 samples, has 99)"
    assert found.at(90).seconds == pytest.approx(0.1)
    assert found.as_dict()["p99_s"] is None and found.as_dict()["p99_needs_samples"] == 100
    assert latency([0.2]).at(50).seconds is None  # one sample is its own maximum, not a median


def test_images_per_second_is_one_over_the_mean_seconds_per_image() -> None:
    assert latency([0.5, 0.25]).images_per_s == pytest.approx(1 / 0.375)
    assert latency([]).images_per_s is None


# --- energy through a fake NVML --------------------------------------------------------------------


class FakeNvmlError(Exception):
    def __init__(self, value: int) -> None:
        super().__init__(f"NVML error {value}")
        self.value = value


def fake_pynvml(readings_mj: list[int], supported: bool = True) -> types.ModuleType:
    """A pynvml stand-in: two cards (NVML indexes 0, 1) whose energy counter returns the readings in turn."""
    module = types.ModuleType("pynvml")
    uuids = ["GPU-aaaa-1111", "GPU-bbbb-2222"]
    readings = iter(readings_mj)

    def read(handle: int) -> int:
        if not supported:
            raise FakeNvmlError(3)
        return next(readings)

    def by_uuid(uuid: str) -> int:
        if uuid not in uuids:
            raise FakeNvmlError(13)
        return uuids.index(uuid)

    module.NVMLError = FakeNvmlError  # type: ignore[attr-defined]
    module.NVML_ERROR_NOT_SUPPORTED = 3  # type: ignore[attr-defined]
    module.nvmlInit = lambda: None  # type: ignore[attr-defined]
    module.nvmlDeviceGetCount = lambda: len(uuids)  # type: ignore[attr-defined]
    module.nvmlDeviceGetHandleByIndex = lambda index: index  # type: ignore[attr-defined]
    module.nvmlDeviceGetHandleByUUID = by_uuid  # type: ignore[attr-defined]
    module.nvmlDeviceGetUUID = lambda handle: uuids[handle]  # type: ignore[attr-defined]
    module.nvmlDeviceGetName = lambda handle: b"Fake Tesla K80"  # type: ignore[attr-defined]
    module.nvmlDeviceGetTotalEnergyConsumption = read  # type: ignore[attr-defined]
    return module


class FakePipeline:
    """A pipeline the timed loop can call on the CPU: each call only counts itself."""

    def __init__(self) -> None:
        import torch

        self.device = torch.device("cpu")
        self.calls = 0

    def generate(self, prompts: list[str], seeds: list[int], check: bool = True) -> None:
        self.calls += 1


CUDA_ZERO = types.SimpleNamespace(type="cuda", index=0)


def test_timed_loop_reads_the_counter_around_each_round_into_joules_per_image(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from pytest_sdxl.measure.calls import images_in
    from pytest_sdxl.measure.core import TimedLoop
    from pytest_sdxl.measure.records import split_into_runs

    # The first reading checks the counter; then each round reads before and after: 5 J and 7 J.
    monkeypatch.setitem(sys.modules, "pynvml", fake_pynvml([900, 1000, 6000, 6000, 13000]))
    counter, reason = energy.open_counter(CUDA_ZERO, uuid="bbbb-2222")
    assert counter is not None and reason == "" and counter.handle == 1
    groups = [(["a"], [1]), (["b"], [2])]
    loop = TimedLoop(FakePipeline(), groups, counter)  # type: ignore[arg-type]
    loop.round()
    loop.round()
    assert loop.round_joules == [pytest.approx(5.0), pytest.approx(7.0)]
    (block,) = split_into_runs(loop.round_joules, 1)
    joules, why = energy.joules_per_image(list(block), len(block) * images_in(groups), counter.not_applicable)
    assert joules == pytest.approx(12.0 / 4) and why == ""


def test_no_pynvml_gives_no_figure_and_says_why(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "pynvml", None)  # import pynvml raises ImportError
    assert energy.open_counter(CUDA_ZERO, uuid="GPU-aaaa-1111") == (None, energy.NO_NVML)
    assert energy.open_counter(types.SimpleNamespace(type="cpu", index=None)) == (None, energy.ON_CPU)


def test_an_unsupported_counter_gives_no_figure_and_names_the_card(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "pynvml", fake_pynvml([], supported=False))
    counter, reason = energy.open_counter(CUDA_ZERO, uuid="GPU-aaaa-1111")
    assert counter is None
    assert "Fake Tesla K80 has no NVML energy counter" in reason


def test_a_counter_that_does_not_move_or_fails_is_never_a_zero() -> None:
    assert energy.joules_per_image([0.0, 0.0], 4, "") == (None, energy.DID_NOT_ADVANCE)
    assert energy.joules_per_image([5.0, None], 4, "n/a: read failed") == (None, "n/a: read failed")


def test_cuda_visible_devices_maps_torch_index_to_the_nvml_card() -> None:
    nvml = fake_pynvml([])
    assert nvml_handle(nvml, 0, None, {"CUDA_VISIBLE_DEVICES": "1,0"}) == 1
    assert nvml_handle(nvml, 1, None, {"CUDA_VISIBLE_DEVICES": "GPU-bbbb-2222,GPU-aaaa"}) == 0  # a prefix
    assert nvml_handle(nvml, 1, None, {}) == 1
    with pytest.raises(LookupError):
        nvml_handle(nvml, 2, None, {"CUDA_VISIBLE_DEVICES": "0,1"})


# --- roofline and the measured peak ----------------------------------------------------------------

STAGES = {"text_encode_ms": 2.0, "unet_ms": 20.0, "vae_decode_ms": 8.0, "other_ms": 1.0, "total_ms": 31.0}


def measured_run(number: int, peak: float | None = 400.0, peak_reason: str = "") -> RunRecord:
    signals = DeviceSignals(
        kernel_ms=[25.0],
        kernels=[900.0],
        stage_kernel_ms={"text_encode": 1.0, "unet": 10.0, "vae_decode": 5.0},
        flops=2.6e12,
        stage_flops={"text_encode": 0.1e12, "unet": 2e12, "vae_decode": 0.5e12, "other": 0.0},
        matrix_peak_tflops=peak,
        matrix_peak_not_applicable=peak_reason,
    )
    return RunRecord(
        number, math.nan, math.nan, [0.03] * 40, 0.03, 0.03, math.nan, dict(STAGES), device=signals,
        energy_j_per_image=[1.5, 2.5, 2.0][number - 1],
    )  # fmt: skip


def test_roofline_share_is_achieved_over_the_measured_peak() -> None:
    unet = next(stage for stage in roofline([measured_run(1)]).stages if stage.stage == "unet")
    assert unet.kernel_tflops == pytest.approx(200.0)  # 2 TFLOP in 10 ms of kernels
    assert unet.kernel_share == pytest.approx(0.5)
    assert unet.stage_tflops == pytest.approx(100.0)  # the same FLOPs in the split pass' 20 ms
    assert unet.stage_share == pytest.approx(0.25)
    assert StageRoofline("unet", 1e12, None, 0.0, None).stage_tflops is None  # no time, no rate
    whole = roofline([measured_run(1)]).whole
    assert whole is not None
    assert whole.stage == "whole call" and whole.flops_per_image == 2.6e12
    assert whole.kernel_ms == 25.0 and whole.stage_ms == pytest.approx(30.0)  # the timed calls' wall ms per image


def test_report_shows_percentiles_energy_and_roofline_rows() -> None:
    result_set = ResultSet(variants=[VariantRecord("baseline", "exact", runs=[measured_run(n) for n in (1, 2, 3)])])
    report = markdown_report(result_set)
    assert "## What serving teams read" in report
    baseline_row = next(line for line in report.splitlines() if line.startswith("| baseline ") and "| 120 " in line)
    assert "| 30.0 " in baseline_row and "| 33.33 " in baseline_row  # p50 ms, images/s
    assert "| 2.00 " in baseline_row  # median J/image of 1.5, 2.5, 2.0
    # Wider than 120 columns, the roofline is split: the kernel-time columns, then the stage-time columns.
    unet_row = " ".join(line for line in report.splitlines() if "| unet " in line)
    assert (
        "| 2000.00 " in unet_row
        and "| 200 " in unet_row
        and "| 100 " in unet_row
        and "| 50.0 % " in unet_row
        and "| 25.0 % " in unet_row
    )
    assert "measured matrix peak: 400.0 TFLOP/s" in report
    assert any("p99 ms" in line for line in session_summary_lines(result_set))
    # 25 kernel ms in 30 wall ms: GPU-bound (83 % busy), the UNet its busiest stage at half the peak.
    holds_back = next(line for line in report.splitlines() if line.startswith("| baseline ") and "bound" in line)
    assert "| 30.0 " in holds_back and "| 25.0 " in holds_back and "partly launch-bound: GPU busy 83" not in holds_back
    assert "GPU-bound: GPU busy 83.3% (25.0 kernel ms of 30.0 wall ms per image); unet takes 10.0 of 25.0" in holds_back


def test_variants_measured_against_different_peaks_say_which_against_which() -> None:
    # A report resumed on another machine of the same card (2026-11-27h: 775.8 and 694.8 TFLOP/s).
    result_set = ResultSet(
        variants=[
            VariantRecord("baseline", "exact", runs=[measured_run(1, 400.0)]),
            VariantRecord("batch", "exact", runs=[measured_run(1, 500.0)]),
        ]
    )
    report = markdown_report(result_set)
    assert "measured matrix peaks differ" in report
    assert "  - 400.0 TFLOP/s: baseline" in report and "  - 500.0 TFLOP/s: batch" in report
    unet_shares = [line for line in report.splitlines() if "| unet " in line]
    assert "| 50.0 % " in unet_shares[0] and "| 40.0 % " in unet_shares[1]  # 200 TFLOP/s against each its own


def test_a_missing_peak_is_na_with_its_reason() -> None:
    record = VariantRecord("baseline", "exact", runs=[measured_run(1, None, matrix_peak.ON_CPU)])
    report = markdown_report(ResultSet(variants=[record]))
    unet_row = " ".join(line for line in report.splitlines() if "| unet " in line)
    assert "| 200 " in unet_row and "| n/a " not in unet_row  # achieved is known, the share is not: left out
    assert "Not shown (n/a for every variant, why below): peak share (kernel), peak share (stage)" in report
    assert "peak share n/a for baseline: the matrix peak is measured on CUDA GPUs only" in report
    assert "kernel time n/a" not in report  # this run has kernels


def test_a_whole_generation_graph_gets_its_whole_call_row_and_no_stage_rows_of_zeros() -> None:
    run = measured_run(1)
    unsplit = dataclasses.replace(
        run,
        stages={key: 0.0 for key in STAGES} | {"other_ms": 21.0, "total_ms": 21.0},
        device=dataclasses.replace(run.device, stage_kernel_ms={}, stage_flops={}),  # type: ignore[arg-type]
    )
    result_set = ResultSet(
        variants=[
            VariantRecord("baseline", "exact", runs=[measured_run(1)]),
            VariantRecord("graph_pipeline", "exact", runs=[unsplit]),
            # The gate profile times no stage split: the same one row, for that reason, not the graph's.
            VariantRecord("tiny_vae", "lossy", runs=[dataclasses.replace(unsplit, stages={})]),
        ]
    )
    lines = roofline_table(result_set)
    gate_note = "- one row for tiny_vae: its stages were not timed apart (the gate profile leaves the stage split out"
    assert any(line.startswith(gate_note) for line in lines)
    assert not any(line.startswith("- one row for graph_pipeline, tiny_vae") for line in lines)
    assert any(line.startswith("| baseline ") and "| unet " in line for line in lines)
    graphed = " ".join(line for line in lines if line.startswith("| graph_pipeline "))
    # 2.6 TFLOP in 25 kernel ms: 104 TFLOP/s, 26 % of the 400 TFLOP/s peak; 30 ms wall per image.
    assert "| whole call " in graphed and "| 104 " in graphed and "| 26.0 % " in graphed and "| 30.0 " in graphed
    note = "- one row for graph_pipeline: its stages cannot be timed apart"
    assert any(line.startswith(note) for line in lines)
    found = roofline([unsplit])
    verdict = what_holds_back(30.0, 25.0, found.stages, found.whole)
    assert "no per-stage kernel time to say which stage; the whole call runs at 26% of the matrix peak" in verdict


def test_cached_peak_is_written_once_and_reused(tmp_path: Path) -> None:
    path = tmp_path / "cache" / "matrix_peak.json"
    measured: list[float] = []

    def measure() -> float:
        measured.append(512.0)
        return 512.0

    key = matrix_peak.cache_key("NVIDIA H100 80GB HBM3", "2.13.0", "torch.float16")
    assert matrix_peak.cached_or_measured(key, measure, path) == 512.0
    assert matrix_peak.cached_or_measured(key, measure, path) == 512.0
    assert len(measured) == 1
    assert json.loads(path.read_text())[key]["tflops"] == 512.0
    other = matrix_peak.cache_key("NVIDIA H100 80GB HBM3", "2.14.0", "torch.float16")
    matrix_peak.cached_or_measured(other, measure, path)
    assert len(measured) == 2 and set(json.loads(path.read_text())) == {key, other}
    path.write_text("{not json")
    assert matrix_peak.cached_or_measured(key, measure, path) == 512.0 and len(measured) == 3


def test_matrix_peak_keys_the_cache_by_card_and_torch(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import torch

    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device=None: "Fake GPU")
    monkeypatch.setattr(matrix_peak, "measure_matmul_tflops", lambda device, dtype: 123.0)
    path = tmp_path / "peak.json"
    assert matrix_peak.matrix_peak(CUDA_ZERO, torch.float16, path) == (123.0, "")
    assert f"Fake GPU | torch {torch.__version__} | float16" in json.loads(path.read_text())
    assert matrix_peak.matrix_peak(torch.device("cpu"), torch.float32, path) == (None, matrix_peak.ON_CPU)


def test_flops_are_split_by_stage_through_the_stage_hooks() -> None:
    import torch

    from pytest_sdxl.measure.device_signals import flops_by_stage

    text, unet, decoder = torch.nn.Linear(8, 4), torch.nn.Linear(4, 4), torch.nn.Linear(4, 16)

    class Vae:
        def decode(self, latents: torch.Tensor) -> torch.Tensor:
            return decoder(latents)

    class Pipe:
        def __init__(self) -> None:
            self.unet, self.vae = unet, Vae()

        def encode_prompt(self, tokens: torch.Tensor) -> torch.Tensor:
            return text(tokens)

    pipe = Pipe()

    def call() -> int:
        with torch.no_grad():
            latents = pipe.unet(pipe.unet(pipe.encode_prompt(torch.ones(2, 8))))  # two steps
            pipe.vae.decode(latents)
        return 2

    total, stages = flops_by_stage(pipe, call)
    # A linear layer costs 2 * batch * in * out FLOPs; per image, batch 2 shared out.
    assert stages == {"text_encode": 64.0, "unet": 64.0, "vae_decode": 128.0, "other": 0.0}
    assert total == 256.0
    assert "encode_prompt" not in vars(pipe)  # the hooks are gone


# --- results files -----------------------------------------------------------------------------------

OLD_DOCUMENT: dict[str, Any] = {
    "schema": "pytest-sdxl-results",
    "schema_version": 2,
    "settings": {"model": "random:tiny", "runs": 1, "prompts": ["a", "b"]},
    "machine": {"gpu": None},
    "variants": [
        {
            "variant": "baseline",
            "kind": "exact",
            "status": "ok",
            "runs": [
                {
                    "run": 1,
                    "load_s": 1.0,
                    "init_gen_s": 0.5,
                    "gen_s": [0.2, 0.3, 0.25],
                    "avg_gen_s": 0.25,
                    "median_gen_s": 0.25,
                    "total_s": 2.0,
                    "stages": {"unet_ms": 150.0},
                    "device": {"kernel_ms": [], "flops": 3e9, "not_applicable": "cpu: no CUDA kernels"},
                }
            ],
        }
    ],
}


def test_an_old_results_file_without_the_new_fields_loads_and_reports(tmp_path: Path) -> None:
    record = from_dict(json.loads(json.dumps(OLD_DOCUMENT))).variants[0]
    assert record.runs[0].energy_j_per_image is None and record.runs[0].device is not None
    assert record.runs[0].device.stage_flops == {} and record.runs[0].device.matrix_peak_tflops is None
    report = markdown_report(ResultSet(variants=[record]))
    assert "n/a (needs 10 samples, has 3)" in report  # p90 and p99
    assert ENERGY_NOT_RECORDED.removeprefix("n/a: ") in report
    assert "kernel time n/a for baseline: cpu: no CUDA kernels" in report
    summary = serving_summary(record)
    assert summary["latency"]["p50_s"] == pytest.approx(0.25) and summary["energy_j_per_image"] is None
    json.dumps(summary, allow_nan=False)  # pytest-benchmark's and results.json's JSON stays strict


def test_new_fields_round_trip_and_the_file_carries_the_derived_block(tmp_path: Path) -> None:
    result_set = ResultSet(variants=[VariantRecord("baseline", "exact", runs=[measured_run(n) for n in (1, 2, 3)])])
    path = save_results(result_set, tmp_path / "results.json", derived=serving_block)
    again = load_results(path)
    assert again.variants[0].runs[1].energy_j_per_image == 2.5
    assert again.variants[0].runs[0].device is not None
    assert again.variants[0].runs[0].device.stage_flops["unet"] == 2e12
    assert again.variants[0].runs[0].device.matrix_peak_tflops == 400.0
    serving = json.loads(path.read_text())["variants"][0]["serving"]
    assert serving["latency"]["p99_s"] == pytest.approx(0.03) and serving["energy_j_per_image"] == 2.0


def test_the_schema_alone_writes_no_derived_block_and_the_report_files_carry_it(tmp_path: Path) -> None:
    result_set = ResultSet(variants=[VariantRecord("baseline", "exact", runs=[measured_run(n) for n in (1, 2, 3)])])
    bare = json.loads(save_results(result_set, tmp_path / "bare.json").read_text())
    assert "serving" not in bare["variants"][0]  # the results layer computes no figure of its own
    written = write_reports(result_set, tmp_path / "report")
    assert json.loads(written["json"].read_text())["variants"][0]["serving"] == serving_summary(result_set.variants[0])
