"""A side-by-side wall ratio that a slower or faster host does not move: one number per process, for asv.

``compare`` and ``power`` remove the host's speed with a fit over many blocks of two measurements
(``host_adjusted``). asv cannot: it judges one number a commit, each from a fresh process, and the
plain ratio of minima moves several percent between two fresh processes with nothing changed. Why:
the two sides are not equally host-bound, so the host's speed does not cancel.

The model: a call's wall time is the GPU's kernel time (steady to 0.1-0.2 % on a GPU) plus the time
the GPU waits for the host (``idle``), and the host's speed scales the idle time of both sides
alike. So the ratio of the two idle times does not move with the host, and each side's wall time
can be restated at one fixed host speed: the one at which the reference waits exactly its own kernel
time. The result keeps the wall-time scale of the plain ratio (a batch path 5 % slower reads about
6 % higher) while its host-speed drift is divided out.

What it achieves, measured (the user guide's method page, "The host-normalized ratio for asv"): on
re-read samples of host-slowed and unchanged runs it spreads less than half as much as the plain
ratio and raises far fewer false alarms; between commits on a shared host it still falls short of
asv's bar, so ``compare`` over the plugin's runs stays the gate for host-side slowdowns. Where the
GPU is busy 80 % of the time or more the reference's idle time is small, and this ratio spreads more
than the plain one.

Standard library only.
"""

from __future__ import annotations

import math


def host_normalized_ratio(own_s: float, own_kernel_s: float, reference_s: float, reference_kernel_s: float) -> float:
    """Own wall time over the reference's, both per image, at the host speed where the reference idles its kernel time.

    ``own_s``, ``reference_s``: each side's fastest wall time per image (its minimum over the
    alternating rounds). ``own_kernel_s``, ``reference_kernel_s``: each side's summed GPU kernel time
    per image (a profiled pass). Raises ValueError, naming the value, when a number is not a positive
    finite one, or when the reference never waits for the host (kernel time at or above its wall
    time): then the host's speed cannot be read from it.
    """
    values = {
        "own wall time": own_s,
        "own kernel time": own_kernel_s,
        "reference wall time": reference_s,
        "reference kernel time": reference_kernel_s,
    }
    for name, value in values.items():
        if not (math.isfinite(value) and value > 0):
            raise ValueError(
                f"host-normalized ratio: {name} must be a positive finite number of seconds, not {value!r}"
            )
    reference_idle = reference_s - reference_kernel_s
    if reference_idle <= 0:
        raise ValueError(
            f"host-normalized ratio: the reference's kernel time ({reference_kernel_s * 1000:.3g} ms) is not below its "
            f"wall time ({reference_s * 1000:.3g} ms), so it never waits for the host and cannot measure the host's "
            "speed; use the plain ratio of minima"
        )
    # Kernels on several streams can sum to more than the wall time: such a side has no idle time to scale.
    own_idle = max(own_s - own_kernel_s, 0.0)
    own_at_fixed_host = own_kernel_s + own_idle * reference_kernel_s / reference_idle
    return own_at_fixed_host / (2 * reference_kernel_s)
