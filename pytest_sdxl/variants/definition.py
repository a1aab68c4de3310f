"""One variant as one object: its name, kind, needs, conflicts, warm-up and the function that applies it.

Built-in variants (``builtin``) and those a conftest or an installed package returns
from the ``pytest_sdxl_variants`` hook are the same class. This module imports no torch: the
plugin checks variant objects at start-up; torch is imported inside the checks that need a GPU.
"""

from __future__ import annotations

import importlib.util
import math
import re
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    from pytest_sdxl.pipelines.sources import Components

Kind = Literal["exact", "lossy"]
Origin = Literal["write-up", "write-up-tried", "write-up-untried", "beyond", "plugin"]
KINDS = ("exact", "lossy")
ORIGINS = ("write-up", "write-up-tried", "write-up-untried", "beyond", "plugin")
HALF_PRECISIONS = ("float16", "bfloat16")
# Names users type in --sdxl-variants: lower snake_case, so that parsing (which lower-cases) finds them.
NAME_PATTERN = re.compile(r"[a-z][a-z0-9_]*")
MUTABLE_COMPONENTS = ("unet", "vae", "text_encoder", "text_encoder_2")


@dataclass(frozen=True)
class Context:
    """What a variant's apply function may need besides the pipeline.

    ``session_share_s``: under a session budget, the seconds left to this variant (an equal part of what is
    left over the variants left, ``measure.session_budget``): a variant that can give up a long compile
    (``compile_max_autotune``) gives up there too. Infinite without a session budget.
    """

    components: Components
    size: int
    session_share_s: float = math.inf


def changes_only_the_call(pipe: Any, context: Context) -> None:
    """baseline, batch and cached_embeds change how the pipeline is called, not the pipeline."""


@dataclass(frozen=True)
class UnmetNeed:
    """Something a variant needs that is missing here: a short phrase, and the rest of the explanation."""

    short: str  # "needs a CUDA GPU"
    detail: str  # " (device here: cpu)": what the machine has, or how to provide it


@dataclass(frozen=True)
class Variant:
    """One optimization: what it does, what it needs, what it cannot be combined with and how to apply it.

    ``summary`` says what it does in one line (``pytest-sdxl variants`` lists it, about 60
    characters); ``details`` adds how and why, for ``--verbose`` and the user guide.
    ``apply(pipe, context)`` changes a ``StableDiffusionXLPipeline`` in place; the components
    named in ``mutates`` are private copies by then, the others are shared with other variants.
    ``call_context()``, when given, is entered around every pipeline call (and prompt encoding).
    """

    name: str
    kind: Kind
    summary: str = ""
    apply: Callable[[Any, Context], None] = changes_only_the_call
    needs_cuda: bool = False
    needs_packages: tuple[str, ...] = ()
    needs_half_precision: bool = False
    # (major, minor) CUDA compute capability at least this, e.g. (8, 9) for fp8 matrix products.
    needs_compute_capability: tuple[int, int] | None = None
    conflicts: tuple[str, ...] = ()
    # Components the variant changes: the assembly gives it its own copy of each.
    mutates: tuple[str, ...] = ()
    # Built-in variants say where they come from; a plugin's need not.
    origin: Origin = "plugin"
    # Pipeline calls at one input shape after which no more tracing, compiling or graph capture
    # happens: a timed call before then would time the capture, not the variant.
    warmup_calls: int = 1
    # Variants this one needs beside it to change anything, and why: alone it runs the same kernels
    # as the baseline, so any speed-up measured for it is noise.
    idle_without: tuple[str, ...] = ()
    idle_because: str = ""
    call_context: Callable[[], AbstractContextManager[Any]] | None = None
    details: str = ""
    # Why a CPU takes minutes over it, if it does ("" when it does not): compiling (inductor's C++ builds),
    # or arithmetic the CPU emulates. What it would time there says nothing of a GPU's kernels, so the
    # default selection on a CPU (``auto``) leaves it out and says why.
    slow_on_cpu: str = ""

    @property
    def description(self) -> str:
        """What it does, then how and why: the summary and the details in one text."""
        return "; ".join(part for part in (self.summary, self.details) if part)

    def unmet_needs(self, device_type: str, dtype_name: str) -> list[UnmetNeed]:
        """What this variant needs that this device, precision and installation lack (empty: it can run)."""
        unmet = []
        if self.needs_cuda and device_type != "cuda":
            unmet.append(UnmetNeed("needs a CUDA GPU", f" (device here: {device_type})"))
        for package in self.needs_packages:
            if importlib.util.find_spec(package) is None:
                unmet.append(UnmetNeed(f"needs the package {package!r}", f" (pip install {package})"))
        if self.needs_half_precision and dtype_name not in HALF_PRECISIONS:
            unmet.append(
                UnmetNeed(
                    "only changes a half-precision pipeline",
                    f"; in {dtype_name} the VAE already decodes in full precision (use --sdxl-dtype float16)",
                )
            )
        if self.needs_compute_capability is not None and device_type == "cuda":
            found = cuda_capability()
            if found is not None and found < self.needs_compute_capability:
                wanted = ".".join(map(str, self.needs_compute_capability))
                unmet.append(
                    UnmetNeed(f"needs CUDA compute capability {wanted} or more", f" (this GPU: {found[0]}.{found[1]})")
                )
        return unmet

    def unmet_requirements(self, device_type: str, dtype_name: str) -> list[str]:
        """Why this variant cannot run on this device, precision and installation, in full (empty: it can)."""
        return [f"{self.name} {need.short}{need.detail}" for need in self.unmet_needs(device_type, dtype_name)]


