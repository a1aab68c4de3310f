"""The GPU's own signals of a variant: kernel time, kernel launches, FLOPs, from untimed passes.

Wall time on a shared machine follows the host CPU, which launches the kernels of an eager
one-step pipeline and jitters; the GPU's summed kernel time and its kernel count do not. They come
from a profiled pass (``profiling.profile_calls``) that runs after the timed rounds, never inside
them, because the profiler slows the host. FLOPs are counted by ``torch.utils.flop_counter`` on the
eager modules: compilation, tracing and graph capture change how kernels are launched, not the
arithmetic, and a dispatch-mode counter cannot see inside a replayed graph.

On a CPU there are no CUDA kernels: the signals say so (``not_applicable``) instead of zeros;
FLOPs still apply.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pytest_sdxl.analysis.kernels import OTHER_STAGE
from pytest_sdxl.results.records import DeviceSignals

if TYPE_CHECKING:
    from pytest_sdxl.variants.assembly import VariantPipeline

# Profiled calls per run: enough for a median and a spread of the kernel time, few enough to stay cheap.
PROFILED_CALLS = 3
NO_KERNELS_ON_CPU = "cpu: no CUDA kernels to count; kernel time, launches and busy fraction apply on a GPU only"


def kernel_signals(
    pipe: Any, calls: list[Callable[[], int]], device: Any, trace_path: Path | None = None
) -> DeviceSignals:
    """Kernel time and launches per image of each call (each call returns how many images it made)."""
    if device.type != "cuda":
        return DeviceSignals(not_applicable=NO_KERNELS_ON_CPU)
    from pytest_sdxl.measure.profiling import profile_calls

    images: list[int] = []

    def next_call() -> None:
        # The profiled calls cycle through the round's calls, so every shape of the round is seen.
        images.append(calls[len(images) % len(calls)]())

    summary = profile_calls(pipe, next_call, PROFILED_CALLS, device, trace_path)
    total_images = max(sum(images), 1)
    return DeviceSignals(
        kernel_ms=[us / 1000 / count for us, count in zip(summary.call_kernel_us, images, strict=True)],
        kernels=[launches / count for launches, count in zip(summary.call_kernels, images, strict=True)],
        stage_kernel_ms={stage: us / 1000 / total_images for stage, us in summary.stage_kernel_us.items()},
        kernel_table={
            group: [count / total_images, us / total_images] for group, (count, us) in sorted(summary.table.items())
        },
    )


def trace_one_generation(pipe: Any, call: Callable[[], int], device: Any, trace_path: Path) -> None:
    """Keep a Chrome trace (opens in Perfetto) of one generation, profiled apart from the signals' pass."""
    from pytest_sdxl.measure.profiling import profile_calls

    profile_calls(pipe, call, 1, device, trace_path)


@contextmanager
def eager_unet(pipe: Any) -> Iterator[None]:
    """The pipeline's UNet as plain modules for the duration: the compiled or captured stand-in set aside."""
    unet = pipe.unet
    eager = getattr(unet, "_orig_mod", None) or getattr(unet, "unet", None)
    if eager is None or not hasattr(eager, "forward"):
        yield
        return
    pipe.unet = eager
    try:
        yield
    finally:
        pipe.unet = unet


def flops_by_stage(pipe: Any, call: Callable[[], int]) -> tuple[float | None, dict[str, float]]:
    """Matrix FLOPs of one image in all and by stage, counted on one call; (None, {}) where counting fails.

    The stage hooks read the counter's running total as each stage starts and ends; what falls
    outside every stage is ``other``. The hooks go on the eager UNet, the one the counter sees. A
    ``graph_pipeline`` call runs its work uncaptured here: a replayed graph dispatches no operator to count.
    """
    from torch.utils.flop_counter import FlopCounterMode

    from pytest_sdxl.measure.timing import StageHooks
    from pytest_sdxl.variants.pipeline_graph import run_uncaptured

    by_stage: dict[str, float] = {}
    started: dict[str, list[float]] = {}
    try:
        with (
            warnings.catch_warnings(),
            eager_unet(pipe),
            run_uncaptured(pipe),
            FlopCounterMode(display=False) as counter,
        ):
            # The counter tracks modules through global hooks, and a compiled model warns that such hooks fire
            # twice around it. Only the counter's per-module table would double; the totals read here do not.
            warnings.filterwarnings("ignore", message=r"Using `torch.compile\(module\)` when there are global hooks")

            def enter(stage: str) -> None:
                started.setdefault(stage, []).append(float(counter.get_total_flops()))

            def leave(stage: str) -> None:
                begun = started[stage].pop()
                by_stage[stage] = by_stage.get(stage, 0.0) + float(counter.get_total_flops()) - begun

            with StageHooks(pipe, enter, leave):
                images = call()
    except Exception:  # a variant the counter cannot follow (offload hooks, an exotic kernel) has no FLOPs figure
        return None, {}
    count = max(images, 1)
    total = float(counter.get_total_flops())
    stages = {stage: flops / count for stage, flops in by_stage.items()}
    stages[OTHER_STAGE] = max(total - sum(by_stage.values()), 0.0) / count
    return total / count, stages


def profiled_passes(
    pipeline: VariantPipeline, calls: list[Callable[[], int]], passes: int, count_flops: bool, trace_path: Path | None
) -> tuple[list[DeviceSignals], float | None]:
    """A measurement's device signals, after its timed rounds: ``passes`` profiled passes over the round's calls.

    With ``count_flops``, the FLOPs of one call and the card's matrix peak go into every pass's signals;
    with ``trace_path``, one generation's Chrome trace is kept. Returns the passes' signals and the FLOPs.
    """
    from pytest_sdxl.measure.matrix_peak import matrix_peak

    signals = [kernel_signals(pipeline.pipe, calls, pipeline.device) for _ in range(passes)]
    flops, stage_flops = flops_by_stage(pipeline.pipe, calls[0]) if count_flops else (None, {})
    peak, peak_reason = matrix_peak(pipeline.device, pipeline.components.dtype) if count_flops else (None, "")
    for item in signals:
        item.flops = flops
        item.stage_flops = dict(stage_flops)
        item.matrix_peak_tflops, item.matrix_peak_not_applicable = peak, peak_reason
    if trace_path is not None:
        trace_one_generation(pipeline.pipe, calls[0], pipeline.device, trace_path)
    return signals, flops
