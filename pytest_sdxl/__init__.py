"""pytest-sdxl: a pytest plugin and performance regression suite for SDXL-Turbo on diffusers.

Importing this package is cheap: torch, diffusers and transformers are imported only by the
modules that build or run pipelines, and only when those are used.
"""

from __future__ import annotations

__version__ = "0.1.0"
