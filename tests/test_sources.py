"""Where weights come from: the random architectures, the offline tokenizer and from_pretrained."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from pytest_sdxl.errors import ModelSourceError
from pytest_sdxl.pipelines.architectures import SDXL_TURBO, build_module, count_parameters
from pytest_sdxl.pipelines.clip_tokenizer import END_OF_TEXT_ID, MAX_LENGTH, VOCABULARY_SIZE, build_clip_tokenizer
from pytest_sdxl.pipelines.images import max_abs_difference
from pytest_sdxl.pipelines.sources import load_components
from pytest_sdxl.variants.assembly import VariantPipeline
from pytest_sdxl.variants.registry import parse

CPU = torch.device("cpu")

# Parameter counts of the published stabilityai/sdxl-turbo and madebyollin/taesdxl weights.
SDXL_TURBO_PARAMETERS = {
    "unet": 2_567_463_684,
    "vae": 83_653_863,
    "text_encoder": 123_060_480,
    "text_encoder_2": 694_659_840,
    "tiny_vae": 2_445_063,
}


@pytest.mark.parametrize("component", sorted(SDXL_TURBO_PARAMETERS))
def test_sdxl_turbo_architecture_has_the_real_parameter_counts(component: str) -> None:
    with torch.device("meta"):
        module = build_module(SDXL_TURBO, component)
    assert count_parameters(module) == SDXL_TURBO_PARAMETERS[component]


def test_offline_tokenizer_pads_and_truncates_to_77() -> None:
    tokenizer = build_clip_tokenizer()
    assert len(tokenizer) == VOCABULARY_SIZE
    encoded = tokenizer(
        ["a photo of a café ☕", "x " * 200], padding="max_length", max_length=MAX_LENGTH, truncation=True
    )
    assert [len(ids) for ids in encoded.input_ids] == [MAX_LENGTH, MAX_LENGTH]
    assert encoded.input_ids[0][-1] == END_OF_TEXT_ID
    assert max(max(ids) for ids in encoded.input_ids) < VOCABULARY_SIZE


def test_random_tiny_is_reproducible() -> None:
    first = load_components("random:tiny", CPU, torch.float32)
    second = load_components("random:tiny", CPU, torch.float32)
    for name in ("unet", "vae", "text_encoder", "text_encoder_2"):
        for (key, a), (_, b) in zip(
            first.modules[name].state_dict().items(), second.modules[name].state_dict().items(), strict=True
        ):
            assert torch.equal(a, b), f"{name}.{key} differs between two loads"
    images = [VariantPipeline(c, parse("baseline"), 32).generate(["a red cube"], [7]) for c in (first, second)]
    assert (images[0] == images[1]).all()


def test_local_folder_loads_through_from_pretrained(tmp_path: Path) -> None:
    """A tiny pipeline saved with save_pretrained loads through the hub-id code path, same images."""
    built = load_components("random:tiny", CPU, torch.float32)
    original = VariantPipeline(built, parse("baseline"), 32)
    original.pipe.save_pretrained(tmp_path / "tiny-sdxl", safe_serialization=True)
    assert list((tmp_path / "tiny-sdxl" / "unet").glob("*.safetensors"))

    loaded = load_components(str(tmp_path / "tiny-sdxl"), CPU, torch.float32)
    assert loaded.architecture is None
    assert loaded.default_size == 32 * 8
    reloaded = VariantPipeline(loaded, parse("baseline"), 32)
    prompts, seeds = ["a lighthouse at dusk", "a teapot"], [3, 4]
    # Same weights, same seeds: equal up to float32 rounding (kernels may sum in another order).
    assert max_abs_difference(original.generate(prompts, seeds), reloaded.generate(prompts, seeds)) < 1e-5


def test_missing_hub_model_says_where_it_looked_and_what_to_use(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "empty-cache"))
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_CACHE", str(tmp_path / "empty-cache"))
    with pytest.raises(ModelSourceError) as error:
        load_components("stabilityai/sdxl-turbo", CPU, torch.float32)
    message = str(error.value)
    assert "stabilityai/sdxl-turbo" in message
    assert "HF_HUB_OFFLINE" in message
    assert "empty-cache" in message
    assert "random:sdxl-turbo" in message and "local folder" in message


def test_a_source_that_failed_fails_again_at_once_for_the_next_variant(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each variant asks for the components; where the hub cannot be reached each try may wait out a timeout."""
    from pytest_sdxl.pipelines import sources
    from pytest_sdxl.settings import resolve

    tries: list[str] = []

    def unreachable(source: str, *rest: object) -> None:
        tries.append(source)
        raise ModelSourceError(f"cannot load model {source!r}: the hub could not be reached")

    monkeypatch.setattr(sources, "load_components", unreachable)
    settings = resolve({"model": "example/unreachable", "device": "cpu"}, {}, {})
    for cache in (True, False, True):  # the protocol loads afresh each run (cache=False), the plugin once
        with pytest.raises(ModelSourceError, match="'example/unreachable': the hub could not be reached"):
            sources.components_for(settings, cache=cache)
    assert tries == ["example/unreachable"]
    sources.forget_loaded()
    with pytest.raises(ModelSourceError):
        sources.components_for(settings)
    assert len(tries) == 2, "forgotten, it is tried again"
    sources.forget_loaded()


