"""The reference suite's one choice of its own: one torch thread on a CPU, unless OMP_NUM_THREADS is set.

torch's default of one thread per core makes a 64x64 image ten times slower, and its timings swing
tenfold, on a two-core machine that is busy with anything else; a GPU run is left alone.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import pytest


@pytest.fixture(scope="session", autouse=True)
def one_thread_on_a_cpu(sdxl_components: Any) -> Iterator[None]:
    if sdxl_components.device.type != "cpu" or "OMP_NUM_THREADS" in os.environ:
        yield
        return
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
