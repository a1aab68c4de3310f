"""How each variant changes a pipeline, written against the component APIs of diffusers 0.42.

Each function takes the pipeline (whose mutated components are already private copies) and
the context it may need. Runner-level variants (batch, cached_embeds) change how the pipeline is
called, not the pipeline: they live in assembly.py.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

from pytest_sdxl.devices import cast
from pytest_sdxl.errors import VariantUnavailable
from pytest_sdxl.sources import Components
from pytest_sdxl.unet_wrappers import GraphedUNet, TracedUNet


@dataclass(frozen=True)
class Context:
    """What a variant may need besides the pipeline."""

    components: Components
    size: int


def use_fp16_fix_vae(pipe: Any, context: Context) -> None:
    pipe.vae = context.components.fp16_vae()


def use_tiny_vae(pipe: Any, context: Context) -> None:
    pipe.vae = context.components.tiny_vae()


def decode_in_vae_precision(vae: Any, latents: torch.Tensor, *args: Any, **kwargs: Any) -> Any:
    # The pipeline casts latents to the VAE's precision only on its own per-call upcast path.
    return type(vae).decode(vae, latents.to(vae.dtype), *args, **kwargs)


def keep_vae_in_float32(pipe: Any, context: Context) -> None:
    vae = cast(pipe.vae, torch.float32)
    vae.decode = functools.partial(decode_in_vae_precision, vae)
    pipe.vae = vae


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


def fuse_qkv(pipe: Any, context: Context) -> None:
    # pipe.fuse_qkv_projections() also fuses the VAE and raises on AutoencoderTiny.
    pipe.unet.fuse_qkv_projections()


def use_channels_last(pipe: Any, context: Context) -> None:
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


def merge_tokens(pipe: Any, context: Context) -> None:
    import tomesd

    # max_downsample=1 (the default) never reaches SDXL's attention blocks: a silent no-op.
    tomesd.apply_patch(pipe.unet, ratio=0.5, max_downsample=2)


def trace_unet(pipe: Any, context: Context) -> None:
    pipe.unet = TracedUNet(pipe.unet)


def graph_unet(pipe: Any, context: Context) -> None:
    pipe.unet = GraphedUNet(pipe.unet)


def compile_unet(pipe: Any, context: Context) -> None:
    pipe.unet = torch.compile(pipe.unet, mode="reduce-overhead", fullgraph=True)


def offload_to_cpu(pipe: Any, context: Context) -> None:
    device = context.components.device
    pipe.enable_model_cpu_offload(gpu_id=device.index or 0, device=device.type)


def changes_only_the_call(pipe: Any, context: Context) -> None:
    """batch, cached_embeds and baseline change how the pipeline is called, not the pipeline."""


APPLY: dict[str, Callable[[Any, Context], None]] = {
    "baseline": changes_only_the_call,
    "fp16_vae": use_fp16_fix_vae,
    "tiny_vae": use_tiny_vae,
    "upcast_vae": keep_vae_in_float32,
    "vae_slicing": slice_vae,
    "vae_tiling": tile_vae,
    "fused_qkv": fuse_qkv,
    "channels_last": use_channels_last,
    "xformers": use_xformers,
    "tome": merge_tokens,
    "trace_unet": trace_unet,
    "cuda_graph": graph_unet,
    "compile_unet": compile_unet,
    "cpu_offload": offload_to_cpu,
    "cached_embeds": changes_only_the_call,
    "batch": changes_only_the_call,
}
