"""What machine a measurement ran on (CPU, GPU, driver, CUDA, library versions) and its GPU memory readings.

torch is imported inside ``machine_info`` only, so importing this module stays cheap.
"""

from __future__ import annotations

import os
import platform
import re
import shutil
import subprocess
import sys
from importlib import metadata
from typing import Any

BYTES_PER_GB = 1e9


def package_version(name: str) -> str | None:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def cpu_name() -> str:
    """The CPU's model name (from /proc/cpuinfo on Linux), else what platform says."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as handle:
            for line in handle:
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def nvidia_driver() -> str | None:
    """The NVIDIA driver version from nvidia-smi, or None where there is none."""
    executable = shutil.which("nvidia-smi")
    if executable is None:
        return None
    try:
        output = subprocess.run(
            [executable, "--query-gpu=driver_version", "--format=csv,noheader"],
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    first = output.strip().splitlines()[0].strip() if output.strip() else ""
    return first or None


def gpu_info(device_name: str | None = None) -> dict[str, Any]:
    """GPU name, memory, CUDA version and driver of the device in use (all None on a CPU-only machine)."""
    import torch

    info: dict[str, Any] = {"gpu": None, "gpu_memory_gb": None, "cuda": torch.version.cuda, "driver": None}
    if not torch.cuda.is_available():
        return info
    device = torch.device(device_name if device_name and device_name.startswith("cuda") else "cuda")
    properties = torch.cuda.get_device_properties(device)
    info.update(
        gpu=properties.name,
        gpu_memory_gb=round(properties.total_memory / 1024**3, 1),
        gpu_count=torch.cuda.device_count(),
        driver=nvidia_driver(),
    )
    return info


def card_slug(name: str | None) -> str:
    """A file-name-safe card name: 'NVIDIA H100 80GB HBM3' -> 'h100-80gb-hbm3'; 'cpu' without a GPU."""
    if not name:
        return "cpu"
    cleaned = re.sub(r"^nvidia\s+", "", name.strip(), flags=re.IGNORECASE)
    return re.sub(r"[^a-z0-9]+", "-", cleaned.lower()).strip("-") or "gpu"


def machine_info(device_name: str | None = None) -> dict[str, Any]:
    """Everything a reader needs to know which machine and software produced a result."""
    info: dict[str, Any] = {
        "hostname": platform.node(),
        "platform": platform.platform(),
        "cpu": cpu_name(),
        "cpu_count": os.cpu_count(),
        "python": sys.version.split()[0],
        "torch": package_version("torch"),
        "diffusers": package_version("diffusers"),
        "transformers": package_version("transformers"),
        "accelerate": package_version("accelerate"),
        "pytest_sdxl": package_version("pytest-sdxl"),
    }
    info.update(gpu_info(device_name))
    return info


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


def resolved_precision(settings: Any) -> dict[str, str]:
    """The device and dtype 'auto' stood for, for the report header."""
    from pytest_sdxl.devices import resolve_device, resolve_dtype
    from pytest_sdxl.errors import SettingsError, VariantUnavailable

    try:
        device = resolve_device(settings.device)
        return {"resolved_device": str(device), "resolved_dtype": str(resolve_dtype(settings.dtype, device))}
    except (VariantUnavailable, SettingsError):
        return {}
