"""The measurement core and what is built on it: warm-up, the one timed loop, the stage split,
device signals (kernel time, launches, FLOPs), energy, the card's matrix peak, run records; the
reference protocol, the harness's overhead, detection power, and resuming a measurement.

Owns: ``core``, ``records`` (run records from what the core timed), ``timing``, ``profiling``,
``device_signals``, ``energy``, ``matrix_peak``, ``protocol``, ``overhead``, ``power``, ``progress``
(events the faces render), ``resume``.
May import: ``analysis``, ``results``, ``variants``, ``pipelines``, ``machine``, ``errors``, ``settings``
for its type only. Never ``tune``, ``plugin``, ``cli`` or ``reports``.
"""
