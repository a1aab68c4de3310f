"""The variant registry: names, kinds, requirements, conflicts and composition with ``+``.

A variant is one optimization of the notes (or beyond). A composition is a set of variants
written with ``+`` in any order; its canonical form lists them in registry order, which is also
the order they are applied in. This module imports no torch: the plugin parses variant options
with it at start-up.
"""

from __future__ import annotations

import contextlib
import difflib
import importlib.util
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

from pytest_sdxl.errors import VariantSpecError

Kind = Literal["exact", "lossy"]
HALF_PRECISIONS = ("float16", "bfloat16")


@dataclass(frozen=True)
class Variant:
    """One optimization: what it does, what it needs and what it cannot be combined with."""

    name: str
    kind: Kind
    summary: str
    needs_cuda: bool = False
    needs_packages: tuple[str, ...] = ()
    needs_half_precision: bool = False
    conflicts: tuple[str, ...] = ()
    # Components the variant changes: the assembly gives it its own copy of each.
    mutates: tuple[str, ...] = ()
    origin: Literal["notes", "notes-tried", "notes-could-not-try", "beyond"] = "notes"
    # Pipeline calls at one input shape after which no more tracing, compiling or graph capture
    # happens: a timed call before then would time the capture, not the variant.
    warmup_calls: int = 1
    # Variants this one needs beside it to change anything, and why: alone it runs the same kernels
    # as the baseline, so any speed-up measured for it is noise.
    idle_without: tuple[str, ...] = ()
    idle_because: str = ""

    def unmet_requirements(self, device_type: str, dtype_name: str) -> list[str]:
        """Why this variant cannot run on this device, precision and installation (empty: it can)."""
        reasons = []
        if self.needs_cuda and device_type != "cuda":
            reasons.append(f"{self.name} needs a CUDA GPU (device here: {device_type})")
        for package in self.needs_packages:
            if importlib.util.find_spec(package) is None:
                reasons.append(f"{self.name} needs the package {package!r} (pip install {package})")
        if self.needs_half_precision and dtype_name not in HALF_PRECISIONS:
            reasons.append(
                f"{self.name} only changes a half-precision pipeline; in {dtype_name} the VAE already "
                "decodes in full precision (use --sdxl-dtype float16)"
            )
        return reasons


REGISTRY: dict[str, Variant] = {
    variant.name: variant
    for variant in (
        Variant("baseline", "exact", "the pipeline as loaded: fp16 UNet, VAE upcast to fp32 for each decode"),
        Variant(
            "fp16_vae",
            "lossy",
            "the fp16-fix VAE, decoding in half precision with no upcast",
            conflicts=("tiny_vae", "upcast_vae"),
        ),
        Variant("tiny_vae", "lossy", "the tiny autoencoder (taesdxl) replaces the VAE", conflicts=("upcast_vae",)),
        Variant(
            "upcast_vae",
            "exact",
            "the VAE kept in float32 for good instead of cast up and down around every decode",
            needs_half_precision=True,
            mutates=("vae",),
        ),
        Variant(
            "vae_slicing",
            "exact",
            "the VAE decodes a batch one image at a time",
            mutates=("vae",),
            idle_without=("batch",),
            idle_because="at batch 1: diffusers slices only batches of more than one image",
        ),
        Variant(
            "vae_tiling",
            "lossy",
            "the VAE decodes overlapping tiles of half the image size, blended at the seams",
            mutates=("vae",),
            origin="beyond",
        ),
        Variant(
            "fused_qkv",
            "exact",
            "the UNet's query, key and value projections fused into one matrix product",
            conflicts=("xformers",),
            mutates=("unet",),
            origin="beyond",
        ),
        Variant(
            "channels_last",
            "exact",
            "the UNet's weights in channels-last memory format",
            mutates=("unet",),
            origin="beyond",
        ),
        Variant(
            "xformers",
            "exact",
            "xformers memory-efficient attention in the UNet and VAE",
            needs_cuda=True,
            needs_packages=("xformers",),
            mutates=("unet", "vae"),
            origin="notes-tried",
        ),
        Variant(
            "tome",
            "lossy",
            "token merging (tomesd, ratio 0.5, max_downsample 2 so SDXL's attention blocks are reached)",
            needs_packages=("tomesd",),
            mutates=("unet",),
            origin="notes-tried",
        ),
        Variant(
            "trace_unet",
            "exact",
            "the UNet traced with torch.jit.trace for the first call's shapes",
            conflicts=("compile_unet", "cuda_graph", "cpu_offload"),
            origin="notes-could-not-try",
            # Call 1 traces and runs the profiling plan; TorchScript's profiling executor builds
            # the optimized plan on call 2 (one profiled run by default) and reuses it afterwards.
            warmup_calls=2,
        ),
        Variant(
            "cuda_graph",
            "exact",
            "the UNet step captured in a CUDA graph and replayed (no torch.compile)",
            needs_cuda=True,
            conflicts=("compile_unet", "cpu_offload"),
            origin="beyond",
            # GraphedUNet captures inside the first call at a shape (eager runs on a side stream,
            # capture, first replay): from call 2 on it only replays.
            warmup_calls=1,
        ),
        Variant(
            "compile_unet",
            "exact",
            "torch.compile(unet, mode='reduce-overhead', fullgraph=True)",
            conflicts=("cpu_offload",),
            # Call 1 compiles and runs eagerly to warm up; CUDA graph trees record on call 2 and
            # replay from call 3.
            warmup_calls=2,
        ),
        Variant(
            "cpu_offload",
            "exact",
            "model CPU offload: each model moved to the GPU only while it runs",
            needs_cuda=True,
            needs_packages=("accelerate",),
            mutates=("unet", "vae", "text_encoder", "text_encoder_2"),
        ),
        Variant(
            "cached_embeds",
            "exact",
            "prompt embeddings computed once per prompt and reused; text encoders skipped afterwards",
            origin="notes-could-not-try",
        ),
        Variant("batch", "exact", "all prompts in one pipeline call, one generator per prompt"),
    )
}

