"""What ``compare`` prints: the verdict table, and for each flagged variant the kernels that changed.

A regression found by kernel time or kernel count is explained by a kernel diff: the stored kernel
tables of both result sets (kernel group -> launches and microseconds per image), the groups whose
count or time changed most listed first (``kernels.kernel_diff``).
"""

from __future__ import annotations

import math

from pytest_sdxl.analysis.comparison import MetricComparison
from pytest_sdxl.results.schema import ResultSet, VariantRecord

KERNEL_SIGNALS = ("kernel_ms", "kernels")


def threshold_cell(item: MetricComparison) -> str:
    if item.metric == "kernels":
        return "exact"
    return "-" if math.isnan(item.threshold) else f"{item.threshold:.0%}"


def comparison_table(comparisons: list[MetricComparison]) -> str:
    """A markdown table of ratios (new / base) with their 95 % intervals, p-values, tests and verdicts."""
    header = ["variant", "metric", "ratio new/base", "95% CI", "threshold", "p (Holm)", "statistic", "runs", "verdict"]
    rows = []
    for item in comparisons:
        interval = "-" if math.isnan(item.low) else f"{item.low:.3f} – {item.high:.3f}"
        verdict = item.verdict.upper() if item.regressed else item.verdict
        if not item.gated and item.metric != "-":
            verdict += ", not gated"
        rows.append(
            [
                item.variant,
                item.metric,
                "-" if math.isnan(item.ratio) else f"{item.ratio:.3f}",
                interval,
                threshold_cell(item),
                "-" if math.isnan(item.p_value) else f"{item.p_value:.3g}",
                item.test or "-",
                f"{item.base_count}/{item.new_count}" if item.base_count else "-",
                verdict + (f" ({item.note})" if item.note else ""),
            ]
        )
    widths = [max(len(row[index]) for row in [header, *rows]) for index in range(len(header))]

    def line(cells: list[str]) -> str:
        return "| " + " | ".join(cell.ljust(width) for cell, width in zip(cells, widths, strict=True)) + " |"

    separator = "|" + "|".join("-" * (width + 2) for width in widths) + "|"
    return "\n".join([line(header), separator, *(line(row) for row in rows)])


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
