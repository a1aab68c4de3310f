"""What people read: the reference protocol's tables, the summary, the chart, serving tables, the
comparison's verdict table and kernel diff, and the variant listing.

Owns: ``tables``, ``chart``, ``serving``, ``comparison``, ``variant_listing``.
May import: ``pytest_sdxl.analysis``, ``pytest_sdxl.results``, ``pytest_sdxl.variants`` (names and
availability only), ``pytest_sdxl.machine``. Renders; never measures or frees GPU memory.
"""
