"""Device and precision resolution, the CPU's thread default, synchronization and GPU memory.

torch is imported inside the functions so that importing this module stays cheap.

Every entry point resolves its device here (the plugin's components, ``run``, ``tune``, ``power``,
``overhead`` and the asv suite), so the CPU's thread default is applied here too: one torch thread
unless ``OMP_NUM_THREADS`` says otherwise. torch's own default, one thread per core, oversubscribes a
shared machine: on two cores busy with anything else a 64x64 image took ten times longer and its
timings swung tenfold (coefficient of variation 179 % with the default threads, 5 % with one). With one
thread a generation slows in proportion to the load, which the side-by-side ratios cancel.
"""

from __future__ import annotations

import gc
import os
import sys
import traceback
from typing import TYPE_CHECKING, Any, Protocol

from pytest_sdxl.errors import SettingsError, VariantUnavailable

if TYPE_CHECKING:
    import torch

BYTES_PER_GB = 1e9
DTYPE_NAMES = {
    "fp16": "float16",
    "float16": "float16",
    "half": "float16",
    "bf16": "bfloat16",
    "bfloat16": "bfloat16",
    "fp32": "float32",
    "float32": "float32",
    "float": "float32",
}


# The variable that overrides the CPU's thread default, read by torch itself at start-up.
THREADS_VARIABLE = "OMP_NUM_THREADS"
# Whether this process has applied the thread default: once, so that a caller's later choice stands.
_threads_chosen = False


def use_cpu_thread_default() -> int:
    """One torch thread on a CPU unless OMP_NUM_THREADS is set (torch then uses it); the threads in use.

    Applied once a process, at the first CPU device resolved: a later ``torch.set_num_threads`` stands.
    """
    import torch

    global _threads_chosen
    if not _threads_chosen and THREADS_VARIABLE not in os.environ:
        torch.set_num_threads(1)
    _threads_chosen = True
    return int(torch.get_num_threads())


def threads_in_use() -> dict[str, object]:
    """The torch threads of this process and where their number came from, for a results' settings block."""
    import torch

    origin = f"{THREADS_VARIABLE}={os.environ[THREADS_VARIABLE]}" if THREADS_VARIABLE in os.environ else "default"
    return {"torch_threads": int(torch.get_num_threads()), "torch_threads_from": origin}


def device_type(name: str) -> str:
    """``cpu`` or ``cuda`` for a device setting (a list of GPUs included), without importing torch.

    For ``auto``: torch's answer where it is imported already, else the NVIDIA driver's (no driver, no
    GPU torch could see). The plugin asks at collection, where importing torch would cost seconds, and
    under pytester's in-process runs would import it afresh each time (pytester drops new modules).
    """
    if name != "auto":
        return "cpu" if name == "cpu" else "cuda"
    torch = sys.modules.get("torch")
    if torch is not None:
        return "cuda" if torch.cuda.is_available() else "cpu"
    import shutil
    from pathlib import Path

    # The driver's /proc files (machine.probes.gpus_from_driver reads them), or nvidia-smi where there are none (WSL).
    return "cuda" if Path("/proc/driver/nvidia/gpus").is_dir() or shutil.which("nvidia-smi") else "cpu"


def resolve_device(name: str) -> torch.device:
    """Turn 'auto', 'cpu', 'cuda' or 'cuda:N' into a torch.device that exists here.

    A CPU gets the thread default (``use_cpu_thread_default``).
    """
    import torch

    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        use_cpu_thread_default()
        return torch.device("cpu")
    if "," in name:
        raise SettingsError(
            f"device {name!r} is a list of devices, one for each pytest-xdist worker (pytest -n 2); "
            "without workers give one device, e.g. cuda:0"
        )
    try:
        device = torch.device(name)
    except (RuntimeError, ValueError) as error:
        raise SettingsError(f"device {name!r} is not a device: {error}; use auto, cpu, cuda or cuda:N") from None
    if device.type == "cpu":
        use_cpu_thread_default()
    if device.type == "cuda" and not torch.cuda.is_available():
        raise VariantUnavailable(f"device {name!r} was asked for but no CUDA device is available here")
    if device.type == "cuda" and device.index is not None:
        count = torch.cuda.device_count()
        if device.index >= count:
            raise VariantUnavailable(
                f"device {name!r} was asked for but this machine has {count} CUDA "
                f"{'device' if count == 1 else 'devices'} (cuda:0 to cuda:{count - 1})"
            )
        # The process measures on this GPU alone: make it the current one, which CUDA events, graph
        # capture and cuDNN handles use when no device is named (an xdist worker pinned to cuda:1
        # would record its timing events on cuda:0 and could not read them).
        torch.cuda.set_device(device)
    return device


