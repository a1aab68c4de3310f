"""The asv benchmark suite of pytest-sdxl: a performance history across commits.

``bench_protocol``: the notes' metrics per variant (load, init gen, avg gen, stages, peak GPU memory).
``bench_generation``: the time of one generation per variant, and of one batch call per batch size.
``bench_ratios``: ratios measured side by side in one process (batch over one by one, variant over
baseline), the gate that a shared, drifting machine cannot blur.
"""
