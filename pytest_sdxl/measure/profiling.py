"""The untimed profiled pass: a few pipeline calls under torch.profiler, read back as kernel time.

On a shared machine wall time moves with the host CPU while the GPU's own kernel time and the
kernel count hold still, so they are measured here, after the timed rounds: profiling slows the
host and must never overlap a timed generation. Each call runs inside a ``sdxl:call#<i>``
range and each stage inside ``sdxl:<stage>`` (the same stage hooks the stage timer uses); the
exported Chrome trace is read by ``kernels.summarize_trace``. torch is imported inside the
functions so that importing this module stays cheap.
"""

from __future__ import annotations

import os
import tempfile
import warnings
from collections.abc import Callable
from contextlib import ExitStack
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pytest_sdxl.analysis.kernels import CALL_PREFIX, TraceSummary, load_trace, stage_range_name, summarize_trace
from pytest_sdxl.machine.devices import synchronize
from pytest_sdxl.measure.timing import StageHooks

if TYPE_CHECKING:
    import torch


class StageRanges:
    """Opens a profiler range when a stage starts and closes it when the stage ends."""

    def __init__(self) -> None:
        # One stack per stage: the UNet's range opens in one hook and closes in another.
        self.open: dict[str, list[Any]] = {}

    def enter(self, stage: str) -> None:
        import torch

        profiler_range = torch.profiler.record_function(stage_range_name(stage))
        profiler_range.__enter__()
        self.open.setdefault(stage, []).append(profiler_range)

    def leave(self, stage: str) -> None:
        self.open[stage].pop().__exit__(None, None, None)


def profile_calls(
    pipe: Any,
    call: Callable[[], object],
    calls: int,
    device: torch.device,
    trace_path: Path | None = None,
) -> TraceSummary:
    """Run ``call()`` ``calls`` times under the profiler and summarize the kernels of each call.

    The Chrome trace is kept at ``trace_path`` when given (gzip-compressed when the name ends in
    .gz). On a CPU only CPU activity is recorded, so the summary has the calls and no kernels.
    """
    from torch.profiler import ProfilerActivity, profile, record_function

    if calls < 1:
        raise ValueError(f"profile at least one call, not {calls}")
    activities = [ProfilerActivity.CPU]
    if device.type == "cuda":
        activities.append(ProfilerActivity.CUDA)
    ranges = StageRanges()
    synchronize(device)  # kernels queued before the pass stay out of it
    with StageHooks(pipe, ranges.enter, ranges.leave), ExitStack() as profiling:
        with warnings.catch_warnings():
            # torch 2.10 and 2.11 warn on every start, schedule or not (pytorch/pytorch#180348);
            # this pass is one cycle, so nothing is cleared.
            warnings.filterwarnings("ignore", message="Warning: Profiler clears events", category=UserWarning)
            profiler = profiling.enter_context(profile(activities=activities))
        for index in range(calls):
            with record_function(f"{CALL_PREFIX}{index}"):
                call()
        synchronize(device)  # the last call's kernels finish while the profiler still records

    return summarize_trace(exported_trace(profiler, trace_path))


def exported_trace(profiler: Any, trace_path: Path | None) -> dict[str, Any]:
    """Export the profiler's Chrome trace, read it back, and keep it at ``trace_path`` if one is given.

    The file is exported next to its target and renamed into place, so it is never half written;
    without a target it goes to a temporary folder that is deleted once read.
    """
    target = Path(trace_path) if trace_path is not None else None
    if target is not None:
        target.parent.mkdir(parents=True, exist_ok=True)
    # torch compresses the export when the name ends in .gz.
    suffix = ".json.gz" if target is not None and target.name.endswith(".gz") else ".json"
    folder = target.parent if target is not None else None
    with tempfile.TemporaryDirectory(prefix=".sdxl-trace-", dir=folder) as temporary:
        exported = Path(temporary) / f"trace{suffix}"
        profiler.export_chrome_trace(str(exported))
        trace = load_trace(exported)
        if target is not None:
            os.replace(exported, target)
    return trace
