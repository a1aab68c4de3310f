"""GPU kernel time and kernel counts read from a profiler's Chrome trace, and their differences.

The trace is what ``torch.profiler.profile(...).export_chrome_trace(path)`` writes with CUDA
activity on (Kineto's format): complete events (``"ph": "X"``, ``ts``/``dur`` in microseconds),
GPU kernels under ``"cat": "kernel"``, their host-side launches under ``"cuda_runtime"`` or
``"cuda_driver"`` with the same ``args.correlation``, and ``record_function`` ranges as
``"user_annotation"`` on the CPU timeline and ``"gpu_user_annotation"`` on the GPU timeline.

The profiled pass (``measure.profiling``) names its ranges ``sdxl:call#<i>`` around each call and
``sdxl:<stage>`` around each stage; a kernel belongs to the call and the innermost stage whose
CPU range holds its launch. Pure standard library: reading a trace never imports torch.
"""

from __future__ import annotations

import gzip
import json
import os
import re
from bisect import bisect_right
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

CALL_PREFIX = "sdxl:call#"
STAGE_PREFIX = "sdxl:"
STAGE_NAMES = ("text_encode", "unet", "vae_decode")
OTHER_STAGE = "other"

# cudaLaunchKernel, cudaLaunchKernelExC and cudaGraphLaunch are runtime calls; cuLaunchKernel
# (Triton's launcher) is a driver call, which Kineto files under its own category.
LAUNCH_CATEGORIES = frozenset({"cuda_runtime", "cuda_driver"})
KERNEL_CATEGORY = "kernel"
CPU_RANGE_CATEGORY = "user_annotation"
GPU_RANGE_CATEGORY = "gpu_user_annotation"
GROUP_LENGTH = 120
GZIP_MAGIC = b"\x1f\x8b"

# Kernels that only launch the real kernel named by their first template argument: grouping
# them by their own name would put every GEMM tile configuration in one row.
WRAPPER_KERNELS = frozenset({"cutlass::Kernel", "cutlass::Kernel2", "cutlass::device_kernel"})
CALL_NAME = re.compile(re.escape(CALL_PREFIX) + r"(\d+)")


@dataclass(frozen=True)
class TraceSummary:
    """Kernel time (microseconds) and kernel counts of the profiled calls in one trace."""

    calls: int
    call_kernel_us: list[float]
    call_kernels: list[int]
    stage_kernel_us: dict[str, float]
    table: dict[str, tuple[int, float]]


def stage_range_name(stage: str) -> str:
    """The record_function name of a stage: 'sdxl:unet' for 'unet'."""
    return f"{STAGE_PREFIX}{stage}"


