"""Markdown reports of a result set: the reference protocol's per-variant tables, a summary, the files.

``protocol_table`` has the reference protocol's shape (``| Metric | Run 1 | Run 2 | Run 3 |`` with
rows Total Time, Load Time, Init Gen Time, Avg Gen Time, in seconds). ``summary_table`` puts every
variant side by side with its statistics, speed-up against the baseline, stage split, image
quality (``quality``) and device signals (``device_signals``), fitted to the terminal (``layout``);
``serving`` adds latency percentiles, energy and the roofline; ``gpu_state`` the GPU's clocks and
throttling per run. Figures are rounded for reading (``figures``); results.json keeps every digit.
``write_reports`` writes results.json, results.md and results.png, each atomically; the chart is optional:
where it cannot be drawn, the others are written and ``ReportFiles.chart_failure`` says why.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

from pytest_sdxl.analysis.serving import serving_block
from pytest_sdxl.analysis.stats import CI_METHOD, summarize
from pytest_sdxl.reports import figures
from pytest_sdxl.reports.device_signals import device_cells, device_summary
from pytest_sdxl.reports.gpu_state import gpu_state_notes, gpu_state_section
from pytest_sdxl.reports.host_state import host_state_notes
from pytest_sdxl.reports.layout import dropped_line, empty_columns, fitted_tables, joined, without, wrapped
from pytest_sdxl.reports.quality import lpips_reasons, quality_cells, random_weights_notes
from pytest_sdxl.reports.serving import serving_section, serving_table
from pytest_sdxl.results.records import STAGE_KEYS, VariantRecord
from pytest_sdxl.results.schema import ResultSet, save_results, write_atomically

# The reference protocol's rows, in its order, with the metric each one shows.
PROTOCOL_ROWS = (
    ("Total Time", "total_s"),
    ("Load Time", "load_s"),
    ("Init Gen Time", "init_gen_s"),
    ("Avg Gen Time", "avg_gen_s"),
)


def protocol_table(variant_record: VariantRecord) -> str:
    """The variant's runs in the reference protocol's shape: seconds, one column per run.

    '-' where a run has no such figure (Load, Init Gen and Total exist for the run that loaded).
    """
    runs = variant_record.runs
    header = ["Metric", *(f"Run {run.run}" for run in runs)]
    rows = [[label, *(figures.seconds(getattr(run, metric)) for run in runs)] for label, metric in PROTOCOL_ROWS]
    return "\n".join(joined(fitted_tables(header, rows)))


# The name the CLI's run command still imports.
notes_table = protocol_table


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
    return " / ".join(figures.significant(value) for value in medians)


# (header, group): the columns of a group stay in one table when the summary is split to fit.
SUMMARY_COLUMNS = (
    ("variant", "variant"),
    ("kind", "generation"),
    ("avg gen ms (median)", "generation"),
    ("min ms", "generation"),
    ("mean ms", "generation"),
    ("95% CI ms", "generation"),
    ("CV", "generation"),
    ("IQR ms", "generation"),
    ("speed-up", "generation"),
    ("PSNR dB", "quality"),
    ("SSIM", "quality"),
    ("LPIPS", "quality"),
    ("init gen s", "load"),
    ("load s", "load"),
    ("total s", "load"),
    ("text / unet / vae / other ms", "stages"),
    ("peak GB", "memory"),
    ("kernel ms (CV)", "device"),
    ("kernels", "device"),
    ("GPU busy", "device"),
    ("TFLOP/s", "device"),
)
SUMMARY_HEADER = [name for name, _ in SUMMARY_COLUMNS]
SUMMARY_GROUPS = [group for _, group in SUMMARY_COLUMNS]
# Figures only a CUDA device gives: on another device their columns say so in one line, not in every cell.
GPU_ONLY = ("peak GB", "kernel ms (CV)", "kernels", "GPU busy", "TFLOP/s")
NO_CUDA = "no CUDA device: measured on a GPU only"


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
        figures.milliseconds(gen.median),
        figures.milliseconds(gen.minimum),
        figures.milliseconds(gen.mean),
        f"{figures.milliseconds(gen.ci_low)} – {figures.milliseconds(gen.ci_high)}",
        figures.percent(gen.cv),
        figures.milliseconds(gen.iqr),
        figures.ratio(speed_up, "x"),
        format_psnr(psnr_values),
        *quality_cells(record),
        figures.seconds(median_of(record, "init_gen_s")),
        figures.seconds(median_of(record, "load_s")),
        figures.seconds(median_of(record, "total_s")),
        stage_split(record),
        figures.gigabytes(max(peaks)) if peaks else "-",
        *device_cells(device_summary(record.runs)),
    ]


def measured_without_cuda(result_set: ResultSet, device_reasons: list[str]) -> bool:
    """Whether the result set was measured on a device other than CUDA (settings, else the recorded reasons)."""
    device = str(result_set.settings.get("resolved_device") or result_set.settings.get("device") or "")
    if device.startswith("cuda"):
        return False
    if device.startswith(("cpu", "mps", "xpu")):
        return True
    return bool(device_reasons) and all(reason.startswith("cpu") for reason in device_reasons)


def why_dropped(result_set: ResultSet, columns: list[str], device_reasons: list[str]) -> dict[str, list[str]]:
    """The dropped columns grouped by why they are empty."""
    without_cuda = measured_without_cuda(result_set, device_reasons)
    reasons: dict[str, list[str]] = {}
    for name in columns:
        if name in GPU_ONLY and without_cuda:
            why = NO_CUDA
        elif name in GPU_ONLY[1:] and device_reasons:
            why = "; ".join(device_reasons)
        elif name == "peak GB":
            why = "no peak GPU memory recorded"
        elif name == "LPIPS" and lpips_reasons(result_set):
            why = "; ".join(lpips_reasons(result_set))
        else:
            why = "no variant has a value"
        reasons.setdefault(why, []).append(name)
    return reasons


def summary_table(result_set: ResultSet) -> str:
    """Every variant x metric, fitted to the terminal; below it, what was left out and each failure's reason.

    Statistics of avg gen are over all timed generations; columns that no measured variant fills
    are left out with one line saying why; a table still too wide is split, each part led by the
    variant column.
    """
    baseline = result_set.variant("baseline")
    baseline_median = summarize(baseline.samples("gen_s")).median if baseline and baseline.ok else math.nan
    rows = [summary_row(record, baseline_median) for record in result_set.variants]
    ran = [record for record in result_set.variants if record.ok]
    device_reasons = sorted({reason for record in ran if (reason := device_summary(record.runs).not_applicable)})
    dropped = empty_columns(
        SUMMARY_HEADER, [row for row, record in zip(rows, result_set.variants, strict=True) if record.ok]
    )
    header, kept_rows = without(SUMMARY_HEADER, rows, dropped)
    groups = [group for name, group in SUMMARY_COLUMNS if name not in dropped]
    lines = joined(fitted_tables(header, kept_rows, groups))
    notes = [dropped_line(why_dropped(result_set, dropped, device_reasons))] if dropped else []
    notes += random_weights_notes(result_set) + gpu_state_notes(result_set) + host_state_notes(result_set)
    notes += [f"- {record.variant} {record.status}: {record.reason}" for record in result_set.variants if not record.ok]
    notes += [f"- {record.variant}: {record.note}" for record in result_set.variants if record.note]
    if not set(GPU_ONLY[1:]) <= set(dropped):
        # Some variants have device signals and some not: those without say why.
        notes += [f"- device signals n/a: {reason}" for reason in device_reasons]
    return "\n".join(lines + (["", *wrapped(notes)] if notes else []))


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


def unfinished(result_set: ResultSet) -> list[str]:
    """The variants a partial result set lacks, then those cut between runs with the runs they kept."""
    runs = result_set.settings.get("runs")
    cut = [f"{record.variant} ({len(record.runs)} of {runs} runs)" for record in result_set.variants if record.partial]
    return [*result_set.not_measured, *cut]


def measuring_summary(result_set: ResultSet) -> str:
    """The matrix's measuring time, summed over variants (one GPU's share of the wall clock); "" if none recorded."""
    timed = [record.measure_s for record in result_set.variants if record.measure_s is not None]
    if not timed:
        return ""
    resumed = result_set.settings.get("resumed_from")
    where = f" (resumed: measured since {resumed})" if resumed else ""
    return f"measuring time: {sum(timed):.0f} s over {len(timed)} variant(s), summed per variant{where}"


# The settings keys of a session budget (``measure.session_budget``): what a session's measuring was given and took.
SESSION_BUDGET_KEYS = ("session_budget", "session_elapsed_s", "session_overrun_s")


def session_budget_summary(result_set: ResultSet) -> str:
    """Whether the session budget held, and by how much it was passed if not; "" without a session budget."""
    values = [result_set.settings.get(key) for key in SESSION_BUDGET_KEYS]
    numbers = [float(value) for value in values if isinstance(value, (int, float)) and not isinstance(value, bool)]
    if len(numbers) < len(SESSION_BUDGET_KEYS):
        return ""  # no session budget, or a file that does not record its outcome
    budget, elapsed, overrun = numbers
    if overrun > 0:
        return (
            f"session budget: {budget:g} s, passed by {overrun:.1f} s (measuring took {elapsed:.1f} s): only timed "
            "rounds are cut short, never a load, a compile, a profiled pass or a variant's minimum rounds"
        )
    return f"session budget: {budget:g} s, held (measuring took {elapsed:.1f} s)"


def markdown_report(result_set: ResultSet) -> str:
    """The whole results.md: header, summary table, then the reference protocol's table per measured variant."""
    settings = result_set.settings
    size = settings.get("image_size") or settings.get("size") or "auto"
    prompts = settings.get("prompts") or []
    partial = partial_description(result_set.partial, unfinished(result_set))
    measuring = measuring_summary(result_set)
    session = session_budget_summary(result_set)
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
        *([f"- {session}"] if session else []),
        f"- avg gen statistics over every timed generation of every run (per image); 95% CI: {CI_METHOD}; "
        "speed-up = baseline median / variant median; PSNR, SSIM (mean) and LPIPS: worst run against the "
        "baseline's images for the same prompts and seeds; stages are medians over runs, ms per image",
        "- device signals from untimed profiled passes: kernel ms = the GPU's summed kernel time per image "
        "(median, CV over profiled calls), kernels = launches per image, GPU busy = kernel time / wall "
        "median, TFLOP/s = matrix FLOPs per image / kernel time",
        "",
        "## Summary",
        "",
        summary_table(result_set),
        *gpu_state_section(result_set),
        "",
        *serving_section(result_set),
    ]
    for record in result_set.variants:
        lines += ["", f"## {record.variant} ({record.kind})", ""]
        if record.runs:
            lines.append(protocol_table(record))
        if not record.ok or record.reason:
            lines += ["", f"{record.status}: {record.reason}"]
    return "\n".join(lines) + "\n"


