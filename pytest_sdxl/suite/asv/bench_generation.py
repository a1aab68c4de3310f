"""Time of one generation: one image per variant, and one batched call per batch size.

asv times these in its own loop (several samples, two processes); on a shared machine they drift
with it, so the gate is ``bench_ratios``; these give the history in seconds.
"""

from __future__ import annotations

from typing import Any, ClassVar

from pytest_sdxl.suite.asv import common


class Generation:
    """Seconds to generate one image with each variant: one prompt, one pipeline call."""

    params: ClassVar[list[list[Any]]] = [common.suite_variants()]
    param_names: ClassVar[list[str]] = ["variant"]
    timeout = 600
    number = 1
    # setup already ran one generation, which pays for lazy initialization.
    warmup_time = 0.0

    def setup(self, variant: str) -> None:
        self.pipeline: Any = None
        self.prompts, self.seeds = common.prompts_and_seeds(1)
        self.pipeline = common.pipeline(variant)

    def teardown(self, variant: str) -> None:
        common.close(self.pipeline)

    def time_generate_image(self, variant: str) -> None:
        self.pipeline.generate(self.prompts, self.seeds)


class BatchGeneration:
    """Seconds for one batched pipeline call of ``batch_size`` prompts."""

    params: ClassVar[list[list[Any]]] = [common.batch_variants(), list(common.BATCH_SIZES)]
    param_names: ClassVar[list[str]] = ["variant", "batch_size"]
    timeout = 600
    number = 1
    warmup_time = 0.0

    def setup(self, variant: str, batch_size: int) -> None:
        self.pipeline: Any = None
        self.prompts, self.seeds = common.prompts_and_seeds(batch_size)
        self.pipeline = common.pipeline(variant, warm_prompts=batch_size)

    def teardown(self, variant: str, batch_size: int) -> None:
        common.close(self.pipeline)

    def time_generate_batch(self, variant: str, batch_size: int) -> None:
        self.pipeline.generate(self.prompts, self.seeds)
