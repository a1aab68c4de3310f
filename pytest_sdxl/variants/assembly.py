"""A pipeline per variant, assembled from shared components, and the one way to call it.

Components a variant does not change are shared between pipelines; those it changes are copied
first, each tensor cloned straight onto the device the copy belongs on. For ``cpu_offload`` that
is the CPU, as in a real offload setup: the four models get private CPU copies (no GPU copy is
made on the way), then model offload moves each to the components' GPU only while it runs; the
shared originals stay on the GPU, unused by that pipeline. ``VariantPipeline.generate`` is the
single entry the tests, the protocol, the plugin and asv time: batch mode, cached prompt
embeddings and image checks live here. ``VariantPipeline.unused_device_bytes`` says how much of
the GPU memory in use belongs to shared components the pipeline does not use.
"""

from __future__ import annotations

import contextlib
import copy
import itertools
import logging
import math
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from pytest_sdxl.errors import VariantUnavailable
from pytest_sdxl.machine.devices import free_memory, synchronize
from pytest_sdxl.pipelines.images import check_images
from pytest_sdxl.pipelines.sources import Components
from pytest_sdxl.variants.definition import Context
from pytest_sdxl.variants.registry import Composition

if TYPE_CHECKING:
    import torch

PIPELINE_MODULES = ("unet", "vae", "text_encoder", "text_encoder_2")


