"""torchao dynamic quantization of the UNet's linear layers: int8 and float8.

torchao is optional (the variants need it and are skipped without it). Without compilation its
dynamic quantization adds separate quantize kernels and runs at about half fp16's speed (the user
guide's method page, "Quantized variants"): measure these composed with compile_unet. Only the
attention blocks' linear layers are quantized (``is_token_linear``).
"""

from __future__ import annotations

import importlib
from typing import Any

from pytest_sdxl.errors import VariantUnavailable
from pytest_sdxl.variants.definition import Context


def is_token_linear(module: Any, fully_qualified_name: str) -> bool:
    """A linear layer of the UNet's attention blocks: one row per token, so never fewer than 17 rows.

    The time and added-condition embeddings (``time_embedding``, ``add_embedding``, each resnet's
    ``time_emb_proj``) see one row per image, and int8's matrix product needs more than 16 rows:
    quantized, they fail at batch 1 ("self.size(0) needs to be greater than 16, but got 1"). They are a
    negligible share of the UNet's FLOPs, so they stay in half precision.
    """
    import torch

    return isinstance(module, torch.nn.Linear) and ".attentions." in f".{fully_qualified_name}."


def quantize_unet(pipe: Any, config_names: tuple[str, str], label: str) -> None:
    """quantize_ the UNet's linear layers with the first config torchao has (new class, then old function)."""
    try:
        # Imported by name: torchao is optional and has no type information for mypy.
        quantization = importlib.import_module("torchao.quantization")
    except Exception as error:  # an installed torchao built for another torch fails on import
        raise VariantUnavailable(f"{label}: torchao does not import here ({type(error).__name__}: {error})") from error
    class_name, function_name = config_names
    if hasattr(quantization, class_name):
        config = leaving_inductor_alone(getattr(quantization, class_name))
    elif hasattr(quantization, function_name):
        config = leaving_inductor_alone(getattr(quantization, function_name))
    else:
        version = getattr(importlib.import_module("torchao"), "__version__", "unknown")
        raise VariantUnavailable(f"{label}: torchao {version} has neither {class_name} nor {function_name}")
    try:
        quantization.quantize_(pipe.unet, config, filter_fn=is_token_linear)
    except (RuntimeError, NotImplementedError, ImportError) as error:
        first_line = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        reason = f"{label}: torchao cannot quantize here ({type(error).__name__}: {first_line})"
        raise VariantUnavailable(reason) from error


def leaving_inductor_alone(make_config: Any) -> Any:
    """torchao's config with ``set_inductor_config=False`` where it takes one, else its default.

    By default torchao switches on inductor's coordinate-descent tuning for the whole process when it
    quantizes: ``quant_int8+compile_unet`` then compiles for many minutes (the user guide's method
    page, "Quantized variants"), and every variant compiled after it in the same process would slow
    too; the compiled variants are compared at inductor's own settings.
    """
    try:
        return make_config(set_inductor_config=False)
    except TypeError:  # an older torchao without the switch
        return make_config()


def quantize_int8(pipe: Any, context: Context) -> None:
    quantize_unet(pipe, ("Int8DynamicActivationInt8WeightConfig", "int8_dynamic_activation_int8_weight"), "quant_int8")


def quantize_fp8(pipe: Any, context: Context) -> None:
    quantize_unet(
        pipe, ("Float8DynamicActivationFloat8WeightConfig", "float8_dynamic_activation_float8_weight"), "quant_fp8"
    )
