"""What the harness costs: the measurement core's timed loop against a raw loop, side by side.

One pipeline, one process, two ways of timing the same generations, in alternating order each
round so drift and warm-up hit both alike:

- ``raw``: a bare loop of the pipeline calls with one synchronization at each end (the truth);
- ``core``: ``core.TimedLoop`` (what ``run``, the plugin and asv report).

The ratio core / raw (the harness's whole cost) is the median of the per-round ratios, with a
95 % interval of the ratio of geometric means. The stage split and the device signals come from
untimed passes after the timed ones, so they cost the timed loop nothing.
"""

from __future__ import annotations

import statistics
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from pytest_sdxl.analysis.stats import RatioEstimate, ratio_interval, summarize
from pytest_sdxl.variants.registry import Composition

if TYPE_CHECKING:
    from pytest_sdxl.settings import Settings

MODES = ("raw", "core")


@dataclass
class OverheadResult:
    """Per-image milliseconds of each mode, one sample per round."""

    variant: str
    model: str
    device: str
    images_per_round: int
    samples_ms: dict[str, list[float]] = field(default_factory=lambda: {mode: [] for mode in MODES})

    def paired_ratio(self, numerator: str, denominator: str) -> float:
        pairs = zip(self.samples_ms[numerator], self.samples_ms[denominator], strict=True)
        return statistics.median(top / bottom for top, bottom in pairs)

    def interval(self, numerator: str, denominator: str) -> RatioEstimate:
        return ratio_interval(self.samples_ms[denominator], self.samples_ms[numerator])

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["ratios"] = {"core_over_raw": self.paired_ratio("core", "raw")}
        return data


def measure_overhead(settings: Settings, composition: Composition, rounds: int = 10, warmup: int = 3) -> OverheadResult:
    """Time the same generations both ways, ``rounds`` times each, in one process."""
    from pytest_sdxl.measure.calls import images_in, seeds_for, timed_groups, warm_up
    from pytest_sdxl.measure.core import TimedLoop, raw_round
    from pytest_sdxl.measure.protocol import check_prompt_count
    from pytest_sdxl.pipelines.sources import components_for, image_size_for
    from pytest_sdxl.variants.assembly import VariantPipeline

    check_prompt_count(settings)
    components = components_for(settings)
    pipeline = VariantPipeline(components, composition, image_size_for(settings, components), settings.steps)
    try:
        groups = timed_groups(composition, list(settings.prompts), seeds_for(settings))
        loop = TimedLoop(pipeline, groups)
        result = OverheadResult(composition.id, settings.model, str(components.device), images_in(groups))
        passes = {"raw": lambda: raw_round(pipeline, groups), "core": lambda: statistics.fmean(loop.round())}
        for _ in range(warmup):
            warm_up(pipeline, groups)
        for round_index in range(rounds):
            order = MODES if round_index % 2 == 0 else MODES[::-1]
            for mode in order:
                result.samples_ms[mode].append(passes[mode]() * 1000)
        return result
    finally:
        pipeline.close()


def overhead_report(result: OverheadResult) -> str:
    """A short text report: per-mode statistics and the ratios with their intervals."""
    lines = [
        f"harness overhead: {result.variant} on {result.model} ({result.device}), "
        f"{len(result.samples_ms['raw'])} rounds of {result.images_per_round} images, ms per image",
        "",
    ]
    for mode in MODES:
        summary = summarize(result.samples_ms[mode])
        lines.append(
            f"  {mode:<9} median {summary.median:9.3f}  mean {summary.mean:9.3f}  CV {summary.cv * 100:5.1f} %  "
            f"95% CI {summary.ci_low:.3f} – {summary.ci_high:.3f}"
        )
    lines.append("")
    for numerator, denominator, meaning in (("core", "raw", "harness cost of the measurement core's timed loop"),):
        estimate = result.interval(numerator, denominator)
        lines.append(
            f"  {numerator}/{denominator}: {result.paired_ratio(numerator, denominator):.4f} "
            f"(median of paired rounds; geometric-mean ratio {estimate.ratio:.4f}, "
            f"95% CI {estimate.low:.4f} – {estimate.high:.4f})  {meaning}"
        )
    return "\n".join(lines)
