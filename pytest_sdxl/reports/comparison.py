"""What ``compare`` prints: the verdict table, and for each flagged variant the kernels that changed.

A regression found by kernel time or kernel count is explained by a kernel diff: the stored kernel
tables of both result sets (kernel group -> launches and microseconds per image), the groups whose
count or time changed most listed first (``kernels.kernel_diff``).
"""

from __future__ import annotations

import math

from pytest_sdxl.analysis.comparison import MetricComparison, drift_note
from pytest_sdxl.reports.layout import fitted_tables, joined, wrapped
from pytest_sdxl.results.records import VariantRecord
from pytest_sdxl.results.schema import ResultSet

KERNEL_SIGNALS = ("kernel_ms", "kernels")


def threshold_cell(item: MetricComparison) -> str:
    if item.metric == "kernels":
        return "exact"
    return "-" if math.isnan(item.threshold) else f"{item.threshold:.0%}"


COMPARISON_HEADER = ["variant", "metric", "new/base", "95% CI", "threshold", "p (Holm)", "runs", "verdict"]


def comparison_table(comparisons: list[MetricComparison]) -> str:
    """Ratios (new / base) with their 95 % intervals, p-values and verdicts, fitted to the terminal.

    The test behind a verdict and its note (why the data is insufficient, say) are numbered in the
    verdict cell and written once below the table: many rows share them, and in a cell they would
    widen every row past the terminal. A verdict judged on one process a side is starred, and the star
    explained below: it cannot see the drift between processes.
    """
    footnotes: dict[str, int] = {}
    rows = []
    for item in comparisons:
        verdict = item.verdict.upper() if item.regressed else item.verdict
        if not item.gated and item.metric != "-":
            verdict += ", not gated"
        if item.drift_unjudged:
            verdict += " *"
        footnote = "; ".join(part for part in (item.test, item.note) if part)
        if footnote:
            verdict += f" [{footnotes.setdefault(footnote, len(footnotes) + 1)}]"
        rows.append(
            [
                item.variant,
                item.metric,
                "-" if math.isnan(item.ratio) else f"{item.ratio:.3f}",
                "-" if math.isnan(item.low) else f"{item.low:.3f} – {item.high:.3f}",
                threshold_cell(item),
                "-" if math.isnan(item.p_value) else f"{item.p_value:.3g}",
                f"{item.base_count}/{item.new_count}" if item.base_count else "-",
                verdict,
            ]
        )
    lines = joined(fitted_tables(COMPARISON_HEADER, rows, shared=2))
    below = [f"[{number}] {text}" for text, number in footnotes.items()]
    drift = drift_note(comparisons)
    if drift:
        below.append(f"* {drift}")
    return "\n".join([*lines, *(["", *wrapped(below)] if below else [])])


def kernel_table_of(record: VariantRecord | None) -> dict[str, tuple[float, float]]:
    """The variant's kernel table per image, averaged over its runs' profiled passes."""
    tables = [run.device.kernel_table for run in record.runs if run.device is not None] if record else []
    tables = [table for table in tables if table]
    merged: dict[str, list[float]] = {}
    for table in tables:
        for group, (count, microseconds) in table.items():
            entry = merged.setdefault(group, [0.0, 0.0])
            entry[0] += count / len(tables)
            entry[1] += microseconds / len(tables)
    # kernel_diff takes totals and an image count: per-image values with one image are the same thing.
    return {group: (count, microseconds) for group, (count, microseconds) in merged.items()}


def kernel_diffs(base: ResultSet, new: ResultSet, comparisons: list[MetricComparison], top: int = 10) -> str:
    """A kernel diff per variant flagged by kernel time or launches; empty when none or no kernel tables."""
    from pytest_sdxl.analysis.kernels import kernel_diff, kernel_diff_table

    moved = {item.variant for item in comparisons if item.metric in KERNEL_SIGNALS and item.verdict != "unchanged"}
    flagged = sorted(moved | {item.variant for item in comparisons if item.regressed})
    sections = []
    for variant in flagged:
        base_table, new_table = kernel_table_of(base.variant(variant)), kernel_table_of(new.variant(variant))
        if not base_table or not new_table:
            continue
        changes = kernel_diff(base_table, new_table, 1, 1, top=top)
        if changes:
            sections += [f"### kernel diff: {variant} (per image, base -> new)", "", kernel_diff_table(changes), ""]
    return "\n".join(sections)
