"""Optimization variants: each one object with its needs, conflicts, kind and apply function, the
registry that composes them with ``+``, and the assembly of a pipeline per variant.

Owns: ``definition`` (the ``Variant`` class users subclass or instantiate in the
``pytest_sdxl_variants`` hook), ``registry`` (names, composition, parsing), ``builtin`` (every
built-in variant), ``optimizations``/``compilation``/``quantization``/``pipeline_graph``/
``unet_wrappers`` (how they change a pipeline), ``assembly`` (a pipeline per variant from shared
components, and the one way to call it).
May import: ``pytest_sdxl.pipelines``, ``pytest_sdxl.machine``, ``pytest_sdxl.errors``.

Importing this package is cheap (no torch): ``from pytest_sdxl.variants import Variant``.
"""

from __future__ import annotations

from pytest_sdxl.variants.definition import Variant

__all__ = ["Variant"]
