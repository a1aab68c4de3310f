"""What people read: the reference protocol's tables, the summary, the chart, serving tables, the
comparison's verdict table and kernel diff, and the variant listing, each fitted to 120 columns.

Owns: ``tables``, ``chart``, ``serving``, ``comparison``, ``markdown``, ``variant_listing``, ``gpu_state``
(the GPU's state per run), ``host_state`` (the host's), ``device_signals`` (the kernel and GPU-busy
columns), ``quality`` (image quality and a budget's findings), and under them
``layout`` (tables that fit a terminal) and ``figures`` (each kind of figure rounded for reading).
May import: ``pytest_sdxl.analysis``, ``pytest_sdxl.results``, ``pytest_sdxl.variants`` (names and
availability only), ``pytest_sdxl.machine``. Renders; never measures or frees GPU memory.
"""
