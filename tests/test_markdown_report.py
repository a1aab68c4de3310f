"""compare's markdown: the verdict line, one table row per verdict, a details section per flagged variant, the cap."""

from __future__ import annotations

import random
import re

import pytest

from pytest_sdxl.analysis.comparison import MetricComparison, compare_results
from pytest_sdxl.machine.gpu_state import GpuStateSample, summarize
from pytest_sdxl.reports.markdown import comparison_markdown, flagged_variants, size
from pytest_sdxl.results.records import DeviceSignals, RunRecord, VariantRecord
from pytest_sdxl.results.schema import ResultSet

KERNEL_TABLE = {"gemm": [10.0, 5000.0], "softmax": [5.0, 1000.0]}
HEADER = "| variant | signal | base | head | ratio head/base (95% CI) | verdict |"
SEPARATOR = "|---|---|---:|---:|---|---|"
# A cell boundary: a pipe not escaped by a backslash.
CELL_BOUNDARY = re.compile(r"(?<!\\)\|")


def variant(
    name: str,
    seed: int,
    kernel_slowdown: float = 1.0,
    kernel_table: dict[str, list[float]] | None = None,
    status: str = "ok",
) -> VariantRecord:
    """A variant measured on a GPU, three runs: wall samples beside a reference, kernel time and launches."""
    noise = random.Random(seed)
    if status != "ok":
        return VariantRecord(name, "exact", status, "out of memory: CUDA out of memory")

    def run(number: int) -> RunRecord:
        gen_s = [0.1 * (1 + noise.gauss(0, 0.02)) for _ in range(10)]
        record = RunRecord(number, 4.0, 0.3, gen_s, sum(gen_s) / 10, sorted(gen_s)[5], 4.3 + sum(gen_s))
        record.reference = "baseline"
        record.reference_gen_s = [0.2 * (1 + noise.gauss(0, 0.02)) for _ in range(20)]
        record.device = DeviceSignals(
            kernel_ms=[10.0 * kernel_slowdown * (1 + noise.gauss(0, 0.0005)) for _ in range(3)],
            kernels=[100.0] * 3,
            kernel_table={group: list(pair) for group, pair in (kernel_table or KERNEL_TABLE).items()},
        )
        return record

    return VariantRecord(name, "exact", "ok", "", [run(number) for number in range(1, 4)])


def compared(
    base: list[VariantRecord], new: list[VariantRecord]
) -> tuple[ResultSet, ResultSet, list[MetricComparison]]:
    base_set, new_set = ResultSet(variants=base), ResultSet(variants=new)
    return base_set, new_set, compare_results(base_set, new_set)


def table_rows(text: str) -> list[str]:
    lines = text.splitlines()
    start = lines.index(HEADER)
    assert lines[start + 1] == SEPARATOR
    rows = []
    for line in lines[start + 2 :]:
        if not line.startswith("|"):
            break
        rows.append(line)
    return rows


def cells(row: str) -> list[str]:
    return [part.strip() for part in CELL_BOUNDARY.split(row)[1:-1]]


def test_the_markdown_holds_the_verdict_a_row_per_verdict_and_a_section_per_flagged_variant() -> None:
    slower_gemm = {"gemm": [10.0, 5300.0], "softmax": [5.0, 1000.0]}
    base, new, comparisons = compared(
        [variant("batch", 1), variant("tiny_vae", 2), variant("cpu_offload", 3)],
        [
            variant("batch", 4, kernel_slowdown=1.03, kernel_table=slower_gemm),
            variant("tiny_vae", 5),
            variant("cpu_offload", 6, status="failed"),
        ],
    )
    text = comparison_markdown(base, new, comparisons)
    assert text.startswith("### Performance comparison\n\n**Regressed:** ")
    assert "`batch` kernel_ms" in text.splitlines()[2] and "`cpu_offload` failed" in text.splitlines()[2]
    rows = table_rows(text)
    assert len(rows) == len(comparisons)
    assert all(len(cells(line)) == 6 for line in rows)
    # What fails the gate comes first.
    assert [cells(line)[5].startswith("**") for line in rows[:2]] == [True, True]
    kernel_row = next(cells(line) for line in rows if cells(line)[:2] == ["`batch`", "kernel_ms"])
    assert kernel_row[2].endswith(" ms") and float(kernel_row[2][:-3]) == pytest.approx(10.0, rel=1e-3)
    assert float(kernel_row[3][:-3]) == pytest.approx(10.3, rel=1e-3)
    assert kernel_row[4].startswith("1.03") and "–" in kernel_row[4] and kernel_row[5] == "**regressed**"
    flagged = flagged_variants(comparisons)
    assert flagged == ["batch", "cpu_offload"]
    assert text.count("<details>") == text.count("</details>") == len(flagged)
    batch_section = text.split("<summary><code>batch</code>", 1)[1].split("</details>", 1)[0]
    assert "kernel_ms regressed" in batch_section.splitlines()[0]
    assert "| `gemm` | 10 → 10 | 5000.0 → 5300.0 | +300.0 µs (+6.0%) |" in batch_section
    assert "softmax" not in batch_section
    offload_section = text.split("<summary><code>cpu_offload</code>", 1)[1].split("</details>", 1)[0]
    assert "No kernel tables on both sides" in offload_section


