"""Markdown reports of a result set: the notes' per-variant tables, a summary table, and the files.

``notes_table`` reproduces the notes' tables exactly (``| Metric | Run 1 | Run 2 | Run 3 |`` with
rows Total Time, Load Time, Init Gen Time, Avg Gen Time, seconds at full precision, the notes'
column widths). ``summary_table`` puts every variant side by side with its statistics, speed-up
against the baseline, stage split and PSNR; serving_report adds latency percentiles, energy and the
roofline. ``write_reports`` writes results.json, results.md and
results.png, each atomically.
"""

from __future__ import annotations

import math
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

from pytest_sdxl.analysis.stats import CI_METHOD, summarize
from pytest_sdxl.reports.serving import serving_section, serving_table
from pytest_sdxl.results.schema import STAGE_KEYS, ResultSet, RunRecord, VariantRecord, save_results, write_atomically

# The notes' rows, in the notes' order, with the metric each one shows.
NOTES_ROWS = (
    ("Total Time", "total_s"),
    ("Load Time", "load_s"),
    ("Init Gen Time", "init_gen_s"),
    ("Avg Gen Time", "avg_gen_s"),
)
# The notes pad the first column to 13 characters and each run column to 23.
LABEL_WIDTH, VALUE_WIDTH = 13, 23


def table_row(cells: list[str], widths: list[int]) -> str:
    return "| " + " | ".join(cell.ljust(width) for cell, width in zip(cells, widths, strict=True)) + " |"


def notes_table(variant_record: VariantRecord) -> str:
    """The variant's runs as the notes' markdown table (seconds, full precision, one column per run)."""
    runs = variant_record.runs
    header = ["Metric", *(f"Run {run.run}" for run in runs)]
    rows = [[label, *(format_seconds(getattr(run, metric)) for run in runs)] for label, metric in NOTES_ROWS]
    widths = [LABEL_WIDTH, *([VALUE_WIDTH] * len(runs))]
    widths = [max(width, *(len(row[index]) for row in [header, *rows])) for index, width in enumerate(widths)]
    lines = [table_row(header, widths), "|" + "|".join("-" * (width + 2) for width in widths) + "|"]
    lines += [table_row(row, widths) for row in rows]
    return "\n".join(lines)


def format_seconds(value: float) -> str:
    """Full precision as in the notes; '-' where a run has no such figure (no load in a benchmark round)."""
    return "-" if math.isnan(float(value)) else repr(float(value))


def format_ms(seconds: float) -> str:
    return "-" if math.isnan(seconds) else f"{seconds * 1000:.1f}"


def format_percent(fraction: float) -> str:
    return "-" if math.isnan(fraction) else f"{fraction * 100:.1f} %"


def format_psnr(values: list[float]) -> str:
    if not values:
        return "-"
    worst = min(values)
    return "identical" if math.isinf(worst) else f"{worst:.1f}"


def median_of(record: VariantRecord, metric: str) -> float:
    samples = record.samples(metric)
    return summarize(samples).median if samples else math.nan


def stage_split(record: VariantRecord) -> str:
    """Median ms per image of text encode / UNet / VAE decode / other."""
    medians = [median_of(record, key) for key in STAGE_KEYS]
    if all(math.isnan(value) for value in medians):
        return "-"
    return " / ".join("-" if math.isnan(value) else f"{value:.1f}" for value in medians)


@dataclass(frozen=True)
class DeviceSummary:
    """The device signals of a variant's runs in a few numbers (per image), or why they do not apply.

    Busy fraction: the GPU's kernel time over the wall time of the same image (median over the
    runs' profiled calls against the median timed call); achieved TFLOP/s: FLOPs over kernel time.
    """

    not_applicable: str = ""
    kernel_ms: float = math.nan
    kernel_ms_cv: float = math.nan
    kernels: float = math.nan
    stage_kernel_ms: dict[str, float] = field(default_factory=dict)
    flops_per_image: float | None = None
    achieved_tflops: float | None = None
    busy_fraction: float | None = None

    def as_dict(self) -> dict[str, object]:
        # What does not apply is left out, not written as NaN: pytest-benchmark's JSON must stay strict.
        return {
            key: value
            for key, value in asdict(self).items()
            if value not in ("", None) and not (isinstance(value, float) and math.isnan(value))
        }


