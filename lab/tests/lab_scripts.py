"""A lab script loaded as a module, for the lab's tests: the scripts live in lab/, which is no package."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

LAB = Path(__file__).resolve().parents[1]


def load_script(name: str) -> Any:
    """lab/<name>.py as a fresh module named ``name``."""
    spec = importlib.util.spec_from_file_location(name, LAB / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