def test_an_unchanged_comparison_says_no_regression_and_has_no_details() -> None:
    base, new, comparisons = compared([variant("batch", 1)], [variant("batch", 2)])
    text = comparison_markdown(base, new, comparisons, notes=["tiny_vae: lossy on random weights"])
    assert "**No regression.**" in text and "<details>" not in text
    assert "- tiny_vae: lossy on random weights" in text
    assert len(table_rows(text)) == len(comparisons)


def test_the_output_is_capped_and_says_how_many_rows_it_left_out() -> None:
    many = [variant(f"variant_{number:03d}", number) for number in range(120)]
    changed = [variant(f"variant_{number:03d}", 1000 + number) for number in range(120)]
    changed[-1] = variant("variant_119", 9999, kernel_slowdown=1.05)
    base, new, comparisons = compared(many, changed)
    text = comparison_markdown(base, new, comparisons, max_bytes=8_000)
    assert size(text) <= 8_000
    rows = table_rows(text)
    assert 0 < len(rows) < len(comparisons)
    assert cells(rows[0])[:2] == ["`variant_119`", "kernel_ms"]  # the regression survives the cut
    left_out = re.search(r"_(\d+) more rows \((.*)\) left out to fit; `pytest-sdxl compare` prints them all\._", text)
    assert left_out is not None and int(left_out[1]) == len(comparisons) - len(rows)
    assert "unchanged" in left_out[2]
    assert len(table_rows(comparison_markdown(base, new, comparisons, max_rows=5))) == 5


def test_pipes_and_tags_in_names_do_not_break_the_table() -> None:
    odd = "odd|name"
    table = {"void gemm<float>|operator|": [10.0, 5000.0]}
    slower = {"void gemm<float>|operator|": [10.0, 6000.0]}
    base, new, comparisons = compared(
        [variant(odd, 1, kernel_table=table)], [variant(odd, 2, kernel_slowdown=1.2, kernel_table=slower)]
    )
    text = comparison_markdown(base, new, comparisons, notes=["a | b <c>"])
    for line in table_rows(text):
        assert len(cells(line)) == 6 and cells(line)[0] == "`odd\\|name`"
    assert "`void gemm<float>\\|operator\\|`" in text
    assert "- a \\| b &lt;c>" in text
    assert "<summary><code>odd|name</code>" in text


def test_the_gpu_state_of_both_sides_and_what_differs_come_before_the_table() -> None:
    base, new, comparisons = compared([variant("batch", 1)], [variant("batch", 2)])
    fast = summarize([GpuStateSample(1980.0, 2619.0, 60.0, 500.0, 700.0, ())])
    slow = summarize([GpuStateSample(1410.0, 2619.0, 88.0, 700.0, 700.0, ("power cap",))])
    text = comparison_markdown(base, new, comparisons, gpu_states=(fast, slow))
    block = text.split("**GPU state**", 1)[1].split(HEADER, 1)[0]
    assert "- base: SM 1980 MHz, memory 2619 MHz" in block
    assert "- head: SM 1410 MHz" in block and "throttled in 1 of 1 readings: power cap" in block
    assert "- The SM clock differs: the base ran at 1980 MHz" in block
    assert "- The head was throttled" in block
