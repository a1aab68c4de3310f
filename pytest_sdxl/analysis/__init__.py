"""What the numbers mean: sample statistics, the comparison's verdicts per signal, wall-time
adjustments for the host's speed, kernel tables and their differences, serving figures, bottlenecks.

Owns: ``stats``, ``comparison``, ``host_adjusted``, ``host_normalized``,
``kernels``, ``serving``, ``bottleneck``.
May import: ``pytest_sdxl.results``, ``pytest_sdxl.errors``; ``scipy.stats`` for distributions and tests,
imported on first use. No torch, no pipelines, no output.
"""
