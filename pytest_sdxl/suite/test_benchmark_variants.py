"""The reference benchmark suite: every variant timed with pytest-benchmark on warmed pipelines.

``pytest --pyargs pytest_sdxl.suite --benchmark-only`` runs it from any folder: on a CPU on
``random:tiny``, on a GPU with ``--sdxl-model random:sdxl-turbo`` for real timings. Select variants
with ``--sdxl-variants``; the reference protocol's tables follow in the terminal summary.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np


def test_generation(sdxl_benchmark: Callable[[], np.ndarray]) -> None:
    """Seconds per round over the timed prompts, GPU synchronized; figures in extra_info."""
    images = sdxl_benchmark()
    assert images.ndim == 4 and images.shape[-1] == 3
