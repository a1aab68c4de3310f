"""Every benchmark class of the asv suite in one namespace: what a ``benchmarks/`` module re-exports.

asv finds benchmarks by the classes in each module of its ``benchmark_dir``; a module there that
star-imports this one runs the whole suite under its own name, and gains any class a later
pytest-sdxl adds.
"""

from __future__ import annotations

from pytest_sdxl.suite.asv.bench_generation import BatchGeneration, Generation
from pytest_sdxl.suite.asv.bench_protocol import ProtocolMetrics
from pytest_sdxl.suite.asv.bench_ratios import BatchOverOneByOne, HostNormalizedBatchOverOneByOne, VariantOverBaseline

__all__ = [
    "BatchGeneration",
    "BatchOverOneByOne",
    "Generation",
    "HostNormalizedBatchOverOneByOne",
    "ProtocolMetrics",
    "VariantOverBaseline",
]
