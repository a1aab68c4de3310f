"""The asv suite: a performance history across commits, in this repository or a user's own.

``bench_protocol``: the reference protocol's metrics per variant (load, init gen, avg gen, stages,
peak GPU memory). ``bench_generation``: the time of one generation per variant, and of one batch
call per batch size. ``bench_ratios``: ratios measured side by side in one process (batch over one
by one, variant over baseline), the gate that a shared, drifting machine cannot blur.
``all_benchmarks``: every benchmark class in one namespace, what a ``benchmarks/`` folder re-exports.
``common``: the settings, variants and pipelines they share, built lazily. ``templates``: the
``asv.conf.json`` that ``pytest-sdxl asv init`` writes.

Importing any of these imports no torch: asv imports the suite to discover it.
"""
