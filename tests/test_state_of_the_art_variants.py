"""Issue 9's variants on random:tiny (CPU) where they can run there, and their reasons where they cannot.

sdpa_math, bf16 and graph_pipeline's generation (run uncaptured) are checked against the baseline;
flash/cuDNN/efficient attention, the CUDA graph itself, fp8 and torchao need a GPU or a package. The
compiled variants' images (compile_pipeline, compile_kernels inside graph_pipeline's generation,
compile_regions) are checked in tests/test_compiled_variants.py, where the compiles share their work.
"""

from __future__ import annotations

import importlib.util
import time
from typing import Any

import numpy as np
import pytest
import torch

from pytest_sdxl.errors import VariantSpecError, VariantUnavailable
from pytest_sdxl.pipelines.images import max_abs_difference
from pytest_sdxl.pipelines.sources import Components
from pytest_sdxl.variants import compilation, pipeline_graph, quantization
from pytest_sdxl.variants import definition as variant_definition
from pytest_sdxl.variants.assembly import VariantPipeline
from pytest_sdxl.variants.registry import REGISTRY, parse
from pytest_sdxl.variants.unet_wrappers import clone_tensors

SIZE = 64
PROMPTS = ["a lighthouse at dusk", "an astronaut riding a horse"]
SEEDS = [21, 22]
EXACT_TOLERANCE = 1e-3
CPU_FLASH = "aten::_scaled_dot_product_flash_attention_for_cpu"
MATH = "aten::_scaled_dot_product_attention_math"

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def baseline_images(components: Components) -> np.ndarray:
    return VariantPipeline(components, parse("baseline"), SIZE).generate(PROMPTS, SEEDS)


def attention_operators(pipeline: VariantPipeline) -> set[str]:
    """The aten attention operators one generation runs, from torch's profiler."""
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as profile:
        pipeline.generate(PROMPTS[:1], SEEDS[:1])
    return {event.name for event in profile.events() if "attention" in event.name}


def test_sdpa_math_pins_the_attention_backend_and_keeps_the_images(
    components: Components, baseline_images: np.ndarray
) -> None:
    baseline_operators = attention_operators(VariantPipeline(components, parse("baseline"), SIZE))
    pinned = VariantPipeline(components, parse("sdpa_math"), SIZE)
    pinned_operators = attention_operators(pinned)
    # Without the pin the CPU runs its flash kernel; pinned, the math implementation.
    assert CPU_FLASH in baseline_operators
    assert CPU_FLASH not in pinned_operators and MATH in pinned_operators
    assert max_abs_difference(baseline_images, pinned.generate(PROMPTS, SEEDS)) <= EXACT_TOLERANCE


@pytest.mark.parametrize("name", ["sdpa_flash", "sdpa_cudnn", "sdpa_efficient", "graph_pipeline", "quant_fp8"])
def test_gpu_only_variants_say_so_on_a_cpu(name: str) -> None:
    assert f"{name} needs a CUDA GPU (device here: cpu)" in REGISTRY[name].unmet_requirements("cpu", "float32")


def test_sdpa_variants_exclude_each_other_and_xformers() -> None:
    for name in ("sdpa_math", "sdpa_flash", "sdpa_cudnn", "sdpa_efficient"):
        assert {"xformers"} | ({"sdpa_math", "sdpa_flash", "sdpa_cudnn", "sdpa_efficient"} - {name}) == set(
            REGISTRY[name].conflicts
        )


def test_an_attention_backend_that_cannot_run_is_skipped_with_its_reason(components: Components) -> None:
    with pytest.raises(VariantUnavailable, match="attention backend EFFICIENT_ATTENTION cannot run on cpu in float32"):
        # Forced past the CUDA requirement: the backend check itself must refuse on a CPU.
        REGISTRY["sdpa_efficient"].apply(VariantPipeline(components, parse("baseline"), SIZE).pipe, None)  # type: ignore[arg-type]


