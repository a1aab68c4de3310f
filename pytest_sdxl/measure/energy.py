"""The GPU's energy counter through NVML: the joules a run's own timed calls drew, or why there is no figure.

NVML's ``nvmlDeviceGetTotalEnergyConsumption`` counts millijoules since the driver loaded (Volta and
newer). The timed loop reads it before the first and after the last call of each of its rounds,
outside every per-call clock reading and with the device synchronized, so a run's energy is the sum
of its rounds' deltas: a side-by-side reference's rounds in between are not counted. The counter is
the whole board's: another process on the same GPU adds to it, as it adds to the wall time. The
counter moves in steps at the driver's pace (not documented per card), so one round's delta can be
off by a step; a run sums its rounds, and back-to-back rounds' errors cancel. Under pytest-benchmark
the two reads fall inside its round time (a driver query each), never inside ``gen_s``.

Without a figure the reason is kept instead of a zero: on a CPU, without ``pynvml`` (the optional
``gpu`` extra, ``nvidia-ml-py``), when NVML cannot start, finds no device for torch's, or the card
does not support the counter. ``pynvml`` is imported only when a counter is opened.

The NVML device of torch's ``cuda:i`` is found as for the GPU's state readings
(``machine.nvml.nvml_handle``: by the card's UUID, which CUDA's and NVML's orders share). A MIG
instance has no counter of its own.
"""

from __future__ import annotations

from typing import Any

from pytest_sdxl.machine.nvml import nvml_handle, text_of, torch_uuid

ON_CPU = "n/a: cpu (no GPU energy counter)"
NO_NVML = "n/a: no NVML (install the gpu extra: pip install 'pytest-sdxl[gpu]')"
DID_NOT_ADVANCE = "n/a: the GPU energy counter did not advance over the timed calls"


class EnergyCounter:
    """Reads one GPU's energy counter; after a failed read it reads None and keeps the reason."""

    def __init__(self, nvml: Any, handle: Any) -> None:
        self.nvml = nvml
        self.handle = handle
        self.not_applicable = ""

    def joules(self) -> float | None:
        """The counter in joules, or None once a read has failed (``not_applicable`` says why)."""
        if self.not_applicable:
            return None
        try:
            return float(self.nvml.nvmlDeviceGetTotalEnergyConsumption(self.handle)) / 1000.0
        except self.nvml.NVMLError as error:
            self.not_applicable = unsupported_reason(self.nvml, self.handle, error)
            return None


def unsupported_reason(nvml: Any, handle: Any, error: BaseException) -> str:
    try:
        name = nvml.nvmlDeviceGetName(handle)
    except Exception:  # the name only decorates the reason
        name = "this GPU"
    name = text_of(name)
    if getattr(error, "value", None) == getattr(nvml, "NVML_ERROR_NOT_SUPPORTED", object()):
        return f"n/a: {name} has no NVML energy counter (needs Volta or newer, not a MIG instance)"
    return f"n/a: NVML energy counter of {name} cannot be read ({error})"


def open_counter(device: Any, uuid: str | None = None) -> tuple[EnergyCounter | None, str]:
    """An energy counter for the device and "", or None and why; checked with a first read.

    ``uuid`` defaults to what torch reports for a CUDA device.
    """
    if getattr(device, "type", "cpu") != "cuda":
        return None, ON_CPU
    try:
        import pynvml
    except ImportError:
        return None, NO_NVML
    index = device.index if device.index is not None else 0
    try:
        pynvml.nvmlInit()
    except pynvml.NVMLError as error:
        return None, f"n/a: NVML cannot start ({error})"
    try:
        if uuid is None:
            uuid = torch_uuid(index)
        handle = nvml_handle(pynvml, index, uuid)
    except (LookupError, pynvml.NVMLError) as error:
        return None, f"n/a: no NVML device found for cuda:{index} ({error})"
    counter = EnergyCounter(pynvml, handle)
    if counter.joules() is None:
        return None, counter.not_applicable
    return counter, ""


def joules_per_image(round_joules: list[float | None], images: int, reason: str) -> tuple[float | None, str]:
    """A run's energy per image from its rounds' joules: None with the reason when any round has no figure.

    A run whose counter did not move has no figure either: zero joules would be a measurement it is not.
    """
    if not round_joules or images <= 0:
        return None, reason or ON_CPU
    if any(value is None for value in round_joules):
        return None, reason
    total = sum(value for value in round_joules if value is not None)
    if total <= 0:
        return None, DID_NOT_ADVANCE
    return total / images, ""
