"""Bytecode for the fresh processes that ``ab`` and ``power --across processes`` start, where it is turned off.

Some container images set ``PYTHONDONTWRITEBYTECODE`` and ship their packages without bytecode: every
fresh process then compiles torch, diffusers and transformers from source before it can measure. On the
H100 host of the guide's results that put a process's first timed round at 23-31 s from its start
instead of 9.5-9.7 s (method page, "Cost of a process"), and a comparison starts many processes. So the
processes started here keep their bytecode in one cache folder (``PYTHONPYCACHEPREFIX``): the first
writes it, the others read it. Bytecode is the same code compiled once, so what they measure does not
change. A prefix the user set is left as it is, and so is everything where bytecode is not turned off.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from pytest_sdxl.machine.folders import cache_home


def bytecode_folder(environment: Mapping[str, str] = os.environ) -> Path:
    """``$XDG_CACHE_HOME/pytest-sdxl/bytecode``, else ``~/.cache/pytest-sdxl/bytecode`` (the XDG default)."""
    return cache_home(environment) / "bytecode"


def kept_bytecode(environment: Mapping[str, str] = os.environ) -> dict[str, str]:
    """The variables a started process gets so that it keeps its bytecode; empty where nothing needs changing.

    Python writes bytecode unless ``PYTHONDONTWRITEBYTECODE`` is a non-empty string, so the empty string
    turns it back on for the child alone.
    """
    if not environment.get("PYTHONDONTWRITEBYTECODE") or environment.get("PYTHONPYCACHEPREFIX"):
        return {}
    return {"PYTHONDONTWRITEBYTECODE": "", "PYTHONPYCACHEPREFIX": str(bytecode_folder(environment))}


def bytecode_note(environment: Mapping[str, str] = os.environ) -> str:
    """One line on what the started processes do with bytecode here, or "" where it is left as it is."""
    kept = kept_bytecode(environment)
    if not kept:
        return ""
    return (
        "PYTHONDONTWRITEBYTECODE is set here: the processes keep their bytecode in "
        f"{kept['PYTHONPYCACHEPREFIX']} instead of each compiling its libraries from source"
    )