def cuda_capability() -> tuple[int, int] | None:
    """The current CUDA device's compute capability; None when torch sees no CUDA device."""
    import torch

    if not torch.cuda.is_available():
        return None
    major, minor = torch.cuda.get_device_capability()
    return (major, minor)


def problems(variant: object) -> list[str]:
    """What is wrong with an object offered as a variant (empty: it is a valid Variant)."""
    if not isinstance(variant, Variant):
        return [
            f"{variant!r} is a {type(variant).__name__}, not a pytest_sdxl.variants.Variant "
            "(build one with Variant(name=..., kind='exact' or 'lossy', summary=..., apply=...))"
        ]
    found = []
    if not isinstance(variant.name, str) or not NAME_PATTERN.fullmatch(variant.name):
        found.append(f"name {variant.name!r} is not lower snake_case (letters, digits, '_', a letter first)")
    if variant.kind not in KINDS:
        found.append(f"kind {variant.kind!r} is not one of {', '.join(KINDS)}")
    if variant.origin not in ORIGINS:
        found.append(f"origin {variant.origin!r} is not one of {', '.join(ORIGINS)}")
    for text_field in ("summary", "details"):
        if not isinstance(getattr(variant, text_field), str):
            found.append(f"{text_field} {getattr(variant, text_field)!r} is not a string")
    if not callable(variant.apply):
        found.append(f"apply {variant.apply!r} is not callable as apply(pipe, context)")
    if variant.call_context is not None and not callable(variant.call_context):
        found.append(f"call_context {variant.call_context!r} is not callable")
    if not isinstance(variant.slow_on_cpu, str):
        found.append(f"slow_on_cpu {variant.slow_on_cpu!r} is not a string (why a CPU takes minutes over it, or '')")
    if not isinstance(variant.warmup_calls, int) or variant.warmup_calls < 1:
        found.append(f"warmup_calls {variant.warmup_calls!r} is not a whole number of at least 1")
    unknown_components = [name for name in variant.mutates if name not in MUTABLE_COMPONENTS]
    if unknown_components:
        found.append(f"mutates {unknown_components} but only {', '.join(MUTABLE_COMPONENTS)} can be copied")
    for field_name in ("needs_packages", "conflicts", "mutates", "idle_without"):
        value = getattr(variant, field_name)
        if not isinstance(value, tuple) or not all(isinstance(item, str) for item in value):
            found.append(f"{field_name} {value!r} is not a tuple of strings")
    return found