def check_present(devices: list[str], shown: str, where: str) -> None:
    """Refuse a ``cuda:N`` this machine lacks (N at or past torch's device count), before any pipeline is built.

    torch is imported only when a ``cuda:N`` is named. On a machine without any CUDA device the names
    pass: the GPU is missing, not mistyped, so each variant is skipped with that reason and the session
    ends "nothing measured" (a non-zero exit status), as a ``gpu`` test is skipped there.
    """
    indices = [int(device.split(":", 1)[1]) for device in devices if device.startswith("cuda:")]
    if not indices:
        return
    import torch

    if not torch.cuda.is_available():
        return
    count = torch.cuda.device_count()
    missing = [f"cuda:{index}" for index in indices if index >= count]
    if missing:
        plural = "device" if count == 1 else "devices"
        present = "cuda:0" if count == 1 else f"cuda:0 to cuda:{count - 1}"
        raise SettingsError(
            f"{where}: {shown!r} names {', '.join(missing)} but this machine has {count} CUDA {plural} ({present}); "
            f"accepted: auto, cpu, cuda, {present}, or a list of them for pytest-xdist workers"
        )


def resolve_dtype(name: str, device: torch.device) -> torch.dtype:
    """Turn 'auto' or a precision name into a torch dtype; auto is float16 on CUDA, float32 elsewhere."""
    import torch

    if name == "auto":
        return torch.float16 if device.type == "cuda" else torch.float32
    canonical = DTYPE_NAMES.get(name.lower())
    if canonical is None:
        accepted = ", ".join(["auto", *sorted(DTYPE_NAMES)])
        raise SettingsError(f"dtype {name!r} is not a precision; accepted: {accepted}")
    dtype: torch.dtype = getattr(torch, canonical)
    return dtype


def synchronize(device: torch.device) -> None:
    """Wait until every kernel queued on the device has finished (a no-op on the CPU)."""
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize(device)


_FROZEN = False


def freeze_what_lives_now() -> None:
    """Move every object alive now (the imported libraries) out of the collector's sight, once per process.

    ``free_memory`` collects garbage after every variant, and a full collection walks every tracked object:
    with torch, diffusers and transformers imported that is about 450,000 objects and 0.2 s a collection
    on the project's 2-core CI machine, against microseconds once they are frozen (the user guide's method
    page, "Cost of a process"). Call it after the heavy imports and before any model is built: frozen
    objects are still freed when nothing refers to them, but a frozen reference cycle never is, so
    nothing that is later dropped (a pipeline, its weights) may be alive when it runs.
    """
    global _FROZEN
    if _FROZEN:
        return
    gc.collect()
    gc.freeze()
    _FROZEN = True


def free_memory(device: torch.device | None = None) -> None:
    """Collect garbage and hand cached GPU blocks back, so the next variant starts clean."""
    import torch

    gc.collect()
    if torch.cuda.is_available() and (device is None or device.type == "cuda"):
        torch.cuda.empty_cache()


def cast(module: Any, dtype: torch.dtype) -> Any:
    """``module.to(dtype)`` without diffusers' per-call casting warning, and nothing when already there."""
    import torch

    parameter = next(iter(module.parameters()), None)
    if parameter is None or parameter.dtype == dtype:
        return module
    from diffusers.utils import logging as diffusers_logging

    # diffusers warns on every cast of a model that lists no fp32-only modules: nothing to learn here.
    previous = diffusers_logging.get_verbosity()
    diffusers_logging.set_verbosity_error()
    try:
        with torch.no_grad():
            return module.to(dtype)
    finally:
        diffusers_logging.set_verbosity(previous)


def is_out_of_memory(error: BaseException) -> bool:
    """Whether an exception is a device running out of memory."""
    import torch

    if isinstance(error, torch.cuda.OutOfMemoryError):
        return True
    return isinstance(error, RuntimeError) and "out of memory" in str(error).lower()


def reset_peak_memory(device: Any) -> None:
    if device.type == "cuda":
        import torch

        torch.cuda.reset_peak_memory_stats(device)


def peak_memory_gb(device: Any) -> float | None:
    """The most GPU memory torch allocated since the last reset, in GB (10^9 bytes); None on a CPU."""
    if device.type != "cuda":
        return None
    import torch

    return float(torch.cuda.max_memory_allocated(device)) / BYTES_PER_GB


def release_after_failure(error: BaseException, device: Any) -> None:
    """Let a failed variant's tensors go before the next variant runs.

    pytest keeps a failure's traceback (in the report, in ``sys.last_traceback``, in a session
    fixture's cached error), and its frames hold the tensors of the failed call: out-of-memory
    would follow into the next variant. The locals of finished frames are cleared (the traceback
    still prints), then unused GPU memory goes back to the driver.
    """
    if error.__traceback__ is not None:
        traceback.clear_frames(error.__traceback__)
    free_memory(device)


class DeviceChoice(Protocol):
    """The device and precision a user chose, as typed (``auto``, ``cuda:1``, ``float16``...)."""

    @property
    def device(self) -> str: ...
    @property
    def dtype(self) -> str: ...
