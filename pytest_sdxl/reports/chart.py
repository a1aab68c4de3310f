"""The results chart: average generation time per variant, stacked by stage, the baseline marked.

Drawn with matplotlib's object API on the Agg canvas (no pyplot, no global backend switch), so
it works on a headless machine and leaves a user's matplotlib state alone. The chart is the one
optional file of a report: ``chart_or_failure`` gives why it could not be drawn instead of raising.
"""

from __future__ import annotations

import io
import math

from pytest_sdxl.analysis.stats import summarize
from pytest_sdxl.results.records import STAGE_KEYS, VariantRecord
from pytest_sdxl.results.schema import ResultSet

STAGE_LABELS = {"text_encode_ms": "text encode", "unet_ms": "UNet", "vae_decode_ms": "VAE decode", "other_ms": "other"}
STAGE_COLOURS = {"text_encode_ms": "#4c72b0", "unet_ms": "#dd8452", "vae_decode_ms": "#55a868", "other_ms": "#8c8c8c"}


def stage_medians(record: VariantRecord) -> dict[str, float]:
    """Median ms per image of each stage, scaled so they add up to the median avg gen."""
    total_ms = summarize(record.samples("gen_s")).median * 1000
    medians = {key: summarize(samples).median for key in STAGE_KEYS if (samples := record.samples(key))}
    if len(medians) != len(STAGE_KEYS):
        return {"other_ms": total_ms}
    stage_sum = math.fsum(medians.values())
    # Medians of parts need not add up to the median of the whole: scale the parts to the whole.
    scale = total_ms / stage_sum if stage_sum > 0 else 1.0
    return {key: max(value, 0.0) * scale for key, value in medians.items()}


# How much of a drawing failure's message a report's line repeats: a few words, not a traceback.
FAILURE_CHARACTERS = 100


def chart_or_failure(result_set: ResultSet) -> tuple[bytes, str]:
    """The chart's PNG and "", or b"" and why it could not be drawn, in a few words.

    Any exception: matplotlib missing or broken, or left half imported by a Ctrl-C that landed in its import (an
    import by torchmetrics during the first PSNR, say), which then fails with AttributeError or KeyError. None of
    that may cost the files that hold the measurements, written beside the chart.
    """
    try:
        return chart_png(result_set), ""
    except Exception as error:
        said = f"{type(error).__name__}: {str(error).strip().splitlines()[0]}" if str(error).strip() else repr(error)
        return b"", said if len(said) <= FAILURE_CHARACTERS else said[: FAILURE_CHARACTERS - 3] + "..."


def chart_png(result_set: ResultSet) -> bytes:
    """A PNG of avg gen ms per image per measured variant, stacked by stage, baseline marked."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    records = [record for record in result_set.variants if record.ok]
    figure = Figure(figsize=(9, 1.8 + 0.45 * max(len(records), 1)), dpi=110)
    FigureCanvasAgg(figure)
    axes = figure.add_subplot(1, 1, 1)
    labels = [record.variant for record in records]
    positions = list(range(len(records)))[::-1]
    drawn: set[str] = set()
    for position, record in zip(positions, records, strict=True):
        left = 0.0
        for key, value in stage_medians(record).items():
            axes.barh(
                position,
                value,
                left=left,
                color=STAGE_COLOURS[key],
                label=None if key in drawn else STAGE_LABELS[key],
                edgecolor="white",
                linewidth=0.5,
            )
            drawn.add(key)
            left += value
        axes.text(left, position, f" {left:.1f}", va="center", fontsize=8)
    baseline = result_set.variant("baseline")
    if baseline is not None and baseline.ok:
        baseline_ms = summarize(baseline.samples("gen_s")).median * 1000
        axes.axvline(baseline_ms, color="black", linestyle="--", linewidth=1, label=f"baseline {baseline_ms:.1f} ms")
    axes.set_yticks(positions)
    axes.set_yticklabels(labels)
    for tick in axes.get_yticklabels():
        if tick.get_text() == "baseline":
            tick.set_fontweight("bold")
    axes.set_xlabel("avg gen time per image (ms, median), stacked by stage")
    settings = result_set.settings
    gpu = result_set.machine.get("gpu") or result_set.machine.get("cpu") or ""
    axes.set_title(f"{settings.get('model')} on {gpu}", fontsize=10)
    if not records:
        axes.text(0.5, 0.5, "no variant measured", ha="center", va="center", transform=axes.transAxes)
    else:
        # Below the axes, so it never hides a bar.
        axes.legend(loc="upper center", bbox_to_anchor=(0.5, -0.18), ncol=5, fontsize=8, frameon=False)
    axes.margins(x=0.15)
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return buffer.getvalue()
