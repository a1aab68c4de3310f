"""Modules with random weights made where they run, in the dtype they run in, in one pass.

Constructing a diffusers or transformers model the plain way fills every parameter twice or more
(torch's default init, then the library's own), in float32, before it is scaled and cast: on a
GPU that is seconds of a process's start spent on values about to be replaced. Here the module is
constructed with its parameters on the ``meta`` device (no memory, and every init call on them does
nothing) while its buffers (CLIP's position ids) are made on the target device as usual; then
each parameter is created once on the device, in the target dtype, and written once.

What is written: one pool of independent uniform draws in [-1, 1) per component, drawn on the
CPU from the component's seed (so the weights are the same on every device, up to the dtype's
rounding) and moved to the device once; the parameters are consecutive windows of the pool, each
scaled by its bound. A component of fewer weights than the pool (every one of ``random:tiny``) gets
a draw of its own for every weight; a larger one wraps around the pool, so layers far apart share
values, which no timing, kernel or finiteness check depends on, while each parameter on its own is
still independent uniform draws. Drawing every weight of SDXL's 3.5 billion one by one costs
minutes on a CPU (the random generator makes about one draw per 5 to 20 ns); scaling a window is
a memory copy.

The bounds follow torch's default for Linear and Conv layers (uniform within 1/sqrt(fan_in), which
also gives an embedding table about CLIP's 0.02 standard deviation), weights times
``weight_scale`` so that half-precision activations stay finite; norm layers start as the identity
(weight 1, bias 0).
"""

from __future__ import annotations

import contextlib
import math
import threading
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

from pytest_sdxl.machine.devices import cast

if TYPE_CHECKING:
    import torch


# Set in a thread while it constructs modules on meta (``parameters_on_meta``); read by the one hook.
ON_META = threading.local()
# The registration hook, installed once a process and never removed: torch keeps its hooks in one
# process-wide dictionary that every thread's module construction iterates, so adding and removing a
# hook while another thread builds a pipeline fails that thread ("OrderedDict mutated during
# iteration"), and a hook of one thread would swap the other thread's parameters too.
HOOK_INSTALLED = threading.Lock()
hook_handle: Any = None


@contextlib.contextmanager
def parameters_on_meta() -> Iterator[None]:
    """Every parameter this thread registers inside is swapped for a ``meta`` one of the same shape and dtype.

    Uses torch's parameter-registration hook, so it holds for any module class; other threads, and
    this one outside the block, construct modules as usual.
    """
    install_meta_hook()
    previous = getattr(ON_META, "active", False)
    ON_META.active = True
    try:
        yield
    finally:
        ON_META.active = previous


def install_meta_hook() -> None:
    global hook_handle
    with HOOK_INSTALLED:
        if hook_handle is not None:
            return
        import torch
        from torch.nn.modules.module import register_module_parameter_registration_hook

        def to_meta(module: torch.nn.Module, name: str, parameter: torch.nn.Parameter | None) -> Any:
            if not getattr(ON_META, "active", False) or parameter is None or parameter.device.type == "meta":
                return None
            return torch.nn.Parameter(torch.empty_like(parameter, device="meta"), requires_grad=parameter.requires_grad)

        hook_handle = register_module_parameter_registration_hook(to_meta)


# Weights one pool holds: a prime, so a table whose rows wrap around the pool (an embedding larger
# than the pool) never repeats a row; 64 MiB of float32 draws, about a quarter of a second to draw.
POOL_LENGTH = 16_777_213


def build_random(
    construct: Callable[[], Any],
    device: torch.device | str,
    dtype: torch.dtype | None,
    seed: int,
    weight_scale: float = 1.0,
) -> Any:
    """``construct()`` with its weights written once on ``device`` in ``dtype`` (None: as constructed).

    On ``meta`` only the shapes exist.
    """
    import torch

    target = torch.device(device)
    with torch.device(target), parameters_on_meta():
        module = construct()
    if dtype is not None:
        module = cast(module, dtype)  # parameters are on meta: nothing is converted, only their dtype is set
    if target.type != "meta":
        fill_parameters(module, target, seed, weight_scale)
    return module.eval().requires_grad_(False)


def fill_parameters(module: Any, device: torch.device, seed: int, weight_scale: float) -> None:
    """Replace each ``meta`` parameter with one made on ``device`` and written once (shared ones stay shared)."""
    import torch

    pending = meta_parameters(module)
    if not pending:
        return
    total = sum(parameter.numel() for _, _, parameter in pending)
    pool = random_pool(min(total, POOL_LENGTH), seed, device, pending[0][2].dtype)
    window = PoolWindow(pool)
    made: dict[int, torch.nn.Parameter] = {}
    with torch.no_grad():
        for owner, name, parameter in pending:
            if id(parameter) not in made:
                values = torch.empty(parameter.shape, device=device, dtype=parameter.dtype)
                write(values, name, owner, window, weight_scale)
                made[id(parameter)] = torch.nn.Parameter(values, requires_grad=False)
            owner._parameters[name] = made[id(parameter)]


def meta_parameters(module: Any) -> list[tuple[Any, str, Any]]:
    """(owner module, name, parameter) of every parameter still on ``meta``, in registration order."""
    return [
        (owner, name, parameter)
        for owner in module.modules()
        for name, parameter in owner._parameters.items()
        if parameter is not None and parameter.device.type == "meta"
    ]


def random_pool(length: int, seed: int, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    """``length`` uniform draws in [-1, 1) from ``seed`` on the CPU, then on ``device`` in ``dtype``."""
    import torch

    generator = torch.Generator().manual_seed(seed)
    draws = torch.empty(length, dtype=torch.float32).uniform_(-1.0, 1.0, generator=generator)
    return draws.to(device=device, dtype=dtype)


class PoolWindow:
    """Hands out consecutive windows of the pool, wrapping around at its end."""

    def __init__(self, pool: torch.Tensor) -> None:
        self.pool = pool
        self.position = 0

    def scaled_into(self, values: torch.Tensor, bound: float) -> None:
        """Write the next ``values.numel()`` pool values times ``bound`` into ``values``."""
        import torch

        flat = values.view(-1)
        written = 0
        while written < flat.numel():
            take = min(flat.numel() - written, self.pool.numel() - self.position)
            torch.mul(self.pool[self.position : self.position + take], bound, out=flat[written : written + take])
            written += take
            self.position = (self.position + take) % self.pool.numel()


def write(values: torch.Tensor, name: str, owner: Any, window: PoolWindow, weight_scale: float) -> None:
    """Write one parameter: see the module docstring for the rule."""
    if values.dim() >= 2:
        window.scaled_into(values, weight_scale / math.sqrt(fan_in(values.shape)))
        return
    sibling = owner._parameters.get("weight")
    if name == "weight":
        values.fill_(1.0)  # a one-dimensional weight is a norm layer's scale
    elif name == "bias" and sibling is not None and sibling.dim() >= 2:
        window.scaled_into(values, 1.0 / math.sqrt(fan_in(sibling.shape)))
    else:
        values.zero_()


def fan_in(shape: torch.Size) -> int:
    """Inputs per output of a Linear or Conv weight (or features of an embedding row)."""
    return max(1, math.prod(shape[1:]))
