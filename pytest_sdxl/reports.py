"""Markdown reports of a result set: the notes' per-variant tables, a summary table, and the files.

``notes_table`` reproduces the notes' tables exactly (``| Metric | Run 1 | Run 2 | Run 3 |`` with
rows Total Time, Load Time, Init Gen Time, Avg Gen Time, seconds at full precision, the notes'
column widths). ``summary_table`` puts every variant side by side with its statistics, speed-up
against the baseline, stage split and PSNR. ``write_reports`` writes results.json, results.md and
results.png, each atomically.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

from pytest_sdxl.results import STAGE_KEYS, ResultSet, VariantRecord, save_results, write_atomically
from pytest_sdxl.statistics import CI_METHOD, summarize

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


SUMMARY_HEADER = [
    "variant",
    "kind",
    "avg gen ms (median)",
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
]


def summary_row(record: VariantRecord, baseline_median: float) -> list[str]:
    if not record.ok:
        # The reason goes below the table: in a cell it would stretch the whole column.
        return [record.variant, record.kind, f"{record.status} (below)", *(["-"] * (len(SUMMARY_HEADER) - 3))]
    gen = summarize(record.samples("gen_s"))
    speed_up = baseline_median / gen.median if gen.median > 0 and not math.isnan(baseline_median) else math.nan
    peaks = [run.peak_gpu_mem_gb for run in record.runs if run.peak_gpu_mem_gb is not None]
    psnr_values = [run.psnr_db for run in record.runs if run.psnr_db is not None]
    return [
        record.variant,
        record.kind,
        format_ms(gen.median),
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
    return "\n".join(lines + (["", *reasons] if reasons else []))


def describe_machine(machine: dict[str, object]) -> str:
    gpu = machine.get("gpu") or "no GPU"
    parts = [
        f"GPU {gpu}",
        f"driver {machine.get('driver') or '-'}",
        f"CUDA {machine.get('cuda') or '-'}",
        f"CPU {machine.get('cpu')}",
        f"torch {machine.get('torch')}",
        f"diffusers {machine.get('diffusers')}",
        f"transformers {machine.get('transformers')}",
        f"Python {machine.get('python')}",
    ]
    return ", ".join(parts)


def markdown_report(result_set: ResultSet) -> str:
    """The whole results.md: header, summary table, then one notes table per measured variant."""
    settings = result_set.settings
    size = settings.get("image_size") or settings.get("size") or "auto"
    prompts = settings.get("prompts") or []
    lines = [
        "# pytest-sdxl results",
        "",
        f"- created: {result_set.created}",
        f"- model: {settings.get('model')}, device {settings.get('resolved_device', settings.get('device'))}, "
        f"dtype {str(settings.get('resolved_dtype', settings.get('dtype'))).removeprefix('torch.')}, "
        f"{size}x{size}, {settings.get('steps')} step(s), 1 + {max(len(prompts) - 1, 0)} prompts, "
        f"{settings.get('runs')} runs, seed {settings.get('seed')}",
        f"- machine: {describe_machine(result_set.machine)}",
        f"- avg gen statistics over every timed generation of every run (per image); 95% CI: {CI_METHOD}; "
        "speed-up = baseline median / variant median; PSNR: worst run against the baseline's images "
        "for the same prompts and seeds; stages are medians over runs, ms per image",
        "",
        "## Summary",
        "",
        summary_table(result_set),
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
    from pytest_sdxl.plot import chart_png

    target = Path(folder)
    target.mkdir(parents=True, exist_ok=True)
    written: dict[str, Path] = {}
    if include_json:
        written["json"] = save_results(result_set, target / "results.json")
    written["markdown"] = write_atomically(target / "results.md", markdown_report(result_set))
    written["chart"] = write_atomically(target / "results.png", chart_png(result_set))
    return written
