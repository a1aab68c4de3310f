"""The SDXL architectures pytest-sdxl builds with random weights: tiny (CPU tests) and SDXL-Turbo.

The SDXL-Turbo configs are those of stabilityai/sdxl-turbo (and madebyollin/taesdxl for the tiny
VAE); building them on the meta device gives exactly the real parameter counts. Their random
weights are drawn by ``random_weights``, on the device and in the dtype they run in.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pytest_sdxl.pipelines.clip_tokenizer import END_OF_TEXT_ID, START_OF_TEXT_ID

if TYPE_CHECKING:
    import torch


@dataclass(frozen=True)
class Architecture:
    """Keyword configs of every component of one SDXL architecture."""

    name: str
    unet: dict[str, Any]
    vae: dict[str, Any]
    tiny_vae: dict[str, Any]
    text_encoder: dict[str, Any]
    text_encoder_2: dict[str, Any]
    scheduler: dict[str, Any]
    default_size: int
    # Random weights (not biases) are multiplied by this so that half-precision activations stay finite.
    weight_scale: float = 1.0
    seed: int = 0


SCHEDULER = {
    "num_train_timesteps": 1000,
    "beta_start": 0.00085,
    "beta_end": 0.012,
    "beta_schedule": "scaled_linear",
    "timestep_spacing": "trailing",
    "steps_offset": 1,
    "prediction_type": "epsilon",
}

TINY = Architecture(
    name="tiny",
    unet={
        "sample_size": 32,
        "in_channels": 4,
        "out_channels": 4,
        "block_out_channels": (32, 64),
        "layers_per_block": 2,
        "down_block_types": ("DownBlock2D", "CrossAttnDownBlock2D"),
        "up_block_types": ("CrossAttnUpBlock2D", "UpBlock2D"),
        "attention_head_dim": (2, 4),
        "use_linear_projection": True,
        "addition_embed_type": "text_time",
        "addition_time_embed_dim": 8,
        "transformer_layers_per_block": (1, 2),
        # 6 size/crop numbers of addition_time_embed_dim each, plus the 32-wide pooled text embedding.
        "projection_class_embeddings_input_dim": 80,
        "cross_attention_dim": 64,
        "norm_num_groups": 1,
    },
    vae={
        "block_out_channels": (32, 64),
        "in_channels": 3,
        "out_channels": 3,
        "down_block_types": ("DownEncoderBlock2D", "DownEncoderBlock2D"),
        "up_block_types": ("UpDecoderBlock2D", "UpDecoderBlock2D"),
        "latent_channels": 4,
        "norm_num_groups": 32,
        "sample_size": 128,
        "scaling_factor": 0.13025,
        "force_upcast": True,
    },
    tiny_vae={
        # Two decoder blocks upsample once: the same x2 scale as the two-block tiny VAE above.
        "encoder_block_out_channels": (32, 32),
        "decoder_block_out_channels": (32, 32),
        "num_encoder_blocks": (1, 1),
        "num_decoder_blocks": (1, 1),
        "latent_channels": 4,
    },
    text_encoder={
        "hidden_size": 32,
        "intermediate_size": 37,
        "num_attention_heads": 4,
        "num_hidden_layers": 5,
        "hidden_act": "gelu",
        "projection_dim": 32,
        "max_position_embeddings": 77,
        "vocab_size": 1000,
    },
    text_encoder_2={
        "hidden_size": 32,
        "intermediate_size": 37,
        "num_attention_heads": 4,
        "num_hidden_layers": 5,
        "hidden_act": "gelu",
        "projection_dim": 32,
        "max_position_embeddings": 77,
        "vocab_size": 1000,
    },
    scheduler=SCHEDULER,
    # 32 px (latents of 16): every code path of 64 px at 40 ms an image on one CPU thread, against 100 ms at
    # 64 px (the user guide's method page, "Cost of a process"); the CPU tests and main job time hundreds.
    default_size=32,
)

SDXL_TURBO = Architecture(
    name="sdxl-turbo",
    unet={
        "sample_size": 64,
        "in_channels": 4,
        "out_channels": 4,
        "block_out_channels": (320, 640, 1280),
        "layers_per_block": 2,
        "down_block_types": ("DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
        "up_block_types": ("CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"),
        "transformer_layers_per_block": (1, 2, 10),
        "attention_head_dim": (5, 10, 20),
        "cross_attention_dim": 2048,
        "use_linear_projection": True,
        "addition_embed_type": "text_time",
        "addition_time_embed_dim": 256,
        "projection_class_embeddings_input_dim": 2816,
        "norm_num_groups": 32,
    },
    vae={
        "block_out_channels": (128, 256, 512, 512),
        "in_channels": 3,
        "out_channels": 3,
        "down_block_types": ("DownEncoderBlock2D",) * 4,
        "up_block_types": ("UpDecoderBlock2D",) * 4,
        "latent_channels": 4,
        "layers_per_block": 2,
        "norm_num_groups": 32,
        "sample_size": 512,
        "scaling_factor": 0.13025,
        "force_upcast": True,
    },
    tiny_vae={},
    text_encoder={
        "hidden_size": 768,
        "intermediate_size": 3072,
        "num_attention_heads": 12,
        "num_hidden_layers": 12,
        "hidden_act": "quick_gelu",
        "projection_dim": 768,
        "max_position_embeddings": 77,
        "vocab_size": 49408,
    },
    text_encoder_2={
        "hidden_size": 1280,
        "intermediate_size": 5120,
        "num_attention_heads": 20,
        "num_hidden_layers": 32,
        "hidden_act": "gelu",
        "projection_dim": 1280,
        "max_position_embeddings": 77,
        "vocab_size": 49408,
    },
    scheduler=SCHEDULER,
    default_size=512,
    weight_scale=0.5,
)

ARCHITECTURES = {architecture.name: architecture for architecture in (TINY, SDXL_TURBO)}


def clip_config(config: dict[str, Any]) -> Any:
    """A CLIPTextConfig whose special tokens are those of the offline tokenizer."""
    from transformers import CLIPTextConfig

    return CLIPTextConfig(
        **config,
        bos_token_id=START_OF_TEXT_ID,
        eos_token_id=END_OF_TEXT_ID,
        pad_token_id=END_OF_TEXT_ID,
    )


def build_module(
    architecture: Architecture,
    component: str,
    offset: int = 0,
    device: torch.device | str = "meta",
    dtype: torch.dtype | None = None,
) -> Any:
    """One component with random weights made on ``device`` in ``dtype`` (seeded, reproducible).

    The weights are drawn once, where they will run (``random_weights``); on ``meta`` (the default)
    only the shapes exist, which counts parameters without memory. ``dtype`` None keeps float32.
    """
    from pytest_sdxl.pipelines.random_weights import build_random

    config = getattr(architecture, component, None)
    if component not in COMPONENT_CLASSES or config is None:
        raise ValueError(f"unknown component {component!r}; known: {', '.join(COMPONENT_CLASSES)}")

    def construct() -> Any:
        return COMPONENT_CLASSES[component](config)

    # One seed per component: a component's weights do not depend on which others were built.
    return build_random(construct, device, dtype, architecture.seed + offset, architecture.weight_scale)


def unet(config: dict[str, Any]) -> Any:
    from diffusers import UNet2DConditionModel

    return UNet2DConditionModel(**config)


def vae(config: dict[str, Any]) -> Any:
    from diffusers import AutoencoderKL

    return AutoencoderKL(**config)


def tiny_vae(config: dict[str, Any]) -> Any:
    from diffusers import AutoencoderTiny

    return AutoencoderTiny(**config)


def text_encoder(config: dict[str, Any]) -> Any:
    from transformers import CLIPTextModel

    return CLIPTextModel(clip_config(config))


def text_encoder_2(config: dict[str, Any]) -> Any:
    from transformers import CLIPTextModelWithProjection

    return CLIPTextModelWithProjection(clip_config(config))


COMPONENT_CLASSES: dict[str, Callable[[dict[str, Any]], Any]] = {
    "unet": unet,
    "vae": vae,
    "tiny_vae": tiny_vae,
    "text_encoder": text_encoder,
    "text_encoder_2": text_encoder_2,
}


def count_parameters(module: Any) -> int:
    """The number of scalars in a module's parameters."""
    return sum(parameter.numel() for parameter in module.parameters())