class VariantPipeline:
    """A diffusers SDXL pipeline with one composition of variants applied."""

    def __init__(
        self,
        components: Components,
        composition: Composition,
        size: int,
        steps: int = 1,
        session_share_s: float = math.inf,
    ) -> None:
        """``session_share_s``: the seconds a session budget leaves this variant (``Context.session_share_s``)."""
        self.components = components
        self.composition = composition
        self.size = size
        self.steps = steps
        self.embedding_cache: dict[str, tuple[Any, Any]] = {}
        # Warm-up calls made so far by prompts a call (``measure.calls`` keeps it, outside every timed call): a
        # pipeline already warm at a shape (the side-by-side reference of every variant after its first) is
        # not warmed again.
        self.warm_calls: dict[int, int] = {}
        self.pipe: Any = build_pipeline(components, composition, size, session_share_s)

    @property
    def id(self) -> str:
        return self.composition.id

    @property
    def device(self) -> Any:
        return self.components.device

    def call_arguments(self) -> dict[str, Any]:
        return {
            "num_inference_steps": self.steps,
            "guidance_scale": 0.0,
            "height": self.size,
            "width": self.size,
            "output_type": "np",
        }

    def generate(self, prompts: Sequence[str], seeds: Sequence[int], check: bool = True) -> np.ndarray:
        """Images (N, H, W, 3) in [0, 1] for the prompts, one CPU generator per prompt, GPU synchronized.

        In batch mode all prompts go into one pipeline call; otherwise one call per prompt. The
        same prompt and seed give the same image either way.
        """
        import torch

        if len(prompts) != len(seeds):
            raise ValueError(f"{len(prompts)} prompts but {len(seeds)} seeds: give one seed per prompt")
        generators = [torch.Generator("cpu").manual_seed(int(seed)) for seed in seeds]
        if self.composition.is_batch:
            outputs = [self.call(list(prompts), generators)]
        else:
            outputs = [self.call([prompt], [generator]) for prompt, generator in zip(prompts, generators, strict=True)]
        synchronize(self.device)
        images = outputs[0] if len(outputs) == 1 else np.concatenate(outputs, axis=0)
        if check:
            check_images(images, self.id)
        return images

    def call(self, prompts: list[str], generators: list[Any]) -> np.ndarray:
        import torch

        arguments = self.call_arguments()
        if self.composition.has("cached_embeds"):
            embeddings = [self.prompt_embeddings(prompt) for prompt in prompts]
            arguments["prompt_embeds"] = torch.cat([pair[0] for pair in embeddings])
            arguments["pooled_prompt_embeds"] = torch.cat([pair[1] for pair in embeddings])
        else:
            arguments["prompt"] = prompts
        try:
            with torch.inference_mode(), self.call_contexts():
                images: np.ndarray = self.pipe(generator=generators, **arguments).images
        except BaseException:
            self.restore_shared_vae_precision()
            raise
        return images

    def restore_shared_vae_precision(self) -> None:
        """Cast the shared VAE back when a call failed between diffusers' upcast and its cast back.

        diffusers casts a float16 VAE to float32 around each decode; a failure inside the decode (a
        strictly pinned attention backend, for one) leaves the shared VAE in float32, and every later
        variant would then fail on mixed precisions.
        """
        shared = self.components.modules.get("vae")
        if self.pipe is not None and self.pipe.vae is shared and shared.dtype != self.components.dtype:
            shared.to(self.components.dtype)

    def call_contexts(self) -> contextlib.ExitStack:
        """Every part's call_context entered (sdpa_* pin the attention backend around each call)."""
        stack = contextlib.ExitStack()
        for variant in self.composition.variants:
            if variant.call_context is not None:
                stack.enter_context(variant.call_context())
        return stack

    def prompt_embeddings(self, prompt: str) -> tuple[Any, Any]:
        """The prompt's embeddings from the pipeline's own encoders, computed once and kept."""
        import torch

        if prompt not in self.embedding_cache:
            with torch.inference_mode(), self.call_contexts():
                embeds, _, pooled, _ = self.pipe.encode_prompt(
                    prompt=prompt,
                    device=self.pipe._execution_device,
                    num_images_per_prompt=1,
                    do_classifier_free_guidance=False,
                )
            self.embedding_cache[prompt] = (embeds, pooled)
        return self.embedding_cache[prompt]

    def unused_device_bytes(self) -> int:
        """Bytes of shared components resident on the GPU that this pipeline does not use (0 off CUDA).

        Shared components stay on the GPU for the whole session, so a variant that copies a
        component (upcast_vae, channels_last, cpu_offload) or replaces one (tiny_vae) leaves the
        original resident: subtract this from ``torch.cuda.max_memory_allocated`` for the
        variant's own peak.
        """
        if self.device.type != "cuda":
            return 0
        return self.unused_bytes_on(self.device)

    def unused_bytes_on(self, device: torch.device) -> int:
        """``unused_device_bytes`` for any device: the CPU too, where tests can check it."""
        shared = [*self.components.modules.values(), *self.components.loaded_extra_vaes()]
        used = [getattr(self.pipe, name, None) for name in PIPELINE_MODULES] if self.pipe is not None else []
        return unused_bytes(shared, used, device)

    def close(self) -> None:
        """Drop the pipeline and its private copies and hand their GPU memory back."""
        if self.pipe is not None and hasattr(self.pipe, "remove_all_hooks"):
            self.pipe.remove_all_hooks()
        self.pipe = None
        self.embedding_cache.clear()
        free_memory(self.device)


