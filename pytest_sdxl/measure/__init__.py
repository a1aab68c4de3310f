"""The measurement core and what is built on it: warm-up, the one timed loop, the stage split,
device signals (kernel time, launches, FLOPs), energy, the card's matrix peak, run records; the
reference protocol, the harness's overhead, detection power, and resuming a measurement.

Owns: ``core``, ``records`` (run records from what the core timed), ``timing``, ``profiling``,
``device_signals``, ``energy``, ``matrix_peak``, ``protocol``, ``overhead``, ``power`` (in one process)
and ``power_processes`` (across fresh processes), ``power_results`` (their files read back and added
up), ``interleave`` (base and head in alternating fresh processes), ``injection`` (a slowdown a
child process applies to itself, for power), ``profiles`` and
``sequential`` (what a profile measures; rounds that stop once their interval is narrow enough),
``session_budget`` (one deadline for a session, shared out variant by variant),
``progress`` (events the faces render), ``resume``.
May import: ``analysis``, ``results``, ``variants``, ``pipelines``, ``machine``, ``errors``, ``settings``
for its type only. Never ``tune``, ``plugin``, ``cli`` or ``reports``.
"""
