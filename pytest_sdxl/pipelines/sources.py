"""Where a pipeline's weights come from: random architectures or from_pretrained.

Components are built or loaded once per (source, device, dtype) and shared between variants;
the variants copy what they change. Source names:

- ``random:tiny``: a tiny random SDXL pipeline, seeded, for CPU tests;
- ``random:sdxl-turbo``: the full SDXL-Turbo architecture with random weights, created directly
  on the target device, for real GPU timings without a download;
- anything else: a hub id or a local folder, loaded with ``from_pretrained`` (safetensors only,
  fp16 weight files where present, never remote code).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from pytest_sdxl.errors import ModelSourceError
from pytest_sdxl.machine.devices import DeviceChoice
from pytest_sdxl.pipelines.architectures import ARCHITECTURES, Architecture, build_module

if TYPE_CHECKING:
    import torch

RANDOM_PREFIX = "random:"
DEFAULT_TINY_VAE = "madebyollin/taesdxl"
DEFAULT_FP16_VAE = "madebyollin/sdxl-vae-fp16-fix"
# An extra-VAE source that means: random weights at the matching architecture.
RANDOM_VAE = "random"

COMPONENT_OFFSETS = {"unet": 0, "vae": 1, "text_encoder": 2, "text_encoder_2": 3, "tiny_vae": 4}


def random_source_names() -> list[str]:
    """The accepted ``random:`` sources."""
    return [RANDOM_PREFIX + name for name in ARCHITECTURES]


def architecture_of(source: str) -> Architecture | None:
    """The random architecture a source names, or None for a hub id or folder."""
    if not source.startswith(RANDOM_PREFIX):
        return None
    name = source[len(RANDOM_PREFIX) :]
    if name not in ARCHITECTURES:
        accepted = ", ".join(random_source_names())
        raise ModelSourceError(f"unknown random source {source!r}; accepted: {accepted}, a hub id or a folder")
    return ARCHITECTURES[name]


@dataclass
class Components:
    """The modules of one SDXL pipeline, plus the two replacement VAEs, built once and shared."""

    source: str
    device: torch.device
    dtype: torch.dtype
    modules: dict[str, Any]
    default_size: int
    tiny_vae_source: str = DEFAULT_TINY_VAE
    fp16_vae_source: str = DEFAULT_FP16_VAE
    load_seconds: float = 0.0
    _extra_vaes: dict[str, Any] = field(default_factory=dict, repr=False)

    @property
    def architecture(self) -> Architecture | None:
        return architecture_of(self.source)

    def tiny_vae(self) -> Any:
        """The tiny autoencoder (AutoencoderTiny), loaded on first use."""
        if "tiny" not in self._extra_vaes:
            self._extra_vaes["tiny"] = self._load_extra_vae("tiny_vae", self.tiny_vae_source)
        return self._extra_vaes["tiny"]

    def fp16_vae(self) -> Any:
        """The fp16-fix VAE (AutoencoderKL with force_upcast off), loaded on first use."""
        if "fp16" not in self._extra_vaes:
            self._extra_vaes["fp16"] = self._load_extra_vae("fp16_vae", self.fp16_vae_source)
        return self._extra_vaes["fp16"]

    def loaded_extra_vaes(self) -> list[Any]:
        """The replacement VAEs loaded so far (none is loaded here): they stay resident once loaded."""
        return list(self._extra_vaes.values())

    def _load_extra_vae(self, which: str, source: str) -> Any:
        from diffusers import AutoencoderKL, AutoencoderTiny

        architecture = self.architecture
        if source == RANDOM_VAE or architecture is not None:
            architecture = architecture or ARCHITECTURES["sdxl-turbo"]
            if which == "tiny_vae":
                return build_module(architecture, "tiny_vae", COMPONENT_OFFSETS["tiny_vae"], self.device, self.dtype)
            # The fp16-fix VAE is a fine-tune of the same architecture: same seed, upcast off.
            module = build_module(architecture, "vae", COMPONENT_OFFSETS["vae"], self.device, self.dtype)
            module.register_to_config(force_upcast=False)
            return module
        model_class = AutoencoderTiny if which == "tiny_vae" else AutoencoderKL
        module = from_pretrained_offline_first(model_class, source, **{dtype_keyword(): self.dtype})
        if which == "fp16_vae":
            module.register_to_config(force_upcast=False)
        return module.to(self.device).eval().requires_grad_(False)


def load_components(
    source: str,
    device: torch.device,
    dtype: torch.dtype,
    tiny_vae_source: str = DEFAULT_TINY_VAE,
    fp16_vae_source: str = DEFAULT_FP16_VAE,
) -> Components:
    """Build (random) or load (hub id, folder) every component of the pipeline on device in dtype."""
    import time

    from pytest_sdxl.machine.devices import freeze_what_lives_now

    started = time.perf_counter()
    import_pipeline_classes()
    # The libraries are imported and no model exists yet: what lives now lives for the process.
    freeze_what_lives_now()
    architecture = architecture_of(source)
    if architecture is not None:
        modules = build_random_modules(architecture, device, dtype)
        default_size = architecture.default_size
    else:
        modules = load_pretrained_modules(source, device, dtype)
        default_size = int(modules["unet"].config.sample_size) * 8
    return Components(
        source=source,
        device=device,
        dtype=dtype,
        modules=modules,
        default_size=default_size,
        tiny_vae_source=tiny_vae_source,
        fp16_vae_source=fp16_vae_source,
        load_seconds=time.perf_counter() - started,
    )


def import_pipeline_classes() -> None:
    """Import every class a pipeline is built from (diffusers' imports are lazy), before ``freeze_what_lives_now``."""
    from diffusers import (  # noqa: F401
        AutoencoderKL,
        AutoencoderTiny,
        EulerAncestralDiscreteScheduler,
        StableDiffusionXLPipeline,
        UNet2DConditionModel,
    )
    from transformers import CLIPTextModel, CLIPTextModelWithProjection  # noqa: F401


def build_random_modules(architecture: Architecture, device: torch.device, dtype: torch.dtype) -> dict[str, Any]:
    """Random weights drawn directly on the device in dtype (never built on the CPU, in float32, and moved)."""
    from diffusers import EulerAncestralDiscreteScheduler

    from pytest_sdxl.pipelines.clip_tokenizer import build_clip_tokenizer

    modules: dict[str, Any] = {
        component: build_module(architecture, component, offset, device, dtype)
        for component, offset in COMPONENT_OFFSETS.items()
        if component != "tiny_vae"
    }
    modules["tokenizer"] = build_clip_tokenizer()
    modules["tokenizer_2"] = build_clip_tokenizer()
    modules["scheduler"] = EulerAncestralDiscreteScheduler(**architecture.scheduler)
    return modules


def load_pretrained_modules(source: str, device: torch.device, dtype: torch.dtype) -> dict[str, Any]:
    """Every component of a hub id or local folder, on the device, in dtype."""
    import torch
    from diffusers import StableDiffusionXLPipeline

    fp16_weights = "fp16" if dtype == torch.float16 else None
    pipeline = from_pretrained_offline_first(
        StableDiffusionXLPipeline, source, variant=fp16_weights, add_watermarker=False, **{dtype_keyword(): dtype}
    )
    pipeline.to(device)
    modules = dict(pipeline.components)
    for name in ("unet", "vae", "text_encoder", "text_encoder_2"):
        modules[name] = modules[name].eval().requires_grad_(False)
    return modules


def from_pretrained_offline_first(model_class: Any, source: str, **kwargs: Any) -> Any:
    """``model_class.from_pretrained`` from a folder, the local cache, then the hub, safetensors only.

    A ``variant`` (fp16 weight files) is used where present and skipped where absent. When nothing
    works the error says where it looked and what to use instead.
    """
    kwargs.setdefault("use_safetensors", True)
    variant = kwargs.pop("variant", None)
    is_folder = Path(source).expanduser().is_dir()
    location = str(Path(source).expanduser()) if is_folder else source
    attempts: list[dict[str, Any]] = [{"local_files_only": True}]
    if not is_folder and not hub_offline():
        attempts.append({"local_files_only": False})
    errors: list[str] = []
    for attempt in attempts:
        for weights in [variant, None] if variant else [None]:
            try:
                return model_class.from_pretrained(location, variant=weights, **attempt, **kwargs)
            except (OSError, ValueError) as error:
                errors.append(f"{type(error).__name__}: {first_line(error)}")
    raise ModelSourceError(missing_model_message(source, is_folder, errors))


def dtype_keyword() -> str:
    """diffusers 0.42 renamed from_pretrained's ``torch_dtype`` to ``dtype`` and warns on the old name."""
    import diffusers

    major, minor = (int(part) for part in diffusers.__version__.split(".")[:2])
    return "dtype" if (major, minor) >= (0, 42) else "torch_dtype"


def hub_offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").lower() in {"1", "true", "yes", "on"}


def hub_cache_folder() -> str:
    try:
        from huggingface_hub import constants

        return str(constants.HF_HUB_CACHE)
    except ImportError:  # pragma: no cover - huggingface_hub comes with diffusers
        return os.path.expanduser("~/.cache/huggingface/hub")


def first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


def missing_model_message(source: str, is_folder: bool, errors: list[str]) -> str:
    # The option's name differs between pytest (--sdxl-model) and pytest-sdxl (--model): say the value.
    advice = (
        "Give random:sdxl-turbo for the full SDXL-Turbo architecture with random weights "
        "(real GPU timings, no download), random:tiny for a CPU-sized model, or a local folder written "
        "by save_pretrained."
    )
    if is_folder:
        where = f"the folder {source!r} holds no loadable diffusers model (safetensors weights)"
    else:
        reach = "HF_HUB_OFFLINE is set" if hub_offline() else "the hub could not be reached or has no such model"
        where = f"{source!r} is not a folder, is not in the Hugging Face cache ({hub_cache_folder()}), and {reach}"
    detail = "; ".join(dict.fromkeys(errors))[:600]
    return f"cannot load model {source!r}: {where}. {advice} (details: {detail})"


_LOADED: dict[tuple[str, str, str, str, str], Components] = {}
# A source that could not be loaded, by the same key: every variant after the first fails the same way, said again
# at once rather than tried again (where the hub cannot be reached, each try may wait out a network timeout).
_UNLOADABLE: dict[tuple[str, str, str, str, str], str] = {}


class SourceChoice(DeviceChoice, Protocol):
    """What ``components_for`` and ``image_size_for`` read of the settings (``pytest_sdxl.settings.Settings``)."""

    @property
    def model(self) -> str: ...
    @property
    def tiny_vae(self) -> str: ...
    @property
    def fp16_vae(self) -> str: ...
    @property
    def size(self) -> int | None: ...


def components_for(settings: SourceChoice, cache: bool = True) -> Components:
    """The components a Settings object asks for, loaded once per (model, device, dtype) when cached."""
    from pytest_sdxl.machine.devices import resolve_device, resolve_dtype

    device = resolve_device(settings.device)
    dtype = resolve_dtype(settings.dtype, device)
    key = (settings.model, str(device), str(dtype), settings.tiny_vae, settings.fp16_vae)
    if cache and key in _LOADED:
        return _LOADED[key]
    if key in _UNLOADABLE:
        raise ModelSourceError(_UNLOADABLE[key])
    try:
        components = load_components(settings.model, device, dtype, settings.tiny_vae, settings.fp16_vae)
    except ModelSourceError as error:
        _UNLOADABLE[key] = str(error)
        raise
    if cache:
        _LOADED[key] = components
    return components


def forget_loaded() -> None:
    """Drop the cached components (their GPU memory goes back when nothing else holds them), and forget the sources
    that could not be loaded (the next use tries them again)."""
    _LOADED.clear()
    _UNLOADABLE.clear()


def image_size_for(settings: SourceChoice, components: Components) -> int:
    """The settings' image size, or the source's default (32 on random:tiny, 512 on SDXL-Turbo)."""
    return int(settings.size) if settings.size else components.default_size
