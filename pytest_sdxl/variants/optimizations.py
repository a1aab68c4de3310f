"""How the built-in variants change a pipeline, written against the component APIs of diffusers 0.42.

Each function takes the pipeline (whose mutated components are already private copies) and
the context it may need. Runner-level variants (batch, cached_embeds) change how the pipeline is
called, not the pipeline: they live in assembly.py. torch is imported inside each function, so
that the variant objects pointing here can be built at plugin start-up without it.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import Any

from pytest_sdxl.errors import VariantUnavailable
from pytest_sdxl.variants.definition import Context, changes_only_the_call

__all__ = ["Context", "changes_only_the_call"]


def use_fp16_fix_vae(pipe: Any, context: Context) -> None:
    pipe.vae = context.components.fp16_vae()


def use_tiny_vae(pipe: Any, context: Context) -> None:
    pipe.vae = context.components.tiny_vae()


def decode_in_vae_precision(vae: Any, latents: Any, *args: Any, **kwargs: Any) -> Any:
    # The pipeline casts latents to the VAE's precision only on its own per-call upcast path.
    return type(vae).decode(vae, latents.to(vae.dtype), *args, **kwargs)


def keep_vae_in_float32(pipe: Any, context: Context) -> None:
    import torch

    from pytest_sdxl.machine.devices import cast

    vae = cast(pipe.vae, torch.float32)
    vae.decode = functools.partial(decode_in_vae_precision, vae)
    pipe.vae = vae


def use_bfloat16(pipe: Any, context: Context) -> None:
    import torch

    from pytest_sdxl.machine.devices import cast

    # The components are private copies (bf16 mutates all four), so the shared ones keep their precision.
    for name in ("text_encoder", "text_encoder_2", "unet", "vae"):
        module = getattr(pipe, name)
        if module is not None:
            setattr(pipe, name, cast(module, torch.bfloat16))


def slice_vae(pipe: Any, context: Context) -> None:
    # StableDiffusionXLPipeline.enable_vae_slicing is gone in diffusers 0.42: ask the VAE itself.
    pipe.vae.enable_slicing()


def tile_vae(pipe: Any, context: Context) -> None:
    vae = pipe.vae
    vae.enable_tiling()
    # The default tile is the VAE's sample size (512 or more): at 512x512 tiling would never start.
    # Half the image size gives four overlapping tiles, so the variant really tiles.
    scale = pipe.vae_scale_factor
    vae.tile_sample_min_size = max(context.size // 2, scale)
    vae.tile_latent_min_size = max(context.size // 2 // scale, 1)
    if hasattr(vae, "spatial_scale_factor"):
        # AutoencoderTiny sizes its tiles' output as 2**out_channels, which is taesdxl's upscale (8) by
        # coincidence: a tiny VAE of another depth (random:tiny's) blended tiles of the wrong size and failed.
        vae.spatial_scale_factor = scale


def fuse_qkv(pipe: Any, context: Context) -> None:
    # pipe.fuse_qkv_projections() also fuses the VAE and raises on AutoencoderTiny.
    pipe.unet.fuse_qkv_projections()


def use_channels_last(pipe: Any, context: Context) -> None:
    import torch

    pipe.unet.to(memory_format=torch.channels_last)


def use_xformers(pipe: Any, context: Context) -> None:
    try:
        pipe.unet.enable_xformers_memory_efficient_attention()
        if hasattr(pipe.vae, "enable_xformers_memory_efficient_attention"):
            pipe.vae.enable_xformers_memory_efficient_attention()
    except (NotImplementedError, ImportError, RuntimeError, ValueError) as error:
        # Seen with xformers wheels built for another torch: it imports, but its kernels do not load.
        first_line = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise VariantUnavailable(
            f"xformers is installed but its attention cannot run here ({type(error).__name__}: {first_line})"
        ) from error


# After the chosen backend: the memory-efficient kernel (it runs any head size), then math. Flash is left out:
# on a CPU it would take every call from math (the CPU picks flash whenever it is enabled).
FALLBACK_ORDER = ("EFFICIENT_ATTENTION", "MATH")


def sdpa_kernel_for(backend: str) -> AbstractContextManager[Any]:
    """Only this backend: a call it cannot run raises."""
    from torch.nn.attention import SDPBackend, sdpa_kernel

    return sdpa_kernel(getattr(SDPBackend, backend))


def sdpa_kernel_first(backend: str) -> AbstractContextManager[Any]:
    """This backend first wherever it supports the call, then the memory-efficient kernel, then math.

    Strictly pinned, a generation fails: the VAE's attention has one 512-wide head, beyond flash's and
    cuDNN's head sizes (the user guide's method page, "Attention backends and the VAE's head"), so the
    VAE keeps the backend it has by default.
    """
    from torch.nn.attention import SDPBackend, sdpa_kernel

    # Math runs every call: after it nothing is ever tried.
    order = [backend] if backend == "MATH" else [backend, *(name for name in FALLBACK_ORDER if name != backend)]
    return sdpa_kernel([getattr(SDPBackend, name) for name in order], set_priority=True)


def pinned_attention(backend: str) -> Callable[[], AbstractContextManager[Any]]:
    """A factory of the context that makes scaled_dot_product_attention use one backend first."""
    return functools.partial(sdpa_kernel_first, backend)


def check_sdpa_backend(backend: str) -> Callable[[Any, Context], None]:
    """An apply function that fails early, with the reason, when the backend cannot run these shapes here."""

    def apply(pipe: Any, context: Context) -> None:
        import torch

        unet = pipe.unet
        parameter = next(unet.parameters())
        # One attention call of the UNet's head size and precision, strictly pinned: torch refuses by raising
        # when the backend cannot run the UNet's attention at all (then the variant would change nothing).
        head_dim = 64
        query = torch.zeros(1, 2, 16, head_dim, device=parameter.device, dtype=parameter.dtype)
        try:
            with sdpa_kernel_for(backend), torch.no_grad():
                torch.nn.functional.scaled_dot_product_attention(query, query, query)
        except RuntimeError as error:
            first_line = str(error).strip().splitlines()[0]
            raise VariantUnavailable(
                f"attention backend {backend} cannot run on {parameter.device.type} in "
                f"{str(parameter.dtype).removeprefix('torch.')} here ({first_line})"
            ) from error

    apply.__name__ = apply.__qualname__ = f"check_sdpa_{backend.lower()}"
    return apply


def merge_tokens(pipe: Any, context: Context) -> None:
    import tomesd

    # max_downsample=1 (the default) never reaches SDXL's attention blocks: a silent no-op.
    tomesd.apply_patch(pipe.unet, ratio=0.5, max_downsample=2)


def trace_unet(pipe: Any, context: Context) -> None:
    from pytest_sdxl.variants.unet_wrappers import TracedUNet

    pipe.unet = TracedUNet(pipe.unet)


def graph_unet(pipe: Any, context: Context) -> None:
    from pytest_sdxl.variants.unet_wrappers import GraphedUNet

    pipe.unet = GraphedUNet(pipe.unet)


def offload_to_cpu(pipe: Any, context: Context) -> None:
    device = context.components.device
    pipe.enable_model_cpu_offload(gpu_id=device.index or 0, device=device.type)


def pin_execution_device(pipe: Any, context: Context) -> None:
    """Answer the pipeline's ``_execution_device`` from the components' device, found once here.

    diffusers finds it on every read by walking every submodule of every component for offloading hooks
    (group offloading's, then accelerate's); an SDXL call reads it at least once, and the UNet's modules are
    most of that walk. Without offloading (a conflict of this variant) the walk always ends at the components'
    device, so the answer is the same and only its cost goes. diffusers 0.42 also walks the text encoders
    and the VAE one module at a time elsewhere in a call (``get_module_execution_device``): module-level
    functions shared by every pipeline, left alone. The class is swapped on this pipeline object alone:
    other variants' pipelines keep diffusers' own.
    """
    device = context.components.device
    pinned = type(f"Pinned{type(pipe).__name__}", (type(pipe),), {"_execution_device": property(lambda self: device)})
    pipe.__class__ = pinned
