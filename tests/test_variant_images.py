"""Every variant on random:tiny (CPU): exact ones reproduce the baseline's images, lossy ones give
finite images of the right shape, and each really changes what it claims to change.

Tolerance for exact variants: the largest pixel difference (images in [0, 1]) is at most 1e-3,
i.e. a quarter of one 8-bit level; on float32 CPUs the differences seen are below 1e-6.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
import torch

from pytest_sdxl.errors import ImageCheckError, VariantUnavailable
from pytest_sdxl.pipelines.images import max_abs_difference
from pytest_sdxl.pipelines.sources import Components, load_components
from pytest_sdxl.variants.assembly import VariantPipeline
from pytest_sdxl.variants.registry import REGISTRY, parse

EXACT_TOLERANCE = 1e-3
SIZE = 64
PROMPTS = ["a lighthouse at dusk", "an astronaut riding a horse", "a bowl of ramen"]
SEEDS = [11, 12, 13]

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def baseline_images(components: Components) -> np.ndarray:
    return VariantPipeline(components, parse("baseline"), SIZE).generate(PROMPTS, SEEDS)


def runs_on_cpu(name: str) -> bool:
    return not REGISTRY[name].unmet_requirements("cpu", "float32")


EXACT_ON_CPU = [name for name, variant in REGISTRY.items() if variant.kind == "exact" and runs_on_cpu(name)]
LOSSY_ON_CPU = [name for name, variant in REGISTRY.items() if variant.kind == "lossy" and runs_on_cpu(name)]
EXACT_COMPOSITIONS = [
    "batch+cached_embeds",
    "vae_slicing+batch",
    "trace_unet+cached_embeds+batch",
    "fused_qkv+channels_last",
]


def exact_params() -> Iterator[Any]:
    for name in EXACT_ON_CPU + EXACT_COMPOSITIONS:
        if name.startswith("compile_"):
            # tests/test_compiled_variants.py checks their images, beside what they compile, in one
            # module where each compile reuses what the one before built: minutes on a 2-core CPU.
            continue
        yield pytest.param(name, id=name)


@pytest.mark.parametrize("spec", exact_params())
def test_exact_variant_reproduces_the_baseline(spec: str, components: Components, baseline_images: np.ndarray) -> None:
    pipeline = VariantPipeline(components, parse(spec), SIZE)
    images = pipeline.generate(PROMPTS, SEEDS)
    assert images.shape == baseline_images.shape
    assert max_abs_difference(baseline_images, images) <= EXACT_TOLERANCE


def lossy_params() -> Iterator[Any]:
    for name in [*LOSSY_ON_CPU, "tiny_vae+batch+vae_slicing"]:
        # bf16 on a CPU: several seconds for three 64x64 images.
        yield pytest.param(name, marks=[pytest.mark.slow] if name == "bf16" else [], id=name)


@pytest.mark.parametrize("spec", lossy_params())
def test_lossy_variant_gives_finite_images_of_the_right_shape(spec: str, components: Components) -> None:
    images = VariantPipeline(components, parse(spec), SIZE).generate(PROMPTS, SEEDS)
    assert images.shape == (len(PROMPTS), SIZE, SIZE, 3)
    assert np.isfinite(images).all()
    assert images.min() >= 0.0 and images.max() <= 1.0


def count_calls(owner: Any, name: str, monkeypatch: pytest.MonkeyPatch) -> list[int]:
    calls = [0]
    original = getattr(owner, name)

    def counted(*arguments: Any, **keywords: Any) -> Any:
        calls[0] += 1
        return original(*arguments, **keywords)

    monkeypatch.setattr(owner, name, counted)
    return calls


def test_batch_makes_one_pipeline_call(components: Components, monkeypatch: pytest.MonkeyPatch) -> None:
    pipeline = VariantPipeline(components, parse("batch"), SIZE)
    calls = count_calls(pipeline, "call", monkeypatch)
    pipeline.generate(PROMPTS, SEEDS)
    assert calls[0] == 1
    one_by_one = VariantPipeline(components, parse("baseline"), SIZE)
    calls = count_calls(one_by_one, "call", monkeypatch)
    one_by_one.generate(PROMPTS, SEEDS)
    assert calls[0] == len(PROMPTS)


def test_cached_embeds_encodes_each_prompt_once(components: Components, monkeypatch: pytest.MonkeyPatch) -> None:
    pipeline = VariantPipeline(components, parse("cached_embeds"), SIZE)
    encodes = [0]
    handle = pipeline.pipe.text_encoder_2.register_forward_hook(lambda *_: encodes.__setitem__(0, encodes[0] + 1))
    try:
        pipeline.generate(PROMPTS, SEEDS)
        pipeline.generate(PROMPTS, SEEDS)
    finally:
        handle.remove()
    assert encodes[0] == len(PROMPTS)


def decoder_batch_sizes(pipeline: VariantPipeline) -> list[int]:
    """The batch size of every VAE decoder call while the pipeline generates PROMPTS."""
    sizes: list[int] = []
    handle = pipeline.pipe.vae.decoder.register_forward_hook(lambda _, inputs, __: sizes.append(len(inputs[0])))
    try:
        pipeline.generate(PROMPTS, SEEDS)
    finally:
        handle.remove()
    return sizes


def test_vae_slicing_decodes_one_image_at_a_time(components: Components) -> None:
    pipeline = VariantPipeline(components, parse("vae_slicing+batch"), SIZE)
    assert pipeline.pipe.vae.use_slicing
    assert decoder_batch_sizes(pipeline) == [1] * len(PROMPTS)
    assert decoder_batch_sizes(VariantPipeline(components, parse("batch"), SIZE)) == [len(PROMPTS)]


def test_vae_slicing_alone_decodes_as_the_baseline_does(components: Components) -> None:
    """One prompt per call: nothing to slice, so vae_slicing alone makes the baseline's decoder calls."""
    sliced = decoder_batch_sizes(VariantPipeline(components, parse("vae_slicing"), SIZE))
    assert sliced == decoder_batch_sizes(VariantPipeline(components, parse("baseline"), SIZE)) == [1] * len(PROMPTS)
    assert parse("vae_slicing").no_effect_reason().startswith("vae_slicing has no effect at batch 1")


