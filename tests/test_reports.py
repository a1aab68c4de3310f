"""Reports: the reference protocol's table shape, rounded figures, the summary fitted to 120 columns, the files."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import pytest

from pytest_sdxl.analysis.quality import LPIPS_HOW_TO
from pytest_sdxl.machine.gpu_state import NO_CUDA_DEVICE, GpuStateSample, GpuStateSummary, summarize
from pytest_sdxl.reports.figures import gigabytes, milliseconds, percent, ratio, significant
from pytest_sdxl.reports.layout import WIDTH
from pytest_sdxl.reports.tables import (
    GPU_ONLY,
    SUMMARY_HEADER,
    markdown_report,
    protocol_table,
    session_summary_lines,
    summary_table,
    write_reports,
)
from pytest_sdxl.results.records import DeviceSignals, RunRecord, VariantRecord
from pytest_sdxl.results.schema import ResultSet, load_results

# The reference protocol's first table ("Basic Diffuser Performance"), its figures rounded for reading.
PROTOCOL_BASELINE_TABLE = """\
| Metric        | Run 1 | Run 2 | Run 3 |
|---------------|-------|-------|-------|
| Total Time    | 19.3  | 17.4  | 17.6  |
| Load Time     | 6.24  | 4.53  | 4.69  |
| Init Gen Time | 2.95  | 2.94  | 3.03  |
| Avg Gen Time  | 2.53  | 2.49  | 2.47  |"""

PROTOCOL_FIGURES = [  # (total, load, init, avg) per run, seconds as measured
    (19.3036789894104, 6.236544132232666, 2.950467348098755, 2.529166877269745),
    (17.443750381469727, 4.532968759536743, 2.9440150260925293, 2.4916916489601135),
    (17.60261082649231, 4.691980600357056, 3.0313751697540283, 2.4698137640953064),
]
STAGES = {"text_encode_ms": 10.0, "unet_ms": 60.0, "vae_decode_ms": 25.0, "other_ms": 5.0, "total_ms": 100.0}
CPU_SIGNALS = DeviceSignals(flops=2.5e9, not_applicable="cpu: no CUDA kernels to count; kernel time, launches and "
                            "busy fraction apply on a GPU only")  # fmt: skip


def run(number: int, total: float, load: float, init: float, average: float, psnr: float | None = None) -> RunRecord:
    return RunRecord(number, load, init, [average] * 4, average, average, total, dict(STAGES), None, psnr)


def protocol_record() -> VariantRecord:
    return VariantRecord("baseline", "exact", "ok", "", [run(i + 1, *row) for i, row in enumerate(PROTOCOL_FIGURES)])


def result_set() -> ResultSet:
    tiny = VariantRecord(
        "tiny_vae",
        "lossy",
        "ok",
        "",
        [run(i + 1, 6.0, 4.8, 0.66, value, 31.5) for i, value in enumerate((0.133, 0.136, 0.134))],
    )
    return ResultSet(
        settings={"model": "random:tiny", "runs": 3, "prompts": ["a"] * 5, "image_size": 64, "steps": 1},
        machine={"gpu": None, "cpu": "test CPU", "torch": "2.13"},
        variants=[
            protocol_record(),
            tiny,
            VariantRecord("cpu_offload", "exact", "skipped", "cpu_offload needs a CUDA GPU (device here: cpu)"),
            VariantRecord("upcast_vae", "exact", "failed", "run 1: out of memory: CUDA out of memory"),
        ],
    )


def tables_of(text: str) -> list[list[list[str]]]:
    """Each markdown table in the text as rows of cells, header first, separator left out."""
    tables: list[list[list[str]]] = []
    current: list[list[str]] = []
    for line in [*text.splitlines(), ""]:
        if line.startswith("|"):
            if not line.startswith("|-"):
                current.append([cell.strip() for cell in line.strip("|").split("|")])
        elif current:
            tables.append(current)
            current = []
    return tables


def cells_by_variant(text: str) -> dict[str, dict[str, str]]:
    """variant -> header -> cell, joined over the tables a split summary is made of."""
    merged: dict[str, dict[str, str]] = {}
    for header, *rows in tables_of(text):
        for row in rows:
            merged.setdefault(row[0], {}).update(zip(header, row, strict=True))
    return merged


def test_protocol_table_keeps_the_reference_shape_with_rounded_figures() -> None:
    assert protocol_table(protocol_record()) == PROTOCOL_BASELINE_TABLE


def test_protocol_table_has_one_column_per_run_and_a_dash_where_a_run_has_no_figure() -> None:
    record = VariantRecord("baseline", "exact", runs=[run(1, 1.0, 0.5, 0.25, 0.0625), run(2, 0.9, math.nan, 0.2, 0.06)])
    lines = protocol_table(record).splitlines()
    assert lines[0] == "| Metric        | Run 1  | Run 2  |"
    assert [line.split("|")[1].strip() for line in lines[2:]] == [
        "Total Time",
        "Load Time",
        "Init Gen Time",
        "Avg Gen Time",
    ]
    assert lines[3] == "| Load Time     | 0.500  | -      |"  # three significant digits, zeros included
    assert lines[5] == "| Avg Gen Time  | 0.0625 | 0.0600 |"


def test_protocol_table_stays_aligned_for_any_magnitude() -> None:
    record = VariantRecord("compile_unet", "exact", runs=[run(1, 1234567.891011121, 1e-7, 75.41857695579529, 0.5)])
    table = protocol_table(record)
    assert len({len(line) for line in table.splitlines()}) == 1
    assert "| 1230000 " in table and "| 0.000000100 |" in table and "| 75.4 " in table


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        (19.3036789894104, "19.3"),
        (2.4916916489601135, "2.49"),
        (0.09632913500001905, "0.0963"),
        (1234.5678, "1230"),
        (9.996, "10.0"),  # rounded up to three digits, not four
        (0.0, "0"),
        (math.nan, "-"),
        (None, "-"),
    ],
)
def test_times_show_three_significant_digits(value: float | None, shown: str) -> None:
    assert significant(value) == shown


def test_each_kind_of_figure_has_its_own_rounding() -> None:
    assert milliseconds(0.0716297613) == "71.6"
    assert percent(0.111111) == "11.1 %"
    assert ratio(1.1904761904761905, "x") == "1.190x"
    assert gigabytes(7.123456) == "7.12"
    assert {milliseconds(math.nan), percent(None), ratio(math.nan), gigabytes(None)} == {"-"}


def test_summary_table_has_every_variant_speed_up_stages_and_psnr() -> None:
    text = summary_table(result_set())
    rows = cells_by_variant(text)
    assert list(rows) == ["baseline", "tiny_vae", "cpu_offload", "upcast_vae"]
    speed_up = re.fullmatch(r"(\d+\.\d{3})x", rows["tiny_vae"]["speed-up"])
    assert speed_up and float(speed_up.group(1)) == pytest.approx(2.4916916489601135 / 0.134, abs=0.001)
    assert rows["baseline"]["speed-up"] == "1.000x"
    assert rows["baseline"]["avg gen ms (median)"] == "2490" and rows["tiny_vae"]["avg gen ms (median)"] == "134"
    assert rows["tiny_vae"]["text / unet / vae / other ms"] == "10.0 / 60.0 / 25.0 / 5.00"
    assert rows["tiny_vae"]["PSNR dB"] == "31.5"
    assert rows["cpu_offload"]["avg gen ms (median)"] == "skipped (below)"
    assert rows["upcast_vae"]["avg gen ms (median)"] == "failed (below)"
    notes = text.split("\n\n")[-1].splitlines()
    assert notes[-2:] == [
        "- cpu_offload skipped: cpu_offload needs a CUDA GPU (device here: cpu)",
        "- upcast_vae failed: run 1: out of memory: CUDA out of memory",
    ]
    # Runs without device signals, SSIM or GPU state (files written before they existed) leave those columns
    # out, saying why, and the GPU state says n/a in one line.
    first_item = next(index for index, line in enumerate(notes) if line.startswith("- "))
    assert " ".join(line.strip() for line in notes[:first_item]) == (
        "Not shown: SSIM, LPIPS (no variant has a value); peak GB (no peak GPU memory recorded); kernel ms (CV), "
        "kernels, GPU busy, TFLOP/s (no device signals were measured)"
    )
    assert "- GPU state n/a: not recorded (these results predate GPU state readings)" in notes
    assert any(line.startswith("- PSNR, SSIM and LPIPS of tiny_vae: lossy on random weights") for line in notes)
    for block in text.split("\n\n"):
        if block.startswith("|"):
            assert len({len(line) for line in block.splitlines()}) == 1  # aligned


def cpu_result_set() -> ResultSet:
    """What ``run --variants baseline,tiny_vae+cached_embeds+vae_slicing`` records on a CPU: no GPU figure."""
    records = []
    for name, kind, seconds_per_image in (
        ("baseline", "exact", 0.0716),
        ("tiny_vae+cached_embeds+vae_slicing", "lossy", 0.0635),
    ):
        runs = [run(number, 1.39, 0.136, 0.0963, seconds_per_image * (1 + number / 100), 7.2) for number in (1, 2, 3)]
        for item in runs:
            item.device = CPU_SIGNALS
            item.ssim, item.lpips_not_applicable = 0.8125, f"not measured: {LPIPS_HOW_TO}"
            item.gpu_state = GpuStateSummary(not_applicable=NO_CUDA_DEVICE)
        records.append(VariantRecord(name, kind, "ok", "", runs))
    settings = {"model": "random:tiny", "runs": 3, "prompts": ["a"] * 5, "image_size": 64, "steps": 1}
    return ResultSet(settings={**settings, "resolved_device": "cpu"}, machine={"gpu": None}, variants=records)


def test_cpu_summary_fits_120_columns_and_says_in_one_line_what_it_left_out() -> None:
    result_set = cpu_result_set()
    text = summary_table(result_set)
    assert max(len(line) for line in text.splitlines()) <= WIDTH
    assert max(len(line) for line in session_summary_lines(result_set)) <= WIDTH
    headers = {name for table in tables_of(text) for name in table[0]}
    assert headers == set(SUMMARY_HEADER) - set(GPU_ONLY) - {"LPIPS"}
    lines = text.splitlines()
    start = next(index for index, line in enumerate(lines) if line.startswith("Not shown"))
    end = next(index for index in range(start + 1, len(lines)) if not lines[index].startswith("  "))
    assert " ".join(line.strip() for line in lines[start:end]) == (
        "Not shown: LPIPS (no LPIPS weights given (--lpips-weights PATH or PYTEST_SDXL_LPIPS_WEIGHTS; the user "
        "guide's method page says how to get them)); peak GB, kernel ms (CV), kernels, GPU busy, TFLOP/s "
        "(no CUDA device: measured on a GPU only)"
    )
    # Nothing left in a cell that only says it does not apply; the GPU state's n/a is one line.
    assert not any("n/a" in cell for table in tables_of(text) for row in table for cell in row)
    assert [line for line in lines if "GPU state" in line] == ["- GPU state n/a: no CUDA device"]
    assert cells_by_variant(text)["tiny_vae+cached_embeds+vae_slicing"]["SSIM"] == "0.8125"
    assert all(table[0][0] == "variant" for table in tables_of(text))


def gpu_result_set() -> ResultSet:
    result_set = cpu_result_set()
    for record in result_set.variants:
        for item in record.runs:
            item.device = DeviceSignals(kernel_ms=[25.0, 25.5], kernels=[900.0, 900.0], flops=2.6e12)
            item.peak_gpu_mem_gb = 7.123
            item.lpips, item.lpips_not_applicable = 0.042, ""
            reading = GpuStateSample(1980.0, 2619.0, 61.0, 350.0, 700.0)
            item.gpu_state = summarize([reading, reading])
    result_set.settings["resolved_device"] = "cuda:0"
    return result_set


def test_gpu_summary_keeps_the_gpu_columns_in_tables_split_to_fit() -> None:
    text = summary_table(gpu_result_set())
    assert max(len(line) for line in text.splitlines()) <= WIDTH
    tables = tables_of(text)
    assert len(tables) >= 2 and all(table[0][0] == "variant" for table in tables)
    assert [name for table in tables for name in table[0] if name != "variant"] == SUMMARY_HEADER[1:]
    baseline = cells_by_variant(text)["baseline"]
    assert baseline["peak GB"] == "7.12" and baseline["kernels"] == "900"
    assert baseline["kernel ms (CV)"] == "25.2 (1.1 %)"
    # The device group stays together in one table.
    assert any({"kernel ms (CV)", "kernels", "GPU busy", "TFLOP/s"} <= set(table[0]) for table in tables)
    assert "Not shown" not in text


def test_a_set_where_some_variants_have_device_signals_keeps_the_columns_and_says_which_lack_them() -> None:
    result_set = gpu_result_set()
    for item in result_set.variants[1].runs:
        item.device = None
    text = summary_table(result_set)
    assert cells_by_variant(text)["tiny_vae+cached_embeds+vae_slicing"]["kernels"] == "n/a"
    assert "- device signals n/a: no device signals were measured" in text.splitlines()
    assert "Not shown" not in text


def test_markdown_report_holds_summary_and_each_protocol_table() -> None:
    text = markdown_report(result_set())
    assert PROTOCOL_BASELINE_TABLE in text
    assert "## tiny_vae (lossy)" in text and "## Summary" in text
    assert "skipped: cpu_offload needs a CUDA GPU" in text


def test_results_json_keeps_every_digit_that_the_tables_round(tmp_path: Path) -> None:
    written = write_reports(result_set(), tmp_path / "report")
    document = json.loads(written["json"].read_text())
    assert document["variants"][0]["runs"][0]["total_s"] == 19.3036789894104
    assert "19.3036789894104" not in written["markdown"].read_text()


def test_write_reports_writes_three_files_atomically(tmp_path: Path) -> None:
    written = write_reports(result_set(), tmp_path / "report")
    names = sorted(path.name for path in (tmp_path / "report").iterdir())
    assert names == ["results.json", "results.md", "results.png"]
    assert written["chart"].read_bytes().startswith(b"\x89PNG\r\n\x1a\n")
    assert load_results(written["json"]).variants == result_set().variants


def test_write_reports_can_leave_the_json_alone(tmp_path: Path) -> None:
    written = write_reports(result_set(), tmp_path, include_json=False)
    assert "json" not in written and not (tmp_path / "results.json").exists()


def test_chart_with_nothing_measured_still_draws(tmp_path: Path) -> None:
    empty = ResultSet(variants=[VariantRecord("cpu_offload", "exact", "skipped", "no GPU")])
    written = write_reports(empty, tmp_path)
    assert written["chart"].stat().st_size > 0


def test_infinite_psnr_reads_identical() -> None:
    record = protocol_record()
    record.runs[0].psnr_db = math.inf
    assert cells_by_variant(summary_table(ResultSet(variants=[record])))["baseline"]["PSNR dB"] == "identical"
