"""What the ``tune`` search found: the ranked table, the two choices, the chart, and tune.json/.md/.png.

The chart is drawn as ``reports.chart`` draws, with matplotlib's object API on the Agg canvas.
"""

from __future__ import annotations

import io
import json
import math
from pathlib import Path
from typing import Any

from pytest_sdxl.analysis.bottleneck import what_holds_back
from pytest_sdxl.results.schema import encode_float, write_atomically
from pytest_sdxl.tune.candidates import ESTIMATOR, RANDOM_WEIGHTS_NOTE, THROUGHPUT, Candidate, TuneResult

# Lines on the chart: more than a few compositions make it unreadable.
CHART_LINES = 4


def number(value: float | None, digits: int = 2, unit: str = "") -> str:
    if value is None or math.isnan(value):
        return "n/a"
    return f"{value:.{digits}f}{unit}"


def psnr_cell(candidate: Candidate) -> str:
    """PSNR, SSIM (and LPIPS where measured) against the baseline's images: '27.1 dB, SSIM 0.912'."""
    if candidate.quality == "reference":
        return "reference"
    if candidate.quality == RANDOM_WEIGHTS_NOTE:
        return "not meaningful"
    measurement = candidate.measurement
    if measurement is None or measurement.psnr_db is None:
        return "n/a"
    psnr = "identical" if measurement.psnr_db == math.inf else f"{measurement.psnr_db:.1f} dB"
    ssim = "" if measurement.ssim is None or math.isnan(measurement.ssim) else f", SSIM {measurement.ssim:.3f}"
    lpips = "" if measurement.lpips is None else f", LPIPS {measurement.lpips:.3f}"
    return psnr + ssim + lpips


def kind_cell(candidate: Candidate) -> str:
    return RANDOM_WEIGHTS_NOTE if candidate.quality == RANDOM_WEIGHTS_NOTE else candidate.kind


def status_cell(candidate: Candidate) -> str:
    return candidate.status if not candidate.reason else f"{candidate.status}: {candidate.reason}"


def memory_cell(candidate: Candidate) -> str:
    memory = None if candidate.measurement is None else candidate.measurement.peak_gpu_mem_gb
    return number(memory, 2, " GB")


def kernel_cell(candidate: Candidate) -> str:
    return number(None if candidate.measurement is None else candidate.measurement.kernel_ms)


def ranked_table(result: TuneResult) -> str:
    lines = [
        "| rank | composition | kind | ms/image (batch 1) | kernel ms/image | quality vs baseline "
        "| peak GPU memory | status |",
        "|---:|---|---|---:|---:|---|---:|---|",
    ]
    for rank, candidate in enumerate(result.ranked(), start=1):
        shown_rank = str(rank) if candidate.ok else "-"
        lines.append(
            f"| {shown_rank} | {candidate.composition} | {kind_cell(candidate)} | {number(candidate.ms_per_image)} | "
            f"{kernel_cell(candidate)} | {psnr_cell(candidate)} | {memory_cell(candidate)} | {status_cell(candidate)} |"
        )
    return "\n".join(lines)


def throughput_table(result: TuneResult) -> str:
    rows = [item for item in result.candidates if item.phase == THROUGHPUT]
    if not rows:
        return ""
    lines = [
        "| composition | batch size | ms/image | images/s | kernel ms/image | quality vs baseline "
        "| peak GPU memory | status |",
        "|---|---:|---:|---:|---:|---|---:|---|",
    ]
    for candidate in sorted(rows, key=lambda item: (item.composition, item.batch_size)):
        lines.append(
            f"| {candidate.composition} | {candidate.batch_size} | {number(candidate.ms_per_image)} | "
            f"{number(candidate.images_per_s, 1)} | {kernel_cell(candidate)} | {psnr_cell(candidate)} | "
            f"{memory_cell(candidate)} | {status_cell(candidate)} |"
        )
    return "\n".join(lines)


def holds_back(candidate: Candidate) -> str:
    """``bottleneck.what_holds_back`` on a candidate's wall and kernel ms per image (tune keeps no stages)."""
    kernel = None if candidate.measurement is None else candidate.measurement.kernel_ms
    return what_holds_back(candidate.ms_per_image, kernel)