class ReportFiles(dict[str, Path]):
    """The files ``write_reports`` wrote, by kind ("json", "markdown", "chart"), and ``chart_failure``: why
    results.png was not drawn, in a few words ("" where it was, or was not asked for)."""

    chart_failure = ""


def write_reports(
    result_set: ResultSet, folder: str | os.PathLike[str], include_json: bool = True, include_chart: bool = True
) -> ReportFiles:
    """Write results.json, results.md and results.png into the folder (each atomically); return their paths.

    ``include_chart`` False leaves results.png out: matplotlib's import and the drawing cost a process about
    half a second on the two-core CPU host (0.42-0.53 s in three processes), spent for nothing where only
    results.json is read (``run --no-chart``). A chart that cannot be drawn (``chart.chart_or_failure``) is left
    out too, saying why, and never costs the other files: they hold the measurements.
    """
    target = Path(folder)
    target.mkdir(parents=True, exist_ok=True)
    written = ReportFiles()
    if include_json:
        written["json"] = save_results(result_set, target / "results.json", derived=serving_block)
    written["markdown"] = write_atomically(target / "results.md", markdown_report(result_set))
    if include_chart:
        from pytest_sdxl.reports.chart import chart_or_failure

        png, written.chart_failure = chart_or_failure(result_set)
        if written.chart_failure:
            # An earlier chart left beside these files would show other figures than theirs.
            (target / "results.png").unlink(missing_ok=True)
        else:
            written["chart"] = write_atomically(target / "results.png", png)
    return written


def session_summary_lines(result_set: ResultSet) -> list[str]:
    """The pytest plugin's terminal section: the summary, then the reference protocol's table of every variant."""
    settings = result_set.settings
    size = settings.get("image_size") or settings.get("size") or "auto"
    prompts = settings.get("prompts") or []
    lines = [
        *wrapped(
            [
                f"model {settings.get('model')}, {size}x{size}, {settings.get('steps')} step(s), "
                f"1 + {max(len(prompts) - 1, 0)} prompts; Load, Init Gen and Total exist for Run 1 only (the "
                "pipeline is loaded and warmed once), each run is a block of benchmark rounds"
            ]
        ),
        *filter(None, [session_budget_summary(result_set)]),
        "",
        *summary_table(result_set).splitlines(),
        "",
        "latency per image and energy (p99 needs 100 timed calls)",
        *serving_table(result_set),
        *gpu_state_section(result_set, heading="GPU state per run"),
    ]
    for record in result_set.variants:
        if record.runs:
            lines += ["", f"{record.variant} ({record.kind})", *protocol_table(record).splitlines()]
    return lines
