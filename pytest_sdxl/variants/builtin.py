"""Every built-in variant, one object each, in the order they are applied (the canonical order).

Names and kinds are the design's; each object carries its own apply function (in
``optimizations``, ``compilation``, ``quantization`` or ``pipeline_graph``, all of which import torch
only when a variant is applied). Variants from the ``pytest_sdxl_variants`` hook are applied after these.
"""

from __future__ import annotations

from pytest_sdxl.variants import compilation, optimizations, pipeline_graph, quantization
from pytest_sdxl.variants.definition import Variant

SDPA_BACKENDS = {
    "sdpa_math": ("MATH", "the reference math implementation", False),
    "sdpa_flash": ("FLASH_ATTENTION", "FlashAttention-2", True),
    "sdpa_efficient": ("EFFICIENT_ATTENTION", "the memory-efficient kernel", True),
    "sdpa_cudnn": ("CUDNN_ATTENTION", "cuDNN's fused attention", True),
}
# Whatever replaces the UNet's or the whole call's kernels with a capture cannot be stacked on another capture.
CAPTURES = (
    "trace_unet",
    "compile_kernels",
    "cuda_graph",
    "compile_unet",
    "compile_regions",
    "compile_max_autotune",
    "compile_pipeline",
    "graph_pipeline",
)


# Why the default selection on a CPU leaves a variant out (``Variant.slow_on_cpu``).
COMPILES_FOR_MINUTES = "compiles for minutes"
# Measured on a two-core AMD EPYC without bfloat16 instructions, one thread: a random:tiny image took 13.5 s
# in bf16 against 0.6 s in float32 (the same load on the machine).
EMULATED_BF16 = "bfloat16 is emulated on most CPUs: 20 times the baseline's time"


def others(group: tuple[str, ...] | list[str], *names: str) -> tuple[str, ...]:
    return tuple(item for item in group if item not in names)


def sdpa_variant(name: str) -> Variant:
    backend, label, needs_cuda = SDPA_BACKENDS[name]
    return Variant(
        name,
        "exact",
        f"attention on {label} first",
        details=f"torch.nn.attention.sdpa_kernel with {backend} first, around every call; calls it cannot run, "
        "such as the VAE's 512-wide head, fall back to the memory-efficient kernel, then math",
        apply=optimizations.check_sdpa_backend(backend),
        needs_cuda=needs_cuda,
        # xformers replaces the attention processors: no scaled_dot_product_attention call is left to pin.
        conflicts=(*others(list(SDPA_BACKENDS), name), "xformers"),
        origin="beyond",
        call_context=optimizations.pinned_attention(backend),
    )


