"""The reference benchmark suite, shipped in the wheel so that it runs in any project.

``pytest --pyargs pytest_sdxl.suite --benchmark-only`` times every variant that can run here with
pytest-benchmark (on a CPU on ``random:tiny`` by default); ``asv`` holds the asv suite that
``pytest-sdxl asv init`` sets up in a user's own repository.

Owns: the pytest suite (``test_benchmark_variants``) and the asv suite (``asv``).
May import: every layer below the faces, and ``plugin`` only for its hook-variant loader.
"""