def test_folder_without_a_model_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ModelSourceError, match="holds no loadable diffusers model"):
        load_components(str(tmp_path), CPU, torch.float32)


def test_unknown_random_source_lists_the_accepted_ones() -> None:
    with pytest.raises(ModelSourceError, match="random:tiny, random:sdxl-turbo"):
        load_components("random:huge", CPU, torch.float32)


def test_random_tiny_extra_vaes_match_the_pipeline_scale() -> None:
    components = load_components("random:tiny", CPU, torch.float32)
    assert type(components.tiny_vae()).__name__ == "AutoencoderTiny"
    assert components.fp16_vae().config.force_upcast is False
    assert components.fp16_vae() is components.fp16_vae(), "extra VAEs are loaded once"


def test_random_sdxl_turbo_is_created_on_the_target_device() -> None:
    """Built under the device context: on 'meta' no weight ever touches the CPU."""
    from pytest_sdxl.pipelines.sources import build_random_modules

    modules = build_random_modules(SDXL_TURBO, torch.device("meta"), torch.float16)
    for name in ("unet", "vae", "text_encoder", "text_encoder_2"):
        parameters = list(modules[name].parameters())
        assert {parameter.device.type for parameter in parameters} == {"meta"}, name
        assert {parameter.dtype for parameter in parameters} == {torch.float16}, name
    assert modules["scheduler"].config.timestep_spacing == "trailing"


def test_fp16_weight_files_are_used_where_present(tmp_path: Path) -> None:
    built = load_components("random:tiny", CPU, torch.float32)
    pipe = VariantPipeline(built, parse("baseline"), 32).pipe
    pipe.save_pretrained(tmp_path / "fp16-only", safe_serialization=True, variant="fp16")
    assert list((tmp_path / "fp16-only" / "unet").glob("*.fp16.safetensors"))
    loaded = load_components(str(tmp_path / "fp16-only"), CPU, torch.float16)
    assert loaded.modules["unet"].dtype == torch.float16


def test_the_torchvision_fallback_notice_alone_is_dropped() -> None:
    """Without torchvision, importing diffusers' SDXL pipeline printed two notices asking for it; they are
    dropped, while any other warning of the same transformers logger still shows."""
    import importlib.util
    import subprocess
    import sys

    if importlib.util.find_spec("torchvision") is not None:
        pytest.skip("torchvision is installed here: transformers gives no fallback notice to drop")
    script = (
        "import logging, pytest_sdxl.pipelines\n"
        "from diffusers import StableDiffusionXLPipeline\n"
        "logging.getLogger('transformers.utils.import_utils').warning('another notice')\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    assert "requires torchvision (not installed)" not in done.stderr, done.stderr
    assert "another notice" in done.stderr