def device_summary(runs: list[RunRecord]) -> DeviceSummary:
    signals = [run.device for run in runs if run.device is not None]
    if not signals:
        return DeviceSummary(not_applicable="no device signals were measured")
    flops = next((item.flops for item in signals if item.flops is not None), None)
    if not any(item.has_kernels for item in signals):
        return DeviceSummary(not_applicable=signals[0].not_applicable, flops_per_image=flops)
    kernel = summarize([value for item in signals for value in item.kernel_ms])
    wall_ms = summarize([sample for run in runs for sample in run.gen_s]).median * 1000
    stages: dict[str, float] = {}
    for item in signals:
        for stage, value in item.stage_kernel_ms.items():
            stages[stage] = stages.get(stage, 0.0) + value / len(signals)
    return DeviceSummary(
        kernel_ms=kernel.median,
        kernel_ms_cv=kernel.cv,
        kernels=summarize([value for item in signals for value in item.kernels]).median,
        stage_kernel_ms=stages,
        flops_per_image=flops,
        achieved_tflops=flops / (kernel.median / 1000) / 1e12 if flops and kernel.median > 0 else None,
        busy_fraction=kernel.median / wall_ms if wall_ms > 0 else None,
    )


def device_cells(record: VariantRecord) -> list[str]:
    """kernel ms (CV), kernels per image, busy fraction, TFLOP/s; 'n/a' where they do not apply."""
    summary = device_summary(record.runs)
    if summary.not_applicable:
        return ["n/a"] * 4
    return [
        f"{summary.kernel_ms:.2f} ({format_percent(summary.kernel_ms_cv)})",
        f"{summary.kernels:.0f}",
        "-" if summary.busy_fraction is None else format_percent(summary.busy_fraction),
        "-" if summary.achieved_tflops is None else f"{summary.achieved_tflops:.1f}",
    ]


SUMMARY_HEADER = [
    "variant",
    "kind",
    "avg gen ms (median)",
    "min ms",
    "mean ms",
    "95% CI ms",
    "CV",
    "IQR ms",
    "speed-up",
    "init gen s",
    "load s",
    "total s",
    "text / unet / vae / other ms",
    "PSNR dB",
    "peak GB",
    "kernel ms (CV)",
    "kernels",
    "GPU busy",
    "TFLOP/s",
]


def summary_row(record: VariantRecord, baseline_median: float) -> list[str]:
    if not record.ok:
        # The reason goes below the table: in a cell it would stretch the whole column.
        return [record.variant, record.kind, f"{record.status} (below)", *(["-"] * (len(SUMMARY_HEADER) - 3))]
    gen = summarize(record.samples("gen_s"))
    speed_up = baseline_median / gen.median if gen.median > 0 and not math.isnan(baseline_median) else math.nan
    if record.note and "no effect" in record.note:
        speed_up = math.nan  # a difference from the baseline is noise, not a speed-up: the note says why
    peaks = [run.peak_gpu_mem_gb for run in record.runs if run.peak_gpu_mem_gb is not None]
    psnr_values = [run.psnr_db for run in record.runs if run.psnr_db is not None]
    return [
        record.variant,
        record.kind,
        format_ms(gen.median),
        format_ms(gen.minimum),
        format_ms(gen.mean),
        f"{format_ms(gen.ci_low)} – {format_ms(gen.ci_high)}",
        format_percent(gen.cv),
        format_ms(gen.iqr),
        "-" if math.isnan(speed_up) else f"{speed_up:.2f}x",
        f"{median_of(record, 'init_gen_s'):.3f}",
        f"{median_of(record, 'load_s'):.3f}",
        f"{median_of(record, 'total_s'):.3f}",
        stage_split(record),
        format_psnr(psnr_values),
        f"{max(peaks):.2f}" if peaks else "-",
        *device_cells(record),
    ]


def summary_table(result_set: ResultSet) -> str:
    """Every variant x metric: avg gen statistics over all timed generations, speed-up, stages, PSNR."""
    baseline = result_set.variant("baseline")
    baseline_median = summarize(baseline.samples("gen_s")).median if baseline and baseline.ok else math.nan
    rows = [summary_row(record, baseline_median) for record in result_set.variants]
    widths = [max(len(row[index]) for row in [SUMMARY_HEADER, *rows]) for index in range(len(SUMMARY_HEADER))]
    lines = [table_row(SUMMARY_HEADER, widths), "|" + "|".join("-" * (width + 2) for width in widths) + "|"]
    lines += [table_row(row, widths) for row in rows]
    reasons = [
        f"- {record.variant} {record.status}: {record.reason}" for record in result_set.variants if not record.ok
    ]
    reasons += [f"- {record.variant}: {record.note}" for record in result_set.variants if record.note]
    ran = [record for record in result_set.variants if record.ok]
    not_applicable = sorted({reason for record in ran if (reason := device_summary(record.runs).not_applicable)})
    reasons += [f"- device signals n/a: {reason}" for reason in not_applicable]
    return "\n".join(lines + (["", *reasons] if reasons else []))


def describe_machine(machine: dict[str, object]) -> str:
    gpu = machine.get("gpu") or "no GPU"
    # Files written before the machine keys were unified call the driver 'driver'.
    driver = machine.get("gpu_driver") or machine.get("driver")
    parts = [
        f"GPU {gpu}",
        f"driver {driver or '-'}",
        f"CUDA {machine.get('cuda') or '-'}",
        f"CPU {machine.get('cpu')}",
        f"torch {machine.get('torch')}",
        f"diffusers {machine.get('diffusers')}",
        f"transformers {machine.get('transformers')}",
        f"Python {machine.get('python')}",
    ]
    return ", ".join(parts)


