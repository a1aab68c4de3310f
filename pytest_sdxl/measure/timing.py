"""GPU-honest clocks, the pipeline's stage hooks, the per-stage timer and the stage-split pass.

Every timed region ends with the device synchronized, so queued kernels are counted. The stage
hooks call back around text encoding, each UNet call and the VAE decode; the stage timer uses
them to record CUDA events (or the CPU clock on a CPU), and the profiled pass (``profiling.py``)
to open profiler ranges. What is left of the whole generation is ``other`` (scheduler, latent
preparation, image post-processing). Installing the hooks wraps three entry points of the
pipeline; removing them puts the originals back, so a detached timer costs nothing.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, TypeVar

from pytest_sdxl.machine.devices import synchronize

Result = TypeVar("Result")
STAGES = ("text_encode", "unet", "vae_decode")


class SyncClock:
    """Reads the time only after every kernel queued on the device has finished."""

    def __init__(self, device: Any) -> None:
        self.device = device

    def now(self) -> float:
        synchronize(self.device)
        return time.perf_counter()

    def time(self, function: Callable[[], Result]) -> tuple[Result, float]:
        """Run ``function`` between two synchronized readings; return its result and the seconds taken."""
        started = self.now()
        result = function()
        return result, self.now() - started


class Mark:
    """A point in time on the device: a CUDA event on a GPU, the CPU clock elsewhere."""

    def __init__(self, device: Any) -> None:
        self.event: Any = None
        self.seconds = 0.0
        if getattr(device, "type", "cpu") == "cuda":
            import torch

            self.event = torch.cuda.Event(enable_timing=True)
            # On the measured device's stream, whichever GPU is current.
            self.event.record(torch.cuda.current_stream(device))
        else:
            self.seconds = time.perf_counter()

    def milliseconds_until(self, later: Mark) -> float:
        if self.event is not None:
            return float(self.event.elapsed_time(later.event))
        return (later.seconds - self.seconds) * 1000.0


@dataclass
class StageTimes:
    """Milliseconds per stage of one or more generations; ``unet_ms`` is per UNet call (step)."""

    total_ms: float = 0.0
    text_encode_ms: float = 0.0
    unet_total_ms: float = 0.0
    unet_calls: int = 0
    vae_decode_ms: float = 0.0

    @property
    def unet_ms(self) -> float:
        return self.unet_total_ms / self.unet_calls if self.unet_calls else 0.0

    @property
    def other_ms(self) -> float:
        return self.total_ms - self.text_encode_ms - self.unet_total_ms - self.vae_decode_ms

    def as_dict(self) -> dict[str, float]:
        return {
            "text_encode_ms": self.text_encode_ms,
            "unet_ms": self.unet_ms,
            "unet_total_ms": self.unet_total_ms,
            "unet_calls": float(self.unet_calls),
            "vae_decode_ms": self.vae_decode_ms,
            "other_ms": self.other_ms,
            "total_ms": self.total_ms,
        }

    def per_image(self, images: int) -> dict[str, float]:
        """A run record's ``stages``: milliseconds per image of each stage, adding up to ``total_ms``, and the UNet's
        milliseconds per step and calls per image."""
        count = max(images, 1)
        stages = {
            "text_encode_ms": self.text_encode_ms / count,
            "unet_ms": self.unet_total_ms / count,
            "vae_decode_ms": self.vae_decode_ms / count,
        }
        stages["total_ms"] = self.total_ms / count
        stages["other_ms"] = stages["total_ms"] - stages["text_encode_ms"] - stages["unet_ms"] - stages["vae_decode_ms"]
        stages["unet_step_ms"] = self.unet_ms
        stages["unet_calls_per_image"] = self.unet_calls / count
        return stages


class StageHooks:
    """Calls ``enter(stage)`` and ``leave(stage)`` around each stage of a diffusers SDXL pipeline while installed.

    ``pipe.encode_prompt`` and ``pipe.vae.decode`` are shadowed by instance attributes that wrap
    them; the UNet gets a forward pre-hook and forward hook pair (each UNet call is one step).
    Removing puts the originals back and leaves no attribute or hook behind. ``leave`` runs even
    when the stage raises, so what ``enter`` opened is always closed.
    """

    def __init__(self, pipe: Any, enter: Callable[[str], None], leave: Callable[[str], None]) -> None:
        self.pipe = pipe
        self.enter = enter
        self.leave = leave
        self.restore: list[Callable[[], None]] = []

    @property
    def installed(self) -> bool:
        return bool(self.restore)

    def install(self) -> StageHooks:
        if self.installed:
            return self
        self._wrap_attribute(self.pipe, "encode_prompt", "text_encode")
        self._wrap_attribute(self.pipe.vae, "decode", "vae_decode")
        handles = [
            self.pipe.unet.register_forward_pre_hook(lambda module, arguments: self.enter("unet")),
            self.pipe.unet.register_forward_hook(
                lambda module, arguments, output: self.leave("unet"), always_call=True
            ),
        ]

        def remove_hooks() -> None:
            for handle in handles:
                handle.remove()

        self.restore.append(remove_hooks)
        return self

    def remove(self) -> None:
        while self.restore:
            self.restore.pop()()

    def _wrap_attribute(self, owner: Any, name: str, stage: str) -> None:
        had_own = name in vars(owner)
        original = getattr(owner, name)

        def wrapped(*arguments: Any, **keywords: Any) -> Any:
            self.enter(stage)
            try:
                return original(*arguments, **keywords)
            finally:
                self.leave(stage)

        setattr(owner, name, wrapped)

        def put_back() -> None:
            if had_own:
                setattr(owner, name, original)
            else:
                delattr(owner, name)

        self.restore.append(put_back)

    def __enter__(self) -> StageHooks:
        return self.install()

    def __exit__(self, *exception: object) -> None:
        self.remove()


@dataclass
class StageTimer:
    """Attachable per-stage timer for one diffusers SDXL pipeline."""

    pipe: Any
    device: Any
    spans: list[tuple[str, Mark, Mark]] = field(default_factory=list)
    whole: list[tuple[Mark, Mark]] = field(default_factory=list)
    # One stack per stage: a stage called from inside itself still pairs each start with its end.
    starts: dict[str, list[Mark]] = field(default_factory=dict)
    hooks: StageHooks = field(init=False)

    def __post_init__(self) -> None:
        self.hooks = StageHooks(self.pipe, self._stage_started, self._stage_ended)

    @property
    def attached(self) -> bool:
        return self.hooks.installed

    def attach(self) -> StageTimer:
        self.hooks.install()
        return self

    def detach(self) -> None:
        self.hooks.remove()

    def _stage_started(self, stage: str) -> None:
        self.starts.setdefault(stage, []).append(Mark(self.device))

    def _stage_ended(self, stage: str) -> None:
        self.spans.append((stage, self.starts[stage].pop(), Mark(self.device)))

    @contextmanager
    def generation(self) -> Iterator[None]:
        """Mark one whole generation; the stages inside it are attributed to it."""
        start = Mark(self.device)
        yield
        self.whole.append((start, Mark(self.device)))

    def read(self) -> StageTimes:
        """Synchronize, sum what was recorded since the last read, and start afresh."""
        synchronize(self.device)
        times = StageTimes()
        for start, end in self.whole:
            times.total_ms += start.milliseconds_until(end)
        for stage, start, end in self.spans:
            elapsed = start.milliseconds_until(end)
            if stage == "unet":
                times.unet_total_ms += elapsed
                times.unet_calls += 1
            elif stage == "text_encode":
                times.text_encode_ms += elapsed
            else:
                times.vae_decode_ms += elapsed
        self.spans.clear()
        self.whole.clear()
        return times

    def __enter__(self) -> StageTimer:
        return self.attach()

    def __exit__(self, *exception: object) -> None:
        self.detach()


def stage_split(pipe: Any, device: Any, calls: list[Callable[[], int]]) -> dict[str, float]:
    """Milliseconds per image of each stage, from one warm pass over the calls with the stage timer attached.

    Each call returns the images it made. The timer's marks are not free, so this pass is never a timed one.
    """
    images = 0
    with StageTimer(pipe, device) as timer:
        for call in calls:
            with timer.generation():
                images += call()
        times = timer.read()
    return times.per_image(images)
