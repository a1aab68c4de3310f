"""What the numbers mean: sample statistics, the comparison's verdicts per signal, wall-time
adjustments for the host's speed, kernel tables and their differences, serving figures, bottlenecks,
and image quality against the baseline's images with the budget it must meet.

Owns: ``stats``, ``comparison``, ``processes`` (the comparison over several processes a side: a
statsmodels mixed model with a level per process), ``host_adjusted``, ``host_normalized``,
``kernels``, ``serving``, ``bottleneck``, ``quality`` (SSIM, PSNR, LPIPS; quality budgets).
May import: ``pytest_sdxl.results``, ``pytest_sdxl.errors``, ``pytest_sdxl.machine``; ``scipy.stats`` for
distributions and tests, statsmodels for the per-process model, and torch and torchmetrics for
``quality``'s figures, each imported on first use; ``pipelines.sources``' names of random weights.
No pipeline is built here, no output.
"""
