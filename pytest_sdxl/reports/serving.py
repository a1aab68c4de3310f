"""The tables serving teams read: latency percentiles, images/s and energy per variant; a roofline row per stage.

The figures come from ``analysis.serving``; this module only lays them out. A figure that does not
apply is "n/a" in its cell with the reason below the table, once per reason, so a long reason does
not stretch a column; a column n/a for every variant (energy and kernel time on a CPU) is left out.
"""

from __future__ import annotations

import math

from pytest_sdxl.analysis.bottleneck import what_holds_back
from pytest_sdxl.analysis.serving import PERCENTILES, WHOLE_CALL, energy, latency, median_or_none, roofline
from pytest_sdxl.reports import figures
from pytest_sdxl.reports.layout import empty_columns, fitted_tables, joined, markdown_table, without, wrapped
from pytest_sdxl.results.records import VariantRecord
from pytest_sdxl.results.schema import ResultSet

SERVING_HEADER = ["variant", "timed calls", *(f"p{percent} ms" for percent in PERCENTILES), "images/s", "J/image"]
ROOFLINE_HEADER = [
    "variant",
    "stage",
    "GFLOP/image",
    "kernel ms",
    "TFLOP/s (kernel)",
    "peak share (kernel)",
    "stage ms",
    "TFLOP/s (stage)",
    "peak share (stage)",
]
# Split to fit a terminal, the kernel-time columns and the stage-time columns go to separate tables.
ROOFLINE_GROUPS = ["variant", "stage", "kernel", "kernel", "kernel", "kernel", "stage time", "stage time", "stage time"]
DEFINITIONS = (
    "- latency: seconds per image of every timed call of every run (a batch call's time shared out over "
    "its images); percentiles by linear interpolation between order statistics, pN given from "
    "100/(100-N) samples on (p90: 10, p99: 100), fewer give n/a; images/s = 1 / mean seconds per image, "
    "one caller making one call after another",
    "- J/image: the GPU's NVML energy counter over each run's own timed calls (read outside the per-call "
    "clock, the whole board's draw), divided by the run's images; median over runs",
    "- roofline (compute side only; memory traffic is not measured): matrix FLOPs per image of each stage "
    "(torch.utils.flop_counter on the eager modules) over the stage's GPU kernel time (profiled pass) and "
    "over its time in the stage-split pass; peak share = achieved / the card's measured matrix peak "
    "(best of large matmul loops in the run's dtype, cached per GPU and torch version)",
)


def number(value: float | None, digits: int = 1, scale: float = 1.0) -> str:
    return "n/a" if value is None or math.isnan(value) else f"{value * scale:.{digits}f}"


def milliseconds(value: float | None) -> str:
    """A time in ms to three significant digits (``figures``), 'n/a' when it does not apply."""
    return "n/a" if value is None or math.isnan(value) else figures.significant(value)


def rate(tflops: float | None) -> str:
    """TFLOP/s to three significant figures: a tiny CPU model's rates are thousandths, an H100's hundreds."""
    return "n/a" if tflops is None or math.isnan(tflops) else f"{tflops:.3g}"


def percent(value: float | None) -> str:
    return "n/a" if value is None or math.isnan(value) else f"{value * 100:.1f} %"


def reasons_below(reasons: dict[str, list[str]], what: str) -> list[str]:
    return [f"- {what} n/a for {', '.join(names)}: {reason.removeprefix('n/a: ')}" for reason, names in reasons.items()]


def serving_table(result_set: ResultSet) -> list[str]:
    """Per measured variant: timed calls, p50/p90/p99 ms per image, images/s, J/image; then the n/a reasons."""
    rows: list[list[str]] = []
    energy_reasons: dict[str, list[str]] = {}
    for record in measured(result_set):
        timing = latency(record.samples("gen_s"))
        drawn = energy(record.runs)
        if drawn.joules_per_image is None:
            energy_reasons.setdefault(drawn.not_applicable, []).append(record.variant)
        rows.append(
            [
                record.variant,
                str(timing.samples),
                *(item.describe_ms() for item in timing.percentiles),
                number(timing.images_per_s, 2),
                number(drawn.joules_per_image, 2),
            ]
        )
    if not rows:
        return ["no variant was measured"]
    reasons = reasons_below(energy_reasons, "J/image")
    return fitted(SERVING_HEADER, rows, reasons)


UNSPLIT = (
    "its stages cannot be timed apart (graph_pipeline replays the whole generation as one CUDA graph); "
    "its row is the whole call's"
)
# The gate profile times no stage split (``measure.profiles``): no gated signal needs one.
NOT_SPLIT = "its stages were not timed apart (the gate profile leaves the stage split out; --profile full has it)"


