"""Comparing two result sets: per variant and metric, the ratio new / base, its interval and a verdict.

A change is a **regression** only when it is both larger than the threshold (ratio above
1 + threshold) and statistically significant (p below alpha). The test is Mann-Whitney U on the
raw samples where the sample sizes let it reach alpha at all; with fewer samples (three runs
give three load times, and 3 against 3 can never go below p = 0.1) it is Welch's t test on the
logarithms, and the table says which. The ratio is of geometric means with a Welch t interval.
A variant that ran before and fails now is a regression too; one that is skipped now is not.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from pytest_sdxl.results import ResultSet, VariantRecord
from pytest_sdxl.statistics import mann_whitney_u, ratio_interval, smallest_mann_whitney_p

# Lower is better for each; avg gen compares every timed generation, the others one sample per run.
COMPARED_METRICS = (
    ("avg_gen_s", "gen_s"),
    ("init_gen_s", "init_gen_s"),
    ("load_s", "load_s"),
    ("total_s", "total_s"),
    ("peak_gpu_mem_gb", "peak_gpu_mem_gb"),
)
METRIC_NAMES = tuple(metric for metric, _ in COMPARED_METRICS)
DEFAULT_THRESHOLD = 0.05
DEFAULT_ALPHA = 0.05


@dataclass(frozen=True)
class MetricComparison:
    """One variant's metric in both result sets and what the comparison concludes."""

    variant: str
    metric: str
    verdict: str  # regressed, improved, unchanged, failed, missing, skipped
    ratio: float = math.nan
    low: float = math.nan
    high: float = math.nan
    p_value: float = math.nan
    test: str = ""
    base_count: int = 0
    new_count: int = 0
    note: str = ""

    @property
    def regressed(self) -> bool:
        return self.verdict in ("regressed", "failed")


def compare_samples(
    variant: str,
    metric: str,
    base: list[float],
    new: list[float],
    threshold: float = DEFAULT_THRESHOLD,
    alpha: float = DEFAULT_ALPHA,
) -> MetricComparison:
    """Ratio, interval, p-value and verdict for one metric's samples (lower is better)."""
    if not base or not new:
        return MetricComparison(variant, metric, "missing", note="no samples on one side")
    if min(base + new) <= 0:
        return MetricComparison(variant, metric, "unchanged", note="non-positive samples: not compared")
    estimate = ratio_interval(base, new)
    if smallest_mann_whitney_p(len(base), len(new)) < alpha:
        test = "Mann-Whitney U"
        p_value = mann_whitney_u(base, new)[1]
    else:
        test = "Welch t (log)"
        p_value = estimate.p_value
    significant = not math.isnan(p_value) and p_value < alpha
    if significant and estimate.ratio > 1 + threshold:
        verdict = "regressed"
    elif significant and estimate.ratio < 1 - threshold:
        verdict = "improved"
    else:
        verdict = "unchanged"
    return MetricComparison(
        variant,
        metric,
        verdict,
        ratio=estimate.ratio,
        low=estimate.low,
        high=estimate.high,
        p_value=p_value,
        test=test,
        base_count=len(base),
        new_count=len(new),
    )


def compare_variant(
    base: VariantRecord,
    new: VariantRecord | None,
    threshold: float,
    alpha: float,
    metrics: tuple[str, ...] = METRIC_NAMES,
) -> list[MetricComparison]:
    if new is None:
        return [MetricComparison(base.variant, "-", "missing", note="not in the new results")]
    if not base.ok:
        return [MetricComparison(base.variant, "-", "missing", note=f"base {base.status}: {base.reason}")]
    if new.status == "failed":
        return [MetricComparison(base.variant, "-", "failed", note=new.reason)]
    if not new.ok:
        return [MetricComparison(base.variant, "-", "skipped", note=f"new {new.status}: {new.reason}")]
    comparisons = []
    for metric, samples in COMPARED_METRICS:
        if metric not in metrics:
            continue
        base_samples, new_samples = base.samples(samples), new.samples(samples)
        if not base_samples and not new_samples:
            continue  # peak GPU memory on a CPU: nothing to compare
        comparisons.append(compare_samples(base.variant, metric, base_samples, new_samples, threshold, alpha))
    return comparisons


def compare_results(
    base: ResultSet,
    new: ResultSet,
    threshold: float = DEFAULT_THRESHOLD,
    alpha: float = DEFAULT_ALPHA,
    metrics: tuple[str, ...] = METRIC_NAMES,
) -> list[MetricComparison]:
    """Every variant of the base result set against the new one, metric by metric."""
    comparisons = []
    for record in base.variants:
        comparisons += compare_variant(record, new.variant(record.variant), threshold, alpha, metrics)
    known = {record.variant for record in base.variants}
    for record in new.variants:
        if record.variant not in known:
            comparisons.append(MetricComparison(record.variant, "-", "missing", note="not in the base results"))
    return comparisons


def parse_metrics(text: str) -> tuple[str, ...]:
    """'avg_gen_s,init_gen_s' -> the metrics to compare; the error lists the accepted names."""
    chosen = tuple(dict.fromkeys(part.strip() for part in text.split(",") if part.strip()))
    unknown = [name for name in chosen if name not in METRIC_NAMES]
    if unknown or not chosen:
        raise ValueError(f"metrics {text!r} not accepted; choose from {', '.join(METRIC_NAMES)} (comma-separated)")
    return chosen


def parse_threshold(text: str) -> float:
    """'5%' or '0.05' -> 0.05; the error says what is accepted."""
    value = text.strip()
    try:
        number = float(value[:-1]) / 100 if value.endswith("%") else float(value)
    except ValueError:
        number = math.nan
    if not 0 <= number < 1 or (not value.endswith("%") and number >= 1):
        raise ValueError(f"threshold {text!r} is not accepted; give a percentage like 5% or a fraction like 0.05")
    return number


def comparison_table(comparisons: list[MetricComparison]) -> str:
    """A markdown table of ratios (new / base) with their 95 % intervals, p-values and verdicts."""
    header = ["variant", "metric", "ratio new/base", "95% CI", "p", "test", "n base/new", "verdict"]
    rows = []
    for item in comparisons:
        interval = "-" if math.isnan(item.low) else f"{item.low:.3f} – {item.high:.3f}"
        verdict = item.verdict.upper() if item.regressed else item.verdict
        rows.append(
            [
                item.variant,
                item.metric,
                "-" if math.isnan(item.ratio) else f"{item.ratio:.3f}",
                interval,
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
