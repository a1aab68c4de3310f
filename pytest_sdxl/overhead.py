"""What the harness costs: avg gen timed by the protocol's own loop against a raw loop, side by side.

One pipeline, one process, three ways of timing the same generations, in rotating order each
round so drift and warm-up hit all three alike:

- ``raw``: a plain loop of the pipeline calls with one synchronization at each end (the truth);
- ``protocol``: ``protocol.time_generations`` with the stage timer attached (what ``run`` reports);
- ``detached``: the same loop with the stage timer detached.

The ratios protocol / raw (the harness's whole cost) and protocol / detached (the stage timer's
cost) are medians of the per-round ratios, with a 95 % interval of the ratio of geometric means.
"""

from __future__ import annotations

import statistics
import time
from dataclasses import asdict, dataclass, field
from typing import Any

from pytest_sdxl.statistics import RatioEstimate, ratio_interval, summarize
from pytest_sdxl.variants import Composition

MODES = ("raw", "protocol", "detached")


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
        data["ratios"] = {
            "protocol_over_raw": self.paired_ratio("protocol", "raw"),
            "detached_over_raw": self.paired_ratio("detached", "raw"),
            "attached_over_detached": self.paired_ratio("protocol", "detached"),
        }
        return data


def raw_pass(pipeline: Any, groups: list[tuple[list[str], list[int]]]) -> float:
    """Seconds per image of a plain loop of the pipeline calls, synchronized only at both ends."""
    import torch

    from pytest_sdxl.devices import synchronize

    images = sum(len(prompts) for prompts, _ in groups)
    synchronize(pipeline.device)
    start = time.perf_counter()
    for prompts, seeds in groups:
        pipeline.call(prompts, [torch.Generator("cpu").manual_seed(seed) for seed in seeds])
    synchronize(pipeline.device)
    return (time.perf_counter() - start) / images


def measure_overhead(settings: Any, composition: Composition, rounds: int = 10, warmup: int = 3) -> OverheadResult:
    """Time the same generations three ways, ``rounds`` times each, in one process."""
    from pytest_sdxl.assembly import VariantPipeline
    from pytest_sdxl.protocol import check_prompt_count, seeds_for, time_generations, timed_groups
    from pytest_sdxl.sources import components_for, image_size_for
    from pytest_sdxl.timing import StageTimer, SyncClock

    check_prompt_count(settings)
    components = components_for(settings)
    pipeline = VariantPipeline(components, composition, image_size_for(settings, components), settings.steps)
    try:
        groups = timed_groups(composition, list(settings.prompts), seeds_for(settings))
        clock = SyncClock(components.device)
        timer = StageTimer(pipeline.pipe, components.device)
        result = OverheadResult(
            composition.id, settings.model, str(components.device), sum(len(group[0]) for group in groups)
        )

        def protocol_pass(attached: bool) -> float:
            gen_s, _ = time_generations(pipeline, groups, clock, timer, stage_timer=attached)
            timer.read()  # drop the marks, as a run does once at its end
            return statistics.fmean(gen_s)

        passes = {"raw": lambda: raw_pass(pipeline, groups), "protocol": lambda: protocol_pass(True)}
        passes["detached"] = lambda: protocol_pass(False)
        for _ in range(warmup):
            for mode in MODES:
                passes[mode]()
        for round_index in range(rounds):
            rotation = round_index % len(MODES)
            for mode in MODES[rotation:] + MODES[:rotation]:
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
    for numerator, denominator, meaning in (
        ("protocol", "raw", "harness cost (stage timer attached)"),
        ("detached", "raw", "harness cost without the stage timer"),
        ("protocol", "detached", "stage timer attached vs detached"),
    ):
        estimate = result.interval(numerator, denominator)
        lines.append(
            f"  {numerator}/{denominator}: {result.paired_ratio(numerator, denominator):.4f} "
            f"(median of paired rounds; geometric-mean ratio {estimate.ratio:.4f}, "
            f"95% CI {estimate.low:.4f} – {estimate.high:.4f})  {meaning}"
        )
    return "\n".join(lines)
