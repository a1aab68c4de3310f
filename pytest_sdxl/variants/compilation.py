"""The torch.compile variants: the UNet (reduce-overhead or max-autotune under a time budget) and the whole pipeline.

The whole pipeline compiles two ways: ``compile_pipeline`` with each model's own CUDA graphs, and
``compile_kernels`` without, so that another variant's capture can hold the compiled kernels.

``compile_max_autotune`` autotunes matrix-product and convolution kernels while it compiles, which
can take many minutes for the SDXL UNet; the budget (``PYTEST_SDXL_COMPILE_BUDGET``, seconds, or
with an ``s``/``m`` suffix) bounds the compile time of all its input shapes together. When the
budget runs out the compile is interrupted and the variant is skipped with that reason. Under a session
budget (``--session-budget``) the variant's share of the session caps it as well, so that one compile that
will not end in time does not spend the other variants' time.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from pytest_sdxl.errors import VariantUnavailable
from pytest_sdxl.variants.definition import Context

BUDGET_VARIABLE = "PYTEST_SDXL_COMPILE_BUDGET"
# Room for compile_unet's minute and a half, not for a max-autotune compile that never ends (the user
# guide's method page, "The compile budget").
DEFAULT_BUDGET_S = 300.0


def compile_unet(pipe: Any, context: Context) -> None:
    import torch

    pipe.unet = torch.compile(pipe.unet, mode="reduce-overhead", fullgraph=True)


def compile_regions(pipe: Any, context: Context) -> None:
    """Regional compilation: each of the UNet's repeated transformer blocks compiled, the rest eager.

    The UNet's 70 transformer blocks share a few shapes, so dynamo traces and inductor compiles a
    handful of graphs instead of the whole UNet: a fraction of ``compile_unet``'s compile time,
    cold and warm, at the price of its CUDA graph (the convolutions and the launches between the
    blocks stay eager). Needs the model's ``_repeated_blocks`` (diffusers 0.35 and later).
    """
    blocks = getattr(pipe.unet, "_repeated_blocks", None)
    if not blocks or not hasattr(pipe.unet, "compile_repeated_blocks"):
        raise VariantUnavailable(
            f"{type(pipe.unet).__name__} names no repeated blocks to compile (diffusers' compile_repeated_blocks, "
            "0.35 or later); use compile_unet"
        )
    pipe.unet.compile_repeated_blocks(fullgraph=True)


def compile_pipeline(pipe: Any, context: Context) -> None:
    """Text encoders, UNet and the VAE's decoder each compiled: reduce-overhead gives each its CUDA graphs."""
    compile_models(pipe, mode="reduce-overhead")


def compile_kernels(pipe: Any, context: Context) -> None:
    """``compile_pipeline``'s models compiled in torch.compile's default mode: inductor's kernels, no CUDA graphs.

    ``compile_pipeline`` cuts the GPU's work per image the most, but its graphs are captured model by model
    and the steps between them run eagerly, so the GPU still waits for the host between them. Without
    graphs of their own, the compiled models can sit inside one capture of the whole generation
    (``graph_pipeline``) or of the UNet step (``cuda_graph``).
    """
    compile_models(pipe, mode=None)


def compile_models(pipe: Any, mode: str | None) -> None:
    """torch.compile the text encoders, the UNet and the VAE's decoder in ``mode`` (None: the default mode)."""
    import torch

    for name in ("text_encoder", "text_encoder_2"):
        encoder = getattr(pipe, name)
        if encoder is not None:
            # Not fullgraph: the encoders return a ModelOutput with every hidden state, which may break the graph.
            compiled = torch.compile(encoder, mode=mode)
            if mode == "reduce-overhead":
                # The pipeline holds the first encoder's hidden states while the second runs, and CUDA graph
                # trees overwrite a graph's outputs then: outputs are cloned.
                compiled = outputs_cloned(encoder, compiled)
            setattr(pipe, name, compiled)
    pipe.unet = torch.compile(pipe.unet, mode=mode, fullgraph=True)
    # The pipeline calls vae.decode, not forward; decode's heavy part is the decoder module (also in the tiny VAE).
    pipe.vae.decoder = torch.compile(pipe.vae.decoder, mode=mode)


def outputs_cloned(module: Any, compiled: Any) -> Any:
    from pytest_sdxl.variants.unet_wrappers import CallReplacedUNet, clone_tensors

    return CallReplacedUNet(module, lambda *arguments, **keywords: clone_tensors(compiled(*arguments, **keywords)))