def roofline_table(result_set: ResultSet) -> list[str]:
    """A row per measured variant and stage: FLOPs, times, achieved TFLOP/s and shares of the peak; then the reasons."""
    rows: list[list[str]] = []
    peak_reasons: dict[str, list[str]] = {}
    kernel_reasons: dict[str, list[str]] = {}
    unsplit: list[str] = []
    not_split: list[str] = []
    peaks: dict[float, list[str]] = {}
    for record in measured(result_set):
        found = roofline(record.runs)
        if found.peak_tflops is None:
            peak_reasons.setdefault(found.peak_not_applicable, []).append(record.variant)
        else:
            peaks.setdefault(found.peak_tflops, []).append(record.variant)
        no_kernels = next((item.not_applicable for item in record.device_signals() if item.not_applicable), "")
        if no_kernels:
            kernel_reasons.setdefault(no_kernels, []).append(record.variant)
        stages = found.stages
        if not any(stage.kernel_ms or stage.stage_ms for stage in stages):
            # Zeros would read as free stages: a whole-generation graph (graph_pipeline) has no stage boundaries,
            # and a measurement without the stage split (the gate profile) has no stages at all.
            (unsplit if any(run.stages for run in record.runs) else not_split).append(record.variant)
            stages = ()
        for stage in (*stages, *([found.whole] if found.whole is not None else [])):
            rows.append(
                [
                    record.variant,
                    stage.stage,
                    number(stage.flops_per_image, 2, 1e-9),
                    milliseconds(stage.kernel_ms),
                    rate(stage.kernel_tflops),
                    percent(stage.kernel_share),
                    milliseconds(stage.stage_ms),
                    rate(stage.stage_tflops),
                    percent(stage.stage_share),
                ]
            )
    if not rows and not unsplit and not not_split:
        return ["no variant was measured"]
    notes = peak_notes(peaks)
    notes += [f"- one row for {', '.join(unsplit)}: {UNSPLIT}"] if unsplit else []
    notes += [f"- one row for {', '.join(not_split)}: {NOT_SPLIT}"] if not_split else []
    notes += [f"- {WHOLE_CALL}: every FLOP of a generation over its kernel time and over its wall time per image"]
    notes += reasons_below(kernel_reasons, "kernel time") + reasons_below(peak_reasons, "peak share")
    return fitted(ROOFLINE_HEADER, rows, notes, ROOFLINE_GROUPS, shared=2)


def peak_notes(peaks: dict[float, list[str]]) -> list[str]:
    """The measured peak; where variants were measured against different ones, which against which.

    Each process measures the peak of the card it runs on (``measure.matrix_peak``). A report resumed on another
    machine of the same card holds two peaks, and its shares are each against their own.
    """
    if len(peaks) <= 1:
        return [f"- measured matrix peak: {peak:.1f} TFLOP/s" for peak in peaks]
    lines = [
        "- measured matrix peaks differ (variants measured on different machines or sessions); "
        "each share is against its own:"
    ]
    lines += [f"  - {peak:.1f} TFLOP/s: {', '.join(variants)}" for peak, variants in sorted(peaks.items())]
    return lines


HOLDS_BACK_HEADER = ["variant", "wall ms/image (median)", "kernel ms/image (median)", "what holds it back"]


def holds_back_table(result_set: ResultSet) -> list[str]:
    """Per measured variant: launch-bound or GPU-bound, and where (``bottleneck.what_holds_back``)."""
    rows = []
    for record in measured(result_set):
        wall = median_or_none(record.samples("gen_s"))
        kernel = median_or_none([value for item in record.device_signals() for value in item.kernel_ms])
        wall_ms = None if wall is None else wall * 1000
        found = roofline(record.runs)
        rows.append(
            [
                record.variant,
                milliseconds(wall_ms),
                milliseconds(kernel),
                what_holds_back(wall_ms, kernel, found.stages, found.whole),
            ]
        )
    # Every column stays: the last says why a figure is n/a. Nor is it split: that column is a sentence,
    # as wide on its own as the terminal on a GPU, and this table is for results.md, which renders it.
    return markdown_table(HOLDS_BACK_HEADER, rows) if rows else ["no variant was measured"]


def fitted(
    header: list[str], rows: list[list[str]], notes: list[str], groups: list[str] | None = None, shared: int = 1
) -> list[str]:
    """The table without the columns n/a for every variant, fitted to the terminal, then its notes.

    Why each figure is n/a is already in the lines under the table, per variant: the line for the
    dropped columns points there rather than repeat it.
    """
    dropped = empty_columns(header, rows)
    kept_groups = [group for name, group in zip(header, groups or header, strict=True) if name not in dropped]
    header, rows = without(header, rows, dropped)
    lines = joined(fitted_tables(header, rows, kept_groups, shared=shared))
    if dropped:
        notes = [f"Not shown (n/a for every variant, why below): {', '.join(dropped)}", *notes]
    return [*lines, *(["", *wrapped(notes)] if notes else [])]


def measured(result_set: ResultSet) -> list[VariantRecord]:
    return [record for record in result_set.variants if record.ok]


def serving_section(result_set: ResultSet) -> list[str]:
    """results.md's section: the definitions, the serving table and the roofline table."""
    return [
        "## What serving teams read",
        "",
        *DEFINITIONS,
        "",
        *serving_table(result_set),
        "",
        "### Roofline per stage",
        "",
        *roofline_table(result_set),
        "",
        "### What holds each variant back",
        "",
        "GPU busy = kernel time / wall time per image: under 50 % launch-bound, 50-80 % partly, from 80 % "
        "GPU-bound; then the stage with the most kernel time and its share of the matrix peak.",
        "",
        *holds_back_table(result_set),
    ]