def test_vae_tiling_really_tiles(components: Components, monkeypatch: pytest.MonkeyPatch) -> None:
    pipeline = VariantPipeline(components, parse("vae_tiling"), SIZE)
    tiled = count_calls(pipeline.pipe.vae, "tiled_decode", monkeypatch)
    pipeline.generate(PROMPTS[:1], SEEDS[:1])
    assert tiled[0] == 1


def test_the_tiny_vae_tiles_too(components: Components, monkeypatch: pytest.MonkeyPatch) -> None:
    """AutoencoderTiny sized its tiles' output by a constant that only taesdxl's depth matches: on another depth
    (this tiny model's) the blend failed with a size mismatch. The tiles are sized by the pipeline's own scale."""
    pipeline = VariantPipeline(components, parse("tiny_vae+vae_tiling"), SIZE)
    tiled = count_calls(pipeline.pipe.vae, "_tiled_decode", monkeypatch)
    images = pipeline.generate(PROMPTS[:1], SEEDS[:1])
    assert tiled[0] == 1
    assert images.shape[-3:-1] == (SIZE, SIZE) and np.isfinite(images).all()


def test_structural_changes(components: Components) -> None:
    fused = VariantPipeline(components, parse("fused_qkv"), SIZE).pipe.unet
    assert {type(processor).__name__ for processor in fused.attn_processors.values()} == {"FusedAttnProcessor2_0"}
    channels_last = VariantPipeline(components, parse("channels_last"), SIZE).pipe.unet
    assert channels_last.conv_in.weight.is_contiguous(memory_format=torch.channels_last)
    tome = VariantPipeline(components, parse("tome"), SIZE).pipe.unet
    assert any(hasattr(module, "_tome_info") for module in tome.modules())
    assert type(VariantPipeline(components, parse("tiny_vae"), SIZE).pipe.vae).__name__ == "AutoencoderTiny"
    fp16_vae = VariantPipeline(components, parse("fp16_vae"), SIZE).pipe.vae
    assert fp16_vae is not components.modules["vae"] and fp16_vae.config.force_upcast is False
    assert type(VariantPipeline(components, parse("compile_unet"), SIZE).pipe.unet).__name__ == "OptimizedModule"