class CastWarningFilter(logging.Filter):
    """Drops diffusers' warning on every ``.to(dtype)`` of a model listing no float32-only modules.

    The baseline pipeline casts its VAE up and back on every decode, so the warning would print
    twice per image, flooding the output and costing time inside the timed region.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        return not (message.startswith("There are modules in") and "should be kept in float32: []" in message)


def quiet_cast_warnings() -> None:
    logger = logging.getLogger("diffusers.models.modeling_utils")
    if not any(isinstance(existing, CastWarningFilter) for existing in logger.filters):
        logger.addFilter(CastWarningFilter())


def build_pipeline(
    components: Components, composition: Composition, size: int, session_share_s: float = math.inf
) -> Any:
    """A new StableDiffusionXLPipeline with the composition applied, in canonical order."""
    import torch
    from diffusers import StableDiffusionXLPipeline

    quiet_cast_warnings()

    device_type = components.device.type
    dtype_name = str(components.dtype).removeprefix("torch.")
    unmet = composition.unmet_requirements(device_type, dtype_name)
    if unmet:
        raise VariantUnavailable("; ".join(unmet))
    modules = components.modules
    scheduler = modules["scheduler"]
    pipe = StableDiffusionXLPipeline(
        vae=modules["vae"],
        text_encoder=modules["text_encoder"],
        text_encoder_2=modules["text_encoder_2"],
        tokenizer=modules["tokenizer"],
        tokenizer_2=modules["tokenizer_2"],
        unet=modules["unet"],
        # Schedulers keep per-call state: every pipeline gets its own.
        scheduler=type(scheduler).from_config(scheduler.config),
        add_watermarker=False,
    )
    pipe.set_progress_bar_config(disable=True)
    context = Context(components=components, size=size, session_share_s=session_share_s)
    # Offloaded weights live on the CPU between calls: copy them there directly.
    copies_device = torch.device("cpu") if composition.has("cpu_offload") else components.device
    private: set[str] = set()
    try:
        for variant in composition.variants:
            for component in variant.mutates:
                if component not in private:
                    setattr(pipe, component, copy_to(getattr(pipe, component), copies_device))
                    private.add(component)
            variant.apply(pipe, context)
    except BaseException:
        del pipe
        free_memory(components.device)
        raise
    return pipe


def copy_to(module: Any, device: torch.device) -> Any:
    """A deep copy of the module whose parameters and buffers are clones on device.

    Each tensor is cloned straight onto device: deep-copying first and moving afterwards would
    clone every weight where it lives (the GPU, for cpu_offload) and spike the memory there.
    """
    import torch

    memo: dict[int, Any] = {}
    # Under no_grad the clones carry no autograd history, so Parameter() can wrap them as leaves.
    with torch.no_grad():
        for parameter in module.parameters():
            clone = parameter.to(device, copy=True)
            memo[id(parameter)] = torch.nn.Parameter(clone, requires_grad=parameter.requires_grad)
        for buffer in module.buffers():
            memo[id(buffer)] = buffer.to(device, copy=True)
    # deepcopy takes what the memo maps an object's id to instead of copying that object.
    return copy.deepcopy(module, memo)


def unused_bytes(shared_modules: Iterable[Any], used_modules: Iterable[Any], device: torch.device) -> int:
    """Bytes of the shared modules' tensors on device whose storage no used module refers to.

    Storages are told apart by data pointer and counted once, so tied weights and views count
    once. Wrappers need no special case: torch.compile's ``_orig_mod`` and the UNet stand-ins'
    ``unet`` are submodules, so their weights come with the wrapper's parameters.
    """
    used = storages_on(used_modules, device)
    shared = storages_on(shared_modules, device)
    return sum(size for pointer, size in shared.items() if pointer not in used)


def storages_on(modules: Iterable[Any], device: torch.device) -> dict[int, int]:
    """Data pointer -> bytes of every storage behind the modules' parameters and buffers on device."""
    import torch

    storages: dict[int, int] = {}
    for module in modules:
        if not isinstance(module, torch.nn.Module):
            continue  # tokenizers, schedulers and absent components hold no device memory
        for tensor in itertools.chain(module.parameters(), module.buffers()):
            for plain in plain_tensors(tensor):
                if not is_on(plain.device, device):
                    continue
                storage = plain.untyped_storage()
                # A null pointer (meta tensors, empty storages) holds no memory.
                if storage.data_ptr():
                    storages[storage.data_ptr()] = storage.nbytes()
    return storages


def plain_tensors(tensor: Any) -> list[Any]:
    """The tensors that hold a tensor's memory: itself, or a wrapper subclass's inner tensors.

    A quantized weight (torchao's int8 and float8 tensors) is a wrapper with no storage of its own;
    asking for one raises "invalid python storage" (quant_int8 and quant_fp8 would fail so). Its memory
    is in the tensors ``__tensor_flatten__`` names, wrappers themselves maybe.
    """
    from torch.utils._python_dispatch import is_traceable_wrapper_subclass

    if not is_traceable_wrapper_subclass(tensor):
        return [tensor]
    names, _ = tensor.__tensor_flatten__()
    return [plain for name in names for plain in plain_tensors(getattr(tensor, name))]


def is_on(tensor_device: torch.device, device: torch.device) -> bool:
    """Whether a tensor's device is device; ``cuda`` without an index means any CUDA device."""
    return tensor_device.type == device.type and device.index in (None, tensor_device.index)
