"""One generation per variant, one batched call per batch size, timed (``pytest_sdxl.suite.asv.bench_generation``)."""

from pytest_sdxl.suite.asv.bench_generation import BatchGeneration, Generation

__all__ = ["BatchGeneration", "Generation"]
