"""The machine: device and dtype resolution, synchronization, GPU memory, the compile cache's folder,
every probe of the hardware and library versions, and the GPU's state while it is measured.

Owns: ``devices`` (resolve, synchronize, free and read memory), ``probes`` (CPU, GPU, driver, CUDA and
library versions, one set of keys), ``compile_cache`` (the persistent torch.compile folder),
``nvml`` (NVML opened on the device that is torch's ``cuda:i``), ``gpu_state`` (clocks, temperature,
power and throttle reasons read through NVML, run summaries, and what ``compare`` says of them),
``process_identity`` (the id of this process that every run records), ``interrupts`` (a Ctrl-C
remembered, so one a finalizer swallows still stops the work), ``bytecode`` (the bytecode cache of the
processes ``ab`` starts, where the environment turns bytecode off).
May import: the standard library, ``pytest_sdxl.errors``, and torch and ``pynvml`` lazily. Nothing above it.
"""