def load_trace(path: str | os.PathLike[str]) -> dict[str, Any]:
    """A Chrome trace from a .json or gzip-compressed file; ValueError naming the file when it is not one."""
    source = Path(path)
    data = source.read_bytes()
    try:
        if data.startswith(GZIP_MAGIC):
            data = gzip.decompress(data)
        trace = json.loads(data)
    except (OSError, EOFError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ValueError(f"trace file {str(source)!r} is not a Chrome trace: {error}") from None
    # Chrome's JSON Array Format is a bare list of events.
    if isinstance(trace, list):
        trace = {"traceEvents": trace}
    if not isinstance(trace, dict) or not isinstance(trace.get("traceEvents"), list):
        raise ValueError(
            f"trace file {str(source)!r} is not a Chrome trace: it has no traceEvents list; "
            "write one with torch.profiler.profile(...).export_chrome_trace(path)"
        )
    return trace


def kernel_group(name: str) -> str:
    """The kernel's name without return type, template arguments and parameter list (namespaces kept).

    ``void at::native::vectorized_elementwise_kernel<4, ...>(int, ...)`` becomes
    ``at::native::vectorized_elementwise_kernel``; a CUTLASS wrapper keeps the kernel it wraps
    (``cutlass::Kernel2<cutlass_80_tensorop_..._align8>``); one-token cuBLAS, cuDNN and Triton
    names stay as they are.
    """
    text = name.strip()
    if text.startswith("void "):
        text = text[len("void ") :]
    text = drop_parameter_list(text)
    base, first_argument = split_template_arguments(text)
    if base in WRAPPER_KERNELS and first_argument:
        base = f"{base}<{kernel_group(first_argument)}>"
    return base[:GROUP_LENGTH]


def drop_parameter_list(text: str) -> str:
    """Drop a trailing '(...)'; parentheses inside template arguments are balanced, so counting them finds its start."""
    if not text.endswith(")"):
        return text
    depth = 0
    for index in range(len(text) - 1, -1, -1):
        if text[index] == ")":
            depth += 1
        elif text[index] == "(":
            depth -= 1
            if depth == 0:
                return text[:index].rstrip()
    return text


def split_template_arguments(text: str) -> tuple[str, str]:
    """The text outside every '<...>' and the first template argument of the outermost list."""
    outside: list[str] = []
    first_argument: list[str] = []
    angle_depth = 0
    bracket_depth = 0  # parentheses and braces inside template arguments, e.g. '{lambda(int)#1}'
    first_done = False
    for character in text:
        if character == "<":
            angle_depth += 1
            if angle_depth > 1 and not first_done:
                first_argument.append(character)
            continue
        if character == ">" and angle_depth > 0:
            angle_depth -= 1
            if angle_depth == 0:
                first_done = True
            elif not first_done:
                first_argument.append(character)
            continue
        if angle_depth == 0:
            outside.append(character)
            continue
        if character in "({":
            bracket_depth += 1
        elif character in ")}":
            bracket_depth -= 1
        if angle_depth == 1 and bracket_depth == 0 and character == ",":
            first_done = True
        if not first_done:
            first_argument.append(character)
    return "".join(outside).strip(), "".join(first_argument).strip()


class Ranges:
    """Named time ranges that nest or follow each other; finds the innermost one holding a moment."""

    def __init__(self, ranges: Iterable[tuple[str, float, float]]) -> None:
        # Equal starts put the longer range first, so walking back meets the inner one first.
        self.ranges = sorted(ranges, key=lambda item: (item[1], -item[2]))
        self.starts = [start for _, start, _ in self.ranges]
        # The furthest end among ranges up to each index: once it falls before the moment,
        # no earlier range can hold it, which bounds the walk back.
        self.reach: list[float] = []
        for _, _, end in self.ranges:
            self.reach.append(max(end, self.reach[-1]) if self.reach else end)

    def innermost(self, moment: float) -> str | None:
        index = bisect_right(self.starts, moment) - 1
        while index >= 0 and self.reach[index] >= moment:
            name, _, end = self.ranges[index]
            if end >= moment:
                return name
            index -= 1
        return None


def correlation_of(event: Mapping[str, Any]) -> int | None:
    arguments = event.get("args")
    if not isinstance(arguments, dict):
        return None
    correlation = arguments.get("correlation")
    return correlation if isinstance(correlation, int) else None


def summarize_trace(trace: Mapping[str, Any]) -> TraceSummary:
    """Kernel time and counts per profiled call, per stage and per kernel group (memcpy and memset left out)."""
    launches: dict[int, float] = {}
    kernels: list[Mapping[str, Any]] = []
    call_ranges: dict[str, list[tuple[str, float, float]]] = {CPU_RANGE_CATEGORY: [], GPU_RANGE_CATEGORY: []}
    stage_ranges: dict[str, list[tuple[str, float, float]]] = {CPU_RANGE_CATEGORY: [], GPU_RANGE_CATEGORY: []}
    stage_by_range_name = {stage_range_name(stage): stage for stage in STAGE_NAMES}
    for event in trace.get("traceEvents", []):
        if not isinstance(event, dict) or event.get("ph") != "X":
            continue
        category = event.get("cat")
        if category == KERNEL_CATEGORY:
            kernels.append(event)
        elif category in LAUNCH_CATEGORIES:
            correlation = correlation_of(event)
            if correlation is not None:
                launches.setdefault(correlation, float(event["ts"]))
        elif category in call_ranges:
            name = str(event.get("name", ""))
            start = float(event["ts"])
            end = start + float(event.get("dur", 0.0))
            if CALL_NAME.fullmatch(name):
                call_ranges[category].append((name, start, end))
            elif name in stage_by_range_name:
                stage_ranges[category].append((stage_by_range_name[name], start, end))

    # The CPU ranges name the calls; the GPU ranges only stand in when the CPU side is missing.
    call_names = {name for name, _, _ in call_ranges[CPU_RANGE_CATEGORY] or call_ranges[GPU_RANGE_CATEGORY]}
    ordered_calls = sorted(call_names, key=lambda name: int(name[len(CALL_PREFIX) :]))
    position = {name: index for index, name in enumerate(ordered_calls)}
    cpu_calls, gpu_calls = Ranges(call_ranges[CPU_RANGE_CATEGORY]), Ranges(call_ranges[GPU_RANGE_CATEGORY])
    cpu_stages, gpu_stages = Ranges(stage_ranges[CPU_RANGE_CATEGORY]), Ranges(stage_ranges[GPU_RANGE_CATEGORY])

    call_kernel_us = [0.0] * len(ordered_calls)
    call_kernels = [0] * len(ordered_calls)
    stage_kernel_us = dict.fromkeys((*STAGE_NAMES, OTHER_STAGE), 0.0)
    group_counts: dict[str, int] = {}
    group_us: dict[str, float] = {}
    for kernel in kernels:
        correlation = correlation_of(kernel)
        launched = launches.get(correlation) if correlation is not None else None
        if launched is not None:
            call, stage = cpu_calls.innermost(launched), cpu_stages.innermost(launched)
        else:
            # Without its launch the kernel's own GPU start is the only clue. Kineto bounds a GPU
            # range by the kernels launched directly in it, so a call's GPU range can be narrower
            # than the call: a rare kernel may be missed, never given to the wrong call.
            started = float(kernel["ts"])
            call, stage = gpu_calls.innermost(started), gpu_stages.innermost(started)
        if call is None or call not in position:
            continue
        duration = float(kernel.get("dur", 0.0))
        index = position[call]
        call_kernel_us[index] += duration
        call_kernels[index] += 1
        stage_kernel_us[stage or OTHER_STAGE] += duration
        group = kernel_group(str(kernel.get("name", "")))
        group_counts[group] = group_counts.get(group, 0) + 1
        group_us[group] = group_us.get(group, 0.0) + duration
    return TraceSummary(
        calls=len(ordered_calls),
        call_kernel_us=call_kernel_us,
        call_kernels=call_kernels,
        stage_kernel_us=stage_kernel_us,
        table={group: (count, group_us[group]) for group, count in group_counts.items()},
    )


@dataclass(frozen=True)
class KernelChange:
    """One kernel group's count and time per image in a base and a new trace."""

    group: str
    base_count: float
    new_count: float
    base_us: float
    new_us: float

    @property
    def count_change(self) -> float:
        return self.new_count - self.base_count

    @property
    def us_change(self) -> float:
        return self.new_us - self.base_us


def kernel_diff(
    base: Mapping[str, tuple[float, float]],
    new: Mapping[str, tuple[float, float]],
    base_images: int,
    new_images: int,
    top: int = 10,
) -> list[KernelChange]:
    """The ``top`` kernel groups whose time or count per image changed most, largest time change first.

    Groups on one side only count as zero on the other; groups that did not change are left out.
    """
    if base_images < 1 or new_images < 1:
        raise ValueError(f"image counts must be positive, got base {base_images} and new {new_images}")
    changes = []
    for group in set(base) | set(new):
        base_count, base_us = base.get(group, (0.0, 0.0))
        new_count, new_us = new.get(group, (0.0, 0.0))
        change = KernelChange(
            group=group,
            base_count=base_count / base_images,
            new_count=new_count / new_images,
            base_us=base_us / base_images,
            new_us=new_us / new_images,
        )
        if change.count_change or change.us_change:
            changes.append(change)
    changes.sort(key=lambda change: (-abs(change.us_change), -abs(change.count_change), change.group))
    return changes[:top]


def change_wording(change: KernelChange, unit: str) -> str:
    """What happened to one kernel group: new, removed, or its time's change in ``unit`` (and in percent)."""
    if not change.base_count:
        return "new"
    if not change.new_count:
        return "removed"
    if change.base_us:
        return f"{change.us_change:+.1f} {unit} ({change.us_change / change.base_us:+.1%})"
    return f"{change.us_change:+.1f} {unit}"


def kernel_diff_table(changes: list[KernelChange]) -> str:
    """The changes as a markdown table: group, count and microseconds per image, base -> new, and the change."""
    lines = [
        "| kernel group | count/image base -> new | us/image base -> new | change |",
        "|---|---|---|---|",
    ]
    for change in changes:
        verdict = change_wording(change, "us")
        # A pipe in a C++ name (operator|) would split the cell.
        group = change.group.replace("|", "\\|")
        lines.append(
            f"| `{group}` | {change.base_count:g} -> {change.new_count:g} "
            f"| {change.base_us:.1f} -> {change.new_us:.1f} | {verdict} |"
        )
    return "\n".join(lines)
