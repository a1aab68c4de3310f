"""The machine: device and dtype resolution, synchronization, GPU memory, the compile cache's folder,
and every probe of the hardware and library versions.

Owns: ``devices`` (resolve, synchronize, free and read memory), ``probes`` (CPU, GPU, driver, CUDA and
library versions, one set of keys), ``compile_cache`` (the persistent torch.compile folder).
May import: the standard library, ``pytest_sdxl.errors``, and torch lazily. Nothing above it.
"""