def budget_seconds(environment: Any = os.environ) -> float:
    """The compile-time budget from PYTEST_SDXL_COMPILE_BUDGET (``600``, ``600s`` or ``10m``)."""
    text = str(environment.get(BUDGET_VARIABLE, "")).strip().lower()
    if not text:
        return DEFAULT_BUDGET_S
    scale = 60.0 if text.endswith("m") else 1.0
    number = text.removesuffix("m").removesuffix("s")
    try:
        seconds = float(number) * scale
    except ValueError:
        seconds = -1.0
    if not seconds > 0:
        raise VariantUnavailable(
            f"{BUDGET_VARIABLE}={text!r} is not accepted; give a positive number of seconds, e.g. 600, 600s or 10m"
        )
    return seconds


class CompileBudgetExceeded(Exception):
    """Raised inside the compile by the timer when the budget is spent."""


@contextmanager
def deadline(seconds: float, expired: list[bool]) -> Iterator[None]:
    """Interrupt the block after seconds (main thread only: elsewhere the block runs and is checked after).

    ``expired`` is set as well: inductor wraps exceptions raised inside it (BackendCompilerFailed), so the
    caller cannot rely on catching CompileBudgetExceeded itself.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def expire(signum: int, frame: Any) -> None:
        expired.append(True)
        raise CompileBudgetExceeded

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


class BudgetedCompile:
    """Calls a compiled module; the calls that compile (the first at each input shape) share one time budget."""

    def __init__(self, compiled: Any, budget_s: float, session_share: bool = False) -> None:
        self.compiled = compiled
        self.budget_s = budget_s
        # Whether the budget is the variant's share of a session budget, not its own (BUDGET_VARIABLE): the
        # reason it gives up with names the one it passed, and what to change.
        self.session_share = session_share
        self.spent_s = 0.0
        self.seen: set[tuple[Any, ...]] = set()

    def __call__(self, *arguments: Any, **keywords: Any) -> Any:
        key = shape_key(arguments, keywords)
        if key in self.seen:
            return self.compiled(*arguments, **keywords)
        left = self.budget_s - self.spent_s
        started = time.perf_counter()
        expired: list[bool] = []
        try:
            with deadline(max(left, 1e-3), expired):
                result = self.compiled(*arguments, **keywords)
        except Exception as error:
            if not expired:
                raise
            self.spent_s += time.perf_counter() - started
            self.give_up(error)
        self.spent_s += time.perf_counter() - started
        if self.spent_s > self.budget_s:
            self.give_up()
        self.seen.add(key)
        return result

    def give_up(self, error: BaseException | None = None) -> None:
        import torch

        # An interrupted compile leaves dynamo's caches half-filled: start the next variant from a clean state.
        torch._dynamo.reset()
        if self.session_share:
            passed = f"its share of the session budget, {self.budget_s:.4g} s (--session-budget over the variants left)"
            remedy = "give the session more time, measure compile_max_autotune in a session of its own"
        else:
            passed = f"its budget of {self.budget_s:g} s"
            remedy = f"set {BUDGET_VARIABLE} higher (e.g. 20m)"
        raise VariantUnavailable(
            f"compile_max_autotune: compiling took more than {passed} ({self.spent_s:.1f} s spent); "
            f"{remedy}, or use compile_unet"
        ) from error


def shape_key(arguments: tuple[Any, ...], keywords: dict[str, Any]) -> tuple[Any, ...]:
    """The shapes and precisions of the tensors in a call, nested dictionaries included."""
    items: list[Any] = []

    def add(value: Any) -> None:
        if hasattr(value, "shape") and hasattr(value, "dtype"):
            items.append((tuple(value.shape), str(value.dtype)))
        elif isinstance(value, dict):
            for name in sorted(value):
                add(value[name])

    for value in arguments:
        add(value)
    for name in sorted(keywords):
        add(keywords[name])
    return tuple(items)


def compile_unet_max_autotune(pipe: Any, context: Context) -> None:
    import torch

    from pytest_sdxl.variants.unet_wrappers import CallReplacedUNet

    own_budget = budget_seconds()
    capped = context.session_share_s < own_budget
    budget = context.session_share_s if capped else own_budget
    compiled = torch.compile(pipe.unet, mode="max-autotune", fullgraph=True)
    pipe.unet = CallReplacedUNet(pipe.unet, BudgetedCompile(compiled, budget, session_share=capped))
