"""Opening NVML (``pynvml`` from ``nvidia-ml-py``, the ``gpu`` extra) on the device that is torch's ``cuda:i``.

One way in for every NVML reading (the GPU's state, its energy counter): ``pynvml`` is imported
and NVML started only when a device is opened, and a device that cannot be opened raises
``NvmlUnavailable`` whose message is the reason, ready to follow "n/a: ".

Which NVML device is torch's ``cuda:i``: torch numbers the visible devices in CUDA's order, NVML
numbers every device in PCI bus order, so the card's UUID (from torch) names it in both. Without a
UUID, the i-th entry of ``CUDA_VISIBLE_DEVICES`` (an NVML index or a UUID, or the prefix of one) is
used, else NVML index i, which is right only when CUDA's order is the PCI bus order
(``CUDA_DEVICE_ORDER=PCI_BUS_ID``) or there is one GPU.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

NO_PYNVML = "nvidia-ml-py is not installed (pip install 'pytest-sdxl[gpu]')"


class NvmlUnavailable(Exception):
    """NVML cannot be used for this device; the message is the reason, ready to follow "n/a: "."""


@dataclass(frozen=True)
class NvmlDevice:
    """An opened NVML device: the ``pynvml`` module, the device's handle and its name."""

    nvml: Any
    handle: Any
    name: str


def text_of(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def visible_entry(index: int, environment: Mapping[str, str]) -> str | None:
    """The ``CUDA_VISIBLE_DEVICES`` entry torch's ``cuda:index`` is, or None when the variable is unset."""
    visible = environment.get("CUDA_VISIBLE_DEVICES")
    if visible is None:
        return None
    entries = [entry.strip() for entry in visible.split(",") if entry.strip()]
    if index >= len(entries):
        raise LookupError(f"cuda:{index} is not among CUDA_VISIBLE_DEVICES={visible!r}")
    return entries[index]


def handle_by_uuid(nvml: Any, uuid: str) -> Any:
    """The NVML handle of a full UUID, or of the one device whose UUID starts with a prefix (CUDA accepts both)."""
    try:
        return nvml.nvmlDeviceGetHandleByUUID(uuid)
    except nvml.NVMLError:
        matches = []
        for number in range(nvml.nvmlDeviceGetCount()):
            handle = nvml.nvmlDeviceGetHandleByIndex(number)
            if text_of(nvml.nvmlDeviceGetUUID(handle)).startswith(uuid):
                matches.append(handle)
        if len(matches) != 1:
            raise LookupError(f"NVML finds {len(matches)} devices for UUID {uuid!r}") from None
        return matches[0]


def nvml_handle(nvml: Any, index: int, uuid: str | None, environment: Mapping[str, str] = os.environ) -> Any:
    """The NVML handle of torch's ``cuda:index`` (see the module docstring for how it is found)."""
    if uuid:
        return handle_by_uuid(nvml, uuid if uuid.startswith(("GPU-", "MIG-")) else f"GPU-{uuid}")
    entry = visible_entry(index, environment)
    if entry is None:
        return nvml.nvmlDeviceGetHandleByIndex(index)
    if entry.isdigit():
        return nvml.nvmlDeviceGetHandleByIndex(int(entry))
    return handle_by_uuid(nvml, entry)


def torch_uuid(index: int) -> str | None:
    """The card's UUID as torch knows it (torch 2.1 and later), or None."""
    import torch

    try:
        uuid = getattr(torch.cuda.get_device_properties(index), "uuid", None)
    except Exception:  # without the UUID, CUDA_VISIBLE_DEVICES or the index still name the card
        return None
    return None if uuid is None else str(uuid)


def open_nvml_device(index: int, uuid: str | None = None, environment: Mapping[str, str] = os.environ) -> NvmlDevice:
    """NVML started and the handle of torch's ``cuda:index``; NvmlUnavailable says why not.

    ``uuid`` defaults to what torch reports for the device.
    """
    try:
        import pynvml
    except ImportError:
        raise NvmlUnavailable(NO_PYNVML) from None
    try:
        pynvml.nvmlInit()
    except pynvml.NVMLError as error:
        raise NvmlUnavailable(f"NVML: {error}") from None
    try:
        if uuid is None:
            uuid = torch_uuid(index)
        handle = nvml_handle(pynvml, index, uuid, environment)
    except (LookupError, pynvml.NVMLError) as error:
        raise NvmlUnavailable(f"NVML: no device found for cuda:{index} ({error})") from None
    try:
        name = text_of(pynvml.nvmlDeviceGetName(handle))
    except pynvml.NVMLError:  # the name only labels what is said about the card
        name = f"cuda:{index}"
    return NvmlDevice(pynvml, handle, name)
