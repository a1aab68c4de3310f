"""Hook specifications pytest-sdxl adds to pytest (hookspecs only; registered by plugin.pytest_addhooks)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from pytest_sdxl.variants.definition import Variant


@pytest.hookspec
def pytest_sdxl_variants() -> Iterable[Variant] | None:
    """Return extra variants for pytest-sdxl: each can then be named in ``--sdxl-variants`` and composed with ``+``.

    Implement it in a ``conftest.py`` or in a package installed with a ``pytest11`` entry point. The
    command line (``python -m pytest_sdxl variants`` / ``run``) loads installed ``pytest11`` plugins,
    modules named by ``-p`` or ``PYTEST_PLUGINS`` and files named by ``--conftest``. For example:

        from pytest_sdxl.variants import Variant

        def apply(pipe, context):
            # pipe is a diffusers StableDiffusionXLPipeline; components in `mutates` are private copies
            pipe.unet.set_attn_processor(MyProcessor())

        def pytest_sdxl_variants():
            return [Variant("my_attention", "exact", "my attention processor", apply=apply, mutates=("unet",))]

    Names must be new, lower snake_case; ``conflicts`` may name built-in variants. Plugin variants are
    applied after the built-in ones.
    """
