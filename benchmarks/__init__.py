"""This repository's asv suite: thin modules re-exporting pytest-sdxl's (``pytest_sdxl.suite.asv``).

Each module keeps the name its benchmarks have in the results history (``bench_ratios.VariantOverBaseline``...).
"""