BASELINE = "baseline"


@dataclass(frozen=True)
class Composition:
    """A valid set of variants in canonical (application) order."""

    names: tuple[str, ...]

    @property
    def id(self) -> str:
        """The canonical name, e.g. ``tiny_vae+compile_unet``; ``baseline`` for no optimization."""
        return "+".join(self.names) if self.names else BASELINE

    @property
    def variants(self) -> tuple[Variant, ...]:
        return tuple(REGISTRY[name] for name in self.names)

    @property
    def kind(self) -> Kind:
        """``exact`` when every part must reproduce the baseline's images, else ``lossy``."""
        return "lossy" if any(variant.kind == "lossy" for variant in self.variants) else "exact"

    @property
    def is_batch(self) -> bool:
        return "batch" in self.names

    def has(self, name: str) -> bool:
        return name in self.names

    @property
    def warmup_calls(self) -> int:
        """Pipeline calls at one shape before a call is timed: the most any part needs (1 for baseline).

        torch.compile's CUDA graphs and TorchScript's optimized plan are built on the second call at
        a shape; timing that call would time the build.
        """
        return max((variant.warmup_calls for variant in self.variants), default=1)

    def no_effect_reason(self) -> str:
        """Why part of this composition changes nothing ("" when every part takes effect)."""
        sentences = []
        for variant in self.variants:
            missing = [name for name in variant.idle_without if name not in self.names]
            if not missing:
                continue
            sentence = f"{variant.name} has no effect {variant.idle_because}; compose it with {' and '.join(missing)}"
            # When the missing partner conflicts with another part there is no composition to suggest.
            with contextlib.suppress(VariantSpecError):
                sentence += f" ({compose([*self.names, *missing]).id})"
            sentences.append(sentence)
        return ". ".join(sentences)

    def unmet_requirements(self, device_type: str, dtype_name: str) -> list[str]:
        return [reason for variant in self.variants for reason in variant.unmet_requirements(device_type, dtype_name)]

    def __str__(self) -> str:
        return self.id


def valid_names() -> list[str]:
    return list(REGISTRY)


def unknown_name_message(name: str) -> str:
    close = difflib.get_close_matches(name, valid_names(), n=1, cutoff=0.5)
    hint = f" Did you mean {close[0]!r}?" if close else ""
    return f"unknown variant {name!r}.{hint} Valid variants: {', '.join(valid_names())}"


def compose(names: Iterable[str]) -> Composition:
    """Check a set of variant names and put it in canonical order."""
    chosen = list(dict.fromkeys(names))
    for name in chosen:
        if name not in REGISTRY:
            raise VariantSpecError(unknown_name_message(name))
    if BASELINE in chosen and len(chosen) > 1:
        others = "+".join(name for name in chosen if name != BASELINE)
        raise VariantSpecError(
            f"baseline cannot be combined with other variants (it means no optimization): write {others!r}. "
            f"Valid variants: {', '.join(valid_names())}"
        )
    for index, first in enumerate(chosen):
        for second in chosen[index + 1 :]:
            if second in REGISTRY[first].conflicts or first in REGISTRY[second].conflicts:
                raise VariantSpecError(
                    f"impossible combination: {first} and {second} cannot be combined "
                    f"({REGISTRY[first].summary}; {REGISTRY[second].summary}). "
                    f"Valid variants: {', '.join(valid_names())}"
                )
    order = {name: position for position, name in enumerate(REGISTRY)}
    canonical = tuple(sorted((name for name in chosen if name != BASELINE), key=order.__getitem__))
    return Composition(canonical)


def parse(spec: str) -> Composition:
    """Parse ``a+b+c`` (spaces and case forgiven) into a Composition or raise VariantSpecError."""
    if not isinstance(spec, str) or not spec.strip():
        raise VariantSpecError(f"empty variant specification {spec!r}. Valid variants: {', '.join(valid_names())}")
    parts = [part.strip().lower().replace("-", "_") for part in spec.split("+")]
    if any(not part for part in parts):
        raise VariantSpecError(
            f"variant specification {spec!r} has an empty part; join names with '+', "
            f"e.g. 'tiny_vae+cached_embeds'. Valid variants: {', '.join(valid_names())}"
        )
    return compose(parts)


def parse_list(spec: str) -> list[Composition]:
    """Parse a comma-separated list of compositions (``baseline,tiny_vae+batch``), duplicates removed."""
    compositions = [parse(item) for item in spec.split(",") if item.strip()]
    if not compositions:
        raise VariantSpecError(f"no variant in {spec!r}. Valid variants: {', '.join(valid_names())}")
    return list(dict.fromkeys(compositions))


def all_single_variants() -> list[Composition]:
    """Every registered variant on its own, baseline first."""
    return [compose([name]) for name in REGISTRY]