@pytest.mark.slow  # bf16 on a CPU: several seconds for two 64x64 images
def test_bf16_casts_every_model_and_gives_finite_images(components: Components, baseline_images: np.ndarray) -> None:
    pipeline = VariantPipeline(components, parse("bf16"), SIZE)
    for name in ("unet", "vae", "text_encoder", "text_encoder_2"):
        assert next(getattr(pipeline.pipe, name).parameters()).dtype == torch.bfloat16, name
        # The shared components keep their precision for the other variants.
        assert next(components.modules[name].parameters()).dtype == torch.float32, name
    images = pipeline.generate(PROMPTS, SEEDS)
    assert images.shape == baseline_images.shape and np.isfinite(images).all()
    assert 0 < max_abs_difference(baseline_images, images) < 0.5


@pytest.mark.skipif(importlib.util.find_spec("torchao") is not None, reason="torchao is installed here")
@pytest.mark.parametrize("name", ["quant_int8", "quant_fp8"])
def test_quantization_without_torchao_is_skipped_with_the_package_named(name: str) -> None:
    reasons = REGISTRY[name].unmet_requirements("cuda", "float16")
    assert f"{name} needs the package 'torchao' (pip install torchao)" in reasons


def test_fp8_needs_compute_capability_8_9(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(variant_definition, "cuda_capability", lambda: (8, 0))
    assert "quant_fp8 needs CUDA compute capability 8.9 or more (this GPU: 8.0)" in REGISTRY[
        "quant_fp8"
    ].unmet_requirements("cuda", "float16")
    monkeypatch.setattr(variant_definition, "cuda_capability", lambda: (9, 0))
    assert not any("capability" in reason for reason in REGISTRY["quant_fp8"].unmet_requirements("cuda", "float16"))


def test_quantization_keeps_the_one_row_per_image_embeddings_in_half_precision(components: Components) -> None:
    unet = components.modules["unet"]
    linears = {name for name, module in unet.named_modules() if isinstance(module, torch.nn.Linear)}
    chosen = {name for name, module in unet.named_modules() if quantization.is_token_linear(module, name)}
    embeddings = {name for name in linears if "time_emb" in name or "add_embedding" in name}
    assert embeddings and chosen and chosen < linears
    assert not chosen & embeddings  # int8's matrix product needs more than 16 rows: one per image is too few
    assert chosen == {name for name in linears if ".attentions." in f".{name}."}
    assert not quantization.is_token_linear(torch.nn.Conv2d(1, 1, 1), "down_blocks.1.attentions.0.proj_in")


def test_quantization_leaves_inductors_settings_alone() -> None:
    """torchao's default switches on coordinate-descent tuning process-wide: minutes more per compile."""
    made: list[dict[str, Any]] = []

    def config(**keywords: Any) -> dict[str, Any]:
        made.append(keywords)
        return keywords

    assert quantization.leaving_inductor_alone(config) == {"set_inductor_config": False}

    def older_config() -> str:  # a torchao without the switch still gets its default config
        return "default"

    assert quantization.leaving_inductor_alone(older_config) == "default"


def test_int8_cannot_be_captured_in_a_cuda_graph() -> None:
    for spec in ("quant_int8+cuda_graph", "quant_int8+graph_pipeline", "quant_int8+quant_fp8"):
        with pytest.raises(Exception, match="impossible combination"):
            parse(spec)
    assert parse("quant_int8+compile_unet").id == "quant_int8+compile_unet"


@pytest.mark.parametrize(("text", "seconds"), [("", 300.0), ("90", 90.0), ("90s", 90.0), ("10m", 600.0)])
def test_compile_budget_comes_from_the_environment(text: str, seconds: float) -> None:
    assert compilation.budget_seconds({compilation.BUDGET_VARIABLE: text}) == seconds


@pytest.mark.parametrize("text", ["-5", "soon", "0"])
def test_a_bad_compile_budget_is_refused(text: str) -> None:
    with pytest.raises(VariantUnavailable, match=r"PYTEST_SDXL_COMPILE_BUDGET=.* is not accepted"):
        compilation.budget_seconds({compilation.BUDGET_VARIABLE: text})


def test_a_compile_past_its_budget_is_interrupted_and_skipped() -> None:
    calls = []

    def slow_compile(sample: torch.Tensor) -> torch.Tensor:
        calls.append(sample.shape)
        if len(calls) == 1:
            time.sleep(0.2)
        return sample

    budgeted = compilation.BudgetedCompile(slow_compile, budget_s=5.0)
    assert budgeted(torch.ones(1)) is not None  # within the budget
    assert budgeted(torch.ones(1)) is not None  # a seen shape runs without a deadline
    tight = compilation.BudgetedCompile(lambda sample: time.sleep(5), budget_s=0.05)
    started = time.perf_counter()
    with pytest.raises(VariantUnavailable, match=r"compiling took more than its budget of 0\.05 s \("):
        tight(torch.ones(2))
    assert time.perf_counter() - started < 2, "the timer should have interrupted the compile"


def test_compile_max_autotune_gives_up_at_its_share_of_a_session_budget(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(compilation.BUDGET_VARIABLE, raising=False)

    class Pipe:
        unet = torch.nn.Linear(2, 2)

    def apply(share_s: float) -> compilation.BudgetedCompile:
        pipe = Pipe()
        context = variant_definition.Context(components=None, size=SIZE, session_share_s=share_s)  # type: ignore[arg-type]
        compilation.compile_unet_max_autotune(pipe, context)
        budgeted = pipe.unet.replacement
        assert isinstance(budgeted, compilation.BudgetedCompile)
        return budgeted

    # A share longer than the compile budget leaves the compile budget; a shorter one caps it.
    assert apply(1000.0).budget_s == compilation.DEFAULT_BUDGET_S
    tight = apply(0.05)
    assert tight.budget_s == 0.05
    tight.compiled = lambda sample: time.sleep(5)  # a compile that would not end in time
    started = time.perf_counter()
    given_up = r"more than its share of the session budget, 0\.05 s \(--session-budget"
    with pytest.raises(VariantUnavailable, match=given_up):
        tight(torch.ones(2))
    assert time.perf_counter() - started < 2, "the timer should have interrupted the compile"


def graphed_uncaptured(components: Components, spec: str) -> tuple[VariantPipeline, Any]:
    pipeline = VariantPipeline(components, parse(spec), SIZE)
    graphs = pipeline_graph.replace_call(pipeline.pipe, capture=False)
    return pipeline, graphs


@pytest.mark.parametrize("spec", ["baseline", "batch"])
def test_graph_pipeline_generation_matches_the_pipeline(
    spec: str, components: Components, baseline_images: np.ndarray
) -> None:
    """The tensor work graph_pipeline captures, run uncaptured on a CPU, gives the pipeline's images."""
    pipeline, graphs = graphed_uncaptured(components, spec)
    images = pipeline.generate(PROMPTS, SEEDS)
    assert graphs.replays == (1 if spec == "batch" else len(PROMPTS))
    assert set(graphs.graphs) == ({(2, SIZE, SIZE, "text")} if spec == "batch" else {(1, SIZE, SIZE, "text")})
    assert max_abs_difference(baseline_images, images) <= EXACT_TOLERANCE
    # A second call replays the same static generation with new inputs.
    assert max_abs_difference(baseline_images, pipeline.generate(PROMPTS, SEEDS)) <= EXACT_TOLERANCE


@pytest.mark.parametrize("spec", ["cached_embeds", "cached_embeds+batch"])
def test_graph_pipeline_from_cached_embeddings_matches_the_pipeline(
    spec: str, components: Components, baseline_images: np.ndarray
) -> None:
    """With cached_embeds the graph starts from the cached embeddings: no text encoder runs in it, same images."""
    pipeline, graphs = graphed_uncaptured(components, spec)
    encoder_calls: list[str] = []
    # The encoders are shared with the other tests' pipelines: the hooks go when this test ends.
    hooks = [
        getattr(pipeline.pipe, name).register_forward_hook(lambda *_, name=name: encoder_calls.append(name))
        for name in ("text_encoder", "text_encoder_2")
    ]
    try:
        images = pipeline.generate(PROMPTS, SEEDS)
        batch = len(PROMPTS) if spec.endswith("batch") else 1
        assert set(graphs.graphs) == {(batch, SIZE, SIZE, "embeddings")}
        assert max_abs_difference(baseline_images, images) <= EXACT_TOLERANCE
        # Each prompt encoded once, into the cache, outside the graph; a second call encodes nothing.
        assert len(encoder_calls) == 2 * len(PROMPTS)
        assert max_abs_difference(baseline_images, pipeline.generate(PROMPTS, SEEDS)) <= EXACT_TOLERANCE
        assert len(encoder_calls) == 2 * len(PROMPTS)
    finally:
        for hook in hooks:
            hook.remove()


class ReplayedGraph:
    """Stands in for a captured CUDA graph: a replay dispatches no operator a FLOP counter could see."""

    def __init__(self) -> None:
        self.replays = 0

    def replay(self) -> None:
        self.replays += 1


def test_a_graphed_generation_has_its_flops_counted_on_its_work_run_directly(components: Components) -> None:
    from torch.utils.flop_counter import FlopCounterMode

    from pytest_sdxl.measure.device_signals import flops_by_stage

    baseline = VariantPipeline(components, parse("baseline"), SIZE)
    expected, _ = flops_by_stage(baseline.pipe, lambda: len(baseline.generate(PROMPTS[:1], SEEDS[:1])))
    pipeline, graphs = graphed_uncaptured(components, "baseline")
    pipeline.generate(PROMPTS[:1], SEEDS[:1])
    (captured,) = graphs.graphs.values()
    captured.graph = graph = ReplayedGraph()
    graph_output = captured.static.image
    with FlopCounterMode(display=False) as replayed:
        pipeline.generate(PROMPTS[:1], SEEDS[:1])
    assert replayed.get_total_flops() == 0 and graph.replays == 1
    counted, _ = flops_by_stage(pipeline.pipe, lambda: len(pipeline.generate(PROMPTS[:1], SEEDS[:1])))
    assert expected and counted == pytest.approx(expected, rel=1e-6)
    # The count ran the work itself; the graph's output tensor is back for the next replay.
    assert graph.replays == 1 and graphs.replays == 2 and not graphs.uncaptured
    assert captured.static.image is graph_output


def test_graph_pipeline_takes_text_or_embeddings_with_their_pooled_part() -> None:
    per_token, pooled = torch.zeros(2, 77, 8), torch.zeros(2, 4)
    assert pipeline_graph.prompt_conditioning("a cat", None, None) == ["a cat"]
    embedded = pipeline_graph.prompt_conditioning(None, per_token, pooled)
    assert isinstance(embedded, pipeline_graph.PromptEmbeddings) and embedded.batch == 2
    with pytest.raises(VariantUnavailable, match="needs pooled_prompt_embeds beside prompt_embeds"):
        pipeline_graph.prompt_conditioning(None, per_token, None)
    with pytest.raises(VariantUnavailable, match="as text or as prompt_embeds, not both"):
        pipeline_graph.prompt_conditioning(["a cat"], per_token, pooled)
    with pytest.raises(VariantUnavailable, match="needs prompts as text, or prompt_embeds"):
        pipeline_graph.prompt_conditioning(None, None, None)


def test_graph_pipeline_refuses_what_it_does_not_capture(components: Components) -> None:
    pipeline, _ = graphed_uncaptured(components, "baseline")
    pipeline.steps = 2
    with pytest.raises(VariantUnavailable, match="exactly one denoising step; 2 steps"):
        pipeline.generate(PROMPTS[:1], SEEDS[:1])


def test_compile_kernels_sits_inside_the_captures_and_apart_from_the_other_compiles() -> None:
    # Applied before cuda_graph and graph_pipeline, so that their captures wrap the compiled models.
    assert parse("graph_pipeline+compile_kernels+tiny_vae").id == "tiny_vae+compile_kernels+graph_pipeline"
    assert parse("cuda_graph+compile_kernels+cached_embeds").id == "compile_kernels+cuda_graph+cached_embeds"
    assert parse("compile_kernels+graph_pipeline").kind == "exact"
    # The composition built for the 12 ms goal: compiled kernels, one capture, embeddings cached outside it.
    goal = parse("tiny_vae+compile_kernels+graph_pipeline+cached_embeds")
    assert goal.id == "tiny_vae+compile_kernels+graph_pipeline+cached_embeds"
    for other in ("compile_unet", "compile_regions", "compile_max_autotune", "compile_pipeline", "trace_unet"):
        with pytest.raises(VariantSpecError, match=f"compile_kernels and {other} cannot be combined|"
                           f"{other} and compile_kernels cannot be combined"):  # fmt: skip
            parse(f"compile_kernels+{other}")


def test_encoder_outputs_are_cloned_item_and_attribute_alike() -> None:
    from transformers.modeling_outputs import BaseModelOutputWithPooling

    hidden = (torch.ones(1, 3), torch.zeros(1, 3))
    output = BaseModelOutputWithPooling(last_hidden_state=torch.ones(1, 3), hidden_states=hidden)
    cloned = clone_tensors(output)
    assert cloned.hidden_states[-2].data_ptr() != hidden[0].data_ptr()
    assert torch.equal(cloned.hidden_states[-2], hidden[0])
    assert cloned[0].data_ptr() == cloned.last_hidden_state.data_ptr()


def test_a_failed_decode_leaves_the_shared_vae_in_its_precision(components: Components) -> None:
    pipeline = VariantPipeline(components, parse("baseline"), SIZE)
    shared = components.modules["vae"]
    assert pipeline.pipe.vae is shared

    def upcast_then_fail(*arguments: Any, **keywords: Any) -> Any:
        shared.to(torch.float64)  # as diffusers' per-call upcast does, before the failure
        raise RuntimeError("No available kernel. Aborting execution.")

    shared.decode = upcast_then_fail
    try:
        with pytest.raises(RuntimeError, match="No available kernel"):
            pipeline.generate(PROMPTS[:1], SEEDS[:1])
    finally:
        del shared.decode
    assert shared.dtype == torch.float32


def compiled_blocks(unet: Any) -> list[str]:
    """Names of the UNet's sub-modules that carry a compiled forward (Module.compile marks the module itself)."""
    return [name for name, module in unet.named_modules() if getattr(module, "_compiled_call_impl", None) is not None]


def test_compile_regions_compiles_each_transformer_block_of_a_private_unet(components: Components) -> None:
    pipeline = VariantPipeline(components, parse("compile_regions"), SIZE)
    compiled = compiled_blocks(pipeline.pipe.unet)
    blocks = [
        name for name, module in pipeline.pipe.unet.named_modules() if type(module).__name__ == "BasicTransformerBlock"
    ]
    assert blocks and compiled == blocks  # every repeated block, nothing else
    assert pipeline.pipe.unet is not components.modules["unet"]
    assert compiled_blocks(components.modules["unet"]) == []  # the shared UNet stays eager for other variants


def test_compile_regions_says_when_a_unet_names_no_repeated_blocks() -> None:
    class PlainUNet:
        _repeated_blocks = ()

    pipe = type("Pipe", (), {"unet": PlainUNet()})()
    with pytest.raises(VariantUnavailable, match=r"PlainUNet names no repeated blocks to compile.*use compile_unet"):
        compilation.compile_regions(pipe, variant_definition.Context(components=None, size=SIZE))
