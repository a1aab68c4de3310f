"""The calls of a measurement's round: which prompts go into which pipeline call, and the warm-up before timing.

A round is one pass over the prompts, one call per prompt or one call for all in batch mode; the side-by-side
reference (``side_by_side_reference``) makes the same images with its own calls (``same_calls``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from pytest_sdxl.settings import Settings
    from pytest_sdxl.variants.assembly import VariantPipeline
    from pytest_sdxl.variants.registry import Composition

Group = tuple[list[str], list[int]]


def seeds_for(settings: Settings) -> list[int]:
    """Prompt i uses seed + i, whatever the variant: the same prompt and seed give the same image."""
    return [settings.seed + index for index in range(len(settings.prompts))]


def call_groups(composition: Composition, prompts: Sequence[str], seeds: Sequence[int]) -> list[Group]:
    """The calls of one round over these prompts: one call per prompt, or one call for all in batch mode."""
    pairs = list(zip(prompts, seeds, strict=True))
    if composition.is_batch:
        return [([prompt for prompt, _ in pairs], [seed for _, seed in pairs])]
    return [([prompt], [seed]) for prompt, seed in pairs]


def timed_groups(composition: Composition, prompts: Sequence[str], seeds: Sequence[int]) -> list[Group]:
    """The timed calls of the reference protocol: every prompt after the first, which is the first generation."""
    return call_groups(composition, prompts[1:], seeds[1:])


def same_calls(composition: Composition, groups: Sequence[Group]) -> list[Group]:
    """The composition's calls over the same prompts and seeds as ``groups`` (a side-by-side reference's round)."""
    prompts = [prompt for group_prompts, _ in groups for prompt in group_prompts]
    seeds = [seed for _, group_seeds in groups for seed in group_seeds]
    return call_groups(composition, prompts, seeds)


def images_in(groups: Sequence[Group]) -> int:
    return sum(len(prompts) for prompts, _ in groups)


def call_functions(pipeline: VariantPipeline, groups: Sequence[Group]) -> list[Callable[[], int]]:
    """One function per call of the round, each returning the images it made (for the profiled passes)."""

    def make(prompts: list[str], seeds: list[int]) -> Callable[[], int]:
        def call() -> int:
            pipeline.generate(prompts, seeds, check=False)
            return len(prompts)

        return call

    return [make(prompts, seeds) for prompts, seeds in groups]


def side_by_side_reference(composition: Composition) -> Composition | None:
    """What a variant's wall time is measured against, round by round in the same process.

    A batch composition against the same composition one prompt per call (a slower batch path moves
    that ratio and nothing else), any other variant against the baseline; the baseline against nothing.
    Between two processes the machine moves more than within one, and the ratio cancels that.
    """
    from pytest_sdxl.variants.registry import compose

    if composition.is_batch:
        return compose(name for name in composition.names if name != "batch")
    return None if not composition.names else compose([])


def warm_up(pipeline: VariantPipeline, groups: Sequence[Group], calls_at_one: int = 0) -> tuple[np.ndarray, int]:
    """Warm every shape the timed calls use; returns the checked images of one round and the calls made.

    ``calls_at_one`` counts calls of one prompt made already (the protocol's first generation).
    """
    images = np.concatenate([pipeline.generate(prompts, seeds) for prompts, seeds in groups], axis=0)
    made = len(groups)
    seen: dict[int, int] = {1: calls_at_one}
    for prompts, _ in groups:
        seen[len(prompts)] = seen.get(len(prompts), 0) + 1
    wanted = pipeline.composition.warmup_calls
    for prompts, seeds in groups:
        while seen[len(prompts)] < wanted:
            pipeline.generate(prompts, seeds, check=False)
            seen[len(prompts)] += 1
            made += 1
    for shape, calls in seen.items():
        pipeline.warm_calls[shape] = max(pipeline.warm_calls.get(shape, 0), calls)
    return images, made


def warm_shapes(pipeline: VariantPipeline, groups: Sequence[Group]) -> None:
    """Untimed calls until every shape of ``groups`` has had ``warmup_calls`` warm-up calls in the pipeline's life.

    For the side-by-side reference, which checks no images: warm once, it is not warmed again for the next variant.
    A cached-embeddings pipeline also encodes each prompt it has not seen, so its timed calls hit the cache.
    """
    for prompts, seeds in groups:
        shape = len(prompts)
        cached = pipeline.embedding_cache
        unencoded = pipeline.composition.has("cached_embeds") and not all(prompt in cached for prompt in prompts)
        while unencoded or pipeline.warm_calls.get(shape, 0) < pipeline.composition.warmup_calls:
            pipeline.generate(prompts, seeds, check=False)
            pipeline.warm_calls[shape] = pipeline.warm_calls.get(shape, 0) + 1
            unencoded = False
