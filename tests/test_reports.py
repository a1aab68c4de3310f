"""Reports: the notes' table shape exactly, the summary table, and the three files."""

from __future__ import annotations

import math
import re
from pathlib import Path

import pytest

from pytest_sdxl.reports.tables import markdown_report, notes_table, summary_table, write_reports
from pytest_sdxl.results.schema import ResultSet, RunRecord, VariantRecord, load_results

# The notes' first table ("Basic Diffuser Performance"), verbatim.
NOTES_BASELINE_TABLE = """\
| Metric        | Run 1                   | Run 2                   | Run 3                   |
|---------------|-------------------------|-------------------------|-------------------------|
| Total Time    | 19.3036789894104        | 17.443750381469727      | 17.60261082649231       |
| Load Time     | 6.236544132232666       | 4.532968759536743       | 4.691980600357056       |
| Init Gen Time | 2.950467348098755       | 2.9440150260925293      | 3.0313751697540283      |
| Avg Gen Time  | 2.529166877269745       | 2.4916916489601135      | 2.4698137640953064      |"""

NOTES_FIGURES = [  # (total, load, init, avg) per run, from the table above
    (19.3036789894104, 6.236544132232666, 2.950467348098755, 2.529166877269745),
    (17.443750381469727, 4.532968759536743, 2.9440150260925293, 2.4916916489601135),
    (17.60261082649231, 4.691980600357056, 3.0313751697540283, 2.4698137640953064),
]
STAGES = {"text_encode_ms": 10.0, "unet_ms": 60.0, "vae_decode_ms": 25.0, "other_ms": 5.0, "total_ms": 100.0}


def run(number: int, total: float, load: float, init: float, average: float, psnr: float | None = None) -> RunRecord:
    return RunRecord(number, load, init, [average] * 4, average, average, total, dict(STAGES), None, psnr)


def notes_record() -> VariantRecord:
    return VariantRecord("baseline", "exact", "ok", "", [run(i + 1, *row) for i, row in enumerate(NOTES_FIGURES)])


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
            notes_record(),
            tiny,
            VariantRecord("cpu_offload", "exact", "skipped", "cpu_offload needs a CUDA GPU (device here: cpu)"),
            VariantRecord("upcast_vae", "exact", "failed", "run 1: out of memory: CUDA out of memory"),
        ],
    )


def test_notes_table_reproduces_the_notes_exactly() -> None:
    assert notes_table(notes_record()) == NOTES_BASELINE_TABLE


def test_notes_table_has_one_column_per_run() -> None:
    record = VariantRecord("baseline", "exact", runs=[run(1, 1.0, 0.5, 0.25, 0.0625)])
    lines = notes_table(record).splitlines()
    assert lines[0] == "| Metric        | Run 1                   |"
    assert [line.split("|")[1].strip() for line in lines[2:]] == [
        "Total Time",
        "Load Time",
        "Init Gen Time",
        "Avg Gen Time",
    ]
    assert lines[2] == "| Total Time    | 1.0                     |"


def test_notes_table_widens_for_long_values_and_stays_aligned() -> None:
    record = VariantRecord("compile_unet", "exact", runs=[run(1, 1234567.891011121, 1e-7, 75.41857695579529, 0.5)])
    lengths = {len(line) for line in notes_table(record).splitlines()}
    assert len(lengths) == 1


def test_summary_table_has_every_variant_speed_up_stages_and_psnr() -> None:
    table, reasons = summary_table(result_set()).split("\n\n")
    rows = {line.split("|")[1].strip(): line for line in table.splitlines()[2:]}
    assert list(rows) == ["baseline", "tiny_vae", "cpu_offload", "upcast_vae"]
    speed_up = re.search(r"(\d+\.\d\d)x", rows["tiny_vae"])
    assert speed_up and float(speed_up.group(1)) == pytest.approx(2.4916916489601135 / 0.134, abs=0.01)
    assert "1.00x" in rows["baseline"]
    assert "10.0 / 60.0 / 25.0 / 5.0" in rows["tiny_vae"]
    assert "31.5" in rows["tiny_vae"]
    assert "skipped (below)" in rows["cpu_offload"] and "failed (below)" in rows["upcast_vae"]
    assert reasons.splitlines() == [
        "- cpu_offload skipped: cpu_offload needs a CUDA GPU (device here: cpu)",
        "- upcast_vae failed: run 1: out of memory: CUDA out of memory",
        # Runs without device signals (files written before they existed) say so, not zeros.
        "- device signals n/a: no device signals were measured",
    ]
    assert "| n/a " in rows["tiny_vae"]
    assert len({len(line) for line in table.splitlines()}) == 1  # aligned


def test_markdown_report_holds_summary_and_each_notes_table() -> None:
    text = markdown_report(result_set())
    assert NOTES_BASELINE_TABLE in text
    assert "## tiny_vae (lossy)" in text and "## Summary" in text
    assert "skipped: cpu_offload needs a CUDA GPU" in text


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
    record = notes_record()
    record.runs[0].psnr_db = math.inf
    row = summary_table(ResultSet(variants=[record])).splitlines()[2]
    assert "identical" in row
