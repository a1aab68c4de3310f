"""The card's measured matrix peak: the best TFLOP/s of a large matmul loop, measured once per card and cached.

A roofline share is against what the card can do with this torch, not a datasheet figure (boost
clocks, power caps and the cuBLAS build all move it). The measurement: ``REPEATS`` times, a loop of
``MATMULS`` products of two ``SIZE`` x ``SIZE`` matrices in the run's dtype between two CUDA events
(after a warm-up loop), best of the repeats. It takes a few seconds once; the figure is then kept
in ``$XDG_CACHE_HOME/pytest-sdxl/matrix_peak.json`` (``~/.cache`` by default), one entry per GPU
name, torch version and dtype, written atomically. Two processes measuring at once both write;
the last whole file wins, and a lost entry is measured again next time.

On a CPU there is no figure: a CPU's matrix peak depends on its threads and BLAS and a shared
2-core runner gives no stable one; the FLOPs and achieved TFLOP/s per stage are still reported.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Callable, Mapping
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from pytest_sdxl.machine.folders import cache_home

SIZE = 8192
MATMULS = 20
REPEATS = 5
ON_CPU = "n/a: the matrix peak is measured on CUDA GPUs only (a CPU's depends on its threads and BLAS)"


def cache_file(environment: Mapping[str, str] = os.environ) -> Path:
    """``$XDG_CACHE_HOME/pytest-sdxl/matrix_peak.json``, else under ``~/.cache`` (the XDG default)."""
    return cache_home(environment) / "matrix_peak.json"


def cache_key(gpu_name: str, torch_version: str, dtype: str) -> str:
    return f"{gpu_name} | torch {torch_version} | {dtype.removeprefix('torch.')}"


def read_cache(path: Path) -> dict[str, Any]:
    """The cached entries; an unreadable or foreign file counts as empty (it is measured again and rewritten)."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def cached_or_measured(key: str, measure: Callable[[], float], path: Path) -> float:
    """The cached peak under ``key``, or ``measure()`` kept in the cache file for next time."""
    from pytest_sdxl.results.schema import write_atomically

    entries = read_cache(path)
    entry = entries.get(key)
    if isinstance(entry, dict) and isinstance(entry.get("tflops"), (int, float)) and entry["tflops"] > 0:
        return float(entry["tflops"])
    tflops = measure()
    entries[key] = {
        "tflops": tflops,
        "measured": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "method": f"best of {REPEATS} loops of {MATMULS} matmuls {SIZE}x{SIZE}x{SIZE}",
    }
    # A read-only cache folder costs a measurement next time, not this run.
    with contextlib.suppress(OSError):
        write_atomically(path, json.dumps(entries, indent=2, sort_keys=True) + "\n")
    return tflops


def measure_matmul_tflops(device: Any, dtype: Any, size: int = SIZE, matmuls: int = MATMULS) -> float:
    """Best TFLOP/s of ``REPEATS`` loops of ``matmuls`` products of ``size``-square matrices, timed by CUDA events."""
    import torch

    first = torch.randn(size, size, device=device, dtype=dtype)
    second = torch.randn(size, size, device=device, dtype=dtype)
    product = torch.empty(size, size, device=device, dtype=dtype)
    try:
        for _ in range(matmuls):  # clocks up and cuBLAS' choice of kernel settled before the timed loops
            torch.matmul(first, second, out=product)
        best = 0.0
        for _ in range(REPEATS):
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            for _ in range(matmuls):
                torch.matmul(first, second, out=product)
            end.record()
            end.synchronize()
            seconds = start.elapsed_time(end) / 1000
            best = max(best, 2 * size**3 * matmuls / seconds / 1e12)
        return best
    finally:
        del first, second, product
        torch.cuda.empty_cache()


def matrix_peak(device: Any, dtype: Any, path: Path | None = None) -> tuple[float | None, str]:
    """The card's matrix peak in TFLOP/s for ``dtype`` and "", or None and why (a CPU, a failed measurement)."""
    if getattr(device, "type", "cpu") != "cuda":
        return None, ON_CPU
    import torch

    try:
        key = cache_key(torch.cuda.get_device_name(device), torch.__version__, str(dtype))
        return cached_or_measured(key, lambda: measure_matmul_tflops(device, dtype), path or cache_file()), ""
    except Exception as error:  # out of memory beside a large variant, an unsupported dtype: the share is n/a
        return None, f"n/a: the matrix peak could not be measured ({type(error).__name__}: {error})"[:300]
