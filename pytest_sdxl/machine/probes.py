"""Every probe of the machine: CPU, GPU, driver, CUDA and library versions, with one set of keys.

Two views of the same probes: ``machine_details`` never imports torch (pytest-benchmark asks for
machine info while configuring, long before a test imports torch, and the answer must be the same
then and at the end of the session); ``machine_info`` adds what torch knows of the device in use.
Both name the driver ``gpu_driver``; memory is in GB (10^9 bytes) everywhere in pytest-sdxl.
"""

from __future__ import annotations

import ast
import importlib.util
import os
import platform
import re
import shutil
import sys
from importlib import metadata
from pathlib import Path
from typing import Any

from pytest_sdxl.machine.devices import BYTES_PER_GB, DeviceChoice


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


NVIDIA_PROC = Path("/proc/driver/nvidia")
NVIDIA_SMI_TIMEOUT_S = 5.0


def gpus_from_driver(root: Path = NVIDIA_PROC) -> tuple[list[str], str | None] | None:
    """GPU names and driver version from the NVIDIA kernel driver's /proc files (microseconds, no subprocess).

    None where the driver exposes no such files (no NVIDIA GPU, or WSL, where only nvidia-smi knows).
    """
    gpus = root / "gpus"
    if not gpus.is_dir():
        return None
    names = []
    for information in sorted(gpus.glob("*/information")):
        for line in information.read_text(encoding="utf-8", errors="replace").splitlines():
            if line.startswith("Model:"):
                names.append(line.split(":", 1)[1].strip())
    driver = None
    try:
        found = re.search(
            r"Kernel Module.*?\s(\d+\.\d+(?:\.\d+)?)\s",
            (root / "version").read_text(encoding="utf-8", errors="replace"),
        )
        driver = found.group(1) if found else None
    except OSError:
        pass
    return names, driver


def gpus_from_nvidia_smi() -> tuple[list[str], str | None] | None:
    """GPU names and driver version from nvidia-smi, or None without it; a hung driver costs at most a few seconds."""
    import subprocess

    executable = shutil.which("nvidia-smi")
    if executable is None:
        return None
    try:
        output = subprocess.run(
            [executable, "--query-gpu=name,driver_version", "--format=csv,noheader"],
            capture_output=True,
            text=True,
            timeout=NVIDIA_SMI_TIMEOUT_S,
            check=False,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    rows = [[cell.strip() for cell in line.split(",")] for line in output.strip().splitlines() if "," in line]
    if not rows:
        return None
    return [row[0] for row in rows], rows[0][1]


def gpu_summary(names: list[str]) -> str | None:
    """'NVIDIA H100 80GB HBM3' for one card, 'NVIDIA H100 80GB HBM3 x8' for eight alike; None for none."""
    distinct = list(dict.fromkeys(names))
    if not distinct:
        return None
    if len(distinct) == 1:
        return distinct[0] + (f" x{len(names)}" if len(names) > 1 else "")
    return ", ".join(names)


def gpu_driver() -> str | None:
    """The NVIDIA driver version: from the kernel driver's files, else nvidia-smi; None where there is none."""
    found = gpus_from_driver() or gpus_from_nvidia_smi()
    return found[1] if found else None


def gpu_info(device_name: str | None = None) -> dict[str, Any]:
    """GPU name, memory, CUDA version and driver of the device in use (all None on a CPU-only machine)."""
    import torch

    info: dict[str, Any] = {"gpu": None, "gpu_memory_gb": None, "cuda": torch.version.cuda, "gpu_driver": None}
    if not torch.cuda.is_available():
        return info
    device = torch.device(device_name if device_name and device_name.startswith("cuda") else "cuda")
    properties = torch.cuda.get_device_properties(device)
    info.update(
        gpu=properties.name,
        gpu_memory_gb=round(properties.total_memory / BYTES_PER_GB, 1),
        gpu_count=torch.cuda.device_count(),
        gpu_driver=gpu_driver(),
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


def resolved_precision(settings: DeviceChoice) -> dict[str, str]:
    """The device and dtype 'auto' stood for, for the report header."""
    from pytest_sdxl.errors import SettingsError, VariantUnavailable
    from pytest_sdxl.machine.devices import resolve_device, resolve_dtype

    try:
        device = resolve_device(settings.device)
        return {"resolved_device": str(device), "resolved_dtype": str(resolve_dtype(settings.dtype, device))}
    except (VariantUnavailable, SettingsError):
        return {}


def torch_cuda_version() -> str | None:
    """The CUDA version torch was built for, read from torch/version.py unless torch is already imported."""
    torch = sys.modules.get("torch")
    if torch is not None:
        return getattr(torch.version, "cuda", None)
    spec = importlib.util.find_spec("torch")
    if spec is None or not spec.submodule_search_locations:
        return None
    try:
        text = (Path(next(iter(spec.submodule_search_locations))) / "version.py").read_text(encoding="utf-8")
    except OSError:
        return None
    found = re.search(r"^cuda(?:\s*:[^=]*)?=\s*(.+)$", text, flags=re.MULTILINE)
    if not found:
        return None
    try:
        value = ast.literal_eval(found.group(1).strip())
    except (ValueError, SyntaxError):
        return None
    return str(value) if value else None


def machine_details(use_nvidia_smi: bool = True) -> dict[str, Any]:
    """GPU, driver, CUDA and library versions for pytest-benchmark's machine_info; never imports torch."""
    found = gpus_from_driver()
    if found is None and use_nvidia_smi:
        found = gpus_from_nvidia_smi()
    names, driver = found if found is not None else ([], None)
    return {
        "gpu": gpu_summary(names),
        "gpu_count": len(names),
        "gpu_driver": driver,
        "cuda": torch_cuda_version(),
        "torch": package_version("torch"),
        "diffusers": package_version("diffusers"),
        "transformers": package_version("transformers"),
        "pytest_sdxl": package_version("pytest-sdxl"),
    }


# Keys whose difference makes two benchmark runs incomparable: another card, driver or software stack.
COMPARED_KEYS = ("gpu", "gpu_driver", "cuda", "torch", "diffusers")


def machine_differences(now: dict[str, Any], then: dict[str, Any]) -> list[str]:
    return [
        f"{key} {then.get(key)!r} then, {now.get(key)!r} now" for key in COMPARED_KEYS if now.get(key) != then.get(key)
    ]
