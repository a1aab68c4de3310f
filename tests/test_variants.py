"""The variant registry and composition: names, kinds, conflicts, requirements, parsing."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pytest_sdxl.errors import VariantSpecError
from pytest_sdxl.variants.registry import REGISTRY, compose, parse, parse_list, valid_names

NOTES_EIGHT = ["baseline", "batch", "upcast_vae", "fp16_vae", "tiny_vae", "compile_unet", "cpu_offload", "vae_slicing"]
NOTES_TRIED = ["xformers", "tome"]
NOTES_COULD_NOT_TRY = ["cached_embeds", "trace_unet"]
BEYOND = ["channels_last", "fused_qkv", "cuda_graph", "vae_tiling", "pinned_device"]
# Issue 9: today's state of the art.
STATE_OF_THE_ART = [
    "sdpa_math",
    "sdpa_flash",
    "sdpa_efficient",
    "sdpa_cudnn",
    "bf16",
    "compile_pipeline",
    "compile_kernels",
    "compile_regions",
    "compile_max_autotune",
    "quant_int8",
    "quant_fp8",
    "graph_pipeline",
]
OPTIMIZATIONS = [name for name in REGISTRY if name != "baseline"]


def test_every_variant_of_the_design_is_registered() -> None:
    assert set(REGISTRY) == set(NOTES_EIGHT + NOTES_TRIED + NOTES_COULD_NOT_TRY + BEYOND + STATE_OF_THE_ART)


def test_lossy_variants_are_those_that_change_the_picture() -> None:
    lossy = {name for name, variant in REGISTRY.items() if variant.kind == "lossy"}
    # vae_tiling blends overlapping tiles at the seams, so its pixels differ from an untiled decode.
    # bf16 and quantization compute in another precision than the baseline.
    assert lossy == {"tiny_vae", "fp16_vae", "tome", "vae_tiling", "bf16", "quant_int8", "quant_fp8"}


def test_conflicts_name_registered_variants_only() -> None:
    for variant in REGISTRY.values():
        assert set(variant.conflicts) <= set(REGISTRY), variant.name


def test_canonical_order_is_registry_order() -> None:
    assert parse("compile_unet+tiny_vae+cached_embeds").id == "tiny_vae+compile_unet+cached_embeds"
    assert parse(" Tiny-VAE + batch ").id == "tiny_vae+batch"


def test_baseline_alone_is_the_empty_composition() -> None:
    composition = parse("baseline")
    assert composition.names == ()
    assert composition.id == "baseline"
    assert composition.kind == "exact"


def test_composition_kind_is_lossy_when_any_part_is() -> None:
    assert parse("batch+cached_embeds").kind == "exact"
    assert parse("batch+tiny_vae").kind == "lossy"


@pytest.mark.parametrize(
    ("spec", "first", "second"),
    [("fp16_vae+tiny_vae", "fp16_vae", "tiny_vae"), ("cpu_offload+cuda_graph", "cuda_graph", "cpu_offload")],
)
def test_impossible_combination_names_both(spec: str, first: str, second: str) -> None:
    with pytest.raises(VariantSpecError, match="impossible combination") as error:
        parse(spec)
    assert first in str(error.value) and second in str(error.value)


def test_regional_compilation_is_the_one_compile_a_captured_unet_graph_takes() -> None:
    composition = parse("compile_regions+cuda_graph")
    assert composition.id == "cuda_graph+compile_regions" and composition.kind == "exact"
    # Either needs the whole UNet call to itself: the other compiles and captures stay exclusive.
    for other in ("compile_unet", "compile_max_autotune", "compile_pipeline", "graph_pipeline", "trace_unet"):
        with pytest.raises(VariantSpecError, match="impossible combination"):
            parse(f"cuda_graph+compile_regions+{other}")


def test_unknown_variant_names_closest_match_and_valid_names() -> None:
    with pytest.raises(VariantSpecError) as error:
        parse("tiny_vea")
    message = str(error.value)
    assert "unknown variant 'tiny_vea'" in message
    assert "Did you mean 'tiny_vae'?" in message
    assert all(name in message for name in REGISTRY)


def test_baseline_cannot_be_combined() -> None:
    with pytest.raises(VariantSpecError, match="baseline cannot be combined"):
        parse("baseline+batch")


def test_parse_list_keeps_order_and_drops_duplicates() -> None:
    assert [item.id for item in parse_list("baseline, batch+tiny_vae ,tiny_vae+batch")] == [
        "baseline",
        "tiny_vae+batch",
    ]


def test_requirements_become_reasons() -> None:
    reasons = parse("cuda_graph+tome").unmet_requirements("cpu", "float32")
    assert any("cuda_graph needs a CUDA GPU" in reason for reason in reasons)
    assert parse("upcast_vae").unmet_requirements("cuda", "float16") == []
    assert "half-precision" in parse("upcast_vae").unmet_requirements("cpu", "float32")[0]


def compatible_sets() -> st.SearchStrategy[list[str]]:
    def valid(names: list[str]) -> bool:
        try:
            compose(names)
        except VariantSpecError:
            return False
        return True

    return st.lists(st.sampled_from(OPTIMIZATIONS), min_size=1, max_size=6, unique=True).filter(valid)


@given(names=compatible_sets(), data=st.data())
def test_every_order_of_a_valid_composition_is_the_same(names: list[str], data: st.DataObject) -> None:
    shuffled = data.draw(st.permutations(names))
    assert parse("+".join(shuffled)) == parse("+".join(names))
    assert set(parse("+".join(shuffled)).names) == set(names)


@given(text=st.text(max_size=40))
def test_any_string_parses_or_raises_the_usage_error(text: str) -> None:
    try:
        composition = parse(text)
    except VariantSpecError as error:
        assert "Valid variants: " + ", ".join(valid_names()) in str(error)
    else:
        assert set(composition.names) <= set(REGISTRY)


def test_warm_up_calls_cover_every_later_capture() -> None:
    later = {name: variant.warmup_calls for name, variant in REGISTRY.items() if variant.warmup_calls != 1}
    # cuda_graph captures inside its first call at a shape, so one warm-up call is enough for it.
    assert later == {"compile_unet": 2, "trace_unet": 2, "compile_max_autotune": 2, "compile_pipeline": 2}
    assert parse("baseline").warmup_calls == 1
    assert parse("tiny_vae+batch").warmup_calls == 1
    assert parse("tiny_vae+compile_unet+cached_embeds").warmup_calls == 2


def test_trace_unet_warm_up_reaches_the_optimized_plan() -> None:
    """TorchScript's profiling executor profiles on call 1 and builds its optimized plan on call 2."""
    import torch

    module = torch.nn.Sequential(torch.nn.Linear(4, 4), torch.nn.ReLU())
    inputs = (torch.ones(2, 4),)
    with torch.no_grad():
        traced = torch.jit.trace(module, inputs, check_trace=False)
        profiling = []
        for _ in range(REGISTRY["trace_unet"].warmup_calls):
            traced(*inputs)
            profiling.append("prim::profile" in str(torch.jit.last_executed_optimized_graph()))
    assert profiling[0], "the first call should run the profiling plan"
    assert not profiling[-1], "the optimized plan should be running after the warm-up calls"


def test_vae_slicing_alone_has_no_effect() -> None:
    reason = parse("vae_slicing").no_effect_reason()
    assert reason == (
        "vae_slicing has no effect at batch 1: diffusers slices only batches of more than one image; "
        "compose it with batch (vae_slicing+batch)"
    )
    assert "(tiny_vae+vae_slicing+batch)" in parse("tiny_vae+vae_slicing").no_effect_reason()
    for spec in ["baseline", "vae_slicing+batch", "batch", "tiny_vae+cached_embeds"]:
        assert parse(spec).no_effect_reason() == "", spec


def test_idle_partners_are_registered_variants() -> None:
    for variant in REGISTRY.values():
        assert set(variant.idle_without) <= set(REGISTRY), variant.name
        assert bool(variant.idle_without) == bool(variant.idle_because), variant.name
