"""Ratios measured side by side in one process, the regression gate (``pytest_sdxl.suite.asv.bench_ratios``)."""

from pytest_sdxl.suite.asv.bench_ratios import BatchOverOneByOne, HostNormalizedBatchOverOneByOne, VariantOverBaseline

__all__ = ["BatchOverOneByOne", "HostNormalizedBatchOverOneByOne", "VariantOverBaseline"]