BUILTIN: tuple[Variant, ...] = (
    Variant(
        "baseline",
        "exact",
        "the pipeline as loaded, no optimization",
        details="on a GPU: fp16 UNet, the VAE upcast to fp32 around each decode",
        origin="write-up",
    ),
    Variant(
        "fp16_vae",
        "lossy",
        "the fp16-fix VAE: decodes in half precision, no upcast",
        apply=optimizations.use_fp16_fix_vae,
        conflicts=("tiny_vae", "upcast_vae"),
        origin="write-up",
    ),
    Variant(
        "tiny_vae",
        "lossy",
        "the tiny autoencoder (taesdxl) in place of the VAE",
        apply=optimizations.use_tiny_vae,
        conflicts=("upcast_vae",),
        origin="write-up",
    ),
    Variant(
        "upcast_vae",
        "exact",
        "the VAE kept in float32 instead of cast around each decode",
        apply=optimizations.keep_vae_in_float32,
        needs_half_precision=True,
        mutates=("vae",),
        origin="write-up",
    ),
    Variant(
        "bf16",
        "lossy",
        "the whole pipeline in bfloat16, the VAE's decode included",
        details="text encoders, UNet and VAE in bfloat16",
        apply=optimizations.use_bfloat16,
        # Both choose the VAE's precision themselves.
        conflicts=("fp16_vae", "upcast_vae"),
        mutates=("unet", "vae", "text_encoder", "text_encoder_2"),
        origin="beyond",
        slow_on_cpu=EMULATED_BF16,
    ),
    Variant(
        "vae_slicing",
        "exact",
        "the VAE decodes a batch one image at a time",
        apply=optimizations.slice_vae,
        mutates=("vae",),
        idle_without=("batch",),
        idle_because="at batch 1: diffusers slices only batches of more than one image",
        origin="write-up",
    ),
    Variant(
        "vae_tiling",
        "lossy",
        "the VAE decodes overlapping tiles, blended at the seams",
        details="tiles of half the image size",
        apply=optimizations.tile_vae,
        mutates=("vae",),
        origin="beyond",
    ),
    Variant(
        "fused_qkv",
        "exact",
        "the UNet's query, key and value projections fused",
        details="into one matrix product per attention block",
        apply=optimizations.fuse_qkv,
        conflicts=("xformers",),
        mutates=("unet",),
        origin="beyond",
    ),
    Variant(
        "channels_last",
        "exact",
        "the UNet's weights in channels-last memory format",
        apply=optimizations.use_channels_last,
        mutates=("unet",),
        origin="beyond",
    ),
    Variant(
        "xformers",
        "exact",
        "xformers memory-efficient attention in the UNet and VAE",
        apply=optimizations.use_xformers,
        needs_cuda=True,
        needs_packages=("xformers",),
        mutates=("unet", "vae"),
        origin="write-up-tried",
    ),
    *(sdpa_variant(name) for name in SDPA_BACKENDS),
    Variant(
        "tome",
        "lossy",
        "token merging in the UNet (tomesd, ratio 0.5)",
        details="max_downsample 2, so that SDXL's attention blocks are reached",
        apply=optimizations.merge_tokens,
        needs_packages=("tomesd",),
        mutates=("unet",),
        origin="write-up-tried",
    ),
    Variant(
        "quant_int8",
        "lossy",
        "int8 dynamic quantization of the UNet's attention (torchao)",
        details="the linear layers of the UNet's attention blocks, activations and weights",
        apply=quantization.quantize_int8,
        needs_packages=("torchao",),
        # int8 dynamic quantization cannot be captured in a CUDA graph (the user guide's method page,
        # "Quantized variants").
        conflicts=("quant_fp8", "cuda_graph", "graph_pipeline", "trace_unet"),
        mutates=("unet",),
        origin="beyond",
    ),
    Variant(
        "quant_fp8",
        "lossy",
        "float8 dynamic quantization of UNet attention (torchao)",
        details="the linear layers of the UNet's attention blocks, e4m3, one scale per tensor",
        apply=quantization.quantize_fp8,
        needs_cuda=True,
        needs_packages=("torchao",),
        needs_compute_capability=(8, 9),
        conflicts=("trace_unet",),
        mutates=("unet",),
        origin="beyond",
    ),
    Variant(
        "trace_unet",
        "exact",
        "the UNet traced with torch.jit.trace at the first shapes",
        apply=optimizations.trace_unet,
        conflicts=(*others(CAPTURES, "trace_unet"), "cpu_offload"),
        origin="write-up-untried",
        # Call 1 traces and runs the profiling plan; TorchScript's profiling executor builds
        # the optimized plan on call 2 (one profiled run by default) and reuses it afterwards.
        warmup_calls=2,
    ),
    Variant(
        "compile_kernels",
        "exact",
        "text encoders, UNet, VAE decoder compiled, no CUDA graphs",
        details="each torch.compile'd in the default mode: inductor's kernels with no CUDA graphs of their own, "
        "so that cuda_graph or graph_pipeline captures them",
        apply=compilation.compile_kernels,
        # Before cuda_graph and graph_pipeline in the canonical order: their captures wrap the compiled models.
        conflicts=(*others(CAPTURES, "compile_kernels", "cuda_graph", "graph_pipeline"), "cpu_offload"),
        # The VAE's decoder is replaced inside the VAE: it gets its own copy.
        mutates=("vae",),
        origin="beyond",
        # Call 1 compiles at the call's shapes; no CUDA graph is recorded, so call 2 runs as every later call does.
        warmup_calls=1,
        slow_on_cpu=COMPILES_FOR_MINUTES,
    ),
    Variant(
        "cuda_graph",
        "exact",
        "the UNet step captured in a CUDA graph and replayed",
        details="no torch.compile",
        apply=optimizations.graph_unet,
        needs_cuda=True,
        # compile_regions and compile_kernels compose with it: their compiled code runs inside the captured graph.
        conflicts=(*others(CAPTURES, "cuda_graph", "compile_regions", "compile_kernels"), "cpu_offload"),
        origin="beyond",
        # GraphedUNet captures inside the first call at a shape (eager runs on a side stream,
        # capture, first replay): from call 2 on it only replays.
        warmup_calls=1,
    ),
    Variant(
        "compile_unet",
        "exact",
        "torch.compile(unet, mode='reduce-overhead', fullgraph=True)",
        apply=compilation.compile_unet,
        conflicts=(*others(CAPTURES, "compile_unet"), "cpu_offload"),
        # Call 1 compiles and runs eagerly to warm up; CUDA graph trees record on call 2 and
        # replay from call 3.
        warmup_calls=2,
        origin="write-up",
        slow_on_cpu=COMPILES_FOR_MINUTES,
    ),
    Variant(
        "compile_regions",
        "exact",
        "the UNet's repeated transformer blocks each compiled",
        details="regional compilation: each block torch.compile'd (fullgraph), the rest eager; a fraction of "
        "compile_unet's compile time, no CUDA graph of its own (with cuda_graph the whole UNet step, compiled "
        "blocks included, is captured and replayed)",
        apply=compilation.compile_regions,
        conflicts=(*others(CAPTURES, "compile_regions", "cuda_graph"), "cpu_offload"),
        # Compiling marks the blocks themselves: the shared UNet stays untouched for other variants.
        mutates=("unet",),
        origin="beyond",
        # Call 1 compiles; no CUDA graph is recorded, so call 2 runs as every later call does.
        warmup_calls=1,
        slow_on_cpu=COMPILES_FOR_MINUTES,
    ),
    Variant(
        "compile_max_autotune",
        "exact",
        "torch.compile(unet, mode='max-autotune', fullgraph=True)",
        details="skipped when compiling takes longer than PYTEST_SDXL_COMPILE_BUDGET "
        f"(seconds, default {compilation.DEFAULT_BUDGET_S:.0f})",
        apply=compilation.compile_unet_max_autotune,
        conflicts=(*others(CAPTURES, "compile_max_autotune"), "cpu_offload"),
        origin="beyond",
        # max-autotune includes reduce-overhead's CUDA graphs: recorded on call 2, replayed from call 3.
        warmup_calls=2,
        slow_on_cpu=COMPILES_FOR_MINUTES,
    ),
    Variant(
        "compile_pipeline",
        "exact",
        "text encoders, UNet, VAE decoder compiled, reduce-overhead",
        details="each torch.compile'd with mode='reduce-overhead' (CUDA graphs)",
        apply=compilation.compile_pipeline,
        conflicts=(*others(CAPTURES, "compile_pipeline"), "cpu_offload"),
        # The VAE's decoder is replaced inside the VAE: it gets its own copy.
        mutates=("vae",),
        origin="beyond",
        warmup_calls=2,
        slow_on_cpu=COMPILES_FOR_MINUTES,
    ),
    Variant(
        "graph_pipeline",
        "exact",
        "the whole generation captured in one CUDA graph",
        details="text encoders, one UNet step, scheduler step and VAE decode, one graph per batch size, replayed "
        "with static inputs (with cached_embeds, from the embeddings on)",
        apply=pipeline_graph.graph_the_generation,
        needs_cuda=True,
        # tome draws random merges each call. compile_kernels' models have no graphs of their own: this capture
        # holds their kernels. With cached_embeds the graph starts from the embeddings, without the text encoders.
        conflicts=(*others(CAPTURES, "graph_pipeline", "compile_kernels"), "cpu_offload", "tome", "quant_int8"),
        # A VAE that diffusers upcasts around each decode is kept in float32 instead (a cast cannot be captured).
        mutates=("vae",),
        origin="beyond",
        warmup_calls=1,
    ),
    Variant(
        "pinned_device",
        "exact",
        "the execution device found once, not on every call",
        details="diffusers walks every submodule of every component for offloading hooks each time a call reads "
        "_execution_device; here it is the components' device, fixed when the pipeline is built",
        apply=optimizations.pin_execution_device,
        # Offloading is what the walk looks for: with it, the device a call must use is the hooks' to say.
        conflicts=("cpu_offload",),
        origin="beyond",
    ),
    Variant(
        "cpu_offload",
        "exact",
        "model CPU offload: each model on the GPU only while it runs",
        apply=optimizations.offload_to_cpu,
        needs_cuda=True,
        needs_packages=("accelerate",),
        mutates=("unet", "vae", "text_encoder", "text_encoder_2"),
        origin="write-up",
    ),
    Variant(
        "cached_embeds",
        "exact",
        "prompt embeddings computed once per prompt, then reused",
        details="the text encoders are skipped after the first call of a prompt",
        origin="write-up-untried",
    ),
    Variant("batch", "exact", "all prompts in one pipeline call, one generator per prompt", origin="write-up"),
)
