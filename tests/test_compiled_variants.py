"""Every torch.compile variant on random:tiny (CPU), compiled for real: what it compiles, and the baseline's images.

The compiles share one module, in this order, because each one after the first reuses what torch
built for the same model: compile_unet compiles the UNet exactly as compile_pipeline does (the
same shared module, mode and fullgraph), so torch's compiled code for it is already there, and
max-autotune starts from the graphs inductor already lowered. On a 2-core CPU compile_unet then
takes under a second instead of about a minute and a half, compile_max_autotune about half its
minute. What the variants compile without running them (and compile_regions' private UNet) is
checked in tests/test_state_of_the_art_variants.py and tests/test_variant_images.py, which leave
every compiled variant's images to this module.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from pytest_sdxl.pipelines.images import max_abs_difference
from pytest_sdxl.pipelines.sources import Components
from pytest_sdxl.variants import compilation, pipeline_graph
from pytest_sdxl.variants.assembly import VariantPipeline
from pytest_sdxl.variants.registry import REGISTRY, parse
from pytest_sdxl.variants.unet_wrappers import CallReplacedUNet

SIZE = 64
PROMPTS = ["a lighthouse at dusk", "an astronaut riding a horse"]
SEEDS = [21, 22]
# The largest pixel difference (images in [0, 1]) an exact variant may make: a quarter of one 8-bit level.
EXACT_TOLERANCE = 1e-3
COMPILED_VARIANTS = {"compile_pipeline", "compile_unet", "compile_max_autotune", "compile_kernels", "compile_regions"}
OptimizedModule = torch._dynamo.eval_frame.OptimizedModule

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def baseline_images(components: Components) -> np.ndarray:
    return VariantPipeline(components, parse("baseline"), SIZE).generate(PROMPTS, SEEDS)


def test_every_compiled_variant_that_runs_on_a_cpu_is_checked_here() -> None:
    compiled = {
        name
        for name, variant in REGISTRY.items()
        if name.startswith("compile_") and not variant.unmet_requirements("cpu", "float32")
    }
    assert compiled == COMPILED_VARIANTS


@pytest.mark.slow
def test_compile_pipeline_compiles_every_model_and_keeps_the_images(
    components: Components, baseline_images: np.ndarray
) -> None:
    pipeline = VariantPipeline(components, parse("compile_pipeline"), SIZE)
    for module in (pipeline.pipe.unet, pipeline.pipe.vae.decoder):
        assert isinstance(module, OptimizedModule)
    for name in ("text_encoder", "text_encoder_2"):
        wrapper = getattr(pipeline.pipe, name)
        # The compiled encoder behind a wrapper that clones its outputs (CUDA graph trees reuse them).
        assert isinstance(wrapper, CallReplacedUNet) and wrapper.unet is components.modules[name]
        captured = [cell.cell_contents for cell in wrapper.replacement.__closure__]
        assert any(isinstance(item, OptimizedModule) for item in captured)
    assert not isinstance(components.modules["vae"].decoder, OptimizedModule)
    assert max_abs_difference(baseline_images, pipeline.generate(PROMPTS, SEEDS)) <= EXACT_TOLERANCE


@pytest.mark.slow
def test_compile_unet_compiles_only_the_unet_and_keeps_the_images(
    components: Components, baseline_images: np.ndarray
) -> None:
    pipeline = VariantPipeline(components, parse("compile_unet"), SIZE)
    assert isinstance(pipeline.pipe.unet, OptimizedModule)
    assert pipeline.pipe.unet._orig_mod is components.modules["unet"]
    for name in ("text_encoder", "text_encoder_2"):
        assert getattr(pipeline.pipe, name) is components.modules[name]
    assert not isinstance(pipeline.pipe.vae.decoder, OptimizedModule)
    assert max_abs_difference(baseline_images, pipeline.generate(PROMPTS, SEEDS)) <= EXACT_TOLERANCE


@pytest.mark.slow
def test_compile_max_autotune_compiles_the_unet_under_its_budget_and_keeps_the_images(
    components: Components, baseline_images: np.ndarray
) -> None:
    pipeline = VariantPipeline(components, parse("compile_max_autotune"), SIZE)
    unet = pipeline.pipe.unet
    assert isinstance(unet, CallReplacedUNet) and unet.unet is components.modules["unet"]
    assert isinstance(unet.replacement, compilation.BudgetedCompile)
    assert max_abs_difference(baseline_images, pipeline.generate(PROMPTS, SEEDS)) <= EXACT_TOLERANCE


@pytest.mark.slow
def test_compile_kernels_compiles_every_model_without_graphs_and_keeps_the_images(
    components: Components, baseline_images: np.ndarray
) -> None:
    """Its models compiled as they are; their images the baseline's, called directly and as graph_pipeline calls them.

    The second half is what tiny_vae+compile_kernels+graph_pipeline captures on a GPU, run uncaptured:
    the compiled models inside the graphed generation. One compile serves both halves.
    """
    pipeline = VariantPipeline(components, parse("compile_kernels"), SIZE)
    pipe = pipeline.pipe
    for module in (pipe.text_encoder, pipe.text_encoder_2, pipe.unet, pipe.vae.decoder):
        # Compiled as they are: no output-cloning wrapper, since no CUDA graph tree reuses their outputs.
        assert isinstance(module, OptimizedModule)
    assert not isinstance(components.modules["vae"].decoder, OptimizedModule)
    assert max_abs_difference(baseline_images, pipeline.generate(PROMPTS, SEEDS)) <= EXACT_TOLERANCE
    graphs = pipeline_graph.replace_call(pipe, capture=False)
    assert isinstance(pipeline.pipe.unet, OptimizedModule)
    images = pipeline.generate(PROMPTS, SEEDS)
    assert graphs.replays == len(PROMPTS)
    assert max_abs_difference(baseline_images, images) <= EXACT_TOLERANCE


@pytest.mark.slow
def test_compile_regions_keeps_the_images(components: Components, baseline_images: np.ndarray) -> None:
    pipeline = VariantPipeline(components, parse("compile_regions"), SIZE)
    assert max_abs_difference(baseline_images, pipeline.generate(PROMPTS, SEEDS)) <= EXACT_TOLERANCE
