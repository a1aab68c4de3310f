"""Ratios measured side by side in one process: the regression gate a drifting machine cannot blur.

A shared machine speeds up and slows down by more than the regressions worth catching, and it
does so between the two commits ``asv continuous`` compares. Timing two pipelines back to back,
round after round, in one process and keeping only their ratio cancels that drift: a ratio moves
when one side's code changed, not when the machine did. ``BatchOverOneByOne`` moves when only the
batch path gets slower (where batching once proved slower than a loop); ``VariantOverBaseline``
moves when a variant gets slower relative to the plain pipeline.
"""

from __future__ import annotations

from typing import Any, ClassVar

from pytest_sdxl.suite.asv import common
from pytest_sdxl.variants.registry import parse

# Four decimals: far finer than the ratio's noise, and readable in asv's tables.
RATIO_DIGITS = 4


class BatchAndOneByOne:
    """The two pipelines a batch ratio compares: the batch path and its one-by-one reference (no benchmark itself)."""

    # Class-level defaults, so that teardown closes what a setup stopped midway did build.
    batched: Any = None
    one_by_one: Any = None

    def setup(self, variant: str, batch_size: int) -> None:
        batched = common.with_batch(parse(variant)).id
        self.prompts, self.seeds = common.prompts_and_seeds(batch_size)
        self.batched = common.pipeline(batched, warm_prompts=batch_size)
        self.one_by_one = common.pipeline(variant)

    def teardown(self, variant: str, batch_size: int) -> None:
        common.close(self.batched, self.one_by_one)


class BatchOverOneByOne(BatchAndOneByOne):
    """Per-image time of one batched call over per-image time of one call per prompt (lower is better)."""

    params: ClassVar[list[list[Any]]] = [common.batch_bases(), list(common.BATCH_SIZES)]
    param_names: ClassVar[list[str]] = ["variant", "batch_size"]
    timeout = 600

    def track_batch_over_one_by_one(self, variant: str, batch_size: int) -> float:
        # Both sides make the same images, so their time ratio is their per-image time ratio.
        ratio = common.paired_ratio(self.batched, self.one_by_one, self.prompts, self.seeds)
        return round(ratio, RATIO_DIGITS)

    track_batch_over_one_by_one.unit = "ratio"  # type: ignore[attr-defined]


class HostNormalizedBatchOverOneByOne(BatchAndOneByOne):
    """``BatchOverOneByOne`` at one fixed host speed (``analysis.host_normalized``); GPU only (lower is better).

    A fresh process per commit runs on whatever the host's speed is then, and the batch path and its
    one-by-one reference are not equally host-bound, so the plain ratio moves with the host. Each
    side's kernel time (steady on a GPU) splits its wall time into GPU work and waiting for the host,
    and the waiting is restated at the host speed where the reference waits exactly its kernel time.
    """

    params: ClassVar[list[list[Any]]] = [common.batch_bases(), list(common.BATCH_SIZES)]
    param_names: ClassVar[list[str]] = ["variant", "batch_size"]
    timeout = 600

    def setup(self, variant: str, batch_size: int) -> None:
        if common.device().type != "cuda":
            # asv marks a benchmark skipped when its setup raises NotImplementedError.
            raise NotImplementedError("the host-normalized ratio needs a CUDA GPU's kernel time")
        super().setup(variant, batch_size)

    def track_host_normalized_batch_over_one_by_one(self, variant: str, batch_size: int) -> float:
        ratio = common.paired_host_normalized_ratio(self.batched, self.one_by_one, self.prompts, self.seeds)
        return round(ratio, RATIO_DIGITS)

    track_host_normalized_batch_over_one_by_one.unit = "ratio"  # type: ignore[attr-defined]


class VariantOverBaseline:
    """Per-image time of a variant over the baseline's, for the same prompts and seeds (lower is better)."""

    params: ClassVar[list[list[Any]]] = [[variant for variant in common.suite_variants() if variant != "baseline"]]
    param_names: ClassVar[list[str]] = ["variant"]
    timeout = 600

    def setup(self, variant: str) -> None:
        self.variant: Any = None
        self.baseline: Any = None
        self.prompts, self.seeds = common.prompts_and_seeds(common.RATIO_IMAGES)
        self.variant = common.pipeline(variant, warm_prompts=common.RATIO_IMAGES)
        self.baseline = common.pipeline("baseline")

    def teardown(self, variant: str) -> None:
        common.close(self.variant, self.baseline)

    def track_variant_over_baseline(self, variant: str) -> float:
        ratio = common.paired_ratio(self.variant, self.baseline, self.prompts, self.seeds)
        return round(ratio, RATIO_DIGITS)

    track_variant_over_baseline.unit = "ratio"  # type: ignore[attr-defined]
