"""The persistent compile cache: the folder torch keeps compiled graphs and kernels in between sessions.

A compiled variant (``compile_unet`` and every other ``torch.compile`` one) pays its compile in its
first generation; inductor's FX graph cache, AOTAutograd's cache and Triton's kernel cache turn most
of that into a read in the next session when they live in a folder that outlasts the process.
``activate`` points them there (``TORCHINDUCTOR_CACHE_DIR``, ``TRITON_CACHE_DIR``) before anything
compiles; ``CacheProbe`` tells from torch's own hit and miss counters whether a variant's first
generation found the cache warm or cold. Standard library only at import time.

Why not torch's portable "mega-cache" (``torch.compiler.save_cache_artifacts``): it bundles the same
artifacts these folders hold, from one process only; several xdist workers or sessions writing it
would each replace the others' bundle, while the folders take every process's entries side by side.
A CI job keeps the folder itself (actions/cache) instead.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, MutableMapping
from dataclasses import dataclass
from pathlib import Path

from pytest_sdxl.errors import SettingsError
from pytest_sdxl.machine.folders import FOLDER_ACCEPTED, cache_home, writable_folder

OFF = ("off", "none", "no", "false")
ACCEPTED = f"auto, off, or {FOLDER_ACCEPTED}"
INDUCTOR_VARIABLE = "TORCHINDUCTOR_CACHE_DIR"
TRITON_VARIABLE = "TRITON_CACHE_DIR"
# torch's counters of cache look-ups (torch._dynamo.utils.counters[group][name]): a graph compiled
# from scratch is a miss, one read back from the folder a hit.
HIT_COUNTERS = (("inductor", "fxgraph_cache_hit"), ("aot_autograd", "autograd_cache_hit"))
MISS_COUNTERS = (("inductor", "fxgraph_cache_miss"), ("aot_autograd", "autograd_cache_miss"))


def default_folder(environment: Mapping[str, str] = os.environ) -> Path:
    """``$XDG_CACHE_HOME/pytest-sdxl/compile``, else ``~/.cache/pytest-sdxl/compile`` (the XDG default)."""
    return cache_home(environment) / "compile"


def folder_from_setting(value: str, where: str, environment: Mapping[str, str] = os.environ) -> Path | None:
    """The cache folder a setting names: ``auto`` the default folder, ``off`` None, else the folder given."""
    text = value.strip()
    if text.lower() in OFF:
        return None
    if text in ("", "auto"):
        return default_folder(environment)
    # A folder given is checked when the setting is read, before anything loads; the default one (auto) is
    # not: a read-only home must not make every pytest session a usage error, used by pytest-sdxl or not.
    return writable_folder(text, where, accepted=ACCEPTED, what="compile cache")


def activate(folder: Path | None, environment: MutableMapping[str, str] = os.environ) -> Path | None:
    """Point inductor's and Triton's caches into ``folder`` (created); returns it, or None when off.

    Must run before the first compile of the process: inductor reads its variable on each compile,
    Triton when it first compiles a kernel. Raises SettingsError when the folder cannot be created.
    """
    if folder is None:
        return None
    try:
        for part in ("inductor", "triton"):
            (folder / part).mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise SettingsError(f"compile cache folder {str(folder)!r} cannot be created: {error}") from None
    environment[INDUCTOR_VARIABLE] = str((folder / "inductor").resolve())
    environment[TRITON_VARIABLE] = str((folder / "triton").resolve())
    return folder


def entries(folder: Path | None) -> int:
    """Files in the cache folder (0 when off or missing): a check that compiling filled it."""
    if folder is None or not folder.is_dir():
        return 0
    return sum(len(files) for _, _, files in os.walk(folder))


def counter_totals() -> tuple[int, int]:
    """(hits, misses) of torch's compile caches in this process so far; (0, 0) before torch is imported."""
    import sys

    if "torch" not in sys.modules:
        return 0, 0
    try:
        from torch._dynamo.utils import counters
    except ImportError:  # a torch without dynamo compiles nothing
        return 0, 0
    hits = sum(int(counters[group][name]) for group, name in HIT_COUNTERS)
    misses = sum(int(counters[group][name]) for group, name in MISS_COUNTERS)
    return hits, misses


@dataclass(frozen=True)
class CacheUse:
    """What one variant's first generation found in the compile cache."""

    hits: int
    misses: int

    @property
    def state(self) -> str:
        """``warm`` (every graph read back), ``cold`` (every graph compiled), ``partly warm``, or "" (no compile)."""
        if self.hits == 0 and self.misses == 0:
            return ""
        if self.misses == 0:
            return "warm"
        if self.hits == 0:
            return "cold"
        return "partly warm"

    def describe(self) -> str:
        if not self.state:
            return ""
        return f"{self.state} ({self.hits} of {self.hits + self.misses} compiled graphs read from the cache)"


class CacheProbe:
    """Counts torch's compile-cache hits and misses between ``start`` and ``stop`` (one first generation)."""

    def __init__(self) -> None:
        self.before = (0, 0)

    def start(self) -> None:
        self.before = counter_totals()

    def stop(self) -> CacheUse:
        hits, misses = counter_totals()
        return CacheUse(hits=hits - self.before[0], misses=misses - self.before[1])


def summary_line(folder: Path | None, uses: Mapping[str, str]) -> str:
    """One line for the session summary: each compiled variant's cache state, and where the cache is."""
    if not uses:
        return ""
    where = "off (torch's own default folders)" if folder is None else str(folder)
    return f"sdxl compile cache {where}: " + "; ".join(f"{variant} {use}" for variant, use in uses.items())