# What a partial result set's report says before the variants it lacks, by why (results.PARTIAL_REASONS).
PARTIAL_WORDING = {
    "interrupted": "interrupted before",
    "stopped": "stopped early (-x or --maxfail) before",
    "running": "written while the session was running (what a killed session leaves); not measured yet",
}


def partial_description(reason: str, not_measured: list[str]) -> str:
    """'interrupted before: X, Y' for a partial result set; "" for a complete one (no reason)."""
    if not reason:
        return ""
    return f"{PARTIAL_WORDING.get(reason, reason)}: {', '.join(not_measured)}"


def measuring_summary(result_set: ResultSet) -> str:
    """The matrix's measuring time, summed over variants (one GPU's share of the wall clock); "" if none recorded."""
    timed = [record.measure_s for record in result_set.variants if record.measure_s is not None]
    if not timed:
        return ""
    resumed = result_set.settings.get("resumed_from")
    where = f" (resumed: measured since {resumed})" if resumed else ""
    return f"measuring time: {sum(timed):.0f} s over {len(timed)} variant(s), summed per variant{where}"


def markdown_report(result_set: ResultSet) -> str:
    """The whole results.md: header, summary table, then one notes table per measured variant."""
    settings = result_set.settings
    size = settings.get("image_size") or settings.get("size") or "auto"
    prompts = settings.get("prompts") or []
    partial = partial_description(result_set.partial, result_set.not_measured)
    measuring = measuring_summary(result_set)
    lines = [
        "# pytest-sdxl results",
        "",
        *([f"- partial: {partial}"] if partial else []),
        f"- created: {result_set.created}",
        f"- model: {settings.get('model')}, device {settings.get('resolved_device', settings.get('device'))}, "
        f"dtype {str(settings.get('resolved_dtype', settings.get('dtype'))).removeprefix('torch.')}, "
        f"{size}x{size}, {settings.get('steps')} step(s), 1 + {max(len(prompts) - 1, 0)} prompts, "
        f"{settings.get('runs')} runs, seed {settings.get('seed')}",
        f"- machine: {describe_machine(result_set.machine)}",
        *([f"- {measuring}"] if measuring else []),
        f"- avg gen statistics over every timed generation of every run (per image); 95% CI: {CI_METHOD}; "
        "speed-up = baseline median / variant median; PSNR: worst run against the baseline's images "
        "for the same prompts and seeds; stages are medians over runs, ms per image",
        "- device signals from untimed profiled passes: kernel ms = the GPU's summed kernel time per image "
        "(median, CV over profiled calls), kernels = launches per image, GPU busy = kernel time / wall "
        "median, TFLOP/s = matrix FLOPs per image / kernel time",
        "",
        "## Summary",
        "",
        summary_table(result_set),
        "",
        *serving_section(result_set),
    ]
    for record in result_set.variants:
        lines += ["", f"## {record.variant} ({record.kind})", ""]
        if record.runs:
            lines.append(notes_table(record))
        if not record.ok or record.reason:
            lines += ["", f"{record.status}: {record.reason}"]
    return "\n".join(lines) + "\n"


def write_reports(result_set: ResultSet, folder: str | os.PathLike[str], include_json: bool = True) -> dict[str, Path]:
    """Write results.json, results.md and results.png into the folder (each atomically); return their paths."""
    from pytest_sdxl.reports.chart import chart_png

    target = Path(folder)
    target.mkdir(parents=True, exist_ok=True)
    written: dict[str, Path] = {}
    if include_json:
        written["json"] = save_results(result_set, target / "results.json")
    written["markdown"] = write_atomically(target / "results.md", markdown_report(result_set))
    written["chart"] = write_atomically(target / "results.png", chart_png(result_set))
    return written


def session_summary_lines(result_set: ResultSet) -> list[str]:
    """The pytest plugin's terminal section: the summary, then the notes' table of every variant."""
    settings = result_set.settings
    size = settings.get("image_size") or settings.get("size") or "auto"
    prompts = settings.get("prompts") or []
    lines = [
        f"model {settings.get('model')}, {size}x{size}, {settings.get('steps')} step(s), "
        f"1 + {max(len(prompts) - 1, 0)} prompts; Load, Init Gen and Total exist for Run 1 only (the pipeline "
        "is loaded and warmed once), each run is a block of benchmark rounds",
        "",
        *summary_table(result_set).splitlines(),
        "",
        "latency per image and energy (p99 needs 100 timed calls)",
        *serving_table(result_set),
    ]
    for record in result_set.variants:
        if record.runs:
            lines += ["", f"{record.variant} ({record.kind})", *notes_table(record).splitlines()]
    return lines
