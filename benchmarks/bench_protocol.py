"""The reference protocol's metrics per variant over commits (``pytest_sdxl.suite.asv.bench_protocol``)."""

from pytest_sdxl.suite.asv.bench_protocol import ProtocolMetrics

__all__ = ["ProtocolMetrics"]