def test_pinned_device_skips_diffusers_walk_for_offloading_hooks(
    components: Components, monkeypatch: pytest.MonkeyPatch
) -> None:
    from diffusers.hooks import group_offloading

    walked: list[str] = []  # the class of each module diffusers walks for group-offloading hooks
    original = group_offloading._get_group_onload_device

    def counted(module: Any) -> Any:
        walked.append(type(module).__name__)
        return original(module)

    monkeypatch.setattr(group_offloading, "_get_group_onload_device", counted)
    pinned = VariantPipeline(components, parse("pinned_device"), SIZE)
    pinned.generate(PROMPTS[:1], SEEDS[:1])
    assert pinned.pipe._execution_device == components.device
    # The pipeline's own walk, the one over every component, is gone: the UNet's modules are never walked.
    # (diffusers 0.42 still walks the text encoders and the VAE, one module at a time, on its own.)
    assert "UNet2DConditionModel" not in walked
    walked.clear()
    baseline = VariantPipeline(components, parse("baseline"), SIZE)
    assert type(baseline.pipe).__name__ == "StableDiffusionXLPipeline"  # the pin stays on its pipeline
    baseline.generate(PROMPTS[:1], SEEDS[:1])
    assert "UNet2DConditionModel" in walked, "diffusers' call no longer walks the UNet: the pin has nothing to save"


def test_trace_unet_runs_the_trace(components: Components) -> None:
    pipeline = VariantPipeline(components, parse("trace_unet"), SIZE)
    pipeline.generate(PROMPTS[:2], SEEDS[:2])
    assert pipeline.pipe.unet.fast_calls == 2
    assert len(pipeline.pipe.unet.fast_paths) == 1, "one trace serves every call of the same shape"


def test_tome_changes_the_picture(components: Components, baseline_images: np.ndarray) -> None:
    images = VariantPipeline(components, parse("tome"), SIZE).generate(PROMPTS, SEEDS)
    assert max_abs_difference(baseline_images, images) > 0.0, "token merging merged nothing: a silent no-op"


def test_variants_never_change_the_shared_components(components: Components, baseline_images: np.ndarray) -> None:
    for name in [
        "vae_slicing",
        "vae_tiling",
        "fused_qkv",
        "channels_last",
        "tome",
        "trace_unet",
        "batch+cached_embeds",
    ]:
        VariantPipeline(components, parse(name), SIZE).generate(PROMPTS[:1], SEEDS[:1])
    unet, vae = components.modules["unet"], components.modules["vae"]
    assert not vae.use_slicing and not vae.use_tiling
    assert not any(hasattr(module, "_tome_info") for module in unet.modules())
    assert "FusedAttnProcessor2_0" not in {type(processor).__name__ for processor in unet.attn_processors.values()}
    assert unet.conv_in.weight.is_contiguous()
    again = VariantPipeline(components, parse("baseline"), SIZE).generate(PROMPTS, SEEDS)
    assert (again == baseline_images).all()


def test_upcast_vae_keeps_a_private_float32_vae() -> None:
    half = load_components("random:tiny", torch.device("cpu"), torch.bfloat16)
    pipeline = VariantPipeline(half, parse("upcast_vae"), SIZE)
    assert pipeline.pipe.vae.dtype == torch.float32
    assert half.modules["vae"].dtype == torch.bfloat16
    images = pipeline.generate(PROMPTS[:1], SEEDS[:1])
    baseline = VariantPipeline(half, parse("baseline"), SIZE).generate(PROMPTS[:1], SEEDS[:1])
    # bfloat16 decodes differ from float32 ones by a few 8-bit levels at most.
    assert max_abs_difference(baseline, images) < 0.05


def test_unmet_requirement_is_a_skip_reason(components: Components) -> None:
    with pytest.raises(VariantUnavailable, match="cuda_graph needs a CUDA GPU"):
        VariantPipeline(components, parse("cuda_graph"), SIZE)


@pytest.mark.parametrize("poison", [float("nan"), -10.0], ids=["nan", "black"])
def test_nan_or_black_images_fail_the_variant(
    poison: float, components: Components, monkeypatch: pytest.MonkeyPatch
) -> None:
    pipeline = VariantPipeline(components, parse("tiny_vae"), SIZE)
    vae = pipeline.pipe.vae
    original = vae.decode

    def poisoned(latents: torch.Tensor, *arguments: Any, **keywords: Any) -> Any:
        decoded = original(latents, *arguments, **keywords)
        return (torch.full_like(decoded[0], poison),)

    monkeypatch.setattr(vae, "decode", poisoned)
    with pytest.raises(ImageCheckError, match="tiny_vae: 1 of 1 images"):
        pipeline.generate(PROMPTS[:1], SEEDS[:1])