def choices(result: TuneResult) -> str:
    """The chosen composition at batch 1 and for throughput, and why the search stopped."""
    fastest, throughput = result.fastest(), result.best_throughput()
    lines = []
    if fastest is None:
        lines.append("fastest at batch 1: nothing measured")
    else:
        lines.append(f"fastest at batch 1: {fastest.composition} ({fastest.ms_per_image:.2f} ms/image)")
        lines.append(f"  what holds it back: {holds_back(fastest)}")
        best = result.measured_fastest()
        if best is not None and best is not fastest:
            lines.append(
                f"  ({best.composition} measured {best.ms_per_image:.2f} ms/image, within the "
                f"{result.options.margin:.0%} noise margin: the simpler composition is chosen)"
            )
    if throughput is not None:
        lines.append(
            f"highest throughput: {throughput.composition} at batch size {throughput.batch_size} "
            f"({throughput.images_per_s:.1f} images/s, {throughput.ms_per_image:.2f} ms/image)"
        )
        lines.append(f"  what holds it back: {holds_back(throughput)}")
        most = result.measured_best_throughput()
        if most is not None and most is not throughput:
            lines.append(
                f"  ({most.composition} at batch size {most.batch_size} measured {most.images_per_s:.1f} images/s, "
                f"within the {result.options.margin:.0%} noise margin: the simpler composition, then the smaller "
                "batch, is chosen)"
            )
    if result.throughput_note:
        lines.append(f"throughput: {result.throughput_note}")
    state = "search CUT SHORT" if result.cut_short else "search finished"
    lines.append(f"{state} after {result.elapsed_s:.1f} s: {result.stop_reason}")
    return "\n".join(lines)


def tune_markdown(result: TuneResult, header: str = "") -> str:
    options = result.options
    parts = ["# pytest-sdxl tune"]
    if header:
        parts.append(header)
    parts.append(
        f"Estimate: {ESTIMATOR}. Beam {options.beam}, noise margin {options.margin:.0%}, quality budget "
        f"{options.quality.describe()}, budget {options.budget_s:g} s, batch sizes "
        f"{','.join(map(str, options.batch_sizes))}."
    )
    parts.append(choices(result))
    parts.append("## Batch 1, ranked\n\n" + ranked_table(result))
    throughput = throughput_table(result)
    if throughput:
        parts.append("## Throughput by batch size\n\n" + throughput)
    if result.conflicts_avoided:
        parts.append("Never built (conflicting variants): " + ", ".join(result.conflicts_avoided))
    return "\n\n".join(parts) + "\n"


def series(result: TuneResult) -> dict[str, list[tuple[int, float]]]:
    """Per throughput composition, (batch size, ms/image) points, batch 1 from its batch-1 parent."""
    batch_one = {item.composition: item for item in result.candidates if item.phase != THROUGHPUT and item.ok}
    lines: dict[str, list[tuple[int, float]]] = {}
    for item in result.candidates:
        if item.phase != THROUGHPUT or not item.ok:
            continue
        points = lines.setdefault(item.composition, [])
        if not points and item.parent in batch_one:
            points.append((1, batch_one[item.parent].ms_per_image))
        points.append((item.batch_size, item.ms_per_image))
    if not lines:  # no throughput step: the fastest batch-1 compositions as points
        for item in [candidate for candidate in result.ranked() if candidate.ok][:CHART_LINES]:
            lines[item.composition] = [(1, item.ms_per_image)]
    best = sorted(lines, key=lambda name: min(ms for _, ms in lines[name]))[:CHART_LINES]
    return {name: sorted(lines[name]) for name in best}


def chart_png(result: TuneResult, title: str = "") -> bytes:
    """ms per image against batch size for the fastest few compositions."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(8, 4.5), dpi=110)
    FigureCanvasAgg(figure)
    axes = figure.add_subplot(1, 1, 1)
    drawn = series(result)
    for name, points in drawn.items():
        axes.plot([size for size, _ in points], [ms for _, ms in points], marker="o", label=name)
    sizes = sorted({size for points in drawn.values() for size, _ in points}) or [1]
    axes.set_xscale("log", base=2)
    axes.set_xticks(sizes)
    axes.set_xticklabels([str(size) for size in sizes])
    axes.set_xlabel("batch size (images per call)")
    axes.set_ylabel("ms per image (median of per-run minima)")
    axes.set_title(title or "pytest-sdxl tune", fontsize=10)
    if drawn:
        axes.legend(fontsize=8)
    else:
        axes.text(0.5, 0.5, "nothing measured", ha="center", va="center", transform=axes.transAxes)
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return buffer.getvalue()


def tune_json(result: TuneResult, settings: dict[str, Any], context: dict[str, Any] | None = None) -> str:
    """The result as JSON, with the settings and ``context`` (the conditions and machine ``--resume`` checks)."""
    document = result.as_dict()
    document["settings"] = settings
    document.update(context or {})
    return json.dumps(encode_float(document), indent=2) + "\n"


def write_tune_reports(
    result: TuneResult,
    folder: Path,
    settings: dict[str, Any],
    header: str = "",
    chart: bool = True,
    context: dict[str, Any] | None = None,
) -> list[Path]:
    """tune.json, tune.md and (with ``chart``) tune.png in ``folder``, each written atomically."""
    written = [
        write_atomically(folder / "tune.json", tune_json(result, settings, context)),
        write_atomically(folder / "tune.md", tune_markdown(result, header)),
    ]
    if chart:
        written.append(write_atomically(folder / "tune.png", chart_png(result, settings.get("model", ""))))
    return written
